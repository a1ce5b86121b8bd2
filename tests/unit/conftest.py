# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the unit tests.

What root writes must be root's alone (the file and every directory up to /), and a test run
as root writes into its ``tmp_path``: pytest's default sits under the world-writable /tmp,
which the collection rightly refuses. Run as root, ``tmp_path`` is therefore a fresh
directory under a root-only base; the module-side ledger is kept there too, never in the
host's /var/lib. Run as another user, the ownership rule does not apply (_files checks it
for root only) and pytest's own tmp_path is used.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile

import pytest

ROOT_ONLY_BASE = "/run/netsvc-unit-tests"


def _base():
    """The root-only base directory (None when not root)."""
    if os.geteuid() != 0:
        return None
    if not os.path.isdir(ROOT_ONLY_BASE):
        os.makedirs(ROOT_ONLY_BASE, 0o755)
    os.chmod(ROOT_ONLY_BASE, 0o755)
    return ROOT_ONLY_BASE


@pytest.fixture
def tmp_path(request, tmp_path_factory):
    if os.geteuid() != 0:
        return tmp_path_factory.mktemp(request.node.name[:30])
    import pathlib

    path = tempfile.mkdtemp(prefix="t-", dir=_base())
    os.chmod(path, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
    return pathlib.Path(path)


@pytest.fixture(autouse=True)
def private_ledger(monkeypatch):
    """Keep the write ledger of module code under test out of the host's /var/lib."""
    from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _files

    base = tempfile.mkdtemp(prefix="ledger-", dir=_base())
    monkeypatch.setattr(_files, "LEDGER", os.path.join(base, "ledger.json"))
    monkeypatch.setattr(_files, "ORIGINALS", os.path.join(base, "originals"))
    yield
    shutil.rmtree(base, ignore_errors=True)
