# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for netsvc.resilience.prestart_hook: sends the hook from this collection.

The native builds (files/native/<arch>/netsvc-sockclean, built from src/ and checked
byte-identical in CI) and the Python twin (plugins/module_utils/_sockdiag.py) travel as the
module's ``payload`` argument: no extra round trip, and the module works on its own by FQCN.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NATIVE_DIR = os.path.join(COLLECTION_ROOT, "files", "native")
PYTHON_HOOK = os.path.join(COLLECTION_ROOT, "plugins", "module_utils", "_sockdiag.py")
HOOK_NAME = "netsvc-sockclean"


def build_payload(native_dir=NATIVE_DIR, python_hook=PYTHON_HOOK):
    native = {}
    if os.path.isdir(native_dir):
        for arch in sorted(os.listdir(native_dir)):
            path = os.path.join(native_dir, arch, HOOK_NAME)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    native[arch] = base64.b64encode(f.read()).decode("ascii")
    try:
        with open(python_hook) as f:
            python = f.read()
    except (IOError, OSError) as e:
        raise AnsibleActionFail("cannot read the Python hook %s: %s" % (python_hook, e)) from e
    return {"native": native, "python": python}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        if "payload" in args:
            raise AnsibleActionFail("payload is set by this action plugin from the collection; do not pass it")
        if args.get("state", "present") == "present":
            args["payload"] = build_payload()
        result.update(self._execute_module(module_name="netsvc.resilience.prestart_hook", module_args=args,
                                           task_vars=task_vars))
        return result
