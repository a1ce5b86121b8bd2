# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The harden module: the one place that composes the concerns for a host.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).

Each of ``kernel``, ``prestart`` and ``units`` is checked as its own module's options, then each
concern is planned - the kernel settings (``_sysctl_tcp``), the restart hook
(``_prestart_hook``), the units and preload (``_service_restart_policy``) - before anything is
written; the plans go into one transaction (``_plan.compose``: one systemd-analyze verify, one
daemon-reload, all or nothing) in that order, so a later failure puts the earlier concerns back
too. supervisord programs (``_supervisord_program``: a SupervisordPlan) are staged last, their
commands through the hook the same call installs (``cleanup_hook: auto``), ``supervisorctl
reread`` their verify. Each plan names where its result goes (``result_key``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import (
    _prestart_hook,
    _service_restart_policy,
    _sysctl_tcp,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _failure,
    _plan,
    _systemd,
    _unit,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import UnsafePath

UNITS_SPEC = dict(_service_restart_policy.SPEC, services=dict(type="list", elements="dict"))

SPEC = dict(
    kernel=dict(type="dict"),
    prestart=dict(type="dict"),
    units=dict(type="dict"),
)


def checked(module, label, given, spec):
    """``given`` checked as that module's own options ``spec``; None stays None."""
    return None if given is None else _validate.validated(module, label, given, spec)


def options(module):
    """(kernel, prestart, units): each given option checked as its module's own, or None."""
    p = module.params
    if p["kernel"] is None and p["prestart"] is None and p["units"] is None:
        raise _failure.Failure("give at least one of kernel, prestart and units")
    prestart = checked(module, "prestart", p["prestart"], _prestart_hook.SPEC)
    if prestart is not None and prestart["state"] == "present" and not prestart["payload"]:
        raise _failure.Failure("prestart: state=present needs the hook, which the action plugin sends as its payload")
    return (checked(module, "kernel", p["kernel"], _sysctl_tcp.SPEC), prestart,
            checked(module, "units", p["units"], UNITS_SPEC))


def plans(module, systemd, kernel_p, prestart_p, units_p, warnings):
    """Every concern planned, nothing written, in the transaction's order: the KernelPlan, the
    HookPlan, then the units' plans (UnitsPlan, PreloadsPlan, SupervisordPlan), each when there
    is work for it."""
    kernel = _sysctl_tcp.plan(module, kernel_p, label="kernel: ") if kernel_p is not None else None
    hook = None
    if prestart_p is not None:
        try:
            hook = _prestart_hook.plan(module, prestart_p, systemd)
        except (_unit.UnitError, ValueError) as e:
            raise _failure.Failure("prestart: %s" % e)
    units = []
    if units_p is not None:
        # cleanup_hook: auto is the hook this call installs ("" when it removes it)
        hook_path = None if hook is None else (hook.path if hook.present else "")
        units = _service_restart_policy.plan(module, units_p, warnings, systemd, hook_path)
    return [pl for pl in (kernel, hook) if pl is not None] + units


def run(module):
    """harden: returns (result, None or why systemd's read-back fails it). The result is the
    units' (service_restart_policy's), with the hook's under ``prestart`` and the kernel's under
    ``kernel``; ``changed`` and ``diff`` cover all three."""
    kernel_p, prestart_p, units_p = options(module)
    warnings = []
    try:
        systemd = _systemd.Systemd(module)
        composed = plans(module, systemd, kernel_p, prestart_p, units_p, warnings)
        keyed, done = _plan.results_by_key(composed, _plan.compose(module, systemd, composed))
    except (_unit.UnitError, UnsafePath) as e:
        raise _failure.Failure(str(e))
    failing = []
    result = dict(changed=False, diff=[])
    if units_p is not None:
        result, failing = _service_restart_policy.report(module, units_p, done, warnings)
    for key in ("prestart", "kernel"):
        if key in keyed:
            part = result[key] = keyed[key]
            result["changed"] = result["changed"] or part["changed"]
            result["diff"] = result["diff"] + part["diff"]
    if "prestart" in keyed:
        more, fails = _prestart_hook.report(module, prestart_p, result["prestart"])
        warnings.extend(more)
        failing.extend(fails)
    if "kernel" in keyed:
        warnings.extend(result["kernel"]["warning_messages"])
    result["warning_messages"] = warnings
    if not failing:
        return result, None
    what = "the restart policy and hook" if "prestart" in keyed else "the restart policy"
    return result, "systemd does not use %s as written: %s" % (what, "; ".join(failing))
