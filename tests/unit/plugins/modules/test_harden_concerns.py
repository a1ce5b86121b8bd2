# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""harden with the two concerns test_whole_modules does not compose: preload (a live loopback
server mirrored onto its socket unit, its re-mirror) and supervisord programs - check mode, the
success path, and the put-back when the reload or supervisord's reread fails. Written before
Shape 3 moved these concerns behind the ConcernPlan interface, to show the move changed
nothing the host sees."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import sys

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _preload
from ansible_collections.netsvc.resilience.plugins.modules import harden
from ansible_collections.netsvc.resilience.tests.unit.plugins.modules.fakehost import FakeService
from ansible_collections.netsvc.resilience.tests.unit.plugins.modules.test_whole_modules import (
    TOP,
    free_port,
    live_values,
    wait_serving,
)

SOCKET = "/etc/systemd/system/web.socket"
POLICY = "/etc/systemd/system/web.service.d/50-netsvc-resilience.conf"
LIBRARY = "/usr/lib/netsvc-resilience/libnetsvc-preload.so"


def library_payload():
    builds = {}
    for arch in ("x86_64", "aarch64"):
        with open(os.path.join(TOP, "files", "native", arch, "libnetsvc-preload.so"), "rb") as f:
            builds[arch] = base64.b64encode(f.read()).decode("ascii")
    return {"native": builds}


def preload_call(port, **kw):
    service = dict({"name": "web.service", "ports": [port], "socket_activation": "preload"}, **kw)
    return {"units": {"services": [service], "payload": library_payload()}}


def preload_host(host, port):
    """web.service is a real loopback server on ``port`` (FakeService), its unit's ExecStart the
    interpreter that runs it; stop and start answer as systemd's do (the server keeps running)."""
    host.systemd.add_unit("web.service", "[Service]\nExecStart=%s -c server %d\n" % (sys.executable, port))
    host.answer(["systemd-analyze", "verify"], (0, "", ""))
    for verb in ("stop", "start", "reset-failed", "enable", "disable"):
        host.answer(["systemctl", verb], (0, "", ""))
    service = FakeService(host, "web.service", port)
    assert wait_serving(port)
    return service


def drifted(host, port):
    """web.service preloaded by an earlier run, its socket unit on an address the server no
    longer asks for (it listens on 127.0.0.1 with a socket of its own)."""
    host.write(SOCKET, _preload.HEADER + "\n[Socket]\nListenStream=127.0.0.2:%d\n" % port)
    host.write(POLICY, "[Service]\nEnvironment=LD_PRELOAD=%s\n" % LIBRARY)
    host.systemd.daemon_reload()


def test_harden_preload_check_mode_then_a_failed_reload_leaves_the_service_as_it_was(fake_host, run_on):
    port = free_port()
    service = preload_host(fake_host, port)
    try:
        before, pid = fake_host.tree(), service.proc.pid
        kind, result = run_on(fake_host, harden, preload_call(port), check=True)
        assert kind == "exit" and result["changed"] and fake_host.tree() == before, result
        assert result["results"][0]["preload"]["streams"] == ["127.0.0.1:%d" % port], result
        assert fake_host.count("systemctl", "stop") == 0 and fake_host.count("systemctl", "daemon-reload") == 0
        fake_host.systemd.reload_rc = 1
        kind, result = run_on(fake_host, harden, preload_call(port))
        assert kind == "fail" and "daemon-reload failed" in result["msg"], result
        assert fake_host.tree() == before  # socket unit, library, drop-in: none of them left
        assert fake_host.count("systemctl", "stop") == 0 and service.proc.pid == pid and wait_serving(port)
    finally:
        service.stop()


def test_harden_preload_mirrors_a_drifted_service_again_at_the_commit(fake_host, run_on, monkeypatch):
    """Our socket unit exists but the server listens on a socket of its own (it asked for
    another address or option): check mode says so and touches nothing; the run lets it bind
    on its own (stopped, its drop-in without the library, no socket unit, started), mirrors
    what it bound, then writes the socket unit again and switches."""
    port = free_port()
    service = preload_host(fake_host, port)
    try:
        drifted(fake_host, port)
        seen = []

        def start(argv):
            seen.append((argv[2:], fake_host.read(SOCKET), "LD_PRELOAD" in (fake_host.read(POLICY) or "")))
            return 0, "", ""

        fake_host.answer(["systemctl", "start"], start)
        before = fake_host.tree()
        kind, result = run_on(fake_host, harden, preload_call(port), check=True)
        assert kind == "exit" and result["changed"] and fake_host.tree() == before, result
        assert result["results"][0]["preload"]["remirrored"].startswith("it listens on 127.0.0.1:%d" % port)
        assert fake_host.count("systemctl", "stop") == 0 and not seen

        monkeypatch.setattr(_preload, "served_from_socket_unit", lambda ports, in_unit, wait=10.0: (True, []))
        kind, result = run_on(fake_host, harden, preload_call(port))
        assert kind == "exit" and result["changed"], result
        preload = result["results"][0]["preload"]
        assert preload["streams"] == ["127.0.0.1:%d" % port] and preload["remirrored"], preload
        # on its own first (no socket unit, no library), then the socket unit and the service on it
        assert seen[0] == (["web.service"], None, False), seen
        assert [s[0] for s in seen[1:]] == [["web.socket"], ["web.service"]], seen
        assert "ListenStream=127.0.0.1:%d" % port in fake_host.read(SOCKET)
        assert "LD_PRELOAD" in fake_host.read(POLICY) and fake_host.read(LIBRARY) is not None
        assert fake_host.count("systemctl", "stop", "web.service", "web.socket") == 1
    finally:
        service.stop()


def test_harden_preload_remirror_whose_reload_fails_puts_every_file_back(fake_host, run_on):
    port = free_port()
    service = preload_host(fake_host, port)
    try:
        drifted(fake_host, port)
        before = fake_host.tree()
        fake_host.systemd.reload_rc = 1
        kind, result = run_on(fake_host, harden, preload_call(port))
        assert kind == "fail" and "its files were put back" in result["msg"], result
        assert fake_host.tree() == before
        assert fake_host.count("systemctl", "start", "web.socket", "web.service") == 1  # both started again
    finally:
        service.stop()


MAIN = "[supervisord]\nlogfile=/tmp/s.log\n\n[include]\nfiles = conf.d/*.conf\n"
SHARED = ("; the admin's file: two programs\n[program:app]\ncommand=/usr/bin/app --port 9000\n"
          "directory=/srv/app ; kept\n\n[program:other]\ncommand=/usr/bin/other\n")


def supervisord_host(host, reread=(0, "app: changed\n", "")):
    host.write("/etc/supervisor/supervisord.conf", MAIN)
    host.write("/etc/supervisor/conf.d/apps.conf", SHARED)
    host.answer(["supervisorctl", "pid"], (0, "", ""))
    host.answer(["supervisorctl", "reread"], reread)
    host.answer(["supervisorctl", "update"], (0, "", ""))
    host.answer(["supervisorctl", "status"], (0, "app  RUNNING   pid 4242, uptime 0:01:00\n", ""))


def supervisord_call(**kw):
    programs = [{"name": "app", "backend": "supervisord", "startsecs": 2},
                {"name": "other", "backend": "supervisord", "startretries": 7}]
    return dict({"units": {"services": programs}, "kernel": {"settings": {"net.core.somaxconn": 8192}}}, **kw)


def test_harden_edits_two_programs_of_one_supervisord_file_in_place(fake_host, run_on):
    supervisord_host(fake_host)
    live_values(fake_host)
    before = fake_host.tree()
    kind, result = run_on(fake_host, harden, supervisord_call(), check=True)
    assert kind == "exit" and result["changed"] and fake_host.tree() == before, result
    assert fake_host.count("supervisorctl", "reread") == 0
    kind, result = run_on(fake_host, harden, supervisord_call())
    assert kind == "exit" and result["changed"], result
    text = fake_host.read("/etc/supervisor/conf.d/apps.conf")
    assert text.startswith("; the admin's file: two programs\n") and "directory=/srv/app ; kept" in text
    assert "startsecs=2" in text and "startretries=7" in text and text.count("autorestart=true") == 2, text
    assert [r["backend"] for r in result["results"]] == ["supervisord", "supervisord"]
    assert all(r["changed"] and r["path"] == "/etc/supervisor/conf.d/apps.conf" for r in result["results"])
    assert result["kernel"]["live_after"]["net.core.somaxconn"] == "8192"
    assert fake_host.count("supervisorctl", "reread") >= 1 and fake_host.count("supervisorctl", "update") == 2
    kind, result = run_on(fake_host, harden, supervisord_call())
    assert kind == "exit" and not result["changed"], result


def test_harden_a_rejected_supervisord_reread_puts_every_file_back(fake_host, run_on):
    supervisord_host(fake_host, reread=(2, "", "ERROR: CANT_REREAD: File contains parsing errors\n"))
    live_values(fake_host)
    before = fake_host.tree()
    kind, result = run_on(fake_host, harden, supervisord_call())
    assert kind == "fail" and "reread rejected" in result["msg"] and "restored" in result["msg"], result
    assert fake_host.read("/etc/supervisor/conf.d/apps.conf") == SHARED
    # staged in the call's one transaction: the kernel settings written before it go back too,
    # and supervisord reads the restored files again
    assert fake_host.tree() == before
    assert fake_host.count("supervisorctl", "reread") == 2 and fake_host.count("supervisorctl", "update") == 0


def test_harden_a_program_defined_nowhere_is_refused_before_anything_is_written(fake_host, run_on):
    supervisord_host(fake_host)
    live_values(fake_host)
    before = fake_host.tree()
    call = supervisord_call()
    call["units"]["services"].append({"name": "ghost", "backend": "supervisord"})
    kind, result = run_on(fake_host, harden, call)
    assert kind == "fail" and "ghost is defined in no file supervisord reads" in result["msg"], result
    assert fake_host.tree() == before and fake_host.count("supervisorctl", "reread") == 0
