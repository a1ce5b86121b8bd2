# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one main() of every module: Python check, the concern's run(), warnings, the exit.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Imports under Python 2.7, so that an old host gets require_python's message.

Every concern's ``run(module)`` has one contract: it returns ``(result, failure)``, where
``failure`` is None or the one-line reason the task fails (the result is returned either way),
and it puts its warnings in ``result["warning_messages"]``; or it raises _failure.Failure
(bad input, a step that failed and was put back). Only this file calls ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _failure, _validate


def execute(module, run):
    """Check the interpreter before any Python 3 code, run the concern, report and exit. The one
    place a module fails: a Failure raised anywhere in module_utils (_failure), or the failure
    ``run`` returns."""
    try:
        _validate.require_python(module)
        result, failure = run(module)
    except _failure.Failure as e:
        module.fail_json(msg=e.msg, **e.result)
    for warning in result.get("warning_messages", []):
        module.warn(warning)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)
