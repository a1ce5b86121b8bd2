# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one command runner: argv lists (never a shell string), the C locale (output is parsed).

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _failure


def run(module, argv, check=True):
    """Run a command in the C locale (its output is parsed); with ``check``, fail on rc != 0."""
    rc, out, err = module.run_command(argv, environ_update={"LANG": "C", "LC_ALL": "C"})
    if check and rc != 0:
        raise _failure.Failure("%s failed (rc=%d): %s" % (" ".join(argv), rc, (err or out).strip()), rc=rc)
    return rc, out, err
