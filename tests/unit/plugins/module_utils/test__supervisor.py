# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervisord's configuration read as supervisord reads it, edited key by key, put back byte for byte."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _supervisor

APPS = """; apps of this host
[program:migrate]
command=/usr/local/bin/migrate --all   ; runs once
user=root
autorestart=false

[program:web]
command = /usr/bin/python3 -m http.server 9500
user=nobody
directory=/srv/web
environment=A="1",B="two words"
umask=077
stdout_logfile=/var/log/web.log
    ; an indented comment inside the section

# the next program
[group:site]
programs=web,api
"""


def supervisord_reads(*texts):
    """What supervisord's own parser (RawConfigParser, inline ; and # comments, not strict) gets."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    for i, text in enumerate(texts):
        parser.read_string(text, source="f%d" % i)
    return {s: dict(parser.items(s)) for s in parser.sections()}


def test_values_are_read_as_supervisord_reads_them():
    mine = _supervisor.values(APPS, "program:web")
    theirs = supervisord_reads(APPS)["program:web"]
    assert mine == theirs
    assert _supervisor.values(APPS, "program:migrate")["command"] == "/usr/local/bin/migrate --all"
    assert _supervisor.values(APPS, "program:nope") == {}


def test_an_edit_changes_only_the_keys_of_that_section():
    edited = _supervisor.edit(APPS, "program:web",
                              {"command": "/h --unit web 9500 -- /usr/bin/python3 -m http.server 9500",
                               "user": None, "autorestart": "true", "killasgroup": "true"})
    before, after = APPS.splitlines(True), edited.splitlines(True)
    changed = [x for x in before if x not in after]
    assert changed == ["command = /usr/bin/python3 -m http.server 9500\n", "user=nobody\n"]
    assert [x for x in after if x not in before] == [
        "command=/h --unit web 9500 -- /usr/bin/python3 -m http.server 9500\n", "autorestart=true\n",
        "killasgroup=true\n"]
    got = supervisord_reads(edited)
    assert got["program:migrate"] == supervisord_reads(APPS)["program:migrate"]   # user=root stays migrate's
    assert "user" not in got["program:web"] and got["program:web"]["umask"] == "077"
    assert got["program:web"]["environment"] == 'A="1",B="two words"'
    # the new keys follow the section's last key, before its trailing comment and the next section
    assert after.index("killasgroup=true\n") < after.index("    ; an indented comment inside the section\n")


def test_continuation_lines_go_with_their_key():
    text = "[program:w]\ncommand=/bin/a\n  --flag\nuser=x\n"
    assert _supervisor.values(text, "program:w")["command"] == "/bin/a\n--flag"
    assert _supervisor.edit(text, "program:w", {"command": "/bin/b"}) == "[program:w]\ncommand=/bin/b\nuser=x\n"


def test_restore_puts_one_section_back_byte_for_byte_and_leaves_the_others():
    web = _supervisor.edit(APPS, "program:web", {"command": "/h -- x", "user": None, "killasgroup": "true"})
    both = _supervisor.edit(web, "program:migrate", {"autorestart": "true"})
    back = _supervisor.restore(both, APPS, "program:web")
    assert _supervisor.values(back, "program:web") == _supervisor.values(APPS, "program:web")
    assert _supervisor.values(back, "program:migrate")["autorestart"] == "true"       # still hardened
    assert _supervisor.restore(back, APPS, "program:migrate") == APPS  # and now the file is the original


def test_includes_are_found_as_supervisord_finds_them(tmp_path):
    main = tmp_path / "supervisord.conf"
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("[program:web]\nuser=nobody\n")
    (tmp_path / "conf.d" / "a.conf").write_text("[program:web]\ncommand=/bin/web\nuser=root\n")
    (tmp_path / "conf.d" / "ignored.ini").write_text("[program:web]\ncommand=/bin/other\n")
    main.write_text("[supervisord]\n[include]\nfiles = conf.d/*.conf  ; relative to this file\n")

    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except IOError:
            return None

    order = _supervisor.read_order(str(main), read)
    assert order == [str(main), str(tmp_path / "conf.d" / "a.conf"), str(tmp_path / "conf.d" / "b.conf")]
    files = [(p, read(p)) for p in order]
    assert _supervisor.program_sections(files, "web") == order[1:]
    # merged as supervisord merges them: the later file's user= wins
    assert _supervisor.effective(files, "web") == {"command": "/bin/web", "user": "nobody"}
    assert _supervisor.group_of([("x", APPS)], "web") == "site"
    assert _supervisor.group_of([("x", APPS)], "migrate") == "migrate"


def test_a_wrapped_command_is_never_wrapped_twice():
    hook = "/usr/lib/netsvc-resilience/netsvc-sockclean"
    wrapped = "%s --unit web --user 65534:65534 9500 -- /usr/bin/web -p 9500" % hook
    assert _supervisor.wrapped_command(wrapped, hook) == "/usr/bin/web -p 9500"
    assert _supervisor.wrapped_command("/usr/bin/web -- x", hook) == "/usr/bin/web -- x"


def test_a_missing_section_cannot_get_keys():
    with pytest.raises(_supervisor.SupervisorError):
        _supervisor.edit("[program:a]\n", "program:b", {"x": "1"})
