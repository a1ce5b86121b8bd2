# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for netsvc.resilience.service_restart_policy: sends the preload library.

Only when a service asks for ``socket_activation: preload``: the library's native builds travel
as the module's ``payload`` argument (no extra round trip).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.module_utils import _constants as C
from ansible_collections.netsvc.resilience.plugins.plugin_utils import _native as N


class ActionModule(N.PayloadAction):
    MODULE = "netsvc.resilience.service_restart_policy"

    def payload(self, args):
        entries = [args] + [s for s in args.get("services") or [] if isinstance(s, dict)]
        if any(str(e.get("socket_activation")) == "preload" for e in entries):
            return {"native": N.native_builds(C.PRELOAD_LIBRARY)}
        return None
