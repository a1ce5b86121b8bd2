# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What host_check reads and decides: host facts, service health, the applied-state record,
the run lock.

Most functions are pure (parsers and decisions on what was read). Four touch the host and say
so in their names: read_os_release and snapshot_paths read files; take_lock and release_lock
write and remove the run lock (flock-guarded, through the caller's atomic writer).

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).

The applied-state record lets a re-run skip the concern modules, without trusting a stamp:
it holds what the host looked like right after a verified rollout (the content and mode of
every file the collection writes or that can override it, the live values of the sysctl keys
we persist, the effective properties systemd reports for each unit) plus a digest of the
controller-side inputs. A re-run compares the host as it is now with that record; any
difference (an edited or removed drop-in, a new sysctl.d file, a runtime `sysctl -w`, a
pending daemon-reload, a service down, changed inputs or collection code) means a full run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import stat

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _constants,
    _failure,
    _hook,
    _preload,
    _sockdiag,
    _supervisor,
    _sysctl,
    _unit,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import read_text

RECORD_VERSION = 1

# os-release ID -> (distribution as Ansible's setup names it, os_family)
_DISTROS = {
    "debian": ("Debian", "Debian"),
    "ubuntu": ("Ubuntu", "Debian"),
    "rhel": ("RedHat", "RedHat"),
    "centos": ("CentOS", "RedHat"),
    "rocky": ("Rocky", "RedHat"),
    "almalinux": ("AlmaLinux", "RedHat"),
    "ol": ("OracleLinux", "RedHat"),
    "fedora": ("Fedora", "RedHat"),
    "amzn": ("Amazon", "RedHat"),
}

# supervisord include directories of both OS families (the table service_restart_policy writes by)
SUPERVISOR_DIRS = tuple(_supervisor.supervisor_paths(family)[0] for family in ("Debian", "RedHat"))

# Effective unit properties that make up the applied state (never counters or timestamps).
UNIT_PROPS = ("LoadState", "FragmentPath", "DropInPaths", "NeedDaemonReload", "Restart", "RestartUSec",
              "StartLimitBurst", "StartLimitIntervalUSec", "StartLimitInterval", "OnFailure",
              "FileDescriptorStoreMax", "UnitFileState")
HEALTH_PROPS = ("LoadState", "ActiveState", "SubState")


def parse_os_release(text):
    """/etc/os-release text -> facts named as Ansible's setup module names them."""
    values = {}
    for line in (text or "").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key] = value.strip().strip("\"'")
    os_id = values.get("ID", "").lower()
    like = values.get("ID_LIKE", "").lower().split()
    if os_id in _DISTROS:
        distribution, family = _DISTROS[os_id]
    else:
        distribution = (values.get("NAME") or os_id or "unknown").split()[0]
        if "debian" in like or "ubuntu" in like:
            family = "Debian"
        elif "rhel" in like or "fedora" in like or "centos" in like:
            family = "RedHat"
        else:
            family = distribution
    version = values.get("VERSION_ID", "")
    return {
        "distribution": distribution,
        "distribution_version": version,
        "distribution_major_version": version.split(".")[0] if version else "",
        "os_family": family,
    }


def read_os_release():
    """Facts of this host's /etc/os-release (or /usr/lib/os-release)."""
    return parse_os_release(read_text("/etc/os-release") or read_text("/usr/lib/os-release"))


def hook_dir_path(name):
    """The default path of ``name`` (the hook, the preload library) in this host's hook
    directory, the one of its OS family (reads /etc/os-release)."""
    return os.path.join(_hook.hook_dir(read_os_release()["os_family"]), name)


def preload_library_path(given=None):
    """The preload library's path: ``given`` (the preload_library option), else its default
    place next to the hook."""
    return given or hook_dir_path(_preload.LIBRARY_NAME)


def check_services(services, service_mgr):
    """Validate the keys we use of each netsvc_services entry (others are ignored).

    Returns [{name, backend (resolved), ports (single ports; ranges are checked, then left
    out), socket_activation, mode (none, native or preload), cleanup (true, false or auto)}].
    Raises ValueError naming the entry and the rule (names follow _unit's unit/program rules).
    """
    out = []
    for i, svc in enumerate(services or []):
        if not isinstance(svc, dict) or not isinstance(svc.get("name"), str) or not svc["name"].strip():
            raise ValueError("services[%d] %r must be a dict with a non-empty name" % (i, svc))
        backend = svc.get("backend", "auto")
        if backend not in ("auto", "systemd", "supervisord"):
            raise ValueError("service %s: backend %r must be auto, systemd or supervisord" % (svc["name"], backend))
        # every entry checked (a port or a 'LOW-HIGH' range); only single ports are
        # health-checked and cleaned - a range has no single listener to wait for
        checked = _validate.ports(svc.get("ports"), "service %s: ports entry" % svc["name"])
        ports = [x for x in checked if isinstance(x, int)]
        try:
            mode = _preload.normalize_mode(svc.get("socket_activation", False))
        except _unit.UnitError as e:
            raise ValueError("service %s: %s" % (svc["name"], e))
        backend = _unit.resolve_backend(backend, service_mgr)
        # the name goes into systemctl/supervisorctl argv and into paths: the same rules as the
        # modules that write the service's files
        try:
            if backend == "systemd":
                _unit.check_unit_name(svc["name"])
            else:
                _supervisor.check_program_name(_supervisor.program_name(svc["name"]))
        except _unit.UnitError as e:
            raise ValueError("services[%d]: %s" % (i, e))
        cleanup = svc.get("cleanup", "auto")
        if cleanup not in (True, False, "auto"):
            raise ValueError("service %s: cleanup %r must be true, false or auto" % (svc["name"], cleanup))
        out.append({"name": svc["name"], "backend": backend, "ports": ports, "socket_activation": mode != "none",
                    "mode": mode, "cleanup": cleanup})
    return out


def parse_supervisor_status(text):
    """`supervisorctl status` lines -> {program: state}."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0].split(":")[-1]] = parts[1]
    return out


def service_health(services, shows, supervisor, listening):
    """Per-service health.

    services: [{name, backend (resolved), ports, socket_activation}]
    shows: {unit: {prop: value}} from systemctl show; supervisor: {program: state}
    listening: set of ports with a LISTEN socket.
    A socket-activated service is healthy when its .socket unit is active (the service itself
    starts on the first connection).
    """
    out = []
    for svc in services:
        ports = [p for p in svc.get("ports") or [] if isinstance(p, int) and not isinstance(p, bool)]
        row = {"name": svc["name"], "backend": svc["backend"], "ports": ports,
               "socket_activation": bool(svc.get("socket_activation"))}
        if svc["backend"] == "systemd":
            unit = _unit.unit_name(svc["name"])
            show = shows.get(unit, {})
            row["unit"] = unit
            row["load_state"] = show.get("LoadState", "not-found")
            row["exists"] = row["load_state"] == "loaded"
            watched = _unit.socket_name(svc["name"]) if row["socket_activation"] else unit
            row["active_state"] = shows.get(watched, {}).get("ActiveState", "unknown")
            row["active"] = row["active_state"] == "active"
            row["checked_unit"] = watched
        else:
            state = supervisor.get(_supervisor.program_name(svc["name"]))
            row["unit"] = _supervisor.program_name(svc["name"])
            row["exists"] = state is not None
            row["load_state"] = "loaded" if state is not None else "not-found"
            row["active_state"] = state or "unknown"
            row["active"] = state == "RUNNING"
            row["checked_unit"] = row["unit"]
        row["missing_ports"] = [p for p in ports if p not in listening]
        row["healthy"] = row["exists"] and row["active"] and not row["missing_ports"]
        problems = []
        if not row["exists"]:
            problems.append("%s does not exist (LoadState=%s)" % (row["unit"], row["load_state"]))
        elif not row["active"]:
            problems.append("%s is %s, not active" % (row["checked_unit"], row["active_state"]))
        if row["missing_ports"]:
            problems.append("nothing listens on port(s) %s" % ", ".join(str(p) for p in row["missing_ports"]))
        row["problems"] = problems
        out.append(row)
    return out


def refusals(facts, supported, services, health, has_command):
    """Why the pre-flight refuses this host, one sentence per reason ([]: it can be hardened).

    ``supported``: os_family -> minimum major version (any Ubuntu of a supported family);
    ``services``: check_services' entries; ``health``: service_health's rows; ``has_command``:
    the names of the entries that give a command (a supervisord program needs one).
    """
    out = []
    family, major = facts.get("os_family"), facts.get("distribution_major_version")
    try:
        new_enough = int(major) >= int(supported[family])
    except (KeyError, TypeError, ValueError):
        new_enough = False
    if family not in supported or not (new_enough or facts.get("distribution") == "Ubuntu"):
        out.append("%s %s (%s) is not supported; supported: %s" % (
            facts.get("distribution"), facts.get("distribution_version"), family,
            ", ".join("%s >= %s" % (k, supported[k]) for k in sorted(supported))))
    version = facts["python"]["version"]
    if (version["major"], version["minor"]) < (3, 6):
        out.append("Python %s is too old; the modules need 3.6+" % facts["python_version"])
    out.extend(problem for row in health if row["backend"] == "systemd" and not row["exists"]
               for problem in row["problems"])
    programs = [s["name"] for s in services if s["backend"] == "supervisord"]
    if programs and not facts.get("supervisorctl"):
        out.append("supervisord programs need supervisorctl, and this host has none")
    # a program supervisord knows already has its command in its own section
    known = {row["name"] for row in health if row["backend"] == "supervisord" and row["exists"]}
    without = [name for name in programs if name not in has_command and name not in known]
    if without:
        out.append("supervisord programs defined in no file supervisord reads need a command: %s"
                   % ", ".join(without))
    return out


def watch_paths(services, sysctl_files, hook_directory, state_file):
    """Files and directories whose content is part of the applied state (sorted, unique)."""
    paths = set()
    if sysctl_files:
        paths.update(sysctl_files)
        # every place systemd-sysctl reads at boot (a file there can override ours)
        paths.update(_sysctl.SYSCTL_DIRS)
        paths.add(_sysctl.SYSCTL_CONF)
    if hook_directory:
        paths.add(hook_directory)
    systemd = [s for s in services if s["backend"] == "systemd"]
    for svc in systemd:
        paths.add(os.path.join(_unit.SYSTEMD_DIR, _unit.unit_name(svc["name"]) + ".d"))
        if svc.get("socket_activation"):
            paths.add(os.path.join(_unit.SYSTEMD_DIR, _unit.socket_name(svc["name"])))
    if systemd:
        paths.add(os.path.join(_unit.SYSTEMD_DIR, _unit.REVIVE_TEMPLATE))
    if any(s["backend"] == "supervisord" for s in services):
        paths.update(SUPERVISOR_DIRS)
    paths.discard(state_file)
    return sorted(paths)


def _file_digest(path, st):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return "%s %o %d:%d" % (h.hexdigest(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def snapshot_paths(paths):
    """{path: digest | {name: digest} for a directory's regular files | None when absent}."""
    out = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out[path] = None
            continue
        if stat.S_ISDIR(st.st_mode):
            entries = {}
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                try:
                    est = os.stat(full)
                    if stat.S_ISREG(est.st_mode):
                        entries[name] = _file_digest(full, est)
                except (IOError, OSError):
                    entries[name] = "unreadable"
            out[path] = entries
        else:
            try:
                out[path] = _file_digest(path, st)
            except (IOError, OSError):
                out[path] = "unreadable"
    return out


def ownership_drift(paths, unsafe, lstat=os.lstat):
    """Drift reasons: a file the collection wrote (``paths``, its ledger) that is no longer
    root's alone - another owner, writable by group or others, a symlink now, or a directory
    above it that ``unsafe(path)`` (_files.unsafe_path) objects to."""
    out = []
    for path in sorted(paths):
        try:
            st = lstat(path)
        except OSError:
            continue  # gone: the snapshot says so
        why = unsafe(path)
        if why:
            out.append("%s: %s" % (path, why))
        elif st.st_uid != 0 or st.st_gid != 0:
            out.append("%s: owned by %d:%d, not root's" % (path, st.st_uid, st.st_gid))
        elif st.st_mode & 0o022:
            out.append("%s: writable by group or others (mode %o)" % (path, stat.S_IMODE(st.st_mode)))
    return out


def sysctl_keys(text):
    """Keys set by a sysctl.d file, in order, each once (parsed as sysctl_tcp parses them)."""
    keys = []
    for key, _value, _line in _sysctl.parse_conf(text or ""):
        if key not in keys:
            keys.append(key)
    return keys


def unit_state(shows, units):
    """The recorded subset of each unit's properties."""
    return {u: {k: shows.get(u, {}).get(k) for k in UNIT_PROPS if k in shows.get(u, {})} for u in units}


def drift(record, inputs_digest, snapshot):
    """Why the host is not in its recorded, verified state (empty list: it is)."""
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        return ["no applied-state record from a verified run"]
    if record.get("inputs") != inputs_digest:
        return ["the inputs (variables or collection code) changed since the last verified run"]
    reasons = ["units: %s has changes systemd has not loaded (daemon-reload pending)" % unit
               for unit, props in sorted((snapshot.get("units") or {}).items())
               if props.get("NeedDaemonReload") == "yes"]
    old = record.get("snapshot") or {}
    for section in sorted(set(old) | set(snapshot)):
        before, now = old.get(section) or {}, snapshot.get(section) or {}
        for key in sorted(set(before) | set(now)):
            if before.get(key) != now.get(key):
                reasons.append("%s: %s changed" % (section, key))
    return reasons


# ------------------------------------------------------------------ the hook, as it really ran

HOOK_PROPS = ("ExecStartPre", "ExecStartPreEx", "InactiveExitTimestampMonotonic", "InvocationID")


def parse_exec_entries(text):
    """`systemctl show -p ExecStartPre[Ex]` value -> [{path, argv, flags, code, status, pid, ...}]."""
    out = []
    for chunk in (text or "").split("} {"):
        fields = {}
        for part in chunk.strip(" {}").split(" ; "):
            key, sep, value = part.strip().partition("=")
            if sep:
                fields[key] = value
        if fields.get("path"):
            out.append(fields)
    return out


def trusted_hook_line(json_lines, hook_path, invocation=None):
    """The newest of journalctl's JSON entries (one per line) that the hook wrote as root at the
    unit's last start, parsed (_sockdiag.parse_hook_line) with its time; {} when none. Trusted:
    _UID=0 and _EXE the hook itself, or a python running it (_CMDLINE) - fields journald sets
    from the sender's credentials, which a service cannot forge (SYSLOG_IDENTIFIER it can).
    ``invocation``: the unit's InvocationID; an entry of another start (its
    _SYSTEMD_INVOCATION_ID, also journald's) is not what the hook did at the last one."""
    import json

    for raw in reversed(json_lines):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("_UID") != "0":
            continue
        if invocation and entry.get("_SYSTEMD_INVOCATION_ID") != invocation:
            continue
        exe, cmdline = entry.get("_EXE") or "", (entry.get("_CMDLINE") or "").split()
        if exe != hook_path and not (os.path.basename(exe).startswith("python") and hook_path in cmdline[1:3]):
            continue
        try:
            when = int(entry.get("__REALTIME_TIMESTAMP", "0")) / 1e6
        except ValueError:
            continue
        parsed = _sockdiag.parse_hook_line(entry.get("MESSAGE") if isinstance(entry.get("MESSAGE"), str) else "", when)
        if parsed:
            return parsed
    return {}


def hook_report(show, status_text, hook_name, journal=None, boot=None):
    """What the cleanup hook of one service did, measured, never inferred from a file name.

    ``show``: the unit's ExecStartPre/ExecStartPreEx (systemd; {} for supervisord);
    ``status_text``: the hook's status file (None when it has not run since boot);
    ``journal``: its last trusted journal line parsed (trusted_hook_line), read only when there is
    no status file (a sandboxed hook, privilege none, may not write it): the status file, in
    a directory only root may write, is the record.
    A status file from an earlier start is not what the hook did at the last one - a hook without
    privileges runs but cannot write it - and is left out (stale): its ``invocation`` differs
    from the unit's InvocationID (systemd >= 232 gives each start one), or, in a file without
    one, its time (whole seconds) is before the second of the unit's last start
    (InactiveExitTimestampMonotonic on ``boot``, the realtime clock at boot:
    time.time() - time.monotonic()).
    Returns {installed, privileged (None: not shown by this systemd), exec (how systemd saw
    its last run: None, or code/status), last (what it did: the status file or the journal
    line), source ('status', 'journal' or ''), stale (a status file from before the last start)}.
    """
    entries = [e for e in parse_exec_entries(show.get("ExecStartPreEx") or show.get("ExecStartPre"))
               if e["path"].rsplit("/", 1)[-1] == hook_name]
    entry = entries[-1] if entries else {}
    ran = entry.get("pid") not in (None, "0") and entry.get("code") not in (None, "(null)")
    privileged = None
    if "flags" in entry:
        privileged = "privileged" in entry["flags"].split()
    last, source = _sockdiag.parse_status(status_text), "status" if status_text else ""
    stale = False
    started = show.get("InactiveExitTimestampMonotonic", "")
    invocation = show.get("InvocationID", "")
    if last and ran:
        if last.get("invocation") and invocation:
            stale = last["invocation"] != invocation
        elif boot is not None and started.isdigit() and int(started):
            # the hook runs after the unit left inactive; its time is truncated to the second
            # (50 ms for the error of ``boot``)
            stale = last.get("time", 0) < int(boot + int(started) / 1e6 - 0.05)
    if stale:
        last, source = {}, ""
    if journal and not last:
        last, source = journal, "journal"
    return {
        "installed": bool(entry) or (not show and status_text is not None),
        "privileged": privileged,
        "exec": {"code": entry.get("code"), "status": entry.get("status")} if ran else None,
        "last": last,
        "source": source,
        "stale": stale,
    }


def hook_cleans(show, hook_name):
    """What the unit's hook line cleans (its targets, in order), or None without a hook."""
    entries = [e for e in parse_exec_entries(show.get("ExecStartPreEx") or show.get("ExecStartPre"))
               if e["path"].rsplit("/", 1)[-1] == hook_name]
    if not entries:
        return None
    words = entries[-1].get("argv[]", "").split()[1:]
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in _constants.HOOK_VALUED:
            skip = True
        elif word in _constants.HOOK_FLAGS:
            continue
        elif word == "--":
            break
        else:
            out.append(word)
    return out


def moved_listeners(hooked, live):
    """Drift reasons: a hook that cleans other addresses than the service now listens on.

    ``hooked``: {unit: the hook's targets (hook_cleans)}; ``live``: {unit: (targets, why)} of
    _reuse.unit_hook_targets. A service that is not listening (why set) is not judged here.
    """
    return ["%s: its hook cleans %s, but it now listens on %s" % (unit, " ".join(hooked[unit]), " ".join(now))
            for unit, (now, why) in sorted(live.items())
            if unit in hooked and not why and sorted(now) != sorted(hooked[unit])]


# ------------------------------------------------------------------ the run lock (a lease)

def parse_lock(text):
    """The lock file's JSON -> dict, or None when absent/unreadable."""
    import json

    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("run_id") else None


def lock_decision(current, run_id, now):
    """What to do about the host's run lock: 'take' (free, expired or ours) or 'wait' (another
    live run holds it). ``current``: parse_lock() of the file; ``now``: epoch seconds."""
    if current is None or current.get("run_id") == run_id:
        return "take"
    if float(current.get("expires", 0)) <= now:
        return "take"  # left by a run that was killed: its lease ran out
    return "wait"


def lock_record(run_id, holder, now, lease):
    import json

    return json.dumps({"run_id": run_id, "holder": holder, "taken": int(now), "expires": int(now + lease)},
                      sort_keys=True) + "\n"


def take_lock(module, path, run_id, holder, wait, lease, write, sleep=None, clock=None):
    """Take the run lock at ``path`` (waiting while another live run holds it, at most ``wait``
    seconds). ``write(path, text)`` writes atomically. Returns {waited_s, previous (the lock
    found first), expired (taken over from a run whose lease ran out)}.
    The read-decide-write is serialized with flock on ``path + '.guard'``."""
    import fcntl
    import time

    sleep = sleep or time.sleep
    clock = clock or time.time
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    start = clock()
    first = None
    while True:
        with open(path + ".guard", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                current = parse_lock(read_text(path))
                first = first if first is not None else current
                now = clock()
                if lock_decision(current, run_id, now) == "take":
                    write(path, lock_record(run_id, holder, now, lease))
                    # previous: the lock as first found (whom we waited for), not as it is now
                    return {"waited_s": round(now - start, 1), "previous": first,
                            "expired": bool(current and current.get("run_id") != run_id
                                            and float(current.get("expires", 0)) <= now)}
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)
        if clock() - start >= wait:
            raise _failure.Failure("waited %d s for the run lock %s: run %s (%s) holds it until %s; nothing was changed"
                                   % (wait, path, current.get("run_id"), current.get("holder"),
                                      time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(current["expires"])))))
        sleep(1.0)


def release_lock(path, run_id):
    """Remove the run lock if this run holds it; True when removed."""
    current = parse_lock(read_text(path))
    if current and current.get("run_id") == run_id:
        os.unlink(path)
        return True
    return False
