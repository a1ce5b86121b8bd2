# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for netsvc.resilience.prestart_hook: sends the hook from this collection.

The native builds of the hook and its Python twin (plugins/module_utils/primitives/_sockdiag.py) travel
as the module's ``payload`` argument: no extra round trip, and the module works on its own by
FQCN from any playbook.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.plugin_utils import _native


class ActionModule(_native.PayloadAction):
    MODULE = "netsvc.resilience.prestart_hook"

    def payload(self, args):
        return _native.hook_payload(args)
