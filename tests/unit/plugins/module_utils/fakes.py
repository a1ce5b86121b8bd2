# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module stand-in of the module_utils tests: atomic_move renames. module_utils fails by
raising _failure.Failure; fail_json, which only _module calls, raises it too."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._failure import Failure


class FakeModule(object):
    check_mode = False

    def atomic_move(self, src, dest):
        os.rename(src, dest)

    def fail_json(self, msg, **kw):
        raise Failure(msg, **kw)
