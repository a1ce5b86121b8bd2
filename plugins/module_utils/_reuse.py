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

from ansible_collections.netsvc.resilience.plugins.module_utils import _probe as P
from ansible_collections.netsvc.resilience.plugins.module_utils import _sockdiag as D

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


def socket_reuseaddr(pid, fd, syscall=None):
    """SO_REUSEADDR of descriptor ``fd`` of process ``pid`` (a duplicate is read, then closed).

    Raises OSError (with the errno of pidfd_open/pidfd_getfd/getsockopt) when it cannot be read.
    """
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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, dup)
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))
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


def listener_reuse(units, proc="/proc"):
    """{unit: ports} -> {unit: (True/False/None, reason)}: one sock_diag dump, one /proc scan."""
    wanted = sorted({p for ports in units.values() for p in ports})
    if not wanted:
        return dict.fromkeys(units, (None, "no ports"))
    try:
        listeners = D.listeners(wanted)
    except D.DiagError as e:
        return dict.fromkeys(units, (None, "cannot list listening sockets (sock_diag): %s" % e))
    owners = D.listener_owners({x["inode"] for x in listeners}, proc)
    out = {}
    for unit, ports in units.items():
        mine = [x for x in listeners if x["port"] in ports]
        out[unit] = verdict(unit, ports, mine, owners, socket_reuseaddr,
                            lambda pid, unit=unit: P.in_unit_cgroup(pid, unit, proc))
    return out
