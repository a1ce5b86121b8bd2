# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side: the collection's native builds, as module payloads (private to the collection).

files/native/<arch>/ holds what scripts/native.sh builds from src/ (checked byte-identical to
a fresh build in CI). They travel base64-encoded as a module argument: no extra round trip.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _constants

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NATIVE_DIR = os.path.join(COLLECTION_ROOT, "files", "native")
PYTHON_HOOK = os.path.join(COLLECTION_ROOT, "plugins", "module_utils", "primitives", "_sockdiag.py")


def native_builds(name, native_dir=NATIVE_DIR):
    """{arch: base64 text} of files/native/<arch>/<name>."""
    out = {}
    if os.path.isdir(native_dir):
        for arch in sorted(os.listdir(native_dir)):
            path = os.path.join(native_dir, arch, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    out[arch] = base64.b64encode(f.read()).decode("ascii")
    return out


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError) as e:
        raise AnsibleActionFail("cannot read %s from the collection: %s" % (path, e)) from e


def hook_payload(args):
    """The restart hook for prestart_hook's options ``args`` (its native builds and its Python
    twin), or None when they remove it (state=absent)."""
    if args.get("state", "present") != "present":
        return None
    return {"native": native_builds(_constants.HOOK_NAME), "python": read_text(PYTHON_HOOK)}


def units_payload(units):
    """The preload library's native builds when one of service_restart_policy's options
    ``units`` (or one of its ``services``) asks for socket_activation=preload, else None."""
    entries = [units] + [s for s in units.get("services") or [] if isinstance(s, dict)]
    if any(str(e.get("socket_activation")) == "preload" for e in entries):
        return {"native": native_builds(_constants.PRELOAD_LIBRARY)}
    return None


def harden_args(args):
    """The harden module's ``args`` with what travels with them: the hook as
    ``prestart.payload``, the preload library as ``units.payload``. A payload given in the
    task is refused."""
    out = dict(args)
    for key, build in (("prestart", hook_payload), ("units", units_payload)):
        part = args.get(key)
        if not isinstance(part, dict):
            continue
        if "payload" in part:
            raise AnsibleActionFail("%s.payload is set by this action plugin from the collection; do not pass it" % key)
        payload = build(part)
        if payload is not None:
            out[key] = dict(part, payload=payload)
    return out


class PayloadAction(ActionBase):
    """Runs a module with what travels with it: by default MODULE with the ``payload`` argument
    that payload(args) builds (None: no payload); module_args() may send the call elsewhere.

    The payload comes from the collection only: a task that passes one itself is refused.
    """

    TRANSFERS_FILES = False
    MODULE = None

    def payload(self, args):
        raise NotImplementedError

    def module_args(self, args):
        """(the module to run, its arguments) for the task's arguments ``args``."""
        if "payload" in args:
            raise AnsibleActionFail("payload is set by this action plugin from the collection; do not pass it")
        payload = self.payload(args)
        if payload is not None:
            args["payload"] = payload
        return self.MODULE, args

    def run(self, tmp=None, task_vars=None):
        result = super(PayloadAction, self).run(tmp, task_vars)
        module, args = self.module_args(dict(self._task.args))
        result.update(self._execute_module(module_name=module, module_args=args, task_vars=task_vars))
        return result
