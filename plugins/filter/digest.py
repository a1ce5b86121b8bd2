# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""inputs_digest: a digest of a host's rollout inputs and of this collection's code (controller side)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: inputs_digest
short_description: Digest of a host's rollout inputs plus this collection's code
version_added: 1.0.0
author: netsvc.resilience maintainers (@netsvc)
description:
  - SHA-256 over the canonical JSON of the input (the variables that shape a host's
    hardening) and over every file of this collection's C(plugins/) and C(roles/) trees.
  - Stored in the applied-state record by C(netsvc.resilience.host_check). A changed
    variable, or an upgraded collection whose modules would now write something else, gives
    a new digest, so the next run is a full one.
options:
  _input:
    description: The inputs (any JSON-serialisable value).
    type: raw
    required: true
"""

EXAMPLES = r"""
digest: "{{ {'services': netsvc_services, 'profile': my_profile} | netsvc.resilience.inputs_digest }}"
"""

RETURN = r"""
_value:
  description: Hex SHA-256.
  type: str
"""

import hashlib
import json
import os

from ansible.errors import AnsibleFilterError

_TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CODE = {}


def code_digest(top=_TOP):
    """SHA-256 over the relative path and bytes of every file under plugins/ and roles/."""
    if top in _CODE:
        return _CODE[top]
    h = hashlib.sha256()
    for tree in ("plugins", "roles"):
        for root, dirs, files in os.walk(os.path.join(top, tree)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = os.path.join(root, name)
                h.update(os.path.relpath(path, top).encode("utf-8") + b"\0")
                with open(path, "rb") as f:
                    h.update(f.read())
                h.update(b"\0")
    _CODE[top] = h.hexdigest()
    return _CODE[top]


def inputs_digest(inputs, top=_TOP):
    try:
        text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError) as e:
        raise AnsibleFilterError("inputs_digest: the inputs are not JSON-serialisable: %s" % e) from e
    return hashlib.sha256((text + "\0" + code_digest(top)).encode("utf-8")).hexdigest()


class FilterModule(object):
    def filters(self):
        return {"inputs_digest": inputs_digest}
