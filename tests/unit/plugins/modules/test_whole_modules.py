# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole modules on a fake host (fakehost.py): each module's real main() with real files under a
temporary root and a table of command answers - the success path, check mode, idempotence, and
the transaction's put-back when a write, the verify or the reload fails. Molecule runs the same
modules against real systemd and kernels; these run in seconds."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import socket
import time

import pytest
from ansible.module_utils import basic

from ansible_collections.netsvc.resilience.plugins.modules import (
    harden,
    host_check,
    prestart_hook,
    restart_probe,
    service_restart_policy,
    socket_cleanup,
    sysctl_tcp,
    undo,
)
from ansible_collections.netsvc.resilience.tests.unit.plugins.modules.fakehost import FakeService

TOP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")

LIVE = {"net/core/somaxconn": "4096", "net/ipv4/tcp_max_syn_backlog": "512"}


def live_values(host):
    for key, value in LIVE.items():
        host.write("/proc/sys/" + key, value + "\n")


def test_sysctl_tcp_writes_reads_back_and_is_idempotent(fake_host, run_on):
    live_values(fake_host)
    args = {"settings": {"net.core.somaxconn": 8192}}
    before = fake_host.tree()
    kind, result = run_on(fake_host, sysctl_tcp, args, check=True)
    assert (kind, result["changed"]) == ("exit", True) and fake_host.tree() == before  # check mode writes nothing
    kind, result = run_on(fake_host, sysctl_tcp, args)
    assert kind == "exit" and result["changed"], result
    assert "net.core.somaxconn = 8192" in fake_host.read("/etc/sysctl.d/90-netsvc-resilience.conf")
    assert fake_host.read("/proc/sys/net/core/somaxconn").strip() == "8192"
    assert result["live_after"]["net.core.somaxconn"] == "8192"
    kind, result = run_on(fake_host, sysctl_tcp, args)
    assert (kind, result["changed"]) == ("exit", False), result


WEB = "[Unit]\nDescription=web\n\n[Service]\nExecStart=/usr/bin/python3 -m http.server 8080\n"
POLICY = "/etc/systemd/system/web.service.d/50-netsvc-resilience.conf"


def web_host(host):
    host.systemd.add_unit("web.service", WEB)
    host.answer(["systemd-analyze", "verify"], (0, "", ""))
    return host


def test_service_restart_policy_writes_the_drop_in_systemd_uses(fake_host, run_on):
    web_host(fake_host)
    before = fake_host.tree()
    kind, result = run_on(fake_host, service_restart_policy, {"name": "web.service"}, check=True)
    assert kind == "exit" and result["changed"] and fake_host.tree() == before, result
    assert fake_host.count("systemctl", "daemon-reload") == 0
    kind, result = run_on(fake_host, service_restart_policy, {"name": "web.service"})
    assert kind == "exit" and result["changed"] and not result["warning_messages"], result
    assert "Restart=on-failure" in fake_host.read(POLICY)
    assert fake_host.count("systemctl", "daemon-reload") == 1 and fake_host.count("systemd-analyze", "verify") == 1
    show = fake_host.systemd.properties("web.service")
    assert (show["Restart"], show["NeedDaemonReload"]) == ("on-failure", "no")
    assert POLICY in fake_host.read("/var/lib/netsvc-resilience/ledger.json")  # what undo will put back
    kind, result = run_on(fake_host, service_restart_policy, {"name": "web.service"})
    assert kind == "exit" and not result["changed"], result
    assert fake_host.count("systemctl", "daemon-reload") == 1  # nothing to reload the second time


def test_a_rejected_drop_in_is_put_back(fake_host, run_on):
    web_host(fake_host)
    fake_host.write(POLICY, "[Service]\nRestart=always\n")  # an older drop-in of ours, kept as it was
    fake_host.systemd.daemon_reload()
    fake_host.answer(["systemd-analyze", "verify"],
                     lambda argv: (1, "", "%s:2: Unknown key name 'Restart' in section 'Service'\n" % POLICY))
    before = fake_host.tree()
    kind, result = run_on(fake_host, service_restart_policy, {"name": "web.service"})
    assert kind == "fail" and "verify rejected web.service; every file was restored" in result["msg"], result
    assert fake_host.tree() == before and fake_host.count("systemctl", "daemon-reload") == 0


def test_a_failed_reload_puts_every_file_back(fake_host, run_on):
    web_host(fake_host)
    before = fake_host.tree()
    fake_host.systemd.reload_rc = 1
    kind, result = run_on(fake_host, service_restart_policy, {"name": "web.service"})
    assert kind == "fail" and "daemon-reload failed" in result["msg"] and "restored" in result["msg"], result
    assert fake_host.tree() == before


def test_a_failed_write_puts_every_file_back(fake_host, run_on, monkeypatch):
    web_host(fake_host)
    before = fake_host.tree()
    real_move = basic.AnsibleModule.atomic_move

    def full_disk(self, src, dest, *a, **k):
        if dest.endswith("50-netsvc-resilience.conf"):
            raise OSError(28, "No space left on device")
        return real_move(self, src, dest, *a, **k)

    monkeypatch.setattr(basic.AnsibleModule, "atomic_move", full_disk)
    kind, result = run_on(fake_host, service_restart_policy, {"name": "web.service", "kill_mode": "mixed"})
    assert kind == "fail" and "No space left on device" in result["msg"], result
    assert fake_host.tree() == before and fake_host.count("systemctl", "daemon-reload") == 0


def test_undo_puts_back_what_the_ledger_recorded(fake_host, run_on):
    web_host(fake_host)
    live_values(fake_host)
    fake_host.write(POLICY, "[Service]\nRestart=always\n")  # the admin's file of that name: restored byte for byte
    fake_host.systemd.daemon_reload()
    before = fake_host.tree()
    assert run_on(fake_host, service_restart_policy, {"name": "web.service"})[0] == "exit"
    assert run_on(fake_host, sysctl_tcp, {"settings": {"net.core.somaxconn": 8192}})[0] == "exit"
    assert fake_host.tree() != before
    kind, result = run_on(fake_host, undo, {}, check=True)
    assert kind == "exit" and result["changed"] and POLICY in result["files"], result
    kind, result = run_on(fake_host, undo, {})
    assert kind == "exit" and result["changed"], result
    assert fake_host.tree() == before
    assert result["sysctl"]["net.core.somaxconn"]["after"] == "4096"
    assert fake_host.systemd.properties("web.service")["Restart"] == "always"
    kind, result = run_on(fake_host, undo, {})
    assert kind == "exit" and not result["changed"], result


def hook_args(**kw):
    with open(os.path.join(TOP, "files", "native", "x86_64", "netsvc-sockclean"), "rb") as f:
        native = base64.b64encode(f.read()).decode("ascii")
    return dict({"services": [{"name": "web.service", "ports": [8080], "cleanup": True}],
                 "payload": {"native": {"x86_64": native, "aarch64": native}, "python": "print('twin')\n"}}, **kw)


HOOK = "/usr/lib/netsvc-resilience/netsvc-sockclean"
CLEANUP = "/etc/systemd/system/web.service.d/40-netsvc-cleanup.conf"


def test_prestart_hook_installs_the_hook_systemd_runs(fake_host, run_on):
    web_host(fake_host)
    before = fake_host.tree()
    kind, result = run_on(fake_host, prestart_hook, hook_args(), check=True)
    assert kind == "exit" and result["changed"] and fake_host.tree() == before, result
    kind, result = run_on(fake_host, prestart_hook, hook_args())
    assert kind == "exit" and result["changed"], result
    assert result["hook_kind"] in ("native-x86_64", "native-aarch64", "python")
    mode, uid = fake_host.tree()[HOOK][1:]
    assert (mode, uid) == (0o755, 0)
    pre = fake_host.systemd.properties("web.service")["ExecStartPreEx"]
    assert "argv[]=%s --unit web.service" % HOOK in pre and "privileged" in pre and "ignore-failure" in pre
    assert CLEANUP in result["written"] and fake_host.count("systemctl", "daemon-reload") == 1
    kind, result = run_on(fake_host, prestart_hook, hook_args())
    assert kind == "exit" and not result["changed"], result
    kind, result = run_on(fake_host, prestart_hook, hook_args(state="absent"))
    assert kind == "exit" and result["changed"] and fake_host.read(CLEANUP) is None, result


def test_a_hook_drop_in_that_systemd_overrides_fails_the_task(fake_host, run_on):
    web_host(fake_host)
    # the admin's later drop-in empties ExecStartPre=: the hook line is on disk, systemd never runs it
    fake_host.write("/etc/systemd/system/web.service.d/99-local.conf", "[Service]\nExecStartPre=\n")
    kind, result = run_on(fake_host, prestart_hook, hook_args())
    assert kind == "fail" and "99-local.conf" in result["msg"], result


def test_host_check_takes_the_lock_records_the_state_and_sees_drift(fake_host, run_on):
    web_host(fake_host)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    fake_host.systemd.main_pid["web.service"] = os.getpid()  # the test process plays the service
    base = {"services": [{"name": "web.service", "ports": [port]}], "run_id": "r1", "inputs_digest": "d1"}
    try:
        before = fake_host.tree()
        kind, result = run_on(fake_host, host_check, dict(base, lock="acquire"), check=True)
        assert kind == "exit" and result["healthy"] and fake_host.tree() == before, result
        kind, result = run_on(fake_host, host_check, dict(base, lock="acquire"))
        assert kind == "exit" and result["healthy"] and not result["converged"], result
        assert '"run_id": "r1"' in fake_host.read("/run/netsvc-resilience/run.lock")
        kind, result = run_on(fake_host, host_check, dict(base, lock="acquire", run_id="r2", lock_wait=0))
        assert kind == "fail" and "run r1" in result["msg"] and "nothing was changed" in result["msg"], result
        kind, result = run_on(fake_host, host_check, dict(base, record=True, lock="release"))
        assert kind == "exit" and result["recorded"] and result["lock"]["released"], result
        assert fake_host.read("/run/netsvc-resilience/run.lock") is None
        assert fake_host.read("/var/lib/netsvc-resilience/applied-state.json")
        kind, result = run_on(fake_host, host_check, base)
        assert kind == "exit" and result["converged"] and result["drift"] == [], result
        fake_host.write("/etc/systemd/system/web.service.d/99-local.conf", "[Service]\nRestart=no\n")
        kind, result = run_on(fake_host, host_check, base)
        assert kind == "exit" and not result["converged"], result
        assert any("99-local.conf" in d or "web.service.d" in d for d in result["drift"]), result["drift"]
    finally:
        listener.close()


def time_wait_on_a_port(count):
    """``count`` TIME_WAIT sockets on a loopback port of our own (the server side closes first)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(count)
    port = listener.getsockname()[1]
    clients = []
    for _n in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=2)
        server, _addr = listener.accept()
        server.close()  # active close on the port's side: TIME_WAIT on 127.0.0.1:port
        clients.append(client)
    time.sleep(0.05)
    for client in clients:
        client.close()
    listener.close()
    time.sleep(0.05)
    return port


def test_socket_cleanup_destroys_time_wait_and_then_finds_nothing(fake_host, run_on):
    port = time_wait_on_a_port(5)
    kind, result = run_on(fake_host, socket_cleanup, {"ports": [port]}, check=True)
    assert kind == "exit" and result["before"].get("time-wait") == 5 and result["would_destroy"] == 5, result
    assert result["changed"] and result["destroyed"] == 0 and result["after"].get("time-wait") == 5  # would, did not
    if not result["capabilities"]["timewait_destroy"]:
        pytest.skip("this kernel does not destroy TIME_WAIT sockets (Linux >= 6.0 does)")
    kind, result = run_on(fake_host, socket_cleanup, {"ports": [port]})
    assert kind == "exit" and result["changed"] and result["destroyed"] == 5, result
    assert result["after"].get("time-wait", 0) == 0
    kind, result = run_on(fake_host, socket_cleanup, {"ports": [port]})
    assert kind == "exit" and not result["changed"] and result["destroyed"] == 0, result


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_serving(port, seconds=5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.01)
    return False


def test_restart_probe_kills_the_service_and_measures_its_return(fake_host, run_on):
    web_host(fake_host)
    fake_host.answer(["journalctl"], (0, "", ""))
    port = free_port()
    service = FakeService(fake_host, "web.service", port, restart_ms=50)
    try:
        assert wait_serving(port)
        first = service.proc.pid
        kind, result = run_on(fake_host, restart_probe, {"name": "web.service", "port": port}, check=True)
        assert kind == "exit" and result["pid_before"] == first and service.proc.pid == first, result
        args = {"name": "web.service", "port": port, "expect": "ok", "slo_ms": 5000, "timeout": 10}
        kind, result = run_on(fake_host, restart_probe, args)
        assert kind == "exit" and result["recovered"] and not result["changed"], result
        assert result["pid_before"] == first and result["pid_after"] != first and result["restarts"] == 1
        assert 50 <= result["recovery_ms"] < 5000
        kind, result = run_on(fake_host, restart_probe, dict(args, slo_ms=1))  # back, but slower than asked
        assert kind == "fail" and not result.get("changed") and result["msg"] == result["verdict"], result
    finally:
        service.stop()


def one_call(**kw):
    """harden: the kernel settings, the hook and the policy in one call, as harden_restart
    makes it."""
    hook = hook_args()
    return dict({"units": {"services": [{"name": "web.service", "ports": [8080]}]},
                 "kernel": {"settings": {"net.core.somaxconn": 8192}, "reserved_ports": [8080]},
                 "prestart": {"services": hook["services"], "payload": hook["payload"]}}, **kw)


def test_harden_writes_kernel_hook_and_policy_with_one_reload(fake_host, run_on):
    web_host(fake_host)
    live_values(fake_host)
    fake_host.write("/proc/sys/net/ipv4/ip_local_reserved_ports", "\n")
    before = fake_host.tree()
    kind, result = run_on(fake_host, harden, one_call(), check=True)
    assert kind == "exit" and result["changed"] and fake_host.tree() == before, result
    kind, result = run_on(fake_host, harden, one_call())
    assert kind == "exit" and result["changed"], result
    assert fake_host.count("systemctl", "daemon-reload") == 1 and fake_host.count("systemd-analyze", "verify") == 1
    assert "Restart=on-failure" in fake_host.read(POLICY) and fake_host.read(CLEANUP)
    assert fake_host.read("/proc/sys/net/core/somaxconn").strip() == "8192"
    assert result["kernel"]["live_after"]["net.core.somaxconn"] == "8192" and result["prestart"]["changed"]
    show = fake_host.systemd.properties("web.service")
    assert show["Restart"] == "on-failure" and "argv[]=%s --unit web.service" % HOOK in show["ExecStartPreEx"]
    kind, result = run_on(fake_host, harden, one_call())
    assert kind == "exit" and not result["changed"], result
    assert fake_host.count("systemctl", "daemon-reload") == 1


def test_harden_puts_the_kernel_settings_back_when_the_reload_fails(fake_host, run_on):
    web_host(fake_host)
    live_values(fake_host)
    fake_host.write("/proc/sys/net/ipv4/ip_local_reserved_ports", "\n")
    before = fake_host.tree()
    fake_host.systemd.reload_rc = 1
    kind, result = run_on(fake_host, harden, one_call())
    assert kind == "fail" and "daemon-reload failed" in result["msg"], result
    assert fake_host.tree() == before  # the sysctl file, the live values, the hook and both drop-ins


def test_harden_refuses_bad_kernel_settings_before_any_write(fake_host, run_on):
    web_host(fake_host)
    live_values(fake_host)
    before = fake_host.tree()
    bad = one_call(kernel={"settings": {"net.ipv4.tcp_tw_recycle": 1}})  # removed from Linux 4.12
    kind, result = run_on(fake_host, harden, bad)
    assert kind == "fail" and result["msg"].startswith("kernel: ") and fake_host.tree() == before, result
    assert fake_host.count("systemctl", "daemon-reload") == 0 and fake_host.count("systemd-analyze") == 0
