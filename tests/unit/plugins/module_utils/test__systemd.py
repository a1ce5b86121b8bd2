# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _prestart_hook
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _systemd, _unit
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import (
    FileSet,
    atomic_write,
    read_text,
)
from ansible_collections.netsvc.resilience.tests.unit.plugins.module_utils.fakes import Failure, FakeModule


class FakeSystemd(object):
    def __init__(self, verify="", reload_rc=0):
        self.verify, self.reload_rc, self.reloads = verify, reload_rc, 0

    def verify_output(self, fragments):
        return self.verify

    def reload(self):
        self.reloads += 1
        return self.reload_rc, "Failure to reload daemon: Access denied" if self.reload_rc else ""


def _units(tmp_path):
    d = tmp_path / "etc" / "web.service.d"
    d.mkdir(parents=True)
    fragment = tmp_path / "web.service"
    fragment.write_text(u"[Service]\nExecStart=/usr/bin/web\nRestart=no\n")
    ours = d / "50-netsvc-resilience.conf"
    ours.write_text(u"[Service]\nRestart=on-failure\n")
    local = d / "99-local.conf"
    local.write_text(u"[Service]\nRestart=no\n")
    return str(fragment), str(ours), str(local)


def test_who_wins_names_the_later_file(tmp_path):
    fragment, ours, local = _units(tmp_path)
    show = {"FragmentPath": fragment, "DropInPaths": "%s %s" % (ours, local), "Restart": "no"}
    wanted = _unit.policy_readback(_unit.normalize_options({"restart": "on-failure"}), "web.service", 252)
    out = _systemd.effective_mismatches("web.service", wanted, show, ours)
    assert out[0].startswith("web.service: Restart is 'no', asked on-failure: %s sets Restart=no" % local)
    assert "DropInPaths order" in out[0]


def test_who_wins_when_ours_is_not_loaded_or_reload_is_pending(tmp_path):
    fragment, ours, _local = _units(tmp_path)
    assert "not loaded by systemd" in _systemd.who_wins("Restart", {"FragmentPath": fragment, "DropInPaths": ""}, ours)
    pending = {"FragmentPath": fragment, "DropInPaths": ours, "NeedDaemonReload": "yes"}
    assert "NeedDaemonReload=yes" in _systemd.who_wins("Restart", pending, ours)


def test_policy_readback_accepts_what_systemd_shows():
    o = _unit.normalize_options({})
    ok = {"Restart": "on-failure", "RestartUSec": "0", "StartLimitBurst": "20", "StartLimitIntervalUSec": "10s",
          "OnFailure": "netsvc-revive@web.service.service"}
    assert _systemd.effective_mismatches("web.service", _unit.policy_readback(o, "web.service", 252), ok, "x") == []
    el7 = {"Restart": "on-failure", "RestartUSec": "0", "StartLimitBurst": "20", "StartLimitInterval": "10000000",
           "OnFailure": "netsvc-revive@web.service.service"}
    assert _systemd.effective_mismatches("web.service", _unit.policy_readback(o, "web.service", 219), el7, "x") == []
    slow = dict(ok, RestartUSec="5s", OnFailure="")
    props = [m.split(":")[1].split()[0] for m in
             _systemd.effective_mismatches("web.service", _unit.policy_readback(o, "web.service", 252), slow, "x")]
    assert props == ["RestartUSec", "OnFailure"]


def _tx(tmp_path, systemd):
    path = str(tmp_path / "etc" / "systemd" / "web.service.d" / "40-x.conf")
    atomic_write(FakeModule(), path, "old\n")
    files = FileSet(FakeModule())
    files.want(path, "new\n")
    tx = _systemd.DropinTransaction(FakeModule(), systemd)
    tx.unit_dirs = (str(tmp_path / "etc" / "systemd") + "/",)
    tx.add(files, "web.service", "/lib/systemd/system/web.service")
    return tx, path


def test_transaction_restores_every_file_when_verify_objects(tmp_path):
    dropin = tmp_path / "etc" / "systemd" / "web.service.d" / "40-x.conf"
    tx, path = _tx(tmp_path, FakeSystemd(verify="%s:3: Unknown key name 'Nope'\n" % dropin))
    with pytest.raises(Failure, match="verify rejected web.service; every file was restored"):
        tx.commit()
    assert read_text(path) == "old\n"


def test_transaction_restores_every_file_when_the_reload_fails(tmp_path):
    systemd = FakeSystemd(reload_rc=1)
    tx, path = _tx(tmp_path, systemd)
    with pytest.raises(Failure, match="daemon-reload failed .rc=1.: Failure to reload daemon: Access denied"):
        tx.commit()
    assert read_text(path) == "old\n"
    assert systemd.reloads == 2  # the failed one, and one after the files were put back


def test_transaction_reloads_once_and_only_for_unit_files(tmp_path):
    systemd = FakeSystemd()
    tx, path = _tx(tmp_path, systemd)
    assert tx.commit() and systemd.reloads == 1 and read_text(path) == "new\n"
    hook = FileSet(FakeModule())
    hook.want(str(tmp_path / "usr" / "hook"), b"\x7fELF", 0o755)
    hook_only = _systemd.DropinTransaction(FakeModule(), systemd)
    hook_only.add(hook)
    assert hook_only.commit() and systemd.reloads == 1  # the hook alone needs no reload
    assert _systemd.DropinTransaction(FakeModule(), systemd).commit() is False


def test_parse_show_many_keeps_order_and_empty_values():
    text = "LoadState=loaded\nUser=\n\nLoadState=not-found\n"
    assert _systemd.parse_show_many(text) == [{"LoadState": "loaded", "User": ""}, {"LoadState": "not-found"}]


def _hook_plan(tmp_path):
    """A prestart_hook plan (what _prestart_hook.plan returns) for one hooked service."""
    hook = str(tmp_path / "usr" / "lib" / "netsvc-resilience" / "netsvc-sockclean")
    line = "+-%s --unit %%n 80" % hook
    dropin = str(tmp_path / "etc" / "systemd" / "web.service.d" / "40-netsvc-cleanup.conf")
    svc = _prestart_hook.HookedService(
        unit="web.service", ports=[80], show={"FragmentPath": "/lib/systemd/system/web.service"}, blockers=[],
        how={"mode": "prefix", "line": line, "warnings": []}, dropin=dropin,
        text="[Service]\nExecStartPre=%s\n" % line, decision="hook", reason="cleanup: true", targets=["80"],
        whole=None, drain_ms=2000, netns_refused=None)
    return _prestart_hook.HookPlan(path=hook, hook=b"\x7fELF-hook", kind="native-x86_64", present=True,
                                   services=[svc])


def test_hook_and_policy_drop_ins_share_one_transaction_and_one_reload(tmp_path):
    """service_restart_policy with prestart: the hook's files join the policy's transaction."""
    systemd = FakeSystemd()
    tx, policy = _tx(tmp_path, systemd)
    plan = _hook_plan(tmp_path)
    result = _prestart_hook.stage(FakeModule(), plan, tx)
    assert result["changed"] and result["cleanup"] == {"web.service": {"hook": True, "reason": "cleanup: true",
                                                                       "cleans": ["80"], "whole_ports": None}}
    assert result["dropins"] == {"web.service": plan.services[0].dropin}
    assert tx.commit() and systemd.reloads == 1
    assert read_text(policy) == "new\n"
    assert read_text(plan.services[0].dropin).startswith("[Service]\nExecStartPre=+-")
    assert os.stat(plan.path).st_mode & 0o777 == 0o755


def test_a_rejected_hook_drop_in_puts_the_policy_back_too(tmp_path):
    plan = _hook_plan(tmp_path)
    dropin = plan.services[0].dropin
    systemd = FakeSystemd(verify="%s:2: Executable path is not absolute\n" % dropin)
    tx, policy = _tx(tmp_path, systemd)
    _prestart_hook.stage(FakeModule(), plan, tx)
    with pytest.raises(Failure, match="verify rejected web.service; every file was restored"):
        tx.commit()
    assert read_text(policy) == "old\n"  # the policy's drop-in as it was
    assert read_text(dropin) is None and read_text(plan.path) is None and systemd.reloads == 0


def _kernel_change(tmp_path, monkeypatch, fail_key=None):
    """A _sysctl_tcp.Change (service_restart_policy's ``kernel``): a sysctl file and two live values,
    written to a dict instead of /proc/sys."""
    from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _sysctl_tcp
    from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _sysctl
    live = {"net.core.somaxconn": "4096", "net.ipv4.tcp_max_syn_backlog": "128"}
    proc = dict(live)

    def write_live(key, value):
        if key == fail_key and value != live[key]:
            raise OSError(30, "Read-only file system")
        proc[key] = value

    monkeypatch.setattr(_sysctl, "write_live", write_live)
    path = str(tmp_path / "sysctl.d" / "90-netsvc-resilience.conf")
    atomic_write(FakeModule(), path, "old\n")
    change = _sysctl_tcp.Change(FakeModule(), path, "old\n", "new\n", True,
                                {"net.core.somaxconn": "8192", "net.ipv4.tcp_max_syn_backlog": "8192"}, live)
    return change, path, proc, live


def test_kernel_settings_join_the_transaction_and_need_no_reload(tmp_path, monkeypatch):
    change, path, proc, _live = _kernel_change(tmp_path, monkeypatch)
    systemd = FakeSystemd()
    kernel_only = _systemd.DropinTransaction(FakeModule(), systemd)
    kernel_only.add(change)
    assert kernel_only.changed and kernel_only.commit() and systemd.reloads == 0  # no unit file: no reload
    assert read_text(path) == "new\n" and proc["net.core.somaxconn"] == "8192"


@pytest.mark.parametrize("systemd, expect", [
    (FakeSystemd(reload_rc=1), "daemon-reload failed"),
    (None, "verify rejected web.service"),
])
def test_a_failed_drop_in_puts_the_kernel_settings_back_too(tmp_path, monkeypatch, systemd, expect):
    change, path, proc, live = _kernel_change(tmp_path, monkeypatch)
    if systemd is None:
        dropin = tmp_path / "etc" / "systemd" / "web.service.d" / "40-x.conf"
        systemd = FakeSystemd(verify="%s:3: Unknown key name 'Nope'\n" % dropin)
    tx, policy = _tx(tmp_path, systemd)
    tx.entries.insert(0, (change, None, None))  # as _harden.compose stages it: first
    with pytest.raises(Failure, match=expect):
        tx.commit()
    assert read_text(path) == "old\n" and read_text(policy) == "old\n"
    assert proc == live  # every live value as it was


def test_a_live_value_that_fails_puts_the_file_and_the_drop_ins_back(tmp_path, monkeypatch):
    change, path, proc, live = _kernel_change(tmp_path, monkeypatch, fail_key="net.ipv4.tcp_max_syn_backlog")
    systemd = FakeSystemd()
    tx, policy = _tx(tmp_path, systemd)
    tx.entries.insert(0, (change, None, None))
    with pytest.raises(Failure, match="Read-only file system; every file was restored") as e:
        tx.commit()
    assert "/proc/sys/net/ipv4/tcp_max_syn_backlog" in str(e.value) and path in str(e.value)
    assert read_text(path) == "old\n" and read_text(policy) == "old\n" and proc == live
    assert systemd.reloads == 0
