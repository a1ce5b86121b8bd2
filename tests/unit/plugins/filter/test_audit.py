# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.filter.audit import (
    audit_report,
    audit_service,
    expand_ports,
    probe_summary,
)

HARDENED = {"ActiveState": "active", "Restart": "on-failure", "RestartUSec": "0", "StartLimitBurst": "20",
            "OnFailure": "netsvc-revive@web.service.service",
            "DropInPaths": "/etc/systemd/system/web.service.d/40-netsvc-cleanup.conf "
                           "/etc/systemd/system/web.service.d/50-netsvc-resilience.conf"}
TUTORIAL = {"ActiveState": "active", "Restart": "on-failure", "RestartUSec": "5s", "StartLimitBurst": "5",
            "OnFailure": "", "DropInPaths": ""}


HOOK_OK = {"installed": True, "privileged": True, "exec": {"code": "exited", "status": "0"},
           "last": {"result": "ok", "found": 3, "destroyed": 3, "left": 0, "cause": ""}}


def facts(tw=True, errors=None):
    return {"kernel": "6.18.44", "sock_destroy": {"orphan": True, "timewait": tw, "errors": errors or {}}}


def record(host, eff, crash=None, changed=False, overridden=None, reserved=(8080,), tw=True, hook="ok"):
    hook = HOOK_OK if hook == "ok" else hook
    observed = [{"name": "web.service", "hook": hook}] if hook is not None else []
    svc = audit_service({"item": {"name": "web.service"}, "effective": eff, "changed": changed}, "systemd", observed)
    return {"host": host, "os": "Debian 12", "services": [svc], "ports": [8080], "reserved": list(reserved),
            "sysctl": {"changed": changed, "overridden_by": overridden or {}},
            "facts": facts(tw), "crash": crash or []}


def detail(host, scope, check):
    return [c["detail"] for c in host["checks"] if (c["scope"], c["check"]) == (scope, check)][0]


def statuses(host):
    return {(c["scope"], c["check"]): c["status"] for c in host["checks"]}


def test_hardened_host_passes_everything():
    probe = probe_summary({"item": {"name": "web.service"}, "recovered": True, "recovery_ms": 45.2, "verdict": "ok"})
    rep = audit_report([record("a", HARDENED, crash=[probe])])
    assert rep["summary"] == {"pass": 1, "warn": 0, "fail": 0, "hosts": 1}
    assert rep["hosts"][0]["status"] == "pass"
    assert rep["chart"] == [{"host": "a", "service": "web.service", "ms": 45.2, "recovered": True}]


def test_tutorial_unit_warns_with_reasons():
    rep = audit_report([record("b", TUTORIAL, changed=True, reserved=(), tw=None, hook=None)])
    st = statuses(rep["hosts"][0])
    assert st[("web.service", "restart")] == "warn"
    assert st[("web.service", "start limit")] == "warn"
    assert st[("web.service", "rebind")] == "warn"
    assert st[("host", "reserved ports")] == "warn"
    assert st[("host", "TIME_WAIT destroy")] == "warn"
    assert rep["hosts"][0]["status"] == "warn"


def test_dead_service_failed_probe_and_unreachable_host_fail():
    dead = dict(HARDENED, ActiveState="failed")
    probe = probe_summary({"item": {"name": "web.service"}, "recovered": False, "failed": True, "msg": "not serving"})
    rep = audit_report([record("c", dead, crash=[probe]), {"host": "d", "error": "unreachable"}])
    assert [h["status"] for h in rep["hosts"]] == ["fail", "fail"]
    assert statuses(rep["hosts"][0])[("web.service", "running")] == "fail"
    assert statuses(rep["hosts"][0])[("host", "crash test web.service")] == "fail"
    assert rep["hosts"][1]["checks"][0]["detail"] == "unreachable"
    assert rep["summary"]["fail"] == 2


def test_restart_no_fails_and_override_warns():
    rep = audit_report([record("e", dict(HARDENED, Restart="no"), overridden={"net.core.somaxconn": [{}]})])
    st = statuses(rep["hosts"][0])
    assert st[("web.service", "restart")] == "fail"
    assert st[("host", "sysctl")] == "warn"


def test_supervisord_service_record():
    hook = {"installed": True, "privileged": None, "exec": None, "last": dict(HOOK_OK["last"])}
    svc = audit_service({"item": {"name": "web"}, "effective": {"status": "web RUNNING pid 10, uptime 0:01:00"},
                         "backend": "supervisord"}, "other", [{"name": "web", "hook": hook}])
    assert svc["hook"] == hook
    rep = audit_report([{"host": "s", "services": [svc], "ports": [], "reserved": [], "facts": facts()}])
    assert rep["hosts"][0]["status"] == "pass"
    assert statuses(rep["hosts"][0])[("web", "rebind")] == "pass"


def test_rebind_is_measured_not_inferred_from_a_file_name():
    cases = [
        # the hook is there but the service has not started since: unmeasured
        (dict(HOOK_OK, exec=None, last={}), "warn", "not run since"),
        # systemd could not execute it (the sandbox's ExecPaths=, a missing file)
        (dict(HOOK_OK, exec={"code": "exited", "status": "203"}, last={}), "fail", "could not run"),
        # it ran inside a sandbox without netlink
        (dict(HOOK_OK, last={"result": "error", "cause": "netlink refused (socket(AF_NETLINK): EAFNOSUPPORT)"}),
         "fail", "EAFNOSUPPORT"),
        # it ran, but the kernel kept sockets
        (dict(HOOK_OK, last={"result": "left", "found": 20, "destroyed": 0, "left": 20,
                             "cause": "TIME_WAIT not destroyable on Linux 5.10.0 (needs >= 6.0)"}),
         "fail", "left 20: TIME_WAIT not destroyable"),
        (dict(HOOK_OK, installed=False, exec=None, last={}), "warn", "no cleanup hook"),
        # cleanup: auto left the hook out: the audit reads the listeners again
        (dict(HOOK_OK, installed=False, exec=None, last={},
              reuse={"flag": True, "reason": "every listener on 80 sets SO_REUSEADDR (read from pid 7)"}),
         "pass", "no cleanup hook needed: every listener on 80 sets SO_REUSEADDR"),
        (dict(HOOK_OK, installed=False, exec=None, last={},
              reuse={"flag": False, "reason": "the listener on 0.0.0.0:80 (pid 7) does not set SO_REUSEADDR"}),
         "warn", "does not set SO_REUSEADDR: EADDRINUSE after a crash"),
        (dict(HOOK_OK, installed=False, exec=None, last={},
              reuse={"flag": None, "reason": "nothing listens on 80 (is web.service running?)"}),
         "warn", "unless the server sets SO_REUSEADDR (nothing listens on 80"),
        (HOOK_OK, "pass", "found 3, destroyed 3, left 0"),
    ]
    for hook, status, text in cases:
        host = audit_report([record("h", HARDENED, hook=hook)])["hosts"][0]
        assert statuses(host)[("web.service", "rebind")] == status, hook
        assert text in detail(host, "web.service", "rebind")


def test_a_clean_last_start_still_warns_on_a_kernel_that_cannot_destroy_timewait():
    host = audit_report([record("k", HARDENED, tw=False)])["hosts"][0]
    assert statuses(host)[("web.service", "rebind")] == "warn"
    assert "cannot destroy TIME_WAIT" in detail(host, "web.service", "rebind")


def test_kernel_that_refuses_timewait_destroy_warns_with_the_remedy():
    host = audit_report([record("k", HARDENED, tw=False)])["hosts"][0]
    assert statuses(host)[("host", "TIME_WAIT destroy")] == "warn"
    assert "socket_activation: preload" in detail(host, "host", "TIME_WAIT destroy")
    unknown = audit_report([record("u", HARDENED, tw=None)])["hosts"][0]
    assert "unknown" in detail(unknown, "host", "TIME_WAIT destroy")


def test_expand_ports():
    assert expand_ports("8080,9000-9002") == [8080, 9000, 9001, 9002]
    assert expand_ports("") == []
    assert expand_ports("1-60000") == ["1-60000"]


def test_the_report_says_when_and_by_which_version_and_names_hosts_without_a_record():
    import re

    rep = audit_report([record("a", HARDENED)], "2026-12-07T12:00:00Z", ["a", "z"])
    assert rep["generated"] == "2026-12-07T12:00:00Z"
    assert rep["collection"]["name"] == "netsvc.resilience"
    assert re.match(r"^\d+\.\d+\.\d+", rep["collection"]["version"])
    assert [h["host"] for h in rep["hosts"]] == ["a", "z"] and rep["hosts"][1]["status"] == "fail"
    assert "no audit record" in rep["hosts"][1]["checks"][0]["detail"]
    assert rep["summary"] == {"pass": 1, "warn": 0, "fail": 1, "hosts": 2}


def test_collection_version_reads_the_manifest_first_then_galaxy_yml(tmp_path):
    import json

    from ansible_collections.netsvc.resilience.plugins.filter.audit import collection_version

    here = tmp_path / "plugins" / "filter"
    here.mkdir(parents=True)
    assert collection_version(str(here)) == "unknown"
    (tmp_path / "galaxy.yml").write_text("namespace: netsvc\nversion: '1.2.3'\n")
    assert collection_version(str(here)) == "1.2.3"
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "1.2.4"}}))
    assert collection_version(str(here)) == "1.2.4"
