# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that composes the concerns for a host: plan each, stage all into one
transaction, commit once (one systemd-analyze verify, one daemon-reload, all or nothing), finish
each.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).

The concerns' plans (``_sysctl_tcp.KernelPlan``, ``_prestart_hook.HookPlan``,
``_service_restart_policy.UnitsPlan``) implement ``_plan.ConcernPlan``. Their order is the
order of the transaction: the kernel settings first, then the hook, then the units - a later
write, verify or reload failure puts the earlier ones back too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.module_utils import _systemd


def compose(module, systemd, plans):
    """Stage every plan in one transaction, commit it once, finish each. Returns their results,
    in the order of ``plans``. In check mode nothing is written, stopped or started."""
    tx = _systemd.DropinTransaction(module, systemd)
    for plan in plans:
        plan.stage(module, tx)
    if not module.check_mode and (tx.changed or any(plan.pending for plan in plans)):
        for plan in plans:
            plan.before_commit(module, systemd)
        tx.commit()
        for plan in plans:
            plan.after_commit(module, systemd, tx)
    return [plan.finish(module, systemd) for plan in plans]
