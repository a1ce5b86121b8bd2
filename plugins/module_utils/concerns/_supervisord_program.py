# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service_restart_policy's supervisord concern: a program's own section, edited where
supervisord defines it (the files found and parsed as supervisord does), its command through the
hook and its holder (_holder), written after the systemd transaction's commit, then reread,
updated and read back. Entries come checked from _service_restart_policy.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _command,
    _holder,
    _hook,
    _host_state,
    _plan,
    _preload,
    _reuse,
    _sockdiag,
    _supervisor,
    _systemd,
    _unit,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import FileSet, load_ledger, read_text


def supervisor_dir(p):
    """(include directory, file extension) where a program defined nowhere yet gets its file."""
    if p["supervisor_dir"]:
        d = p["supervisor_dir"]
        return d, ".ini" if d.rstrip("/").endswith("supervisord.d") else ".conf"
    for family in ("RedHat", "Debian"):
        d, ext = _supervisor.supervisor_paths(family)
        if os.path.isdir(d):
            return d, ext
    return _supervisor.supervisor_paths(_host_state.read_os_release()["os_family"])


def supervisor_conf(module, p, ctl):
    """The main configuration file the running supervisord read (its -c), else the first of
    supervisord's own search paths that exists (also without supervisorctl: ``ctl`` None)."""
    if p["supervisor_conf"]:
        return p["supervisor_conf"]
    pid = _command.run(module, [ctl, "pid"], check=False)[1].strip() if ctl else ""
    if pid.isdigit() and pid != "0":
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read().decode("utf-8", "replace").split("\0")
            cwd = os.readlink("/proc/%s/cwd" % pid)
        except (IOError, OSError):
            args, cwd = [], "/"
        for i, arg in enumerate(args):
            given = args[i + 1] if arg in ("-c", "--configuration") and i + 1 < len(args) else (
                arg.split("=", 1)[1] if arg.startswith("--configuration=") else None)
            if given:
                return os.path.join(cwd, given)
    for path in _supervisor.SEARCH:
        if os.path.isfile(path):
            return path
    return _supervisor.SEARCH[0]


def refusal(p):
    """Why a supervisord entry's checked options ``p`` cannot be done (its name, or what its
    socket activation needs: _holder.refusal), or None - asked before anything is planned."""
    _supervisor.check_program_name(_supervisor.program_name(p["name"]))
    return _holder.refusal(p["name"], p["socket_activation"] if p["state"] == "present" else "none",
                           p["cleanup_hook"], p["ports"], p["accepts_inherited_fds"], os.uname()[4])


def mentioned(marker):
    """Does a file supervisord reads (from its default main file) mention ``marker`` (a held
    program preloads the library too)?"""
    main = next((path for path in _supervisor.SEARCH if os.path.isfile(path)), None)
    return any(marker in (read_text(f) or "") for f in (_supervisor.read_order(main, read_text) if main else []))


def supervisor_files(module, p, ctl):
    """[(path, text)] of every file supervisord reads, in its order."""
    main = supervisor_conf(module, p, ctl)
    return [(path, read_text(path) or "") for path in _supervisor.read_order(main, read_text)]


def originals(files):
    """The same files as the collection found them (its ledger keeps the original of a file it
    edited): what the program's own section said before any hardening."""
    led = load_ledger()["files"]
    out = []
    for path, text in files:
        entry = led.get(path)
        if entry and not entry["created"] and entry.get("original"):
            text = read_text(entry["original"]) or text
        out.append((path, text))
    return out


def supervisor_updates(module, name, p, pristine, current=""):
    """The keys the program's section gets: autorestart and its retry policy, killasgroup (no
    child keeps the port after a kill), and with the hook the command through it, the hook
    dropping to the section's own user= (which goes: supervisord's would leave the hook
    without CAP_NET_ADMIN). Every other key (directory, environment, umask, stopsignal, logs,
    ...) stays as the section has it. ``current``: the command the section has now - a port its
    hook cleans whole stays whole while the program listens on a wildcard there
    (_reuse.stable_targets), so a run before and one after the program came up agree.
    Returns (updates, user, hooked, ports)."""
    user = p["user"] or pristine.get("user")
    if user and "%(" in user:
        raise _unit.UnitError("supervisord program %s: user=%s uses an expansion; give the user as the user option"
                              % (name, user))
    ports = sorted(set(p["ports"]))
    hooked = bool(p["cleanup_hook"] and ports)
    why = _holder.refusal(name, p["socket_activation"], p["cleanup_hook"], ports, p["accepts_inherited_fds"],
                          os.uname()[4])
    if why:
        raise _unit.UnitError(why)
    command = p["command"] or _supervisor.wrapped_command(pristine.get("command", ""), p["cleanup_hook"] or "")
    if not command:
        raise _unit.UnitError("supervisord program %s has no command (neither in its section nor given); nothing was "
                              "written" % name)
    ids = None
    if user and hooked:
        _unit.check_user_name(user)
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise _unit.UnitError("supervisord program %s: user %r does not exist on this host; nothing was written"
                                  % (name, user))
        ids = (pw.pw_uid, pw.pw_gid, [g for g in os.getgrouplist(user, pw.pw_gid) if g != pw.pw_gid])
    targets = program_targets(module, name, ports, _supervisor.wrapped_targets(current or "")) if hooked else ports
    hold = program_hold(module, name, p, ports, command, current) if hooked else None
    line = _supervisor.supervisor_command(name, command, p["cleanup_hook"] if hooked else None, targets, ids, hold)
    updates = {"command": line,
               "autorestart": "true", "startsecs": "%d" % p["startsecs"], "startretries": "%d" % p["startretries"],
               "killasgroup": "true"}
    if p["stopsignal"]:
        updates["stopsignal"] = p["stopsignal"]
    if p["stopwaitsecs"] is not None:
        updates["stopwaitsecs"] = "%d" % p["stopwaitsecs"]
    if hooked:
        updates["user"] = None
    elif p["user"]:
        updates["user"] = p["user"]
    return updates, user, hooked, hold


def program_targets(module, name, ports, current):
    """What the hook cleans for a program: from its live listeners, except that the targets its
    command has now (``current``) stay when they say as much - a whole port while it listens on
    a wildcard there, or anything while it is not running (nothing live to learn from)."""
    pid = supervisor_pid(module, name)
    if not pid and current and sorted({t.rsplit(":", 1)[-1] for t in current}) == sorted(str(x) for x in ports):
        return current
    return _reuse.stable_targets(current, _reuse.program_hook_targets(ports, pid))


def program_hold(module, name, p, ports, command, current):
    """The holder's options for a hooked program (_holder): its restart limit, and with
    socket_activation the sockets it holds (mirrored from the live listeners) and, for preload,
    the library. None on an architecture without the native hook (the Python twin cannot hold:
    supervisord's own restart then applies, as before)."""
    mode = p["socket_activation"]
    if not _hook.NATIVE_ARCHES.get(os.uname()[4]):
        return None  # refusal() refused socket activation there
    opts = _unit.normalize_options(p)
    hold = dict(restarts=_holder.restarts(opts.get("start_limit_burst") or 20,
                                          opts.get("start_limit_interval") or "10s"), listen=[], preload=None)
    if mode == "none":
        return hold
    pid = supervisor_pid(module, name)
    if mode == "preload":
        exe = command.split()[0] if command.split() else ""
        exe = exe if exe.startswith("/") else (module.get_bin_path(exe) or exe)
        why = _preload.executable_refusal(exe, _preload._read_head, os.stat)
        server = _holder.server_pid(pid)
        if not why and server:
            why = _preload.running_refusal(server)
        if why:
            raise _unit.UnitError("socket_activation: preload for supervisord program %s is refused, nothing was "
                                  "written: %s. What works instead: %s" % (name, why, _preload.INSTEAD))
        hold["preload"] = _host_state.preload_library_path(p["preload_library"])
    held = (_supervisor.hook_words(current or "") or {}).get("listen") or []
    hold["listen"], unknown = _holder.observe(name, ports, pid, p["backlog"], held)
    if unknown:
        module.warn("supervisord program %s: the options of %s could not be read (pidfd_getfd needs Linux >= 5.6 and "
                    "root with CAP_SYS_PTRACE): its holder binds them without SO_REUSEPORT, IP_FREEBIND, "
                    "IP_TRANSPARENT or SO_MARK; the preload library refuses a bind() whose options then differ"
                    % (name, ", ".join(unknown)))
    return hold


def supervisor_pid(module, name):
    ctl = module.get_bin_path("supervisorctl")
    _rc, out, _err = _command.run(module, [ctl, "pid", name], check=False) if ctl else (1, "", "")
    return int(out.strip()) if out.strip().isdigit() else 0


def supervisor_plan(module, name, p, files, ext_dir, edited_before=()):
    """The FileSet for one program: its own section edited where supervisord defines it (the
    last file having each key), a new file only for a program defined nowhere. ``files`` are the
    texts as the call's earlier programs leave them; ``edited_before`` the paths they edit (a
    text this program leaves as it is there is no change of its own)."""
    section = "program:" + name
    defined = _supervisor.program_sections(files, name)
    changes = FileSet(module)
    texts = dict(files)

    def want(path, text, mode):
        if path not in edited_before or text != texts[path]:
            changes.want(path, text, mode)
    if p["state"] == "absent":
        led = load_ledger()["files"]
        for path in defined:
            entry = led.get(path)
            if entry and entry["created"]:
                changes.want(path, None)
            elif entry and entry.get("original"):
                want(path, _supervisor.restore(texts[path], read_text(entry["original"]) or "", section),
                     entry.get("mode") or 0o644)
        return changes, None
    if not defined:
        if not p["command"]:
            read = ", ".join(path for path, _t in files) or "none"
            raise _unit.UnitError("supervisord program %s is defined in no file supervisord reads (%s) and no "
                                  "command is given; nothing was written" % (name, read))
        updates, user, hooked, hold = supervisor_updates(module, name, p, {})
        want_library(changes, p, hold, name, files)
        directory, ext = ext_dir
        path = os.path.join(directory, name + ext)
        text = "; Ansible managed: netsvc.resilience.service_restart_policy\n[%s]\n" % section
        if user and not hooked:
            updates.setdefault("user", user)
        changes.want(path, _supervisor.edit(text, section, dict(updates, autostart="true")))
        return changes, path
    pristine = _supervisor.effective(originals(files), name)
    updates, _user, _hooked, hold = supervisor_updates(module, name, p, pristine,
                                                       _supervisor.effective(files, name).get("command", ""))
    want_library(changes, p, hold, name, files)
    edited = {}
    for key, value in sorted(updates.items()):
        having = [path for path in defined if key in _supervisor.values(edited.get(path, texts[path]), section)]
        for path in (having if value is None else [(having or defined)[-1]]):
            edited[path] = _supervisor.edit(edited.get(path, texts[path]), section, {key: value})
    for path in defined:
        if path in edited:
            want(path, edited[path], _mode(path))
    return changes, defined[-1]


def want_library(changes, p, hold, name, files):
    """A held program with socket_activation: preload needs the library on the host; one that no
    longer preloads takes it away when the collection installed it and nothing else uses it (no
    other program's command in ``files``, no systemd drop-in)."""
    if not hold or not hold["preload"]:
        library = _host_state.preload_library_path(p["preload_library"])
        entry = load_ledger()["files"].get(library) or {}
        if (entry.get("created") and os.path.exists(library)
                and not [x for x in _holder.preloading(files, library) if x != name]
                and not _systemd.dropins_mentioning(_preload.LIBRARY_NAME)):
            changes.want(library, None)
        return
    builds = _hook.decode_payload(p["payload"] or {})["native"]
    arch = _hook.NATIVE_ARCHES.get(os.uname()[4])
    if not builds.get(arch):
        raise _unit.UnitError("socket_activation: preload for %s: no build of the preload library for %s in this "
                              "call's payload; nothing was written" % (p["name"], os.uname()[4]))
    _validate.abs_path(hold["preload"], "preload_library", plain=True)
    changes.want(hold["preload"], builds[arch])


def restart_unhooked(module, ctl, group, name, targets, timeout):
    """A program put back to its own command (no hook in front of it any more) is stopped, its
    ports cleaned of what it left (drained as the hook does), then started on the restored
    configuration - again while its bind fails on leftovers this kernel cannot destroy. A
    rollback leaves it serving, not in BACKOFF. Returns the seconds it took to listen."""
    import time

    _command.run(module, [ctl, "stop", group], check=False)
    parsed = [t for t in (_sockdiag.parse_target(x) for x in targets) if t]
    ports = sorted({port for t in parsed for port in range(t["range"][0], t["range"][1] + 1)})
    try:
        _sockdiag.cleanup([t["range"] for t in parsed], targets=parsed, drain=_sockdiag.DRAIN_DEFAULT_MS / 1000.0)
    except _sockdiag.DiagError:
        pass
    _command.run(module, [ctl, "update", group], check=False)
    t0 = time.time()
    while True:
        try:
            if set(ports) <= set(_sockdiag.listening_ports(ports)):
                return round(time.time() - t0, 1)
        except _sockdiag.DiagError:
            return None
        if time.time() - t0 >= timeout:
            module.warn("supervisord program %s does not listen on %s again after %d s" % (name, ports, timeout))
            return None
        status = _command.run(module, [ctl, "status", name], check=False)[1]
        state = _host_state.parse_supervisor_status(status).get(name)
        if state in ("FATAL", "BACKOFF", "EXITED", "STOPPED"):
            _command.run(module, [ctl, "start", name], check=False)
        time.sleep(0.5)


def _mode(path):
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o644


class ProgramPlan(_plan.Plan):
    """One supervisord program's change (plan_program); nothing written yet.

    item      its ``services`` entry (None: the module's own options), for the result
    p         its checked options
    name      the program
    ctl       supervisorctl's path
    changes   the FileSet of its section's files (and the preload library of a held program)
    unhooked  the targets its hook cleaned, while its command still runs through it
    files     [(path, text)] supervisord reads, as planned against; after the commit, as written
    result    what the module returns for it, completed after the commit and read back
    """

    __slots__ = ("item", "p", "name", "ctl", "changes", "unhooked", "files", "result")


def plan_program(module, item, p, edits):
    """One program planned against the files as the call's earlier programs leave them
    (``edits``: {path: text}, updated here with this program's)."""
    name = _supervisor.check_program_name(_supervisor.program_name(p["name"]))
    ctl = module.get_bin_path("supervisorctl", required=True)
    files = [(path, edits.get(path, text)) for path, text in supervisor_files(module, p, ctl)]
    changes, path = supervisor_plan(module, name, p, files, supervisor_dir(p), set(edits))
    edits.update((w[0], w[1]) for w in changes.wanted if isinstance(w[1], str))
    unhooked = [t for _path, text in files for t in _supervisor.hooked_programs(text).get(name, [])]
    result = dict(changed=changes.changed, path=path or "", content="", backend="supervisord", systemd_version=0,
                  socket_path="", diff=changes.diff(), files=changes.paths)
    return ProgramPlan(item=item, p=p, name=name, ctl=ctl, changes=changes, unhooked=unhooked, files=files,
                       result=result)


def reread(module, ctl):
    """supervisorctl reread: None when supervisord takes the files, else what it said."""
    rc, out, err = _command.run(module, [ctl, "reread"], check=False)
    return None if rc == 0 and "ERROR" not in out else (out + err).strip()


class SupervisordPlan(_plan.ConcernPlan):
    """The supervisord programs of a call (plan): their sections staged in the call's one
    transaction, after the systemd concerns, with ``supervisorctl reread`` as their verify (a
    rejection puts every concern's files back, and supervisord reads the old ones again); after
    the commit each changed program's group is updated (or, put back to its own command,
    restarted clean: restart_unhooked), then read back.

    programs  a ProgramPlan per program, in the call's order
    """

    __slots__ = ("programs",)
    result_key = _plan.UNITS  # one entry of the units' results per program

    def stage(self, module, tx):
        changed = [pr for pr in self.programs if pr.changes.changed]
        for pr in changed:
            tx.add(pr.changes)
        if changed:
            ctl, paths = changed[0].ctl, ", ".join(path for pr in changed for path in pr.changes.paths)

            def check():
                said = reread(module, ctl)
                return None if said is None else "supervisorctl reread rejected %s: %s" % (paths, said)

            tx.add_check(check, lambda: reread(module, ctl))

    def after_commit(self, module, systemd, tx):
        for pr in self.programs:
            if not pr.changes.changed:
                continue
            pr.files = supervisor_files(module, pr.p, pr.ctl)  # as written: what supervisord reads now
            group = _supervisor.group_of(pr.files, pr.name)
            if pr.p["state"] == "absent" and pr.unhooked:
                pr.result["restarted_after_s"] = restart_unhooked(module, pr.ctl, group, pr.name, pr.unhooked,
                                                                  pr.p["switch_timeout"])
            else:
                _command.run(module, [pr.ctl, "update", group], check=False)

    def finish(self, module, systemd):
        """[(item, result)] per program, read back from supervisord."""
        done = []
        for pr in self.programs:
            _rc, out, _err = _command.run(module, [pr.ctl, "status", pr.name], check=False)
            pr.result["effective"] = {"status": out.strip()}
            command = _supervisor.effective(pr.files, pr.name).get("command", "")
            row = _holder.audit_row(command, _holder.record(pr.name), supervisor_pid(module, pr.name))
            if row:
                pr.result["holder"] = dict(zip(("check", "level", "detail"), row))
            done.append((pr.item, pr.result))
        return done


def plan(module, items):
    """The supervisord programs ``items`` ([(item, checked params)]) planned, nothing written:
    a SupervisordPlan, or None without programs."""
    edits = {}
    return SupervisordPlan(programs=[plan_program(module, item, p, edits) for item, p in items]) if items else None
