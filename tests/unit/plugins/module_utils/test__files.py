# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _files
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import (
    FileSet,
    UnsafePath,
    atomic_write,
    file_mode,
    load_ledger,
    read_text,
)

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="what root writes is checked for root only")


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


def test_a_second_want_replaces_the_first_and_refresh_plans_against_the_disk_now(tmp_path):
    unit, dropin = str(tmp_path / "web.socket"), str(tmp_path / "web.service.d" / "50.conf")
    files = FileSet(FakeModule())
    for path, text in ((unit, "old\n"), (dropin, "preload\n")):
        atomic_write(FakeModule(), path, text)
        files.want(path, text)  # planned as it is: no change yet
    assert not files.changed
    os.unlink(unit)  # a step before the commit (preload's re-mirror) changed the host
    atomic_write(FakeModule(), dropin, "plain\n")
    files.want(unit, "mirrored\n")
    files.refresh()
    assert files.paths == [dropin, unit] and files.changed
    files.apply()
    assert (read_text(unit), read_text(dropin)) == ("mirrored\n", "preload\n")
    files.rollback()  # back to what the step left, not to what planning saw
    assert (read_text(unit), read_text(dropin)) == (None, "plain\n")
    with pytest.raises(RuntimeError):
        files.apply() or files.refresh()


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


def test_fileset_removal_drops_only_a_directory_the_collection_created(tmp_path):
    ours = tmp_path / "a.service.d"
    theirs = tmp_path / "b.service.d"
    theirs.mkdir()
    files = FileSet(FakeModule())
    files.want(str(ours / "40-x.conf"), "x\n")
    files.want(str(theirs / "40-x.conf"), "x\n")
    files.apply()
    files.record()
    assert str(ours) in load_ledger()["dirs"] and str(theirs) not in load_ledger()["dirs"]
    files = FileSet(FakeModule())
    files.want(str(ours / "40-x.conf"), None)
    files.want(str(theirs / "40-x.conf"), None)
    files.want(str(tmp_path / "never-there"), None)
    assert files.paths == [str(ours / "40-x.conf"), str(theirs / "40-x.conf")]
    files.apply()
    assert not ours.exists()          # created by the collection, now empty: gone
    assert theirs.is_dir()            # there before: kept, empty or not
    files.rollback()
    assert read_text(str(ours / "40-x.conf")) == "x\n"


def test_rollback_removes_the_directories_it_created(tmp_path):
    files = FileSet(FakeModule())
    files.want(str(tmp_path / "new" / "deeper" / "f.conf"), "x\n")
    files.apply()
    assert (tmp_path / "new" / "deeper" / "f.conf").exists()
    files.rollback()
    assert not (tmp_path / "new").exists()


def test_the_ledger_keeps_created_files_and_the_originals_of_edited_ones(tmp_path):
    edited, created = str(tmp_path / "apps.conf"), str(tmp_path / "x.service.d" / "50.conf")
    atomic_write(FakeModule(), edited, "[program:web]\ncommand=a\n")
    files = FileSet(FakeModule())
    files.want(edited, "[program:web]\ncommand=b\n")
    files.want(created, "[Service]\n")
    files.apply()
    files.record()
    led = load_ledger()
    assert led["files"][created]["created"] is True and led["files"][created]["original"] is None
    assert led["files"][edited]["created"] is False
    assert read_text(led["files"][edited]["original"]) == "[program:web]\ncommand=a\n"
    # a second edit keeps the first original
    files = FileSet(FakeModule())
    files.want(edited, "[program:web]\ncommand=c\n")
    files.apply()
    files.record()
    assert read_text(load_ledger()["files"][edited]["original"]) == "[program:web]\ncommand=a\n"
    # put back byte for byte, and the created file removed: both leave the ledger
    files = FileSet(FakeModule())
    files.want(edited, "[program:web]\ncommand=a\n")
    files.want(created, None)
    files.apply()
    files.record()
    assert load_ledger()["files"] == {}
    assert not os.listdir(_files.ORIGINALS)


@AS_ROOT
def test_a_path_root_must_not_write_is_refused_before_any_write(tmp_path):
    open_dir = tmp_path / "shared"
    open_dir.mkdir()
    os.chmod(str(open_dir), 0o777)
    other = tmp_path / "theirs"
    other.mkdir()
    os.chown(str(other), 65534, 65534)
    target = tmp_path / "real"
    target.write_text("x")
    os.symlink(str(target), str(tmp_path / "link"))
    for path, why in ((open_dir / "a.conf", "is writable by group or others"),
                      (other / "sub" / "a.conf", "is owned by uid 65534"),
                      (tmp_path / "link", "is a symlink"),
                      ("/tmp/netsvc-x.conf", "/tmp is writable by group or others")):
        files = FileSet(FakeModule())
        with pytest.raises(UnsafePath, match=why):
            files.want(str(path), "y")
        assert not files.changed
    assert not (other / "sub").exists() and target.read_text() == "x"


@AS_ROOT
def test_a_file_with_a_foreign_owner_is_a_change_and_becomes_roots(tmp_path):
    hook = str(tmp_path / "hook")
    atomic_write(FakeModule(), hook, "#!/bin/sh\n", 0o755)
    os.chown(hook, 65534, 65534)
    files = FileSet(FakeModule())
    files.want(hook, "#!/bin/sh\n", 0o755)
    assert files.changed
    assert "owner 65534:65534" in files.diff()[0]["before"]
    files.apply()
    st = os.stat(hook)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    files.rollback()
    assert os.stat(hook).st_uid == 65534
    again = FileSet(FakeModule())
    os.chown(hook, 0, 0)
    again.want(hook, "#!/bin/sh\n", 0o755)
    assert not again.changed


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


class WarningModule(FakeModule):
    def __init__(self, check_mode=False):
        super(WarningModule, self).__init__()
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


@AS_ROOT
def test_a_directory_the_collection_created_that_drifted_is_put_back_and_named(tmp_path):
    """Issue 33: the hook directory chowned to nobody. The collection created and recorded it, so
    the next write corrects it (and says so) instead of refusing while root keeps running what
    is in it; a directory it did not create is still refused."""
    own = str(tmp_path / "netsvc-hooks")
    files = FileSet(WarningModule())
    files.want(os.path.join(own, "hook"), "#!/bin/sh\n", 0o755)
    files.apply()
    files.record()
    assert own in load_ledger()["dirs"] and _files.own_dirs_drift() == []
    os.chown(own, 65534, 65534)
    os.chmod(own, 0o777)
    assert _files.own_dirs_drift() == [(own, "owned by 65534:65534, not root's")]
    # check mode: reported, not corrected, not refused
    check = WarningModule(check_mode=True)
    FileSet(check).want(os.path.join(own, "hook"), "#!/bin/sh\necho 2\n", 0o755)
    assert os.stat(own).st_uid == 65534 and "would be put back to root:root, mode 755" in check.warnings[0]
    module = WarningModule()
    files = FileSet(module)
    files.want(os.path.join(own, "hook"), "#!/bin/sh\necho 2\n", 0o755)
    st = os.stat(own)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
    assert module.warnings == ["%s, a directory the collection created, was owned by 65534:65534, not root's: "
                               "put back to root:root, mode 755" % own]
    assert _files.own_dirs_drift() == []
    # group write alone is drift too
    os.chmod(own, 0o775)
    assert _files.own_dirs_drift() == [(own, "writable by group or others (mode 775)")]
    os.chmod(own, 0o755)
    # not the collection's: refused as before, nothing changed
    theirs = tmp_path / "netsvc-theirs"
    theirs.mkdir()
    os.chown(str(theirs), 65534, 65534)
    with pytest.raises(UnsafePath, match="owned by uid 65534"):
        FileSet(WarningModule()).want(str(theirs / "hook"), "x")
    assert os.stat(str(theirs)).st_uid == 65534


@AS_ROOT
def test_own_directories_are_not_corrected_from_a_ledger_root_cannot_trust(tmp_path):
    own = str(tmp_path / "netsvc-hooks")
    files = FileSet(WarningModule())
    files.want(os.path.join(own, "hook"), "#!/bin/sh\n", 0o755)
    files.apply()
    files.record()
    os.chown(own, 65534, 65534)
    os.chown(_files.LEDGER, 65534, 65534)  # its owner could have listed any directory
    assert _files.own_dirs_drift() == []
    with pytest.raises(UnsafePath):
        FileSet(WarningModule()).want(os.path.join(own, "hook"), "x")
    assert os.stat(own).st_uid == 65534
