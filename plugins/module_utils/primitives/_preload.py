# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""socket_activation: preload - pure functions (planning, rendering, checks).

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).

A .socket unit binds the service's ports in PID 1; the preload library (src/netsvc-preload.c)
puts those sockets in place of the server's own bind(). The listening socket then outlives
every crash: no EADDRINUSE on any kernel, connections wait in the backlog.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shlex
import socket
import stat
import time

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _command,
    _constants,
    _elf,
    _sockdiag,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._unit import UnitError

LIBRARY_NAME = _constants.PRELOAD_LIBRARY
HEADER = "Ansible managed: netsvc.resilience.service_restart_policy (socket_activation: preload)"


def normalize_mode(value):
    """socket_activation as given -> none | native | preload (true stays an alias of native)."""
    if value in (None, False, "none", "false", "no", "False", "off"):
        return "none"
    if value in (True, "native", "true", "yes", "True", "on"):
        return "native"
    if value == "preload":
        return "preload"
    raise UnitError("socket_activation %r must be false/none, true/native or preload" % (value,))


def exec_path(execstart_show):
    """The program of `systemctl show -p ExecStart` ('{ path=/usr/sbin/nginx ; argv[]=... }')."""
    for part in (execstart_show or "").strip(" {}").split(" ; "):
        key, sep, value = part.strip().partition("=")
        if sep and key == "path":
            return value
    return None


# where `#!/usr/bin/env NAME` finds NAME (systemd's own default PATH)
ENV_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# what works where preload cannot: said with every refusal
INSTEAD = ("socket_activation: native for a server that takes inherited sockets (LISTEN_FDS), the pre-start hook "
           "(cleanup: true), or a kernel >= 6.0, where the hook destroys TIME_WAIT sockets")


def _no_xattr(_path, _name):
    raise OSError("no xattr support")


def executable_refusal(path, read_head, lstat, getxattr=None, depth=0):
    """Why the preload library could not work for the program at ``path``, or None.

    read_head(path) -> the file's bytes (the whole ELF or the start of a script); lstat-like
    stat(path) -> os.stat_result; getxattr(path, name) -> bytes (os.getxattr). A script ('#!')
    is judged by its interpreter, `#!/usr/bin/env NAME` by NAME found on systemd's PATH.
    Secure-execution mode (setuid/setgid, file capabilities) makes the loader drop LD_PRELOAD.
    """
    getxattr = getxattr or getattr(os, "getxattr", _no_xattr)
    if not path or not path.startswith("/"):
        return "its ExecStart= program %r cannot be resolved to an absolute path" % (path,)
    try:
        st = lstat(path)
    except OSError:
        return "its ExecStart= program %s does not exist" % path
    if not stat.S_ISREG(st.st_mode):
        return "its ExecStart= program %s is not a regular file" % path
    if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        return ("%s is setuid/setgid: the dynamic loader ignores LD_PRELOAD for it (secure-execution mode)"
                % path)
    try:
        caps = getxattr(path, "security.capability")
    except (IOError, OSError):
        caps = None
    if caps:
        return ("%s has file capabilities (security.capability): it runs in secure-execution mode (AT_SECURE), "
                "where the dynamic loader ignores LD_PRELOAD" % path)
    try:
        data = read_head(path)
    except (IOError, OSError) as e:
        return "its ExecStart= program %s cannot be read (%s)" % (path, e)
    if data[:2] == b"#!":
        words = data[2:].split(b"\n", 1)[0].strip().split()
        if not words:
            return "%s is a script without an interpreter" % path
        program = words[0].decode("utf-8", "replace")
        if depth < 4 and os.path.basename(program) == "env":
            names = [w.decode("utf-8", "replace") for w in words[1:] if not w.startswith(b"-") and b"=" not in w]
            if not names:
                return "%s runs env without a program" % path
            found = [os.path.join(d, names[0]) for d in ENV_PATH if _exists(lstat, os.path.join(d, names[0]))]
            program = names[0] if names[0].startswith("/") else (found[0] if found else names[0])
        return executable_refusal(program, read_head, lstat, getxattr, depth + 1) if depth < 4 else None
    try:
        info = _elf.inspect(data)
    except _elf.ElfError as e:
        return "%s: %s" % (path, e)
    why = _elf.preload_refusal(info)
    return "%s is %s" % (path, why) if why else None


def _exists(lstat, path):
    try:
        lstat(path)
        return True
    except OSError:
        return False


AT_SECURE = 23


def secure_execution(auxv):
    """The AT_SECURE value of a process's auxiliary vector (/proc/PID/auxv bytes: native unsigned
    long pairs), or None when it is not there."""
    import struct

    size = struct.calcsize("@L")
    for i in range(0, len(auxv) - 2 * size + 1, 2 * size):
        key, value = struct.unpack_from("@LL", auxv, i)
        if key == 0:
            break
        if key == AT_SECURE:
            return value
    return None


def running_refusal(pid, readlink=os.readlink, read=None, read_head=None, stat_fn=None, getxattr=None):
    """Why preload cannot work for the running process ``pid`` (the unit's MainPID), or None: it
    runs in secure-execution mode (AT_SECURE, read from /proc/PID/auxv: set by setuid, file
    capabilities or an SELinux transition without noatsecure), or the program it runs now (a
    wrapper exec()ed it) is one the loader never preloads into."""
    read = read or _read_bytes
    try:
        auxv = read("/proc/%d/auxv" % pid)
    except (IOError, OSError):
        auxv = b""
    if secure_execution(auxv):
        return ("its running process (pid %d) is in secure-execution mode (AT_SECURE=1: setuid, file capabilities or "
                "an SELinux transition without noatsecure), where the dynamic loader ignores LD_PRELOAD" % pid)
    link = "/proc/%d/exe" % pid
    try:
        exe = readlink(link)
    except OSError:
        return None
    # read through the link: the very file it runs, whatever its mount namespace or root, and
    # even when replaced since; only what is found in it refuses (not "cannot be read")
    why = executable_refusal(link, read_head or _read_head, stat_fn or os.stat, getxattr)
    if why is None or not why.startswith(link):
        return None
    return "its running process (pid %d) runs %s, which %s" % (pid, exe, why[len(link) + 1:])


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def listen_stream(listener):
    """{'family', 'address', 'port'} -> the ListenStream= value that binds the same."""
    if listener["family"] == socket.AF_INET6:
        return "[%s]:%d" % (listener["address"], listener["port"])
    return "%s:%d" % (listener["address"], listener["port"])


def mirror(listeners):
    """ListenStream= values mirroring the running listeners, and BindIPv6Only=.

    An IPv6 wildcard's IPV6_V6ONLY as read from the live socket (``options``); where it could
    not be read, a v6 wildcard next to a v4 listener on the same port is IPv6-only (the two
    could not both be bound otherwise) and one alone is dual-stack, as a server gets by
    default. Raises UnitError when ports need both.
    """
    streams = sorted({listen_stream(x) for x in listeners})
    modes = set()
    for port in sorted({x["port"] for x in listeners}):
        on_port = [x for x in listeners if x["port"] == port]
        v4 = any(x["family"] == socket.AF_INET for x in on_port)
        for x in on_port:
            if x["family"] != socket.AF_INET6 or x["address"] != "::":
                continue
            v6only = (x.get("options") or {}).get("v6only")
            modes.add("ipv6-only" if (v6only if v6only is not None else v4) else "both")
    if len(modes) > 1:
        raise UnitError("the service listens dual-stack on some ports and IPv6-only on others; one socket unit "
                        "cannot mirror both (BindIPv6Only= is per unit)")
    return streams, (modes.pop() if modes else None)


# Socket options a socket unit sets on every socket it binds, as [Socket] directives: the
# listener's own options, so the socket PID 1 holds is the one the server would bind.
MIRRORED = (("bind_to_device", "BindToDevice"), ("free_bind", "FreeBind"), ("transparent", "Transparent"),
            ("reuse_port", "ReusePort"), ("mark", "Mark"))


def socket_directives(listeners):
    """([(directive, value)], [what could not be read]) for the options of ``listeners``.

    Each listener's ``options`` is _reuse.socket_options() of the live socket, or None when
    it could not be read. The directives are per unit: listeners that differ are refused.
    """
    out, unknown = [], []
    known = [x for x in listeners if x.get("options")]
    if len(known) < len(listeners):
        unknown = sorted({listen_stream(x) for x in listeners if not x.get("options")})
    for key, directive in MIRRORED:
        values = {x["options"][key] for x in known}
        if len(values) > 1:
            raise UnitError("the service's listeners differ in %s (%s); one socket unit sets it for all of them"
                            % (directive, ", ".join("%s: %s" % (listen_stream(x), x["options"][key]) for x in known)))
        value = values.pop() if values else None
        if value in (None, False, 0, ""):
            continue
        out.append((directive, "yes" if value is True else str(value)))
    return out, unknown


def render_socket(service, streams, bind_v6only, backlog, hook_line=None, directives=()):
    lines = [
        "# %s\n" % HEADER,
        "# PID 1 holds %s's listening sockets, mirrored from what it listened on (address and the\n" % service,
        "# options that decide who reaches them); the preload library hands them to its bind(). They\n",
        "# outlive every crash: no rebind, no EADDRINUSE.\n",
        "[Unit]\n",
        "Description=netsvc.resilience listening sockets of %s (preload)\n" % service,
        "\n[Socket]\n",
    ]
    lines.extend("ListenStream=%s\n" % s for s in streams)
    if bind_v6only:
        lines.append("BindIPv6Only=%s\n" % bind_v6only)
    lines.extend("%s=%s\n" % kv for kv in directives)
    lines += ["Accept=no\n", "Backlog=%d\n" % backlog, "Service=%s\n" % service]
    if hook_line:  # the switch-over binds where the server's TIME_WAIT sockets may still be
        lines.append("ExecStartPre=%s\n" % hook_line)
    lines.append("\n[Install]\nWantedBy=sockets.target\n")
    return "".join(lines)


def ld_preload(environment_show, library):
    """The unit's LD_PRELOAD with the library appended (never replaced); from `systemctl show -p Environment`."""
    try:
        words = shlex.split(environment_show or "")
    except ValueError:
        words = (environment_show or "").split()
    current = ""
    for word in words:
        key, sep, value = word.partition("=")
        if sep and key == "LD_PRELOAD":
            current = value
    parts = [p for p in current.replace(" ", ":").split(":") if p]
    if library not in parts:
        parts.append(library)
    return ":".join(parts)


def service_directives(socket_unit, preload_value, backlog):
    """(extra_unit, extra_service) the policy drop-in gets for preload.

    NETSVC_PRELOAD_BACKLOG keeps the socket unit's Backlog= when the server calls listen()
    with less (socat asks for 5): the backlog holds connections while the server restarts.
    """
    return ({"Requires": socket_unit, "After": socket_unit},
            {"Sockets": socket_unit,
             "Environment": ['"LD_PRELOAD=%s"' % preload_value, '"NETSVC_PRELOAD_BACKLOG=%d"' % backlog]})


def foreign_listeners(listeners, owners, unit_pids):
    """Listeners on the ports owned by neither PID 1 (our socket unit) nor the unit's processes."""
    out = []
    for x in listeners:
        pids = {o["pid"] for o in owners.get(x["inode"], [])}
        if pids and not pids & (set(unit_pids) | {1}):
            out.append((x, sorted(owners[x["inode"]], key=lambda o: o["pid"])))
    return out


# ------------------------------------------------------------------ on the host


def _read_head(path):
    with open(path, "rb") as f:
        data = f.read(256)
        if data[:4] == b"\x7fELF":
            data += f.read()
    return data


def read_options(listeners, owners, pick, read):
    """Each listener's live options (``read(pid, fd)``, _reuse.socket_options) from the process
    ``pick(owners)`` chooses; None where it cannot be read (no pidfd_getfd before Linux 5.6,
    no ptrace rights). Sets ``options`` on each listener in place."""
    for x in listeners:
        owner = pick(owners.get(x["inode"], []))
        x["options"] = None
        if owner is None:
            continue
        try:
            x["options"] = read(owner["pid"], owner["fd"])
        except (OSError, IOError):
            pass


def not_served(listeners, owners, in_unit, active):
    """Why a switched service is not served from its socket unit (drift: mirror again), or None.

    A listener on the ports that PID 1 does not hold is one the server bound itself (its
    address or options no longer match the socket unit: the library left that bind() to the
    kernel); a service that is not running cannot bind what it asks for.
    """
    own = [listen_stream(x) for x in listeners if 1 not in {o["pid"] for o in owners.get(x["inode"], [])}
           and any(in_unit(o["pid"]) for o in owners.get(x["inode"], []))]
    if own:
        return "it listens on %s with a socket of its own, not the socket unit's" % ", ".join(sorted(own))
    if active in ("inactive", "failed"):
        return "it is %s while its socket unit holds its ports (it may ask for another address or option)" % active
    return None


def observe(systemd, unit, ports, in_unit, read=None, socket_ours=False):
    """What a switch to preload needs to know about a running service; raises UnitError to refuse.

    ``in_unit(pid)``: is the process in the unit's cgroup; ``read(pid, fd)``: a live socket's
    options (_reuse.socket_options); ``socket_ours``: the unit's socket unit is one we wrote.
    Returns dict(streams, bind_v6only, directives, unknown_options, environment, switched (the
    ports are already PID 1's sockets), remirror (why the socket unit must be mirrored again,
    or None), listeners).
    """
    show = systemd.show([unit], ("ExecStart", "Environment", "ActiveState", "MainPID"))[unit]
    why = executable_refusal(exec_path(show.get("ExecStart")), _read_head, os.stat)
    pid = int(show.get("MainPID") or 0)
    if not why and pid > 0:
        why = running_refusal(pid)
    if why:
        raise UnitError("socket_activation: preload for %s is refused, nothing was written: %s. What works instead: "
                        "%s" % (unit, why, INSTEAD))
    if not ports:
        raise UnitError("socket_activation: preload for %s needs ports" % unit)
    try:
        listeners = _sockdiag.listeners(ports)
    except _sockdiag.DiagError as e:
        raise UnitError("cannot read the listening sockets of %s (sock_diag): %s" % (unit, e))
    owners = _sockdiag.listener_owners([x["inode"] for x in listeners])
    unit_pids = {o["pid"] for found in owners.values() for o in found if in_unit(o["pid"])}
    foreign = foreign_listeners(listeners, owners, unit_pids)
    if foreign:
        held = ["%s by %s" % (listen_stream(x), ", ".join("%s (pid %d)" % (o["command"], o["pid"]) for o in who))
                for x, who in foreign]
        raise UnitError("socket_activation: preload for %s is refused, nothing was written: port(s) held by "
                        "another process: %s" % (unit, "; ".join(held)))
    switched = bool(listeners) and all(1 in {o["pid"] for o in owners.get(x["inode"], [])} for x in listeners)
    remirror = not_served(listeners, owners, in_unit, show.get("ActiveState")) if socket_ours else None
    missing = sorted(set(ports) - {x["port"] for x in listeners})
    if missing and not remirror:
        raise UnitError("socket_activation: preload for %s is refused, nothing was written: nothing listens on "
                        "port(s) %s - the service must be running so that its sockets can be mirrored exactly "
                        "(address, family, options)" % (unit, ", ".join(str(p) for p in missing)))
    out = dict(environment=show.get("Environment", ""), switched=switched and not remirror, remirror=remirror,
               listeners=listeners, active=show.get("ActiveState"), streams=[], bind_v6only=None, directives=[],
               unknown_options=[])
    if remirror:
        return out  # mirrored once the server binds on its own again
    if read is not None:
        # the server's own socket, or PID 1's once switched (the same socket, held by both)
        read_options(listeners, owners, lambda found: next(
            (o for o in sorted(found, key=lambda o: o["pid"]) if (o["pid"] == 1) == switched
             and (switched or in_unit(o["pid"]))), None), read)
    out["streams"], out["bind_v6only"] = mirror(listeners)
    out["directives"], out["unknown_options"] = socket_directives(listeners)
    return out


def _start_until_bound(module, systemctl, unit, deadline):
    """Start ``unit``, again while its bind fails (TIME_WAIT sockets of a server without
    SO_REUSEADDR block it until they expire on kernels that cannot destroy them)."""
    attempts = 0
    while True:
        attempts += 1
        rc, _out, err = _command.run(module, [systemctl, "start", unit], check=False)
        if rc == 0:
            return attempts
        if time.time() >= deadline:
            raise UnitError("%s did not start within the switch-over window (%d attempts): %s"
                            % (unit, attempts, err.strip()))
        _command.run(module, [systemctl, "reset-failed", unit], check=False)
        time.sleep(0.2)


def switch_over(module, systemd, unit, socket_unit, timeout=75.0):
    """Stop the service, bind its ports in PID 1 (the socket unit), start it on them.

    Connections are refused only between the stop and the socket unit's bind: that is the
    gap measured and returned (milliseconds), with the number of bind attempts.
    """
    systemctl = systemd.systemctl
    t0 = time.time()
    _command.run(module, [systemctl, "stop", unit])
    attempts = _start_until_bound(module, systemctl, socket_unit, t0 + timeout)
    gap_ms = (time.time() - t0) * 1000.0
    _command.run(module, [systemctl, "start", unit])
    return {"gap_ms": round(gap_ms, 1), "bind_attempts": attempts}


def served_from_socket_unit(ports, in_unit, wait=10.0):
    """Every listener on ``ports`` is PID 1's socket and held by the service too (same inode)."""
    deadline = time.time() + wait
    while True:
        listeners = _sockdiag.listeners(ports)
        owners = _sockdiag.listener_owners([x["inode"] for x in listeners])
        ok = bool(listeners) and set(ports) <= {x["port"] for x in listeners} and all(
            1 in {o["pid"] for o in owners.get(x["inode"], [])}
            and any(in_unit(o["pid"]) for o in owners.get(x["inode"], [])) for x in listeners)
        if ok or time.time() >= deadline:
            return ok, [{"listen": listen_stream(x), "inode": x["inode"],
                         "pids": sorted(o["pid"] for o in owners.get(x["inode"], []))} for x in listeners]
        time.sleep(0.05)


def restart_on_its_own(module, systemd, unit, ports, timeout=75.0):
    """After the socket unit is gone: start the service so that it binds its ports itself again.

    `systemctl start` returns before a simple service binds, so success is its ports
    listening; while they do not (EADDRINUSE until TIME_WAIT expires on old kernels), start
    again. Returns the seconds it took.
    """
    systemctl = systemd.systemctl
    t0 = time.time()
    while True:
        _command.run(module, [systemctl, "reset-failed", unit], check=False)
        _command.run(module, [systemctl, "start", unit], check=False)
        settle = time.time() + 2
        while time.time() < settle:
            if set(ports) <= set(_sockdiag.listening_ports(ports)):
                return round(time.time() - t0, 1)
            time.sleep(0.1)
        if time.time() - t0 >= timeout:
            raise UnitError("%s does not listen on %s again after %d s" % (unit, ports, timeout))
