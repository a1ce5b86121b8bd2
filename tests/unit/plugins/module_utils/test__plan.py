# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed plans: every field given or defaulted, no other name; what a preload plan reports;
compose: every plan staged in one transaction, one commit, then each finished."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import (
    _preload_switch,
    _prestart_hook,
    _service_restart_policy,
    _supervisord_program,
    _sysctl_tcp,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _plan, _systemd


class Two(_plan.Plan):
    __slots__ = ("a", "b")
    DEFAULTS = {"b": 2}


def test_a_plan_takes_its_fields_and_defaults_only():
    assert (Two(a=1).a, Two(a=1).b, Two(a=1, b=3).b) == (1, 2, 3)
    with pytest.raises(TypeError, match="unknown field.s. c, missing field.s. a"):
        Two(c=1)
    assert not hasattr(Two(a=1), "__dict__")  # __slots__: no field can be added later either
    assert repr(Two(a=1)) == "Two(a=1, b=2)"


@pytest.mark.parametrize("cls", [_sysctl_tcp.KernelPlan, _prestart_hook.HookPlan, _prestart_hook.HookedService,
                                 _service_restart_policy.ServicePlan, _preload_switch.PreloadPlan,
                                 _service_restart_policy.UnitsPlan, _preload_switch.PreloadsPlan,
                                 _supervisord_program.SupervisordPlan, _supervisord_program.ProgramPlan])
def test_every_field_of_every_plan_is_documented_once(cls):
    doc = cls.__doc__.splitlines()
    for field in cls.__slots__:
        assert sum(1 for line in doc if line.split()[:1] == [field]) == 1, field


def test_a_preload_plan_reports_what_the_module_returns():
    with pytest.raises(TypeError, match="missing field.s. files, kind"):
        _preload_switch.PreloadPlan()  # what kind of plan it is is never left to a default
    none = _preload_switch.PreloadPlan(kind="none", files=None)
    assert none.report() == {} and not none.to_switch
    undo = _preload_switch.PreloadPlan(kind="undo", files=None, library="/usr/lib/x/lib.so")
    assert undo.report() == {"library": "/usr/lib/x/lib.so"}
    undo.restarted_after_s = 0.4
    assert undo.report() == {"library": "/usr/lib/x/lib.so", "restarted_after_s": 0.4}
    present = _preload_switch.PreloadPlan(kind="present", files=None, library="/l.so", streams=["0.0.0.0:80"],
                                          directives=[], switched=False, remirrored=False)
    assert present.to_switch
    assert present.report() == {"streams": ["0.0.0.0:80"], "bind_v6only": None, "directives": [],
                                "switched": False, "library": "/l.so", "remirrored": False}


class Module(object):
    def __init__(self, check_mode=False):
        self.check_mode = check_mode


class Recorder(_plan.ConcernPlan):
    __slots__ = ("name", "log", "todo")
    DEFAULTS = {"todo": False}

    @property
    def pending(self):
        return self.todo

    def stage(self, module, tx):
        self.log.append(("stage", self.name))

    def before_commit(self, module, systemd, tx):
        self.log.append(("before", self.name))

    def after_commit(self, module, systemd, tx):
        self.log.append(("after", self.name))

    def finish(self, module, systemd):
        self.log.append(("finish", self.name))
        return self.name


@pytest.fixture
def commits(monkeypatch):
    done = []
    monkeypatch.setattr(_systemd.DropinTransaction, "commit", lambda self, verify=True: done.append(len(self.entries)))
    monkeypatch.setattr(_systemd.DropinTransaction, "changed", property(lambda self: False))
    return done


def test_one_commit_between_every_stage_and_every_finish(commits):
    log = []
    plans = [Recorder(name="kernel", log=log), Recorder(name="hook", log=log),
             Recorder(name="units", log=log, todo=True)]
    assert _plan.compose(Module(), None, plans) == ["kernel", "hook", "units"]
    assert commits == [0]
    assert log == [("stage", "kernel"), ("stage", "hook"), ("stage", "units"),
                   ("before", "kernel"), ("before", "hook"), ("before", "units"),
                   ("after", "kernel"), ("after", "hook"), ("after", "units"),
                   ("finish", "kernel"), ("finish", "hook"), ("finish", "units")]


def test_nothing_to_do_or_check_mode_commits_nothing(commits):
    log = []
    assert _plan.compose(Module(), None, [Recorder(name="kernel", log=log)]) == ["kernel"]
    assert _plan.compose(Module(check_mode=True), None, [Recorder(name="units", log=log, todo=True)]) == ["units"]
    assert commits == [] and not [e for e in log if e[0] in ("before", "after")]
