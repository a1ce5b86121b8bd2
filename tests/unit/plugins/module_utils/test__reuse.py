# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cleanup: auto - reading SO_REUSEADDR from a live listener, and what the hook decision makes of it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import socket

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _prestart_hook
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _reuse

LIS = [{"port": 80, "address": "0.0.0.0", "inode": 10}, {"port": 80, "address": "::", "inode": 11},
       {"port": 443, "address": "0.0.0.0", "inode": 12}]
OWNERS = {10: [{"pid": 5, "fd": 6}], 11: [{"pid": 5, "fd": 7}], 12: [{"pid": 5, "fd": 8}]}


def flags(table):
    def read(pid, fd):
        value = table[fd]
        if isinstance(value, Exception):
            raise value
        return value
    return read


def mine(pid):
    return pid == 5


def test_every_listener_with_the_flag_needs_no_hook():
    flag, why = _reuse.verdict("web.service", [80, 443], LIS, OWNERS, flags({6: True, 7: True, 8: True}), mine)
    assert flag is True
    assert why == "every listener on 80, 443 sets SO_REUSEADDR (read from pid 5)"


def test_one_listener_without_the_flag_keeps_the_hook():
    flag, why = _reuse.verdict("web.service", [80, 443], LIS, OWNERS, flags({6: True, 7: False, 8: True}), mine)
    assert flag is False
    assert why == "the listener on :::80 (pid 5) does not set SO_REUSEADDR"


@pytest.mark.parametrize("ports, owners, table, words", [
    ([80, 443, 8080], OWNERS, {6: True, 7: True, 8: True}, "nothing listens on 8080 (is web.service running?)"),
    ([80], {10: [{"pid": 99, "fd": 3}], 11: [{"pid": 5, "fd": 7}]}, {7: True},
     "the listener on 0.0.0.0:80 belongs to no process of web.service"),
    ([443], OWNERS, {8: OSError(errno.ENOSYS, "no")}, "this kernel has no pidfd_getfd (Linux >= 5.6)"),
    ([443], OWNERS, {8: OSError(errno.EPERM, "no")},
     "pid 5): no ptrace rights over it (needs root with CAP_SYS_PTRACE)"),
    ([], OWNERS, {}, "no ports"),
])
def test_what_cannot_be_read_is_unknown_never_a_guess(ports, owners, table, words):
    flag, why = _reuse.verdict("web.service", ports, [x for x in LIS if x["port"] in ports], owners, flags(table), mine)
    assert flag is None
    assert words in why


def test_the_flag_is_read_from_a_live_socket_of_a_process():
    """The real syscalls on our own sockets (pidfd_getfd needs Linux >= 5.6)."""
    with_flag, without = socket.socket(), socket.socket()
    with_flag.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            assert _reuse.socket_reuseaddr(os.getpid(), with_flag.fileno()) is True
        except OSError as e:
            if e.errno == errno.ENOSYS:
                pytest.skip("no pidfd_getfd on this kernel")
            raise
        assert _reuse.socket_reuseaddr(os.getpid(), without.fileno()) is False
        with pytest.raises(OSError) as e:
            _reuse.socket_reuseaddr(os.getpid(), 65000)  # no such descriptor
        assert e.value.errno == errno.EBADF
        assert _reuse.why(e.value) == "it closed the socket meanwhile"
        with open(os.devnull) as f, pytest.raises(OSError) as e:
            _reuse.socket_reuseaddr(os.getpid(), f.fileno())
        assert e.value.errno == errno.ENOTSOCK
        assert _reuse.why(e.value) == "the descriptor is no longer a socket (reused meanwhile)"
    finally:
        with_flag.close()
        without.close()


def test_syscall_failures_carry_their_errno_and_close_the_pidfd():
    closed = []
    calls = iter([41, -1])  # pidfd_open gives 41, pidfd_getfd fails

    def call(*args):
        return next(calls)

    real_close = os.close
    try:
        os.close = closed.append
        with pytest.raises(OSError) as e:
            _reuse.socket_reuseaddr(5, 6, syscall=(call, lambda: errno.EPERM))
    finally:
        os.close = real_close
    assert e.value.errno == errno.EPERM and closed == [41]


@pytest.mark.parametrize("present, cleanup, reuse, decision, words", [
    (True, True, None, "hook", "cleanup: true"),
    (True, False, None, "none", "cleanup: false"),
    (True, "auto", (True, "every listener on 80 sets SO_REUSEADDR"), "none", "no hook needed: every listener"),
    (True, "auto", (False, "the listener on 0.0.0.0:80 (pid 5) does not set SO_REUSEADDR"), "hook", "hook kept: the"),
    (True, "auto", (None, "nothing listens on 80"), "hook", "hook kept: nothing listens on 80"),
    (True, "auto", None, "hook", "hook kept: not read"),
    (False, True, None, "none", "state=absent"),
])
def test_hook_decision(present, cleanup, reuse, decision, words):
    got, why = _prestart_hook.hook_decision(present, cleanup, reuse)
    assert got == decision and words in why


def test_listener_reuse_end_to_end_with_real_sockets(tmp_path):
    """Real sock_diag dump and real pidfd reads of our own listeners; only the /proc view that
    says which unit holds them is made up (this test does not run in a systemd unit)."""
    from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _sockdiag

    socks, ports = [], []
    try:
        for reuse in (True, False):
            s = socket.socket()
            if reuse:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            socks.append(s)
            ports.append(s.getsockname()[1])
        me = tmp_path / str(os.getpid())
        (me / "fd").mkdir(parents=True)
        for s in socks:
            (me / "fd" / str(s.fileno())).symlink_to("socket:[%d]" % os.fstat(s.fileno()).st_ino)
        (me / "cmdline").write_bytes(b"web\0")
        (me / "cgroup").write_text(u"0::/system.slice/web.service\n")
        try:
            got = _reuse.listener_reuse({"web.service": [ports[0]], "other.service": [ports[1]], "idle.service": [1]},
                                        proc=str(tmp_path))
        except _sockdiag.DiagError:
            pytest.skip("no sock_diag here")
        if got["web.service"][0] is None and "pidfd_getfd" in got["web.service"][1]:
            pytest.skip("no pidfd_getfd on this kernel")
        assert got["web.service"] == (True, "every listener on %d sets SO_REUSEADDR (read from pid %d)"
                                      % (ports[0], os.getpid()))
        assert got["other.service"][0] is None  # ours, but not other.service's process
        assert "belongs to no process of other.service" in got["other.service"][1]
        assert got["idle.service"][0] is None and "nothing listens on 1" in got["idle.service"][1]
        (me / "cgroup").write_text(u"0::/system.slice/other.service\n")
        got = _reuse.listener_reuse({"other.service": [ports[1]]}, proc=str(tmp_path))
        assert got["other.service"] == (False, "the listener on 127.0.0.1:%d (pid %d) does not set SO_REUSEADDR"
                                        % (ports[1], os.getpid()))
    finally:
        for s in socks:
            s.close()


def test_a_converged_host_drifts_when_a_listener_loses_the_flag():
    """The fast re-run path: a unit cleanup auto left without the hook is read again, and a
    listener that lost SO_REUSEADDR (a new server version) makes the run a full one."""
    from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _host_check

    row = {"name": "web.service", "unit": "web.service", "backend": "systemd", "ports": [80],
           "socket_activation": False, "active": True, "hook": {"installed": False}}
    hooked = dict(row, name="api.service", unit="api.service", hook={"installed": True})
    down = dict(row, name="db.service", unit="db.service", active=False)
    sup = dict(row, name="job", unit="job", backend="supervisord")
    health = [row, hooked, down, sup]
    assert _host_check.without_hook(health) == {"web.service": [80]}
    assert _host_check.without_hook(health, {"api.service", "db.service"}) == {}
    assert _host_check.lost_reuse({"web.service": (True, "every listener on 80 sets SO_REUSEADDR (read from pid 5)"),
                                  "db.service": (None, "nothing listens on 5432 (is db.service running?)")}) == []
    lost = {"web.service": (False, "the listener on 0.0.0.0:80 (pid 5) does not set SO_REUSEADDR")}
    assert _host_check.lost_reuse(lost) == [
        "web.service: cleanup auto left out the hook, but now the listener on 0.0.0.0:80 (pid 5) does not set "
        "SO_REUSEADDR"]


def test_a_socket_unit_s_listener_says_nothing_of_what_the_service_sets_itself():
    owners = dict(OWNERS)
    owners[10] = [{"pid": 1, "fd": 40}, {"pid": 5, "fd": 6}]
    flag, why = _reuse.verdict("web.service", [80, 443], LIS, owners, flags({6: True, 7: True, 8: True}), mine)
    assert flag is None and "is a socket unit's" in why


def test_a_whole_port_stays_whole_while_the_service_listens_on_wildcards():
    assert _reuse.stable_targets(["7300"], ["0.0.0.0:7300"]) == ["7300"]
    assert _reuse.stable_targets(["7300"], ["0.0.0.0:7300", "[::]:7300"]) == ["7300"]
    assert _reuse.stable_targets(["7300"], ["127.0.0.1:7300"]) == ["127.0.0.1:7300"]  # narrower: narrowed
    assert _reuse.stable_targets(["0.0.0.0:80"], ["[::]:80"]) == ["[::]:80"]
    assert _reuse.stable_targets(None, ["0.0.0.0:80"]) == ["0.0.0.0:80"]
