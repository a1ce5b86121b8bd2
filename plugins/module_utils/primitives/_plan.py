# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The concerns' interface (their typed plans) and the one way plans are written: compose.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host: no dataclasses), imports under 2.7.

A plan class lists its fields in ``__slots__`` and documents each once, in its docstring;
``DEFAULTS`` gives the fields that may be left out. A field that is neither given nor
defaulted, or a name that is not a field, is a TypeError at once - a misspelt key can no
longer slip through as it did with string-keyed dicts.

``compose`` writes any set of concern plans: staged in one transaction, committed once (one
systemd-analyze verify, one daemon-reload, all or nothing), each finished. The harden module
(_harden) composes every concern for a host with it; a module of one concern writes its own
plan with it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _systemd


class Plan(object):
    __slots__ = ()
    DEFAULTS = {}

    def __init__(self, **fields):
        unknown = sorted(set(fields) - set(self.__slots__))
        missing = sorted(set(self.__slots__) - set(fields) - set(self.DEFAULTS))
        if unknown or missing:
            raise TypeError("%s: unknown field(s) %s, missing field(s) %s"
                            % (type(self).__name__, ", ".join(unknown) or "none", ", ".join(missing) or "none"))
        for name in self.__slots__:
            setattr(self, name, fields[name] if name in fields else self.DEFAULTS[name])

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__))


UNITS = "units"  # result_key of the plans whose results are the units' entries


class ConcernPlan(Plan):
    """The interface every concern's plan implements; compose calls it, in this order:

    stage(module, tx)            add the plan's files to the one DropinTransaction ``tx``
    pending                      True when there is work even if no file changes (a socket to start)
    verifies                     its files want systemd-analyze verify (True; the hook's removal: False)
    before_commit(module, sd, tx) what must happen before the files are written (stop a socket unit;
                                 what it stops it names to tx.restart_on_failure)
    after_commit(module, sd, tx) what follows the commit (start a socket unit, switch a service)
    finish(module, sd)           the concern's result, read back from systemd and the kernel
    result_key                   where a composed call returns that result (results_by_key): a key
                                 of its own ("kernel", "prestart"), UNITS (a list of (entry,
                                 result), one per service or program: the units' results) or None
                                 (reported through another plan's result)

    ``sd`` is the host's _systemd.Systemd. Nothing is written before the commit; a failure of
    the commit puts back every concern's files (the transaction's all or nothing).
    """

    __slots__ = ()
    result_key = None

    @property
    def pending(self):
        return False

    @property
    def verifies(self):
        """Whether its files want systemd-analyze verify (compose verifies when any plan does)."""
        return True

    def stage(self, module, tx):
        raise NotImplementedError

    def before_commit(self, module, systemd, tx):
        pass

    def after_commit(self, module, systemd, tx):
        pass

    def finish(self, module, systemd):
        raise NotImplementedError


def compose(module, systemd, plans):
    """Stage every plan in one transaction, commit it once, finish each. Returns their results,
    in the order of ``plans`` (the transaction's order: a later write, verify or reload failure
    puts the earlier plans' files back too). In check mode nothing is written, stopped or
    started."""
    tx = _systemd.DropinTransaction(module, systemd)
    for plan in plans:
        plan.stage(module, tx)
    if not module.check_mode and (tx.changed or any(plan.pending for plan in plans)):
        for plan in plans:
            plan.before_commit(module, systemd, tx)
        tx.commit(verify=any(plan.verifies for plan in plans))
        for plan in plans:
            plan.after_commit(module, systemd, tx)
    return [plan.finish(module, systemd) for plan in plans]


def results_by_key(plans, results):
    """({result_key: result} of the plans with a key of their own, [(entry, result)] of the UNITS
    plans in their order) from ``results``, compose's results of ``plans``."""
    keyed, units = {}, []
    for plan, result in zip(plans, results):
        if plan.result_key == UNITS:
            units.extend(result)
        elif plan.result_key:
            keyed[plan.result_key] = result
    return keyed, units
