# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for netsvc.resilience.harden: sends the restart hook (``prestart``) and the
preload library (``units`` with socket_activation=preload) with the call - no extra round trip.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.plugin_utils import _native


class ActionModule(_native.PayloadAction):
    MODULE = "netsvc.resilience.harden"

    def module_args(self, args):
        return self.MODULE, _native.harden_args(args)
