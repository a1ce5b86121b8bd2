# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugins send the collection's payload, and only the collection's."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.netsvc.resilience.plugins.action import harden, prestart_hook, service_restart_policy


def make(cls, args):
    task = MagicMock()
    task.args = args
    task.async_val = 0
    action = cls(task, MagicMock(), MagicMock(), MagicMock(), MagicMock(), MagicMock())
    sent = {}

    def execute(module_name, module_args, task_vars):
        sent.update(module=module_name, args=module_args)
        return {"changed": False}

    action._execute_module = execute
    return action, sent


@pytest.mark.parametrize("cls", [prestart_hook.ActionModule, service_restart_policy.ActionModule])
def test_a_payload_passed_by_the_task_is_refused(cls):
    action, sent = make(cls, {"services": [], "payload": {"native": {"x86_64": "AAAA"}}})
    with pytest.raises(AnsibleActionFail, match="payload is set by this action plugin"):
        action.run(task_vars={})
    assert sent == {}


def test_prestart_hook_sends_native_builds_and_the_python_twin():
    action, sent = make(prestart_hook.ActionModule, {"services": [{"name": "a.service", "ports": [80]}]})
    action.run(task_vars={})
    assert sent["module"] == "netsvc.resilience.prestart_hook"
    payload = sent["args"]["payload"]
    assert set(payload["native"]) == {"x86_64", "aarch64"}
    assert "def " in payload["python"]


def test_prestart_hook_absent_sends_nothing():
    action, sent = make(prestart_hook.ActionModule, {"services": [], "state": "absent"})
    action.run(task_vars={})
    assert "payload" not in sent["args"]


@pytest.mark.parametrize("args,sends", [
    ({"name": "a.service"}, False),
    ({"name": "a.service", "socket_activation": "native"}, False),
    ({"name": "a.service", "socket_activation": "preload"}, True),
    ({"services": [{"name": "a.service"}, {"name": "b.service", "socket_activation": "preload"}]}, True),
    ({"services": ["not-a-dict", {"name": "b.service"}]}, False),
])
def test_restart_policy_sends_the_library_only_for_preload(args, sends):
    action, sent = make(service_restart_policy.ActionModule, dict(args))
    action.run(task_vars={})
    assert sent["module"] == "netsvc.resilience.service_restart_policy"
    assert ("payload" in sent["args"]) is sends
    if sends:
        assert set(sent["args"]["payload"]["native"]) == {"x86_64", "aarch64"}


def test_harden_sends_the_hook_with_prestart_and_the_library_with_preload_units():
    prestart = {"services": [{"name": "a.service", "ports": [80]}], "privilege": "auto"}
    units = {"services": [{"name": "b.service", "socket_activation": "preload", "ports": [81]}]}
    action, sent = make(harden.ActionModule, {"prestart": dict(prestart), "units": dict(units), "kernel": {}})
    action.run(task_vars={})
    assert sent["module"] == "netsvc.resilience.harden"
    hook = sent["args"]["prestart"].pop("payload")
    library = sent["args"]["units"].pop("payload")
    assert sent["args"] == {"prestart": prestart, "units": units, "kernel": {}}  # the task's options as given
    assert set(hook["native"]) == {"x86_64", "aarch64"} and "def " in hook["python"]
    assert set(library["native"]) == {"x86_64", "aarch64"}


def test_harden_sends_no_hook_to_remove_and_no_library_without_preload():
    action, sent = make(harden.ActionModule, {"prestart": {"state": "absent"}, "units": {"name": "a.service"}})
    action.run(task_vars={})
    assert sent["args"] == {"prestart": {"state": "absent"}, "units": {"name": "a.service"}}


@pytest.mark.parametrize("key", ["prestart", "units"])
def test_a_payload_in_a_harden_part_is_refused(key):
    action, sent = make(harden.ActionModule, {key: {"name": "a.service", "payload": {"native": {"x86_64": "AAAA"}}}})
    with pytest.raises(AnsibleActionFail, match="%s.payload is set by this action plugin" % key):
        action.run(task_vars={})
    assert sent == {}


def test_restart_policy_with_the_deprecated_prestart_or_kernel_is_a_harden_call():
    prestart = {"services": [{"name": "a.service", "ports": [80]}]}
    action, sent = make(service_restart_policy.ActionModule,
                        {"name": "a.service", "restart_sec": 0, "prestart": dict(prestart), "kernel": {"settings": {}}})
    result = action.run(task_vars={})
    assert sent["module"] == "netsvc.resilience.harden"
    assert sent["args"]["units"] == {"name": "a.service", "restart_sec": 0}
    assert sent["args"]["kernel"] == {"settings": {}}
    assert set(sent["args"]["prestart"]["payload"]["native"]) == {"x86_64", "aarch64"}
    assert [w for w in result["warnings"] if "deprecated" in w and "netsvc.resilience.harden" in w]


def test_a_prestart_payload_passed_by_the_task_is_refused():
    action, sent = make(service_restart_policy.ActionModule,
                        {"name": "a.service", "prestart": {"payload": {"native": {"x86_64": "AAAA"}}}})
    with pytest.raises(AnsibleActionFail, match="prestart.payload is set by this action plugin"):
        action.run(task_vars={})
    assert sent == {}
