# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for netsvc.resilience.harden: sends the restart hook (``prestart``) and the
preload library (``units`` with socket_activation=preload) with the call - no extra round trip.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.netsvc.resilience.plugins.plugin_utils import _native


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        result.update(_native.execute_harden(self, dict(self._task.args), task_vars))
        return result
