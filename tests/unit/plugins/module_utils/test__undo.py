# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Undo's decisions, three-way: the original, what the collection wrote, what is there now."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _undo
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _files, _supervisor

ORIGINAL = b"[program:web]\ncommand=/usr/bin/web\nuser=nobody\n"
OURS = b"[program:web]\ncommand=/usr/bin/web\nautorestart=true\nkillasgroup=true\nuser=nobody\n"


def entry(created, written):
    return {"created": created, "original": None if created else "/x", "written": _files.digest(written)
            if written is not None else None}


def test_a_created_file_unchanged_since_is_removed():
    assert _undo.file_decision("/etc/a", entry(True, b"ours"), b"ours", None, None) == (None, None, [])


def test_a_created_file_changed_since_is_left_and_named():
    content, note, _gone = _undo.file_decision("/etc/a", entry(True, b"ours"), b"admin", None, None)
    assert content is _undo.KEEP and "/etc/a was changed since" in note


def test_an_edited_file_unchanged_since_gets_its_original_back():
    assert _undo.file_decision("/etc/b", entry(False, b"ours"), b"ours", b"orig", b"ours") == (b"orig", None, [])


def test_an_edited_file_changed_since_is_left_unless_supervisord_s():
    content, note, _gone = _undo.file_decision("/etc/b", entry(False, b"ours"), b"admin", b"orig", b"ours")
    assert content is _undo.KEEP and "its original is kept in /x" in note


def test_a_ledger_from_before_1_1_restores_as_it_did():
    assert _undo.file_decision("/etc/b", {"created": False, "original": "/x"}, b"any", b"orig", None) \
        == (b"orig", None, [])


def test_a_file_the_collection_removed_and_an_admin_wrote_again_stays():
    content, note, _gone = _undo.file_decision("/etc/b", entry(False, None), b"new", b"orig", None)
    assert content is _undo.KEEP and note


def test_a_supervisord_file_keeps_a_program_the_admin_added():
    now = OURS + b"\n[program:billing]\ncommand=/usr/bin/billing\n"
    content, note, _gone = _undo.file_decision("/etc/supervisor/conf.d/all.conf", entry(False, OURS), now,
                                               ORIGINAL, OURS)
    assert content == ORIGINAL + b"\n[program:billing]\ncommand=/usr/bin/billing\n" and note is None


def test_a_supervisord_key_the_admin_changed_stays_and_is_named():
    now = OURS.replace(b"killasgroup=true", b"killasgroup=false")
    text, kept, _gone = _supervisor.unmerge(now.decode(), OURS.decode(), ORIGINAL.decode())
    assert "killasgroup=false" in text and "autorestart" not in text and kept == [("program:web", "killasgroup")]


def test_a_program_section_the_collection_added_goes_when_still_its_own():
    ours = "[program:a]\ncommand=x\n\n[program:new]\ncommand=y\nautorestart=true\n"
    text, kept, _gone = _supervisor.unmerge(ours + "[program:b]\ncommand=z\n", ours, "[program:a]\ncommand=x\n\n")
    assert text == "[program:a]\ncommand=x\n\n[program:b]\ncommand=z\n" and kept == []


def test_sysctl_back_only_where_it_still_holds_what_the_collection_set():
    assert _undo.sysctl_decision("net.core.somaxconn", "4096", "8192", "8192") == ("4096", None)
    value, note = _undo.sysctl_decision("net.ipv4.tcp_fin_timeout", "60", "15", "33")
    assert value is None and "is 33, not the 15 the collection set" in note and "it was 60 before" in note
    assert _undo.sysctl_decision("net.core.somaxconn", "4096", "8192", "4096") == (None, None)  # back already
    assert _undo.sysctl_decision("net.core.somaxconn", "4096", None, "8192") == ("4096", None)  # 1.0 ledger


def test_ledger_entries_only_where_the_collection_writes():
    ok = ["/etc/systemd/system/web.service.d/50-netsvc-resilience.conf", "/etc/systemd/system/web.socket",
          "/etc/sysctl.d/90-netsvc-resilience.conf", "/usr/lib/netsvc-resilience/netsvc-sockclean",
          "/etc/supervisor/conf.d/web.conf", "/etc/supervisord.d/web.ini"]
    for path in ok:
        assert _files.entry_problem(path) is None, path
    for path in ("/etc/shadow", "/root/.ssh/authorized_keys", "/etc/systemd/system/../../shadow", "relative",
                 "/usr/bin/python3", "/etc/netsvc"):
        assert _files.entry_problem(path), path


MAIN = "/etc/supervisor/supervisord.conf"


def _fake_supervisor(files):
    def read(path):
        return files.get(path)
    return read


def test_a_program_section_an_admin_moved_to_another_file_gets_only_the_collections_keys_back_there():
    ours, original = OURS.decode(), ORIGINAL.decode()
    moved = ours.replace("[program:web]", "[program:web]\n; moved here by the admin")
    files = {"/etc/supervisor/supervisord.conf": "[include]\nfiles = conf.d/*.conf\n",
             "/etc/supervisor/conf.d/all.conf": "[program:other]\ncommand=/bin/true\n",
             "/etc/supervisor/conf.d/web.conf": moved}
    read = _fake_supervisor(files)
    # the old file: the section is gone from it, nothing else to do there
    text, kept, gone = _supervisor.unmerge(files["/etc/supervisor/conf.d/all.conf"], ours, original)
    assert gone == ["program:web"] and kept == [] and text == files["/etc/supervisor/conf.d/all.conf"]

    def expand(pattern):
        return sorted(p for p in files if p.startswith(pattern.split("*")[0]))

    dest, new, note = _undo.moved_section("/etc/supervisor/conf.d/all.conf", "program:web", ours, original,
                                          {"/etc/supervisor/conf.d/all.conf": {}}, MAIN, read, expand)
    assert dest == "/etc/supervisor/conf.d/web.conf"
    assert _supervisor.values(new, "program:web") == _supervisor.values(original, "program:web")
    assert "; moved here by the admin" in new and "put back there" in note
    # an admin's own value in the moved section stays, and is named
    files["/etc/supervisor/conf.d/web.conf"] = moved.replace("killasgroup=true", "killasgroup=false")
    dest, new, note = _undo.moved_section("/etc/supervisor/conf.d/all.conf", "program:web", ours, original,
                                          {}, MAIN, read, expand)
    assert "killasgroup=false" in new and note.endswith("left as they are now: killasgroup")
    # moved into another file of the ledger, or removed: left as it is, named
    assert _undo.moved_section("/etc/supervisor/conf.d/all.conf", "program:web", ours, original,
                               {"/etc/supervisor/conf.d/web.conf": {}}, MAIN, read, expand)[:2] == (None, None)
    del files["/etc/supervisor/conf.d/web.conf"]
    dest, new, note = _undo.moved_section("/etc/supervisor/conf.d/all.conf", "program:web", ours, original, {},
                                          MAIN, read, expand)
    assert (dest, new) == (None, None) and "is gone from /etc/supervisor/conf.d/all.conf" in note
