# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cleanup_hook: auto - the hook harden installs in the same call, else the one on the host."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _service_restart_policy
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _host_state


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


@pytest.mark.parametrize("pid, live, current, expected", [
    (0, ["7070"], ["0.0.0.0:7070"], ["0.0.0.0:7070"]),            # not running: nothing live to learn from
    (42, ["0.0.0.0:7070"], ["7070"], ["7070"]),                  # a whole port stays whole on a wildcard
    (42, ["127.0.0.1:7070"], ["7070"], ["127.0.0.1:7070"]),      # narrowed: the hook follows the listener
    (42, ["0.0.0.0:7070"], [], ["0.0.0.0:7070"]),                # no hook before
    (0, ["7070", "7071"], ["0.0.0.0:7070"], ["7070", "7071"]),   # a port added: planned from the settings
])
def test_a_programs_hook_targets_do_not_flip_with_whether_it_runs(monkeypatch, pid, live, current, expected):
    """Issue 38: the demo's audit said "program file differs" on the supervisord host it had just
    hardened - the targets were 7070 or 0.0.0.0:7070 by whether the program was running."""
    from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _reuse

    ports = sorted({int(t.rsplit(":", 1)[-1]) for t in live})
    from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _supervisord_program

    monkeypatch.setattr(_supervisord_program, "supervisor_pid", lambda module, name: pid)
    monkeypatch.setattr(_reuse, "program_hook_targets", lambda p, got_pid: live)
    assert _supervisord_program.program_targets(None, "web", ports, current) == expected
