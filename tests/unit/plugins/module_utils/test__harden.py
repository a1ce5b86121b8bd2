# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_harden.compose: every plan staged in one transaction, one commit, then each finished."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils import _harden, _plan, _systemd


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

    def before_commit(self, module, systemd):
        self.log.append(("before", self.name))

    def after_commit(self, module, systemd, tx):
        self.log.append(("after", self.name))

    def finish(self, module, systemd):
        self.log.append(("finish", self.name))
        return self.name


@pytest.fixture
def commits(monkeypatch):
    done = []
    monkeypatch.setattr(_systemd.DropinTransaction, "commit", lambda self: done.append(len(self.entries)))
    monkeypatch.setattr(_systemd.DropinTransaction, "changed", property(lambda self: False))
    return done


def test_one_commit_between_every_stage_and_every_finish(commits):
    log = []
    plans = [Recorder(name="kernel", log=log), Recorder(name="hook", log=log),
             Recorder(name="units", log=log, todo=True)]
    assert _harden.compose(Module(), None, plans) == ["kernel", "hook", "units"]
    assert commits == [0]
    assert log == [("stage", "kernel"), ("stage", "hook"), ("stage", "units"),
                   ("before", "kernel"), ("before", "hook"), ("before", "units"),
                   ("after", "kernel"), ("after", "hook"), ("after", "units"),
                   ("finish", "kernel"), ("finish", "hook"), ("finish", "units")]


def test_nothing_to_do_or_check_mode_commits_nothing(commits):
    log = []
    assert _harden.compose(Module(), None, [Recorder(name="kernel", log=log)]) == ["kernel"]
    assert _harden.compose(Module(check_mode=True), None, [Recorder(name="units", log=log, todo=True)]) == ["units"]
    assert commits == [] and not [e for e in log if e[0] in ("before", "after")]
