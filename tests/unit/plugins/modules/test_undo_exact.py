# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollback undoes only what the collection did (issue 33): on a fake host, a value or file an
admin changed after hardening is left and named, owners come back as recorded, a state
directory shared with another tool keeps that tool's files, and a ledger root did not check
refuses the whole undo before any change."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.netsvc.resilience.plugins.modules import service_restart_policy, sysctl_tcp, undo
from ansible_collections.netsvc.resilience.tests.unit.plugins.modules.test_whole_modules import (
    POLICY,
    live_values,
    web_host,
)

LEDGER = "/var/lib/netsvc-resilience/ledger.json"


def hardened(host, run_on):
    web_host(host)
    live_values(host)
    assert run_on(host, service_restart_policy, {"name": "web.service"})[0] == "exit"
    assert run_on(host, sysctl_tcp, {"settings": {"net.core.somaxconn": 8192,
                                                  "net.ipv4.tcp_max_syn_backlog": 4096}})[0] == "exit"


def test_a_value_an_admin_set_after_hardening_is_left_and_named(fake_host, run_on):
    hardened(fake_host, run_on)
    fake_host.write("/proc/sys/net/core/somaxconn", "9000\n")  # the admin's, after the collection's 8192
    kind, result = run_on(fake_host, undo, {})
    assert kind == "exit", result
    assert fake_host.read("/proc/sys/net/core/somaxconn").strip() == "9000"
    assert fake_host.read("/proc/sys/net/ipv4/tcp_max_syn_backlog").strip() == "512"  # ours: put back
    assert "net.core.somaxconn" not in result["sysctl"] and "net.ipv4.tcp_max_syn_backlog" in result["sysctl"]
    assert any("net.core.somaxconn is 9000, not the 8192 the collection set" in w for w in result["warning_messages"])


def test_a_file_an_admin_changed_after_hardening_is_left_and_named(fake_host, run_on):
    hardened(fake_host, run_on)
    fake_host.write(POLICY, "[Service]\nRestart=always\nRestartSec=3\n")  # the admin's edit of our drop-in
    kind, result = run_on(fake_host, undo, {})
    assert kind == "exit", result
    assert fake_host.read(POLICY) == "[Service]\nRestart=always\nRestartSec=3\n"
    assert any(POLICY in w and "changed since the collection wrote it" in w for w in result["warning_messages"])
    assert not os.path.exists(fake_host.real("/etc/sysctl.d/90-netsvc-resilience.conf"))  # unchanged: removed


def test_an_edited_file_comes_back_with_its_owner_and_mode(fake_host, run_on):
    web_host(fake_host)
    fake_host.write(POLICY, "[Service]\nRestart=always\n", mode=0o640)
    os.chown(fake_host.real(POLICY), 1000, 1000)
    fake_host.systemd.daemon_reload()
    assert run_on(fake_host, service_restart_policy, {"name": "web.service"})[0] == "exit"
    assert os.stat(fake_host.real(POLICY)).st_uid == 0  # what root reads is root's while hardened
    kind, result = run_on(fake_host, undo, {})
    assert kind == "exit", result
    st = os.stat(fake_host.real(POLICY))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o640)
    assert fake_host.read(POLICY) == "[Service]\nRestart=always\n"


def test_a_shared_state_directory_keeps_the_other_tools_files(fake_host, run_on):
    shared = "/var/lib/netsvc-resilience-ops"  # mapped into the fake root like the collection's own
    fake_host.write(shared + "/other.txt", "another tool's\n")
    fake_host.write(shared + "/applied-state.json", "{}\n")
    hardened(fake_host, run_on)
    kind, result = run_on(fake_host, undo, {"state_dir": shared})
    assert kind == "exit", result
    assert fake_host.read(shared + "/other.txt") == "another tool's\n"
    assert fake_host.read(shared + "/applied-state.json") is None  # the collection's own record goes
    assert not os.path.exists(fake_host.real("/var/lib/netsvc-resilience"))  # its own directory, emptied: gone


def test_a_system_directory_as_state_dir_is_refused_before_any_change(fake_host, run_on):
    hardened(fake_host, run_on)
    before = fake_host.tree()
    for bad in ("/", "/etc", "/var/lib"):
        kind, result = run_on(fake_host, undo, {"state_dir": bad})
        assert kind == "fail" and "is a system directory" in result["msg"] and repr(bad) in result["msg"], result
    assert fake_host.tree() == before


def hostile(host, run_on, change):
    hardened(host, run_on)
    led = json.loads(host.read(LEDGER))
    change(led)
    host.write(LEDGER, json.dumps(led), mode=0o600)
    before = host.tree()
    kind, result = run_on(host, undo, {})
    assert kind == "fail" and "nothing was changed" in result["msg"], result
    assert host.tree() == before and host.count("systemctl", "daemon-reload") == 1  # the hardening run's
    return result["msg"]


def test_a_ledger_naming_a_file_the_collection_never_writes_refuses_the_undo(fake_host, run_on):
    msg = hostile(fake_host, run_on, lambda led: led["files"].update(
        {"/etc/shadow": {"created": True, "original": None, "mode": None, "uid": 0, "gid": 0}}))
    assert "ledger entry /etc/shadow" in msg and "not a path the collection writes" in msg


def test_a_ledger_whose_original_lives_elsewhere_refuses_the_undo(fake_host, run_on):
    def swap(led):
        led["files"][POLICY] = {"created": False, "original": "/etc/passwd", "mode": 0o644, "uid": 0, "gid": 0}
    msg = hostile(fake_host, run_on, swap)
    assert "ledger entry %s" % POLICY in msg and "'/etc/passwd'" in msg


def test_a_ledger_directory_outside_the_collection_refuses_the_undo(fake_host, run_on):
    msg = hostile(fake_host, run_on, lambda led: led["dirs"].append("/etc"))
    assert "ledger directory /etc" in msg


def test_a_ledger_another_user_could_write_refuses_the_undo(fake_host, run_on):
    hardened(fake_host, run_on)
    os.chmod(fake_host.real("/var/lib/netsvc-resilience"), 0o777)
    before = fake_host.tree()
    kind, result = run_on(fake_host, undo, {})
    assert kind == "fail" and "not root's alone" in result["msg"] and "writable by group or others" in result["msg"]
    assert fake_host.tree() == before
    os.chmod(fake_host.real("/var/lib/netsvc-resilience"), 0o755)
    os.chown(fake_host.real(LEDGER), 65534, 65534)
    kind, result = run_on(fake_host, undo, {})
    assert kind == "fail" and "owned by uid 65534" in result["msg"], result


def test_state_absent_leaves_a_drop_in_an_admin_changed_since(fake_host, run_on):
    hardened(fake_host, run_on)
    edited = fake_host.read(POLICY) + "# the admin was here\n"
    fake_host.write(POLICY, edited)
    kind, result = run_on(fake_host, service_restart_policy, {"name": "web.service", "state": "absent"})
    assert kind == "exit", result
    assert fake_host.read(POLICY) == edited
    assert any(POLICY in w and "changed since" in w for w in result["warning_messages"]), result
