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


def record(host, eff, crash=None, changed=False, overridden=None, reserved=(8080,), tw=True):
    svc = audit_service({"item": {"name": "web.service"}, "effective": eff, "changed": changed})
    return {"host": host, "os": "Debian 12", "services": [svc], "ports": [8080], "reserved": list(reserved),
            "sysctl": {"changed": changed, "overridden_by": overridden or {}},
            "capabilities": {"kernel": "6.18", "timewait_destroy": tw}, "crash": crash or []}


def statuses(host):
    return {(c["scope"], c["check"]): c["status"] for c in host["checks"]}


def test_hardened_host_passes_everything():
    probe = probe_summary({"item": {"name": "web.service"}, "recovered": True, "recovery_ms": 45.2, "verdict": "ok"})
    rep = audit_report([record("a", HARDENED, crash=[probe])])
    assert rep["summary"] == {"pass": 1, "warn": 0, "fail": 0, "hosts": 1}
    assert rep["hosts"][0]["status"] == "pass"
    assert rep["chart"] == [{"host": "a", "service": "web.service", "ms": 45.2, "recovered": True}]


def test_tutorial_unit_warns_with_reasons():
    rep = audit_report([record("b", TUTORIAL, changed=True, reserved=(), tw=None)])
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
    svc = audit_service({"item": {"name": "web"}, "effective": {"status": "web RUNNING pid 10, uptime 0:01:00"},
                         "content": "command=/usr/lib/netsvc-resilience/netsvc-sockclean 8080 -- /usr/bin/web",
                         "backend": "supervisord"})
    assert svc["hook"] is True
    rep = audit_report([{"host": "s", "services": [svc], "ports": [], "reserved": [],
                         "capabilities": {"timewait_destroy": True}}])
    assert rep["hosts"][0]["status"] == "pass"


def test_expand_ports():
    assert expand_ports("8080,9000-9002") == [8080, 9000, 9001, 9002]
    assert expand_ports("") == []
    assert expand_ports("1-60000") == ["1-60000"]
