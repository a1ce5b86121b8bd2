# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for netsvc.resilience.service_restart_policy: sends the preload library and,
with ``prestart``, the restart hook.

The library only when a service asks for ``socket_activation: preload``: its native builds
travel as the module's ``payload`` argument (no extra round trip). The hook travels as
``prestart.payload``, as prestart_hook's action plugin sends it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail

from ansible_collections.netsvc.resilience.plugins.module_utils import _constants
from ansible_collections.netsvc.resilience.plugins.plugin_utils import _native


class ActionModule(_native.PayloadAction):
    MODULE = "netsvc.resilience.service_restart_policy"

    def payload(self, args):
        prestart = args.get("prestart")
        if isinstance(prestart, dict):
            if "payload" in prestart:
                raise AnsibleActionFail("prestart.payload is set by this action plugin from the collection; "
                                        "do not pass it")
            hook = _native.hook_payload(prestart)
            if hook is not None:
                args["prestart"] = dict(prestart, payload=hook)  # the args this action sends
        entries = [args] + [s for s in args.get("services") or [] if isinstance(s, dict)]
        if any(str(e.get("socket_activation")) == "preload" for e in entries):
            return {"native": _native.native_builds(_constants.PRELOAD_LIBRARY)}
        return None
