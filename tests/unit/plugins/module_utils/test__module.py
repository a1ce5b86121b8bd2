# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_module.execute: the one main() - interpreter check first, then run(), warnings, fail or exit."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _failure, _module


class Done(Exception):
    pass


class FakeModule(object):
    def __init__(self):
        self.warnings, self.exited, self.failed = [], None, None

    def warn(self, text):
        self.warnings.append(text)

    def exit_json(self, **kwargs):
        self.exited = kwargs
        raise Done()

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise Done()


def test_success_exits_with_the_result_and_raises_its_warnings():
    module = FakeModule()
    with pytest.raises(Done):
        _module.execute(module, lambda m: ({"changed": True, "warning_messages": ["w1", "w2"]}, None))
    assert module.exited == {"changed": True, "warning_messages": ["w1", "w2"]}
    assert module.warnings == ["w1", "w2"] and module.failed is None


def test_a_failure_fails_with_its_line_and_keeps_the_result():
    module = FakeModule()
    with pytest.raises(Done):
        _module.execute(module, lambda m: ({"changed": False, "recovered": False}, "web.service did not come back"))
    assert module.failed == {"msg": "web.service did not come back", "changed": False, "recovered": False}
    assert module.exited is None and module.warnings == []


def test_an_old_interpreter_is_refused_before_run(monkeypatch):
    module, ran = FakeModule(), []
    monkeypatch.setattr(sys, "version_info", (2, 7, 18, "final", 0))
    with pytest.raises(Done):
        _module.execute(module, lambda m: ran.append(m) or ({}, None))
    assert ran == [] and "too old for netsvc.resilience" in module.failed["msg"]


def test_a_failure_raised_anywhere_fails_the_task_with_its_result_keys():
    module = FakeModule()

    def run(m):
        raise _failure.Failure("nothing was killed", kills_done=0)

    with pytest.raises(Done):
        _module.execute(module, run)
    assert module.failed == {"msg": "nothing was killed", "kills_done": 0} and module.exited is None


def test_only_the_one_main_calls_fail_json():
    """Errors flow one way: module_utils raises _failure.Failure, _module.execute fails the task."""
    import glob
    import os
    import re

    top = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "module_utils")
    calls = []
    for path in sorted(glob.glob(os.path.join(top, "**", "*.py"), recursive=True)):
        with open(path) as f:
            calls.extend("%s:%d" % (os.path.basename(path), n) for n, line in enumerate(f, 1)
                         if re.search(r"\bfail_json\(", line) and not line.lstrip().startswith("#"))
    assert calls and all(c.startswith("_module.py:") for c in calls), calls
