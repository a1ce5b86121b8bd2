# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for netsvc.resilience.service_restart_policy: sends the preload library when a
service asks for ``socket_activation: preload`` (its native builds travel as the module's
``payload`` argument: no extra round trip).

A call with the deprecated ``prestart`` or ``kernel`` (removed in 2.0.0) is handed to
netsvc.resilience.harden - its other options as harden's ``units`` - which returns the same
result; the task gets a warning saying so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.plugin_utils import _native

COMPOSED = ("prestart", "kernel")
DEPRECATED = ("service_restart_policy's prestart and kernel options are deprecated and will be removed in "
              "netsvc.resilience 2.0.0: call netsvc.resilience.harden with the policy as its units, the hook's "
              "options as its prestart and the kernel settings as its kernel")


class ActionModule(_native.PayloadAction):
    MODULE = "netsvc.resilience.service_restart_policy"

    def payload(self, args):
        return _native.units_payload(args)

    def run(self, tmp=None, task_vars=None):
        args = dict(self._task.args)
        if all(args.get(key) is None for key in COMPOSED):
            return super(ActionModule, self).run(tmp, task_vars)
        result = super(_native.PayloadAction, self).run(tmp, task_vars)  # ActionBase's: no module run yet
        composed = {key: args.pop(key) for key in COMPOSED if args.get(key) is not None}
        result.update(_native.execute_harden(self, dict(composed, units=args), task_vars))
        result["warnings"] = result.get("warnings", []) + [DEPRECATED]
        return result
