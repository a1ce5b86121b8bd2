# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cleanup_hook: auto - the hook harden installs in the same call, else the one on the host."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils import _host_state, _service_restart_policy


@pytest.fixture
def default_hook(tmp_path, monkeypatch):
    path = tmp_path / "netsvc-sockclean"
    monkeypatch.setattr(_host_state, "hook_dir_path", lambda name: str(tmp_path / name))
    return path


def entries(*hooks):
    return [({"name": "p%d" % i}, {"cleanup_hook": hook}) for i, hook in enumerate(hooks)]


def test_auto_is_the_hook_the_same_call_installs_or_none_when_it_removes_it(default_hook):
    given = entries("auto", "/opt/own-hook", None)
    _service_restart_policy.resolve_hook(given, "/usr/lib/x/netsvc-sockclean")
    assert [p["cleanup_hook"] for _item, p in given] == ["/usr/lib/x/netsvc-sockclean", "/opt/own-hook", None]
    given = entries("auto")
    _service_restart_policy.resolve_hook(given, "")
    assert given[0][1]["cleanup_hook"] == ""


def test_auto_alone_is_the_installed_hook_at_its_default_path_or_none(default_hook):
    given = entries("auto")
    _service_restart_policy.resolve_hook(given)
    assert given[0][1]["cleanup_hook"] == ""  # no hook there: the command runs as it is
    default_hook.write_text("#!/bin/sh\n")
    given = entries("auto", "auto")
    _service_restart_policy.resolve_hook(given)
    assert [p["cleanup_hook"] for _item, p in given] == [str(default_hook)] * 2
