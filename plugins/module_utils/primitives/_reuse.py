# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does a running service's listener set SO_REUSEADDR? The question behind ``cleanup: auto``.

A server whose listening socket has SO_REUSEADDR rebinds over its own leftovers at once: every
accepted socket inherits the flag, and bind() only conflicts when one side lacks it
(``inet_csk_bind_conflict()``). Such a service needs no pre-start hook. sock_diag does not
report the flag, so it is read from the live socket itself: sock_diag lists the LISTEN
sockets and their inodes, /proc/PID/fd maps an inode to a process of the unit (its cgroup),
``pidfd_getfd()`` (Linux >= 5.6) hands us a duplicate of that socket, and ``getsockopt()``
reads the flag. That needs ptrace rights over the process (root with CAP_SYS_PTRACE).
Whatever cannot be read gives None, never a guess: the caller then keeps the hook.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import socket

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _probe, _sockdiag

# pidfd_open / pidfd_getfd: the same numbers on every architecture (the unified table from 424 on)
SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438

_WHY = {
    errno.ENOSYS: "this kernel has no pidfd_getfd (Linux >= 5.6)",
    errno.EPERM: "no ptrace rights over it (needs root with CAP_SYS_PTRACE)",
    errno.EACCES: "no ptrace rights over it (needs root with CAP_SYS_PTRACE)",
    errno.ESRCH: "it exited meanwhile",
    errno.EBADF: "it closed the socket meanwhile",
    errno.ENOTSOCK: "the descriptor is no longer a socket (reused meanwhile)",
}


def _syscall():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall, ctypes.get_errno


def _duplicate(pid, fd, syscall=None):
    """A duplicate of descriptor ``fd`` of process ``pid`` (pidfd_getfd); raises OSError."""
    call, get_errno = syscall or _syscall()
    pidfd = call(SYS_PIDFD_OPEN, int(pid), 0)
    if pidfd < 0:
        code = get_errno()
        raise OSError(code, os.strerror(code))
    try:
        dup = call(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
        if dup < 0:
            code = get_errno()
            raise OSError(code, os.strerror(code))
    finally:
        os.close(pidfd)
    return dup


def socket_reuseaddr(pid, fd, syscall=None):
    """SO_REUSEADDR of descriptor ``fd`` of process ``pid`` (a duplicate is read, then closed).

    Raises OSError (with the errno of pidfd_open/pidfd_getfd/getsockopt) when it cannot be read.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, _duplicate(pid, fd, syscall))
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))
    finally:
        sock.close()


# Options of a listening socket that a socket unit must repeat to bind the same socket
# (SOL_IP's flags are the same flags on an IPv6 socket)
SO_MARK = 36
SO_REUSEPORT = 15
IP_FREEBIND = 15
IP_TRANSPARENT = 19
IPV6_V6ONLY = 26


def socket_options(pid, fd, syscall=None):
    """What a socket unit needs to bind the same socket as descriptor ``fd`` of ``pid``:
    {reuse_addr, reuse_port, free_bind, transparent, mark, bind_to_device, v6only (None for
    IPv4)}. Raises OSError when the socket cannot be read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, _duplicate(pid, fd, syscall))
    try:
        def flag(level, name):
            return bool(sock.getsockopt(level, name))

        device = sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_BINDTODEVICE", 25), 32)
        family = sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_DOMAIN", 39))
        return {
            "reuse_addr": flag(socket.SOL_SOCKET, socket.SO_REUSEADDR),
            "reuse_port": flag(socket.SOL_SOCKET, SO_REUSEPORT),
            "free_bind": flag(socket.SOL_IP, IP_FREEBIND),
            "transparent": flag(socket.SOL_IP, IP_TRANSPARENT),
            "mark": sock.getsockopt(socket.SOL_SOCKET, SO_MARK),
            "bind_to_device": device.split(b"\0", 1)[0].decode("ascii", "replace"),
            "v6only": flag(socket.IPPROTO_IPV6, IPV6_V6ONLY) if family == socket.AF_INET6 else None,
        }
    finally:
        sock.close()


def why(exc):
    """A reason a listener's flag could not be read, in words."""
    return _WHY.get(getattr(exc, "errno", None), str(exc))


def verdict(unit, ports, listeners, owners, read, in_unit):
    """Pure: (True/False/None, reason) from what was seen.

    ``listeners``: [{port, address, inode}] on ``ports``; ``owners``: {inode: [{pid, fd}]};
    ``read(pid, fd)``: the flag (raises OSError); ``in_unit(pid)``: the pid is the unit's.
    True: every port has a listener of the unit and each has SO_REUSEADDR. False: one lacks
    it. None: cannot tell (not listening, another process's socket, unreadable).
    """
    if not ports:
        return None, "no ports"
    missing = sorted(set(ports) - {x["port"] for x in listeners})
    if missing:
        return None, "nothing listens on %s (is %s running?)" % (", ".join(str(p) for p in missing), unit)
    pids = set()
    for lis in sorted(listeners, key=lambda x: (x["port"], x["address"])):
        where = "%s:%d" % (lis["address"], lis["port"])
        own = [o for o in owners.get(lis["inode"], []) if in_unit(o["pid"])]
        if not own:
            return None, "the listener on %s belongs to no process of %s" % (where, unit)
        if any(o["pid"] == 1 for o in owners.get(lis["inode"], [])):
            # a socket unit's socket (systemd sets SO_REUSEADDR on it): what the service sets
            # when it binds itself (leaving socket activation) is not known from it
            return None, "the listener on %s is a socket unit's (PID 1 set its options), not one %s bound" % (
                where, unit)
        try:
            flag = read(own[0]["pid"], own[0]["fd"])
        except (OSError, IOError) as e:
            return None, "cannot read SO_REUSEADDR of the listener on %s (pid %d): %s" % (
                where, own[0]["pid"], why(e))
        if not flag:
            return False, "the listener on %s (pid %d) does not set SO_REUSEADDR" % (where, own[0]["pid"])
        pids.add(own[0]["pid"])
    return True, "every listener on %s sets SO_REUSEADDR (read from pid %s)" % (
        ", ".join(str(p) for p in sorted(set(ports))), ", ".join(str(p) for p in sorted(pids)))


def _look(units, proc):
    """One sock_diag dump of the LISTEN sockets on every port of ``units`` and one /proc scan
    for their owners: (listeners, owners); raises DiagError."""
    wanted = sorted({p for ports in units.values() for p in ports})
    listeners = _sockdiag.listeners(wanted) if wanted else []
    return listeners, _sockdiag.listener_owners({x["inode"] for x in listeners}, proc)


def listener_reuse(units, proc="/proc"):
    """{unit: ports} -> {unit: (True/False/None, reason)}: one sock_diag dump, one /proc scan."""
    if not any(units.values()):
        return dict.fromkeys(units, (None, "no ports"))
    try:
        listeners, owners = _look(units, proc)
    except _sockdiag.DiagError as e:
        return dict.fromkeys(units, (None, "cannot list listening sockets (sock_diag): %s" % e))
    out = {}
    for unit, ports in units.items():
        mine = [x for x in listeners if x["port"] in ports]
        out[unit] = verdict(unit, ports, mine, owners, socket_reuseaddr,
                            lambda pid, unit=unit: _probe.in_unit_cgroup(pid, unit, proc))
    return out


def listen_text(listener):
    """A listener as the restart hook takes it: '127.0.0.1:80', '[::]:80'."""
    if listener["family"] == socket.AF_INET6:
        return "[%s]:%d" % (listener["address"], listener["port"])
    return "%s:%d" % (listener["address"], listener["port"])


def hook_targets(ports, listeners):
    """Pure: what the restart hook cleans for a service: ([target], [port left whole]).

    Each port the service listens on gives its listeners' own addresses (a wildcard stays
    one: every address of that family); a port with no listener of the service (not running,
    or held by PID 1 alone) gives the bare port - every address - and is named in the second
    list, so the caller can say why."""
    out, whole = [], []
    for port in sorted(set(ports)):
        mine = sorted({listen_text(x) for x in listeners if x["port"] == port})
        if mine:
            out.extend(mine)
        else:
            out.append(str(port))
            whole.append(port)
    return out, whole


def stable_targets(current, new):
    """Pure: ``new`` targets, except that a port the hook cleans whole now (``current``: the
    targets of the hook line in place, or None) stays whole while the service listens only on
    wildcard addresses there - the whole port is every address of both families, a superset -
    so that a re-run after the service came up (or bound on its own, off a socket unit) is no
    change."""
    if not current:
        return new
    out = []
    for target in new:
        port = target.rsplit(":", 1)[-1]
        if port in current and (target.startswith("0.0.0.0:") or target.startswith("[::]:")):
            if port not in out:
                out.append(port)
        else:
            out.append(target)
    return out


def unit_hook_targets(units, proc="/proc", socket_units_go=False):
    """{unit: ports} -> {unit: (targets, reason or None)} from the live listeners of each
    unit (its cgroup's processes; PID 1's shared socket counts when the unit holds it too,
    unless ``socket_units_go``: the settings ask for no socket unit, so one PID 1 holds now is
    about to go and says nothing of where the service binds itself)."""
    try:
        listeners, owners = _look(units, proc) if any(units.values()) else ([], {})
    except _sockdiag.DiagError as e:
        listeners, owners, failed = [], {}, "cannot list listening sockets (sock_diag): %s" % e
    else:
        failed = None
    out = {}
    for unit, ports in units.items():
        mine = [x for x in listeners if x["port"] in ports
                and any(_probe.in_unit_cgroup(o["pid"], unit, proc) for o in owners.get(x["inode"], []))
                and not (socket_units_go and any(o["pid"] == 1 for o in owners.get(x["inode"], [])))]
        targets, whole = hook_targets(ports, mine)
        why = failed or ("nothing of %s listens on %s (not running?): every address of %s is cleaned"
                         % (unit, ", ".join(str(p) for p in whole), "it" if len(whole) == 1 else "them")
                         if whole else None)
        out[unit] = (targets, why)
    return out


def process_tree(pid, proc="/proc"):
    """``pid`` and every process below it (one /proc scan of each process's parent)."""
    parents = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat")) as f:
                # pid (comm) state ppid ...: comm may hold spaces and parentheses
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (IOError, OSError, IndexError, ValueError):
            continue
    tree, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return tree


def program_hook_targets(ports, pid, proc="/proc"):
    """What the hook cleans for a supervisord program (its process ``pid``, 0 when not running):
    the listen addresses of that process and its children, a bare port where none listens."""
    if not ports:
        return []
    mine = []
    if pid:
        try:
            listeners, owners = _look({"program": ports}, proc)
        except _sockdiag.DiagError:
            listeners, owners = [], {}
        tree = process_tree(pid, proc)
        mine = [x for x in listeners if any(o["pid"] in tree for o in owners.get(x["inode"], []))]
    return hook_targets(ports, mine)[0]
