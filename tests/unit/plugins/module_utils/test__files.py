# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils._files import atomic_write, read_text


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
