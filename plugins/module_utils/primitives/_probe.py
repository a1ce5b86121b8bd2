# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The crash test's helpers (netsvc.resilience.restart_probe; the module's run is _restart_probe).

Standard library only: benchmarks/recovery_driver.py copies this file to the test hosts.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import socket
import time

EADDRINUSE_MARKERS = ("Address already in use", "EADDRINUSE", "[Errno 98]", "errno 98")
START_LIMIT_MARKERS = ("Start request repeated too quickly", "start-limit-hit", "start-limit")


class ProbeError(Exception):
    pass


def check_loopback(host):
    """Probes talk to loopback only (127.0.0.0/8 or ::1)."""
    import ipaddress  # Python 3 only: imported here so that this file imports under 2.7

    try:
        addr = ipaddress.ip_address(u"%s" % host)
    except ValueError:
        addr = None
    if addr is None:
        raise ProbeError("host %r is not an IP address: probes connect to loopback only (127.0.0.1, ::1)" % (host,))
    if not addr.is_loopback:
        raise ProbeError("host %s is not a loopback address: probes connect to loopback only" % host)
    return str(addr)


def scan_journal(text):
    """What the journal since the kill says: EADDRINUSE and start-limit lines."""
    eaddr = []
    limit = []
    for line in (text or "").splitlines():
        if any(m in line for m in EADDRINUSE_MARKERS):
            eaddr.append(line.strip())
        if any(m in line for m in START_LIMIT_MARKERS):
            limit.append(line.strip())
    return {"eaddrinuse": eaddr, "start_limit": limit}


def try_connect(host, port, timeout, expect=b""):
    """One connection attempt. Returns True when the service answered."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        if expect:
            data = b""
            while len(data) < len(expect):
                chunk = s.recv(len(expect) - len(data))
                if not chunk:
                    return False
                data += chunk
            return data == expect
        return True
    except (socket.timeout, OSError) as e:
        if isinstance(e, OSError) and e.errno not in (None, errno.ECONNREFUSED, errno.ECONNRESET,
                                                      errno.ETIMEDOUT, errno.EAGAIN, errno.ECONNABORTED):
            raise
        return False
    finally:
        s.close()


def wait_until(predicate, deadline, interval):
    """Poll predicate until it returns a truthy value or the monotonic deadline passes."""
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def in_unit_cgroup(pid, unit, proc="/proc"):
    """True when ``pid`` runs in the cgroup of systemd ``unit`` (a MainPID read a moment ago may
    already belong to nobody, or to a new process: never signal a PID that is not the unit's)."""
    try:
        with open("%s/%d/cgroup" % (proc, pid)) as f:
            text = f.read()
    except (IOError, OSError):
        return False
    return any(line.rstrip().endswith("/" + unit) for line in text.splitlines())


def process_gone(pid, proc="/proc"):
    """True once ``pid`` has exited (no /proc entry) or is a zombie waiting to be reaped."""
    try:
        with open("%s/%d/stat" % (proc, pid)) as f:
            stat = f.read()
    except (IOError, OSError):
        return True
    # the state follows the command name in parentheses, which may itself hold spaces
    return stat[stat.rfind(")") + 2:stat.rfind(")") + 3] in ("Z", "X")


def verdict(recovered, recovery_ms, slo_ms):
    """Pass/fail and a one-line reason."""
    if not recovered:
        return False, "not serving again before the timeout"
    if slo_ms is not None and recovery_ms > slo_ms:
        return False, "serving again after %.1f ms, over the SLO of %s ms" % (recovery_ms, slo_ms)
    return True, "serving again after %.1f ms" % recovery_ms
