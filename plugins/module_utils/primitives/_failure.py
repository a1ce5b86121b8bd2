# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error module_utils raises to fail the task.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Imports under Python 2.7 (_module catches it).

Code under plugins/module_utils never calls ``fail_json``: it raises Failure with the message
and the result keys the failed task returns, and only ``_module.execute`` - every module's
main() - turns it into ``fail_json``. The domain errors (_unit.UnitError, _validate.InputError,
_files.UnsafePath, _sockdiag.DiagError) are caught where a message is made of them, and that
message is raised as a Failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class Failure(Exception):
    """Fail the task with ``msg``; ``result``: the keys the failed task returns with it."""

    def __init__(self, msg, **result):
        Exception.__init__(self, msg)
        self.msg = msg
        self.result = result
