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

    def module_args(self, args):
        composed = {key: args.pop(key) for key in COMPOSED if args.get(key) is not None}
        if not composed:
            return super(ActionModule, self).module_args(args)
        return "netsvc.resilience.harden", _native.harden_args(dict(composed, units=args))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        if any(self._task.args.get(key) is not None for key in COMPOSED):
            result["warnings"] = result.get("warnings", []) + [DEPRECATED]
        return result
