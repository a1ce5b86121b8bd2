# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The prestart_hook module's work: install the hook, one ExecStartPre= drop-in per service.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _constants,
    _failure,
    _hook,
    _host_state,
    _plan,
    _reuse,
    _systemd,
    _unit,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import FileSet

HEADER = "Ansible managed: netsvc.resilience.prestart_hook"
LEGACY_FALLBACK = "netsvc_sockdiag.py"  # the shell hook's Python fallback, before the native hook

SPEC = dict(
    path=dict(type="path"),
    services=dict(type="list", elements="dict", default=[]),
    dropin_name=dict(type="str", default=_constants.CLEANUP_DROPIN),
    privilege=dict(type="str", default="auto", choices=list(_hook.PRIVILEGES)),
    effective_mismatch=dict(type="str", default="fail", choices=["fail", "warn"]),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    drain_timeout=dict(type="float", default=2.0),
    payload=dict(type="dict"),
)


class HookedService(_plan.Plan):
    """One systemd service in a prestart_hook plan.

    unit           the unit (web.service)
    ports          its ports, sorted
    show           its sandbox properties, LoadState and FragmentPath, as systemd reported them
    blockers       what in its sandbox keeps an unprivileged hook from destroying sockets
    how            _hook.plan_exec's dict (line, extra_service, mode, warnings); None without a hook
    targets        what the hook cleans: the listeners' addresses (or the whole ports)
    whole          why whole ports are cleaned, None when the listeners' addresses are
    drain_ms       how long a socket that still holds data may drain before it is destroyed
    dropin         our cleanup drop-in's path
    text           the drop-in's text, None when the service gets no hook (the drop-in goes)
    decision       "hook" or "none"
    reason         why, in words
    netns_refused  why a unit in its own network namespace gets no hook on this systemd, or None
    """

    __slots__ = ("unit", "ports", "show", "blockers", "how", "targets", "whole", "drain_ms", "dropin", "text",
                 "decision", "reason", "netns_refused")

    @property
    def mode(self):
        """How the hook line gets its privileges ("" without a hook)."""
        return self.how["mode"] if self.how else ""

    @property
    def warnings(self):
        return list(self.how["warnings"]) if self.how else []


class HookPlan(_plan.ConcernPlan):
    """A prestart_hook call, planned (plan): nothing written yet.

    path      the hook's path on the host
    hook      its content (a native build, or the Python twin as a script); None for state=absent
    kind      native-x86_64, native-aarch64 or python; None for state=absent
    present   state=present
    services  a HookedService per systemd service with ports
    staged    the result as staged (stage), completed by the read-back (finish)
    """

    __slots__ = ("path", "hook", "kind", "present", "services", "staged")
    DEFAULTS = {"staged": None}
    result_key = "prestart"

    @property
    def verifies(self):
        return self.present  # removing the hook leaves nothing of ours for systemd-analyze to check

    def stage(self, module, tx):
        self.staged = stage(module, self, tx)

    def finish(self, module, systemd):
        """The staged result with systemd's read-back (a new dict: the plan stays as staged)."""
        result = dict(self.staged, warning_messages=list(self.staged["warning_messages"]))
        if not module.check_mode:
            finish(systemd, self, result)
        return result


def hook_decision(present, cleanup, reuse):
    """('hook', reason) or ('none', reason) for one systemd service.

    ``cleanup``: true, false or auto; ``reuse``: _reuse's (flag, reason) for an auto service.
    auto keeps the hook unless the live listener's SO_REUSEADDR was read and set.
    """
    if not present:
        return "none", "state=absent"
    if cleanup is False:
        return "none", "cleanup: false"
    if cleanup == "auto":
        flag, why = reuse or (None, "not read")
        if flag is True:
            return "none", "cleanup: auto, no hook needed: %s" % why
        return "hook", "cleanup: auto, hook kept: %s" % why
    return "hook", "cleanup: true"


def plan(module, p, systemd):
    """Everything the call would do, validated; nothing is written here."""
    path = p["path"] or _host_state.hook_dir_path(_constants.HOOK_NAME)
    path = _validate.abs_path(path, "path", plain=True)
    drain_ms = int(round(_validate.number(p["drain_timeout"], "drain_timeout", 0, 600, " seconds") * 1000))
    dropin = _unit.check_dropin_name(p["dropin_name"])
    present = p["state"] == "present"
    targets = []
    for svc in _host_state.check_services(p["services"], _unit.service_manager()):
        ports = sorted(set(svc["ports"]))
        if svc["backend"] == "systemd" and ports:  # a supervisord program's command goes through the hook
            targets.append((_unit.unit_name(svc["name"]), ports, svc["cleanup"]))
    hook = kind = None
    if present:
        hook, kind = _hook.pick_payload(_hook.decode_payload(p["payload"]), os.uname()[4],
                                        _hook.host_python(sys.executable))
    units = [u for u, _ports, _c in targets]
    # cleanup: auto - no hook where the live listener rebinds over its own leftovers anyway
    reuse = _reuse.listener_reuse({u: ports for u, ports, c in targets if c == "auto"}) if present else {}
    version = systemd.version if targets else 0
    shows = systemd.show(units, _hook.SANDBOX_PROPS + ("LoadState", "FragmentPath", "ExecStartPre")) if targets else {}
    decisions = {unit: hook_decision(present, cleanup, reuse.get(unit)) for unit, _ports, cleanup in targets}
    # what each hooked service listens on: the hook cleans those addresses, not the whole port
    listens = _reuse.unit_hook_targets({u: ports for u, ports, _c in targets if decisions[u][0] == "hook"},
                                       socket_units_go=True)
    services = []
    for unit, ports, _socket_cleanup in targets:
        show = shows[unit]
        decision, reason = decisions[unit]
        if decision == "hook" and show.get("LoadState") != "loaded":
            raise _unit.UnitError("service %s does not exist on this host (LoadState=%s); nothing was written"
                                  % (unit, show.get("LoadState", "unknown")))
        refused = _hook.netns_refusal(show, version) if decision == "hook" else None
        if refused:
            decision, reason = "none", refused
        blockers = _hook.sandbox_blockers(show)
        cleans, whole = listens.get(unit, ([str(x) for x in ports], None))
        cleans = _reuse.stable_targets(_host_state.hook_cleans(show, _constants.HOOK_NAME), cleans)
        how = _hook.plan_exec(path, unit, cleans, version, p["privilege"], blockers, drain_ms) \
            if decision == "hook" else None
        text = None
        if how:
            opts = _unit.normalize_options({"apply_defaults": False, "exec_start_pre": [how["line"]],
                                            "extra_service": how["extra_service"]})
            text = _unit.render_dropin(opts, version, header=HEADER)[0]
        services.append(HookedService(unit=unit, ports=ports, show=show, blockers=blockers, how=how, targets=cleans,
                                      whole=whole, drain_ms=drain_ms, dropin=_unit.dropin_path(unit, dropin),
                                      text=text, decision=decision, reason=reason, netns_refused=refused))
    return HookPlan(path=path, hook=hook, kind=kind, present=present, services=services)


def run(module):
    """prestart_hook on its own: plan, compose (one transaction), the read-back. Returns
    (result, None or why systemd's read-back fails it)."""
    p = module.params
    systemd = _systemd.Systemd(module)
    try:
        pl = plan(module, p, systemd)
    except (_unit.UnitError, ValueError) as e:
        raise _failure.Failure(str(e))
    keyed, _units = _plan.results_by_key([pl], _plan.compose(module, systemd, [pl]))
    result = keyed["prestart"]
    _warnings, failing = report(module, p, result)  # the warnings are in result already
    if failing:
        return result, "systemd does not run the hook as asked: %s" % "; ".join(failing)
    return result, None


def report(module, p, result):
    """(the hook's warnings, the mismatches that fail it): a mismatch systemd's read-back found
    fails the task with effective_mismatch=fail (not in check mode), else it is a warning, in
    ``result``'s warning_messages as well."""
    mismatches = result.get("effective_mismatches", [])
    if p["effective_mismatch"] == "fail" and not module.check_mode:
        return list(result["warning_messages"]), list(mismatches)
    result["warning_messages"].extend(mismatches)
    return list(result["warning_messages"]), []


def stage(module, pl, tx):
    """Add the hook and every drop-in of plan ``pl`` to transaction ``tx`` (another module's
    too: harden composes every concern with one reload); the result so far."""
    path = pl.path
    shared = FileSet(module)
    shared.want(path, pl.hook, 0o755)
    shared.want(os.path.join(os.path.dirname(path), LEGACY_FALLBACK), None)
    mine = [(shared, None, None)]
    for svc in pl.services:
        files = FileSet(module)
        files.want(svc.dropin, svc.text)
        mine.append((files, svc.unit, svc.show.get("FragmentPath")))
    for entry in mine:
        tx.add(*entry)
    warnings = [w for svc in pl.services for w in svc.warnings]
    warnings += ["%s: %s" % (svc.unit, svc.netns_refused) for svc in pl.services if svc.netns_refused]
    return dict(changed=any(f.changed for f, _u, _fr in mine), path=path, hook_kind=pl.kind or "",
                written=[p for f, _u, _fr in mine for p in f.paths],
                dropins={s.unit: s.dropin for s in pl.services},
                privilege={s.unit: s.mode for s in pl.services},
                sandbox={s.unit: s.blockers for s in pl.services},
                cleanup={s.unit: {"hook": s.decision == "hook", "reason": s.reason,
                                  "cleans": s.targets if s.how else [], "whole_ports": s.whole}
                         for s in pl.services},
                diff=[d for f, _u, _fr in mine for d in f.diff()], warning_messages=warnings)


def finish(systemd, pl, result):
    """After the transaction's commit: what systemd will really run, read back into ``result``.
    Returns the mismatches. (The hook's directory is created root's 0755 when written, and
    removed with its last file only if the collection created it: _files.)"""
    path = pl.path
    hooked = [s for s in pl.services if s.how]
    if not hooked:
        return []
    mismatches = readback(systemd, path, hooked, systemd.version)
    result["effective_mismatches"] = mismatches
    return mismatches


def readback(systemd, path, services, version):
    """What systemd will really run before each start, compared with the hook line we wrote."""
    props = ("ExecStartPre", "ExecStartPreEx", "PermissionsStartOnly", "FragmentPath", "DropInPaths",
             "NeedDaemonReload")
    shows = systemd.show([s.unit for s in services], props)
    out = []
    for svc in services:
        wanted = _hook.expected_readback(path, svc.unit, svc.targets, svc.mode, version, svc.drain_ms)
        out.extend(_systemd.effective_mismatches(svc.unit, wanted, shows[svc.unit], svc.dropin))
    return out
