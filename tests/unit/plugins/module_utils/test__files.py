# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils._files import (
    FileSet,
    atomic_write,
    file_mode,
    read_text,
)


class FakeModule(object):
    def __init__(self, fail=False):
        self.fail = fail

    def atomic_move(self, src, dest):
        if self.fail:
            raise OSError("disk full")
        os.rename(src, dest)


def test_atomic_write_creates_directories_mode_and_content(tmp_path):
    path = str(tmp_path / "x.service.d" / "50-a.conf")
    atomic_write(FakeModule(), path, "[Service]\nRestart=always\n")
    assert read_text(path) == "[Service]\nRestart=always\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(str(tmp_path / "x.service.d")) == ["50-a.conf"]


def test_a_failed_move_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = str(tmp_path / "a.conf")
    atomic_write(FakeModule(), path, "old\n")
    with pytest.raises(OSError):
        atomic_write(FakeModule(fail=True), path, "new\n")
    assert read_text(path) == "old\n"
    assert os.listdir(str(tmp_path)) == ["a.conf"]


def test_read_text_missing_is_none(tmp_path):
    assert read_text(str(tmp_path / "nope")) is None


def test_fileset_plans_only_differences_and_rolls_back(tmp_path):
    keep = str(tmp_path / "keep.conf")
    change = str(tmp_path / "a.service.d" / "x.conf")
    atomic_write(FakeModule(), keep, "same\n")
    atomic_write(FakeModule(), change, "old\n")
    files = FileSet(FakeModule())
    files.want(keep, "same\n")
    files.want(change, "new\n")
    assert files.paths == [change]
    files.apply()
    assert read_text(change) == "new\n"
    files.rollback()
    assert read_text(change) == "old\n"


def test_fileset_mode_difference_is_a_change_and_rollback_restores_mode(tmp_path):
    hook = str(tmp_path / "hook")
    atomic_write(FakeModule(), hook, "#!/bin/sh\n", 0o644)
    files = FileSet(FakeModule())
    files.want(hook, "#!/bin/sh\n", 0o755)
    assert files.changed
    files.apply()
    assert file_mode(hook) == 0o755
    files.rollback()
    assert file_mode(hook) == 0o644


def test_fileset_removal_drops_an_emptied_dropin_directory(tmp_path):
    d = tmp_path / "a.service.d"
    path = str(d / "40-x.conf")
    atomic_write(FakeModule(), path, "x\n")
    files = FileSet(FakeModule())
    files.want(path, None)
    files.want(str(tmp_path / "never-there"), None)
    assert files.paths == [path]
    files.apply()
    assert not d.exists()
    files.rollback()
    assert read_text(path) == "x\n"


def test_rollback_restores_the_old_mtime_so_systemd_sees_no_change_on_disk(tmp_path):
    path = str(tmp_path / "x.service.d" / "50-a.conf")
    atomic_write(FakeModule(), path, "[Service]\nRestart=no\n")
    os.utime(path, ns=(1000000000000000000, 1000000000000000000))
    files = FileSet(FakeModule())
    files.want(path, "[Service]\nRestart=always\n")
    files.apply()
    assert os.stat(path).st_mtime_ns != 1000000000000000000
    files.rollback()
    assert read_text(path) == "[Service]\nRestart=no\n"
    assert os.stat(path).st_mtime_ns == 1000000000000000000
