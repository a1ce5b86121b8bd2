# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's own modules are imported under their own names (`_systemd.unit_path`,
never `SD.unit_path`): a reader sees at every call which file the code lives in."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

TOP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
ALIASED = re.compile(r"^\s*from ansible_collections\.netsvc\.resilience\.\S+ import .*\bas\b")


def test_no_import_of_ours_is_aliased():
    found = []
    for pattern in ("plugins/**/*.py", "tests/**/*.py"):
        for path in glob.glob(os.path.join(TOP, pattern), recursive=True):
            with open(path) as f:
                found.extend("%s:%d: %s" % (os.path.relpath(path, TOP), n, line.strip())
                             for n, line in enumerate(f, 1) if ALIASED.match(line))
    assert found == []
