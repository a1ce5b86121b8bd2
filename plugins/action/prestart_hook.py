# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for netsvc.resilience.prestart_hook: sends the hook from this collection.

The native builds of the hook and its Python twin (plugins/module_utils/_sockdiag.py) travel
as the module's ``payload`` argument: no extra round trip, and the module works on its own by
FQCN from any playbook.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.netsvc.resilience.plugins.module_utils import _constants as C
from ansible_collections.netsvc.resilience.plugins.plugin_utils import _native as N


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        if "payload" in args:
            raise AnsibleActionFail("payload is set by this action plugin from the collection; do not pass it")
        if args.get("state", "present") == "present":
            args["payload"] = {"native": N.native_builds(C.HOOK_NAME), "python": N.read_text(N.PYTHON_HOOK)}
        result.update(self._execute_module(module_name="netsvc.resilience.prestart_hook", module_args=args,
                                           task_vars=task_vars))
        return result
