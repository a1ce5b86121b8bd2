# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Readiness report filters (controller side): per-host verdicts and fleet aggregation."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


from ansible.errors import AnsibleFilterError

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _sysctl, _unit

try:
    import jmespath
except ImportError:  # pragma: no cover - declared controller dependency
    jmespath = None

RANK = {"pass": 0, "warn": 1, "fail": 2}


def service_checks(svc, facts=None):
    """Checks for one service record {name, effective, changed, hook, socket_activation}."""
    eff = svc.get("effective") or {}
    checks = []
    if "status" in eff:  # supervisord
        running = "RUNNING" in eff["status"]
        checks.append(("running", "pass" if running else "fail", eff["status"] or "no status"))
        checks.append(("policy", "warn" if svc.get("changed") else "pass",
                       "program file differs from the hardened one" if svc.get("changed") else "autorestart hardened"))
        checks.append(rebind_check(svc, facts))
        if svc.get("holder"):
            checks.append((svc["holder"]["check"], svc["holder"]["level"], svc["holder"]["detail"]))
        return checks
    active = eff.get("ActiveState") == "active" or svc.get("socket_activation")
    checks.append(("running", "pass" if active else "fail", "ActiveState=%s" % eff.get("ActiveState", "?")))
    restart = eff.get("Restart", "no")
    delay = _unit.show_usec(eff.get("RestartUSec") or "0")
    if restart == "no":
        checks.append(("restart", "fail", "Restart=no: nothing restarts it after a crash"))
    elif delay is not None and delay > 1000000:
        checks.append(("restart", "warn",
                       "Restart=%s but RestartSec=%s: slow first restart" % (restart, eff.get("RestartUSec"))))
    else:
        checks.append(("restart", "pass", "Restart=%s RestartSec=%s" % (restart, eff.get("RestartUSec"))))
    burst = int(eff.get("StartLimitBurst") or 5)
    revive = "netsvc-revive@" in (eff.get("OnFailure") or "")
    if revive or burst >= 10:
        note = ", revived after a start-limit hit" if revive else ""
        checks.append(("start limit", "pass", "burst %d%s" % (burst, note)))
    else:
        checks.append(("start limit", "warn", "burst %d: a crash loop can leave the unit dead for good" % burst))
    checks.append(rebind_check(svc, facts))
    if svc.get("mismatches"):
        checks.append(("override", "warn" if svc.get("mismatch_mode") == "warn" else "fail",
                       "; ".join(svc["mismatches"])))
    if svc.get("changed"):
        checks.append(("drift", "warn", "differs from the hardened policy (harden_restart would change it)"))
    return checks


def rebind_check(svc, facts=None):
    """The rebind row: what the cleanup hook did at the service's last start (measured by
    host_check from systemd and the hook's status file), never inferred from a file name,
    and whether this kernel can destroy TIME_WAIT at all (host_check's probe)."""
    if svc.get("socket_activation"):
        return ("rebind", "pass", "socket activation: the listening socket outlives the crash, no rebind")
    hook = svc.get("hook") or {}
    if not hook.get("installed"):
        reuse = hook.get("reuse") or {}
        if reuse.get("flag") is True:
            return ("rebind", "pass", "no cleanup hook needed: %s" % reuse["reason"])
        if reuse.get("flag") is False:
            return ("rebind", "warn", "no cleanup hook and %s: EADDRINUSE after a crash until its leftovers expire "
                    "(~60 s); remedy: cleanup: auto or true" % reuse["reason"])
        why = " (%s)" % reuse["reason"] if reuse.get("reason") else ""
        return ("rebind", "warn", "no cleanup hook: EADDRINUSE after a crash unless the server sets SO_REUSEADDR%s"
                % why)
    ran = hook.get("exec") or {}
    if ran and (ran.get("code") != "exited" or ran.get("status") not in ("0", None)):
        return ("rebind", "fail", "the hook could not run at the last start (code=%s, status=%s): nothing was cleaned"
                % (ran.get("code"), ran.get("status")))
    last = hook.get("last") or {}
    if not last and hook.get("stale"):
        return ("rebind", "fail", "the hook ran at the last start but left no record of what it did: a hook without "
                "privileges (privilege: none) cannot write its root-only status file, nor clean; remedy: "
                "privilege: auto")
    if not last:
        return ("rebind", "warn", "hook installed but not run since (no start yet): its effect is unmeasured")
    figures = "found %s, destroyed %s, left %s" % (last.get("found"), last.get("destroyed"), last.get("left"))
    if last.get("delivered"):
        figures += "; %s delivered their data first (%s ms)" % (last["delivered"], last.get("drain_ms"))
    if last.get("unsent_sockets"):
        figures += "; destroyed %s with %s bytes unsent after %s ms" % (
            last["unsent_sockets"], last.get("unsent_bytes"), last.get("drain_ms"))
    probe = (facts or {}).get("sock_destroy") or {}
    if last.get("result") == "ok" and probe.get("timewait") is False:
        return ("rebind", "warn", "hook at the last start: %s, but this kernel cannot destroy TIME_WAIT sockets: "
                "a server without SO_REUSEADDR stays down until they expire (~60 s); remedy: socket_activation: "
                "preload" % figures)
    if last.get("result") == "ok":
        return ("rebind", "pass", "hook at the last start: %s" % figures)
    if last.get("result") == "lost":
        return ("rebind", "warn", "hook at the last start: %s: responses still in flight were cut off; remedy: a "
                "longer drain_timeout if the restart may wait for them" % figures)
    if last.get("result") == "error":
        return ("rebind", "fail", "hook at the last start could not inspect sockets: %s" % last.get("cause"))
    return ("rebind", "fail", "hook at the last start: %s: %s" % (figures, last.get("cause")))


def timewait_check(facts):
    """Host row: can this kernel destroy TIME_WAIT sockets (host_check's real probe)?"""
    probe = (facts or {}).get("sock_destroy") or {}
    kernel = (facts or {}).get("kernel", "?")
    if probe.get("timewait"):
        return ("TIME_WAIT destroy", "pass", "kernel %s destroyed a TIME_WAIT socket (probe)" % kernel)
    remedy = ("a server without SO_REUSEADDR is down ~60 s after a crash (EADDRINUSE until TIME_WAIT expires); "
              "remedy: socket_activation: preload, or a server that sets SO_REUSEADDR")
    if probe.get("timewait") is False:
        return ("TIME_WAIT destroy", "warn", "kernel %s refused to destroy a TIME_WAIT socket (%s): %s"
                % (kernel, (probe.get("errors") or {}).get("timewait", "EOPNOTSUPP"), remedy))
    return ("TIME_WAIT destroy", "warn", "unknown on kernel %s (probe: %s): %s"
            % (kernel, probe.get("errors") or "not run", remedy))


def host_checks(rec):
    checks = []
    sysctl = rec.get("sysctl") or {}
    if sysctl.get("overridden_by"):
        checks.append(("sysctl", "warn", "overridden at boot: %s" % ", ".join(sorted(sysctl["overridden_by"]))))
    elif sysctl.get("changed"):
        checks.append(("sysctl", "warn", "live or file values differ from the profile"))
    else:
        checks.append(("sysctl", "pass", "profile applied"))
    missing = [p for p in rec.get("ports") or [] if p not in (rec.get("reserved") or [])]
    checks.append(("reserved ports", "warn" if missing else "pass",
                   ("not reserved: %s" % missing) if missing else "service ports reserved"))
    checks.append(timewait_check(rec.get("facts")))
    for probe in rec.get("crash") or []:
        ok = probe.get("recovered") and not probe.get("slo_missed")
        checks.append(("crash test %s" % probe.get("service"), "pass" if ok else "fail",
                       probe.get("verdict") or ("%.1f ms" % probe.get("recovery_ms", 0))))
    return checks


def collection_version(here=None):
    """This collection's version: MANIFEST.json when installed, else galaxy.yml (a checkout)."""
    import json
    import os
    import re

    top = os.path.abspath(os.path.join(here or os.path.dirname(__file__), "..", ".."))
    try:
        with open(os.path.join(top, "MANIFEST.json")) as f:
            return json.load(f)["collection_info"]["version"]
    except (IOError, OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(top, "galaxy.yml")) as f:
            found = re.search(r"^version:\s*['\"]?([^'\"\s]+)", f.read(), re.M)
            return found.group(1) if found else "unknown"
    except (IOError, OSError):
        return "unknown"


def audit_report(records, generated=None, audited=None):
    """``generated``: when the report was made (UTC text); ``audited``: every host the audit ran
    on - one without a record (unreachable, or failed before its rescue) gets a fail row."""
    if jmespath is None:
        raise AnsibleFilterError("audit_report needs the jmespath Python library on the controller "
                                 "(pip install jmespath)")
    if not isinstance(records, list):
        raise AnsibleFilterError("audit_report expects a list of host records, got %r" % (type(records),))
    hosts = []
    seen = {r.get("host") for r in records}
    records = list(records) + [dict(host=h, os="?", error="no audit record: unreachable, or failed before it was read")
                               for h in (audited or []) if h not in seen]
    for rec in sorted(records, key=lambda r: r.get("host", "")):
        rows = [dict(scope="host", check=c, status=s, detail=d) for c, s, d in host_checks(rec)]
        for svc in rec.get("services") or []:
            rows.extend(dict(scope=svc.get("name"), check=c, status=s, detail=d)
                        for c, s, d in service_checks(svc, rec.get("facts")))
        worst = max([RANK[r["status"]] for r in rows] or [0])
        hosts.append(dict(host=rec.get("host"), os=rec.get("os"), status=[k for k, v in RANK.items() if v == worst][0],
                          checks=rows, error=rec.get("error")))
    for h in hosts:
        if h["error"]:
            h["status"] = "fail"
            h["checks"].insert(0, dict(scope="host", check="audit", status="fail", detail=h["error"]))
    tagged = [dict(r, crash=[dict(p, host=r.get("host")) for p in r.get("crash") or []]) for r in records]
    chart = jmespath.search("[].crash[].{host: host, service: service, ms: recovery_ms, recovered: recovered}",
                            tagged) or []
    summary = {k: len(jmespath.search("[?status=='%s']" % k, hosts)) for k in RANK}
    summary["hosts"] = len(hosts)
    return dict(hosts=hosts, summary=summary, chart=chart, generated=generated, collection=dict(
        name="netsvc.resilience", version=collection_version()))


def probe_summary(result):
    """The figures of one restart_probe result worth keeping on the host."""
    item = result.get("item") or {}
    return dict(service=item.get("name", result.get("name")), recovered=result.get("recovered", False),
                recovery_ms=result.get("recovery_ms"), failed_connects=result.get("failed_connects"),
                restarts=result.get("restarts"), eaddrinuse_seen=result.get("eaddrinuse_seen"),
                start_limit_hit=result.get("start_limit_hit"), slo_missed=bool(result.get("failed")),
                verdict=result.get("verdict") or result.get("msg"))


def audit_service(result, service_mgr=None, observed=None):
    """One crash_recovery result (check mode) plus host_check's row for the same service."""
    item = result.get("item") or {}
    eff = result.get("effective") or {}
    rows = [r for r in observed or [] if r.get("name") == item.get("name")]
    hook = rows[0].get("hook") if rows else None
    return dict(name=item.get("name"), effective=eff, changed=bool(result.get("changed")), hook=hook,
                mismatches=result.get("effective_mismatches") or [], mismatch_mode=result.get("effective_mismatch"),
                socket_activation=bool(item.get("socket_activation")), failed=bool(result.get("failed")),
                backend=result.get("backend") or service_mgr, holder=result.get("holder"))


def expand_ports(text):
    """'8080,9000-9002' -> [8080, 9000, 9001, 9002] (ranges wider than 1024 stay 'a-b');
    parsed by the one port parser the sysctl module uses."""
    out = []
    for low, high in _sysctl.parse_ports(str(text or "").replace(" ", "")) if str(text or "").strip() else []:
        if high - low <= 1024:
            out.extend(range(low, high + 1))
        else:
            out.append("%d-%d" % (low, high))
    return out


class FilterModule(object):
    def filters(self):
        return {"audit_report": audit_report, "probe_summary": probe_summary, "audit_service": audit_service,
                "expand_ports": expand_ports}
