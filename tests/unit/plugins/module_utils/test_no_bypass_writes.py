# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every file a module writes goes through _files.atomic_write -> module.atomic_move, which
gives it the default SELinux context of its path. This scans the host code for any other way
of writing a file; the few that are not module file writes are listed with the reason."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

TOP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
WRITES = re.compile(r"open\(.*['\"][wax]b?['\"]\)|os\.(rename|replace|link|symlink)\(|shutil\.|fdopen\(")

ALLOWED = {
    # the writer itself: temp file in the target directory, then module.atomic_move
    ("_files.py", "with os.fdopen(fd, \"wb\") as f:"),
    # live sysctl values: /proc/sys is not a file system with contexts to keep
    ("_sysctl.py", "with open(key_to_proc_path(key, proc_root), \"w\") as f:"),
    # the restart hook's Python twin, run by systemd at a service's start (not a module): its
    # run report in /run/netsvc-resilience/hook, created fresh (the native hook does the same)
    ("_sockdiag.py", "with os.fdopen(fd, \"w\") as f:"),
    ("_sockdiag.py", "os.rename(path + \".tmp\", path)"),
    # the applied-state record set aside in its own directory (a rename keeps its context)
    ("_host_check.py", "os.rename(p[\"state_file\"], p[\"state_file\"] + \".unverified\")"),
    # the run lock's flock guard: an empty runtime file in /run/netsvc-resilience
    ("_host_state.py", "with open(path + \".guard\", \"a\") as guard:"),
}


def test_no_module_writes_a_file_without_atomic_move():
    found = set()
    for path in glob.glob(os.path.join(TOP, "plugins", "modules", "*.py")) + \
            glob.glob(os.path.join(TOP, "plugins", "module_utils", "**", "*.py"), recursive=True):
        with open(path) as f:
            for line in f:
                if WRITES.search(line) and not line.strip().startswith("#"):
                    found.add((os.path.basename(path), line.strip()))
    assert found == ALLOWED
