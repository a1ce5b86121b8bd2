# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module stand-in of the module_utils tests: atomic_move renames, fail_json raises Failed."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


class Failed(Exception):
    pass


class FakeModule(object):
    check_mode = False

    def atomic_move(self, src, dest):
        os.rename(src, dest)

    def fail_json(self, msg, **kw):
        raise Failed(msg)
