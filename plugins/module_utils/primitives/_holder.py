# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The holder: the hook's ``--hold`` mode, the parent of a supervisord program's server.

supervisord polls once a second and respawns a dead program on the next turn (~1 s), and
nobody holds the port meanwhile: every connect is refused. A hardened program therefore runs
through ``netsvc-sockclean --hold`` (src/hold.h), which stays the server's parent and starts it
again the moment it dies by a signal; with ``socket_activation`` (preload or native) it also
binds the program's listening sockets once and hands them to every child (LISTEN_FDS), so
connections queue while the server is down instead of being refused.

This file decides the holder's arguments: the ``--listen`` specs mirrored from the live
listeners (address, family, the options that decide who reaches the socket - read off the
socket itself), the restart limit, and the refusals. Pure functions, except observe().

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _constants,
    _hook,
    _preload,
    _reuse,
    _sockdiag,
    _supervisor,
    _unit,
)

# src/hold.h: the restarts it counts (a ring of 64 start times)
MAX_BURST = 64


def refusal(name, mode, hook, ports, accepts_inherited_fds, machine):
    """Why socket_activation ``mode`` cannot be had for supervisord program ``name``, or None:
    the holder is the native hook (``hook``: its path, "auto" while not resolved yet)."""
    if mode == "none":
        return None
    if not hook or not ports:
        return (
            "socket_activation=%s for supervisord program %s needs ports and the cleanup hook: the hook's holder "
            "(--hold) is what keeps the sockets open across a crash (supervisord has no socket that outlives the "
            "program); nothing was written" % (mode, name)
        )
    if not _hook.NATIVE_ARCHES.get(machine):
        return (
            "socket_activation=%s for supervisord program %s: the holder is native (x86_64, aarch64) and this "
            "host is %s; nothing was written" % (mode, name, machine)
        )
    if mode == "native" and not accepts_inherited_fds:
        return (
            "socket_activation: native for supervisord program %s needs accepts_inherited_fds=true: the server "
            "must take the sockets the holder passes (LISTEN_FDS); for one that binds them itself, use preload; "
            "nothing was written" % name
        )
    return None


def restarts(burst, interval):
    """The holder's ``--restarts N/SECONDS`` from the policy's StartLimitBurst= and
    StartLimitIntervalSec= (the same limit as a systemd service's); raises UnitError."""
    seconds = int(round(_unit.parse_timespan(str(interval), "start_limit_interval") / 1000000.0))
    if not 1 <= int(burst) <= MAX_BURST or not 1 <= seconds <= 86400:
        raise _unit.UnitError(
            "a supervisord program's holder restarts at most 1-%d times in 1-86400 s; start_limit_burst=%s "
            "and start_limit_interval=%s are outside that" % (MAX_BURST, burst, interval)
        )
    return "%d/%d" % (int(burst), seconds)


def listen_spec(listener, backlog, v4_on_port=False):
    """One live listener ({family, address, port, options}) -> the holder's ``--listen`` SPEC.

    ``options`` is _reuse.socket_options() of the live socket (None: unread). An IPv6 socket's
    IPV6_V6ONLY as read; unread, a v6 wildcard next to a v4 listener on its port is IPv6-only
    (both could not be bound otherwise), else dual-stack (_preload.mirror's rule). Raises
    UnitError for SO_BINDTODEVICE, which the holder does not set."""
    o = listener.get("options") or {}
    parts = [_preload.listen_stream(listener), "backlog=%d" % backlog]
    if listener["family"] == socket.AF_INET6:
        v6only = o.get("v6only")
        if v6only is None and listener["address"] == "::":
            v6only = v4_on_port
        if v6only is not None:
            parts.append("v6only" if v6only else "dualstack")
    if o.get("bind_to_device"):
        raise _unit.UnitError(
            "%s is bound to device %s (SO_BINDTODEVICE), which the holder does not set; use systemd for "
            "this service, or socket_activation: none" % (_preload.listen_stream(listener), o["bind_to_device"])
        )
    for key, word in (("reuse_port", "reuseport"), ("free_bind", "freebind"), ("transparent", "transparent")):
        if o.get(key):
            parts.append(word)
    if o.get("mark"):
        parts.append("mark=%d" % o["mark"])
    return ",".join(parts)


def specs(listeners, backlog):
    """The ``--listen`` specs of ``listeners``, sorted, one per address."""
    out = set()
    for x in listeners:
        v4 = any(y["family"] == socket.AF_INET and y["port"] == x["port"] for y in listeners)
        out.add(listen_spec(x, backlog, v4))
    return sorted(out)


def spec_port(spec):
    return int(spec.split(",", 1)[0].rsplit(":", 1)[1])


def with_backlog(spec, backlog):
    """``spec`` with its backlog set to ``backlog`` (a changed backlog option reaches a kept spec)."""
    parts = [x for x in spec.split(",") if not x.startswith("backlog=")]
    return ",".join([parts[0], "backlog=%d" % backlog] + parts[1:])


def holder_pid_of(pid, proc="/proc"):
    """Is ``pid`` (supervisorctl's pid of a program) our holder? Then its server is its child."""
    try:
        return os.path.basename(os.readlink("%s/%d/exe" % (proc, pid))) == _constants.HOOK_NAME
    except OSError:
        return False


def server_pid(pid, proc="/proc"):
    """The server of a supervisord program whose process is ``pid``: ``pid`` itself, or the
    holder's child (0 while the holder has none: between a crash and the restart)."""
    if not pid or not holder_pid_of(pid, proc):
        return pid
    for entry in sorted(os.listdir(proc)):
        if not entry.isdigit() or int(entry) == pid:
            continue
        try:
            with open("%s/%s/stat" % (proc, entry)) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    return int(entry)
        except (IOError, OSError, IndexError, ValueError):
            continue
    return 0


def observe(name, ports, pid, backlog, current, read=_reuse.socket_options):
    """The ``--listen`` specs for program ``name`` (its process ``pid``, 0: not running): the
    listeners on ``ports`` of that process tree, their options read off the live socket (the
    holder's once held, which are the server's). ``current``: the specs its command has now,
    kept while nothing listens (not running) when they name the same ports.
    Returns (specs, the listeners whose options could not be read: unread()).
    Raises UnitError when another process holds a port or nothing listens to mirror."""
    try:
        listeners = _sockdiag.listeners(ports)
    except _sockdiag.DiagError as e:
        raise _unit.UnitError("cannot read the listening sockets of %s (sock_diag): %s" % (name, e))
    owners = _sockdiag.listener_owners([x["inode"] for x in listeners])
    tree = _reuse.process_tree(pid) if pid else set()
    foreign = [x for x in listeners if owners.get(x["inode"]) and not {o["pid"] for o in owners[x["inode"]]} & tree]
    if foreign:
        held = [
            "%s by %s"
            % (
                _preload.listen_stream(x),
                ", ".join("%s (pid %d)" % (o["command"], o["pid"]) for o in owners[x["inode"]]),
            )
            for x in foreign
        ]
        raise _unit.UnitError(
            "socket_activation for supervisord program %s is refused, nothing was written: port(s) held "
            "by another process: %s" % (name, "; ".join(held))
        )
    mine = [x for x in listeners if x not in foreign and owners.get(x["inode"])]
    missing = sorted(set(ports) - {x["port"] for x in mine})
    if missing:
        if current and sorted({spec_port(s) for s in current}) == sorted(set(ports)):
            return [with_backlog(s, backlog) for s in current], []
        raise _unit.UnitError(
            "socket_activation for supervisord program %s is refused, nothing was written: nothing of "
            "it listens on port(s) %s - it must be running so that its sockets can be mirrored exactly "
            "(address, family, options)" % (name, ", ".join(str(p) for p in missing))
        )
    _preload.read_options(
        mine,
        owners,
        lambda found: next((o for o in sorted(found, key=lambda o: o["pid"]) if o["pid"] in tree), None),
        read,
    )
    return specs(mine, backlog), unread(mine)


def unread(listeners):
    """The listeners whose options could not be read (no pidfd_getfd before Linux 5.6, no
    ptrace rights): mirrored by address and family only."""
    return sorted({_preload.listen_stream(x) for x in listeners if not x.get("options")})


def preloading(files, library):
    """The programs of ``files`` ([(path, text)], supervisord's) whose command has the holder
    preload ``library``."""
    out = set()
    for _path, text in files:
        for kind, sect, _k, _l in _supervisor.parse(text):
            if kind == "header" and sect.startswith("program:"):
                words = _supervisor.hook_words(_supervisor.values(text, sect).get("command", "")) or {}
                if words.get("preload") == library:
                    out.add(sect.split(":", 1)[1])
    return sorted(out)


def parse_record(text):
    """The holder's NAME.hold record (key=value lines, src/hold.h) as a dict."""
    return dict(line.split("=", 1) for line in (text or "").splitlines() if "=" in line)


def record(name, directory=_constants.HOOK_STATUS_DIR, lstat=os.lstat, read=None):
    """What the holder of program ``name`` recorded ({} when there is none), trusted only as
    root wrote it: a regular file root owns that nobody else may write, else {'problem'}."""
    import stat

    path = os.path.join(directory, name + ".hold")
    try:
        st = lstat(path)
    except OSError:
        return {}
    if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        return {
            "problem": "%s is not a root-only regular file (uid %d, mode %o): not trusted"
            % (path, st.st_uid, st.st_mode & 0o7777)
        }
    if read is None:
        with open(path) as f:
            return parse_record(f.read())
    return parse_record(read(path))


def audit_row(command, rec, pid):
    """(check, level, detail) of a supervisord program's holder for the audit, or None when its
    command does not run through one. ``rec``: record(); ``pid``: supervisorctl's pid now."""
    words = _supervisor.hook_words(command or "") or {}
    if not words.get("hold"):
        return None
    owns = (
        "owns %s" % ", ".join(s.split(",", 1)[0] for s in words["listen"])
        if words["listen"]
        else "restarts only (the port closes while the server starts)"
    )
    if rec.get("problem"):
        return ("holder", "fail", rec["problem"])
    if not rec:
        return ("holder", "warn", "the holder has written no record since boot: not started through it yet")
    if str(pid) != rec.get("holder") or rec.get("state") != "running":
        return (
            "holder",
            "fail",
            "the holder's record (holder %s, state %s) is not the running program's process "
            "(pid %s)" % (rec.get("holder"), rec.get("state"), pid or "none"),
        )
    last = " after %s" % rec["last"] if rec.get("last") else ""
    return (
        "holder",
        "pass",
        "held by pid %s: server pid %s, %s start(s)%s; %s"
        % (rec["holder"], rec.get("child"), rec.get("starts"), last, owns),
    )
