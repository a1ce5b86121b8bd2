# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's real main() with given args, with every side effect forbidden.

Read-only commands (systemctl --version / show, supervisorctl status, journalctl) get canned
answers; any other command, a file write or removal, or a signal fails the test. A module
that refuses bad input must do so before any of those.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os

import pytest
from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from unittest import mock

    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args):
        with mock.patch.object(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))):
            yield


class ModuleExit(Exception):
    def __init__(self, result):
        Exception.__init__(self, result.get("msg", ""))
        self.result = result


class ModuleFail(ModuleExit):
    pass


class SideEffect(AssertionError):
    pass


def _readonly_answer(argv):
    tool, rest = os.path.basename(argv[0]), argv[1:]
    if tool == "systemctl" and rest[:1] == ["--version"]:
        return "systemd 252 (252.39-1~deb12u1)\n+PAM\n"
    if tool == "systemctl" and rest[:1] == ["show"]:
        units = [a for a in rest[1:] if not a.startswith("-") and a not in ("-p",)]
        props = {rest[i + 1] for i, a in enumerate(rest) if a == "-p"}
        units = [u for u in units if u not in props]
        return "\n".join("LoadState=loaded\nFragmentPath=/lib/systemd/system/%s\n" % u for u in units)
    if tool == "supervisorctl" and rest[:1] == ["status"]:
        return ""
    if tool == "journalctl":
        return ""
    return None


def _exit_json(self, **kwargs):
    raise ModuleExit(kwargs)


def _fail_json(self, msg="", **kwargs):
    kwargs["msg"] = msg
    raise ModuleFail(kwargs)


def call_main(m, module, args, run_command):
    """The module's real main() with ``args``, commands answered by ``run_command(argv)``, in
    the monkeypatch context ``m``: ("fail" | "exit", result) or ("side effect", message)."""
    m.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: run_command([str(a) for a in argv]))
    m.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    m.setattr(basic.AnsibleModule, "fail_json", _fail_json)
    m.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)
    with patch_module_args(args):
        try:
            module.main()
        except ModuleFail as e:
            return "fail", e.result
        except ModuleExit as e:
            return "exit", e.result
        except SideEffect as e:
            return "side effect", str(e)
    raise AssertionError("main() returned without exit_json or fail_json")


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, args) -> ("fail" | "exit" | "side effect", result dict or message)."""

    def run(module, args):
        def run_command(argv):
            out = _readonly_answer(argv)
            if out is None:
                raise SideEffect("command run before the input was refused: %s" % argv)
            return 0, out, ""

        def forbidden(what):
            def boom(*a, **k):
                raise SideEffect("%s before the input was refused: %r" % (what, a))
            return boom

        with monkeypatch.context() as m:
            m.setattr(basic.AnsibleModule, "atomic_move", forbidden("atomic_move"))
            for name in ("kill", "unlink", "rmdir", "rename", "chmod", "mkdir", "makedirs", "setuid"):
                m.setattr(os, name, forbidden("os." + name))
            return call_main(m, module, args, run_command)

    return run


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """A FakeHost (fakehost.py): the host paths in a temporary root, commands from a table."""
    from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _files
    from ansible_collections.netsvc.resilience.tests.unit.conftest import ROOT_ONLY_BASE
    from ansible_collections.netsvc.resilience.tests.unit.plugins.modules.fakehost import FakeHost

    if os.geteuid() != 0:
        pytest.skip("whole-module tests write root-owned files as the modules do: run them as root")
    host = FakeHost(tmp_path / "root", monkeypatch, keep=(ROOT_ONLY_BASE + "/",))
    # the ledger where a host keeps it (in the fake root), so that undo reads what the run wrote
    monkeypatch.setattr(_files, "LEDGER", "/var/lib/netsvc-resilience/ledger.json")
    monkeypatch.setattr(_files, "ORIGINALS", "/var/lib/netsvc-resilience/originals")
    return host


@pytest.fixture
def run_on(monkeypatch):
    """run_on(host, module, args, check=False) -> ("exit" | "fail", result): the module's real
    main() on the fake host, every command answered by the host's table."""

    def run(host, module, args, check=False):
        with monkeypatch.context() as m:
            return call_main(m, module, dict(args, _ansible_check_mode=check, _ansible_diff=True), host.run_command)

    return run
