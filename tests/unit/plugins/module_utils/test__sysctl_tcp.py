# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sysctl_tcp's write step, as a transaction writes it: the file first, then the live values; a
failure puts both back."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _sysctl_tcp
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _sysctl, _systemd
from ansible_collections.netsvc.resilience.tests.unit.plugins.module_utils.fakes import Failure, FakeModule


def commit(module, change):
    """``change`` written as sysctl_tcp and harden write it: one transaction (_plan.compose)."""
    tx = _systemd.DropinTransaction(module, _systemd.Systemd(module))
    tx.add(change)
    tx.commit(verify=False)


def test_a_live_value_that_cannot_be_written_restores_the_others_and_the_file(tmp_path, monkeypatch):
    path = str(tmp_path / "90-netsvc-resilience.conf")
    with open(path, "w") as f:
        f.write("old\n")
    live = {"net.core.somaxconn": "4096", "net.ipv4.tcp_fin_timeout": "60"}
    writes = []

    def write_live(key, value):
        if key == "net.ipv4.tcp_fin_timeout" and value == "15":
            raise OSError(30, "Read-only file system")
        writes.append((key, value))

    monkeypatch.setattr(_sysctl, "write_live", write_live)
    with pytest.raises(Failure) as e:
        wanted = {"net.core.somaxconn": "8192", "net.ipv4.tcp_fin_timeout": "15"}
        commit(FakeModule(), _sysctl_tcp.Change(FakeModule(), path, "old\n", "new\n", True, wanted, live))
    assert "live value net.ipv4.tcp_fin_timeout = 15: Read-only" in str(e.value) and "restored" in str(e.value)
    assert writes == [("net.core.somaxconn", "8192"), ("net.core.somaxconn", "4096")]
    with open(path) as f:
        assert f.read() == "old\n"
    assert os.listdir(str(tmp_path)) == ["90-netsvc-resilience.conf"]


def test_a_file_that_cannot_be_written_leaves_the_live_values_alone(tmp_path, monkeypatch):
    path = str(tmp_path / "missing-dir" / "x.conf")
    monkeypatch.setattr(_sysctl, "write_live", lambda k, v: pytest.fail("live value written"))

    class FullDisk(FakeModule):
        def atomic_move(self, src, dest):
            raise OSError(28, "No space left on device")

    with pytest.raises(Failure) as e:
        wanted = {"net.core.somaxconn": "8192"}
        commit(FullDisk(), _sysctl_tcp.Change(FullDisk(), path, None, "new\n", True, wanted, {}))
    assert "No space left on device; every file was restored as it was" in str(e.value)
    assert os.listdir(os.path.dirname(path)) == []
