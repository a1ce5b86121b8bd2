# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import socket
import threading

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _probe


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1"])
def test_loopback_accepted(host):
    assert _probe.check_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "8.8.8.8", "localhost", "::", "0.0.0.0"])
def test_non_loopback_refused(host):
    with pytest.raises(_probe.ProbeError):
        _probe.check_loopback(host)


def test_journal_scan():
    text = ("Started x.\nOSError: [Errno 98] Address already in use\n"
            "x.service: Start request repeated too quickly.\nx.service: Failure with result 'start-limit-hit'.\n")
    found = _probe.scan_journal(text)
    assert found["eaddrinuse"] == ["OSError: [Errno 98] Address already in use"]
    assert len(found["start_limit"]) == 2
    assert _probe.scan_journal("Started x.\n") == {"eaddrinuse": [], "start_limit": []}


def test_verdict():
    assert _probe.verdict(False, None, 100) == (False, "not serving again before the timeout")
    assert _probe.verdict(True, 150.0, 100)[0] is False
    assert _probe.verdict(True, 50.0, 100) == (True, "serving again after 50.0 ms")
    assert _probe.verdict(True, 5000.0, None)[0] is True


def test_try_connect_against_a_real_loopback_listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def answer():
        conn, _addr = srv.accept()
        conn.sendall(b"ok\n")
        conn.close()

    t = threading.Thread(target=answer)
    t.start()
    try:
        assert _probe.try_connect("127.0.0.1", port, 2.0, b"ok\n") is True
    finally:
        t.join(5)
        srv.close()
    # nothing listens there any more: refused, not an exception
    assert _probe.try_connect("127.0.0.1", port, 0.5) is False


def test_process_gone(tmp_path):
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "stat").write_text("10 (my (odd) name) S 1 10\n")
    (tmp_path / "11").mkdir()
    (tmp_path / "11" / "stat").write_text("11 (python3) Z 1 11\n")
    assert _probe.process_gone(10, str(tmp_path)) is False
    assert _probe.process_gone(11, str(tmp_path)) is True
    assert _probe.process_gone(12, str(tmp_path)) is True


def test_only_a_pid_in_the_unit_cgroup_is_signalled(tmp_path):
    proc = tmp_path
    (proc / "42").mkdir()
    (proc / "42" / "cgroup").write_text(u"12:pids:/system.slice/web.service\n0::/system.slice/web.service\n")
    (proc / "43").mkdir()
    (proc / "43" / "cgroup").write_text(u"0::/system.slice/web2.service\n")
    assert _probe.in_unit_cgroup(42, "web.service", str(proc))
    assert not _probe.in_unit_cgroup(43, "web.service", str(proc))  # another unit
    assert not _probe.in_unit_cgroup(44, "web.service", str(proc))  # gone


@pytest.mark.parametrize("name", ["_probe.py", "_sockdiag.py"])
def test_files_copied_to_hosts_alone_import_nothing_of_the_collection(name):
    # _probe.py goes to benchmark hosts with recovery_driver.py, _sockdiag.py is the hook's twin
    path = os.path.join(os.path.dirname(_probe.__file__), name)
    with open(path) as f:
        tree = ast.parse(f.read())
    imported = [n.module if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [None])]
    assert not [m for m in imported if m and m.startswith("ansible")], imported
