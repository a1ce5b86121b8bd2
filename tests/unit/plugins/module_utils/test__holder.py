# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The holder's arguments: specs mirrored from live listeners, its restart limit, its refusals,
and the command that carries them read back by the one parser of a wrapped command."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _holder, _supervisor, _unit

V4, V6 = socket.AF_INET, socket.AF_INET6
HOOK = "/usr/lib/netsvc-resilience/netsvc-sockclean"


def lst(family, address, port, **options):
    return {"family": family, "address": address, "port": port, "options": options or None}


def test_specs_mirror_address_family_and_the_options_that_decide_who_reaches_the_socket():
    assert _holder.specs([lst(V4, "127.0.0.1", 9600, reuse_addr=False)], 4096) == ["127.0.0.1:9600,backlog=4096"]
    got = _holder.specs([lst(V6, "::", 80, v6only=False, reuse_port=True, mark=7),
                         lst(V4, "10.0.0.1", 81, free_bind=True, transparent=True)], 511)
    assert got == ["10.0.0.1:81,backlog=511,freebind,transparent", "[::]:80,backlog=511,dualstack,reuseport,mark=7"]
    # unread options of a v6 wildcard: IPv6-only next to a v4 listener on its port, else dual-stack
    assert _holder.specs([lst(V6, "::", 80), lst(V4, "0.0.0.0", 80)], 16) == [
        "0.0.0.0:80,backlog=16", "[::]:80,backlog=16,v6only"]
    assert _holder.specs([lst(V6, "::", 80)], 16) == ["[::]:80,backlog=16,dualstack"]
    assert _holder.specs([lst(V6, "::1", 80)], 16) == ["[::1]:80,backlog=16"]


def test_a_device_bound_listener_is_refused_with_what_to_use():
    with pytest.raises(_unit.UnitError, match="SO_BINDTODEVICE.*use systemd"):
        _holder.specs([lst(V4, "0.0.0.0", 80, bind_to_device="eth1")], 16)


def test_listeners_whose_options_were_not_read_are_named():
    assert _holder.unread([lst(V4, "127.0.0.1", 80), lst(V6, "::", 80, v6only=True)]) == ["127.0.0.1:80"]
    assert _holder.unread([lst(V4, "0.0.0.0", 80, reuse_port=False)]) == []


def test_a_kept_spec_takes_a_changed_backlog():
    assert _holder.with_backlog("[::]:80,backlog=16,v6only", 4096) == "[::]:80,backlog=4096,v6only"
    assert _holder.spec_port("[::1]:8080,backlog=1") == 8080


def test_restart_limit_from_the_policy():
    assert _holder.restarts(20, "10s") == "20/10"
    assert _holder.restarts(5, "1min") == "5/60"
    for burst, interval in ((0, "10s"), (65, "10s"), (5, "0")):
        with pytest.raises(_unit.UnitError, match="1-64 times"):
            _holder.restarts(burst, interval)


@pytest.mark.parametrize("mode,hook,ports,fds,machine,expected", [
    ("none", None, [], False, "x86_64", None),
    ("preload", HOOK, [80], False, "x86_64", None),
    ("native", HOOK, [80], True, "aarch64", None),
    ("preload", None, [80], False, "x86_64", "needs ports and the cleanup hook"),
    ("preload", HOOK, [], False, "x86_64", "needs ports and the cleanup hook"),
    ("preload", HOOK, [80], False, "ppc64le", "holder is native.*ppc64le"),
    ("native", HOOK, [80], False, "x86_64", "needs accepts_inherited_fds=true"),
])
def test_refusals_before_anything_is_read(mode, hook, ports, fds, machine, expected):
    why = _holder.refusal("web", mode, hook, ports, fds, machine)
    if expected is None:
        assert why is None
    else:
        assert why and __import__("re").search(expected, why) and "web" in why


def test_the_command_carries_the_holder_and_reads_back_through_one_parser():
    hold = dict(restarts="20/10", listen=["127.0.0.1:9600,backlog=4096", "[::1]:9600,backlog=4096"],
                preload="/usr/lib/netsvc-resilience/libnetsvc-preload.so")
    ids = (65534, 65534, [])
    cmd = _supervisor.supervisor_command("web", "/usr/bin/web -p 9600", HOOK, ["127.0.0.1:9600"], ids, hold)
    assert cmd == ("%s --unit web --user 65534:65534 --hold --restarts 20/10 --listen 127.0.0.1:9600,backlog=4096 "
                   "--listen [::1]:9600,backlog=4096 --preload /usr/lib/netsvc-resilience/libnetsvc-preload.so "
                   "127.0.0.1:9600 -- /usr/bin/web -p 9600" % HOOK)
    words = _supervisor.hook_words(cmd)
    assert words["hold"] and words["listen"] == hold["listen"] and words["preload"] == hold["preload"]
    assert words["targets"] == ["127.0.0.1:9600"] and words["restarts"] == "20/10" and words["user"] == "65534:65534"
    assert _supervisor.wrapped_targets(cmd) == ["127.0.0.1:9600"]
    assert _supervisor.wrapped_command(cmd, HOOK) == "/usr/bin/web -p 9600"
    # restart only: no sockets held
    plain = _supervisor.supervisor_command("web", "/usr/bin/web", HOOK, [9600], None, dict(restarts="5/60"))
    assert plain == "%s --unit web --hold --restarts 5/60 9600 -- /usr/bin/web" % HOOK
    assert _supervisor.hook_words("/usr/bin/web -- x") is None


def test_the_server_of_a_held_program_is_the_holders_child(tmp_path):
    proc = tmp_path / "proc"
    for pid, ppid, exe in ((10, 1, "/usr/lib/netsvc-resilience/netsvc-sockclean"), (11, 10, "/usr/bin/python3"),
                           (12, 11, "/usr/bin/python3"), (20, 1, "/usr/bin/web")):
        d = proc / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text("%d (x) S %d 0 0\n" % (pid, ppid))
        os.symlink(exe, str(d / "exe"))
    assert _holder.server_pid(10, str(proc)) == 11
    assert _holder.server_pid(20, str(proc)) == 20  # not held: the program's process is the server
    assert _holder.server_pid(0, str(proc)) == 0
    os.remove(str(proc / "11" / "stat"))
    (proc / "12" / "stat").write_text("12 (x) S 1 0 0\n")
    assert _holder.server_pid(10, str(proc)) == 0  # between a crash and the restart


class _St(object):
    def __init__(self, uid=0, mode=0o100644):
        self.st_uid, self.st_mode = uid, mode


def test_the_record_is_trusted_only_as_root_wrote_it():
    text = "version=1\nunit=web\nholder=40\nchild=41\nstarts=3\nstate=running\nlast=signal 9\n"
    got = _holder.record("web", "/run/x", lambda p: _St(), lambda p: text)
    assert got["holder"] == "40" and got["last"] == "signal 9" and got["starts"] == "3"
    assert "not trusted" in _holder.record("web", "/run/x", lambda p: _St(uid=65534), lambda p: text)["problem"]
    assert "not trusted" in _holder.record("web", "/run/x", lambda p: _St(mode=0o100666), lambda p: text)["problem"]
    assert "not trusted" in _holder.record("web", "/run/x", lambda p: _St(mode=0o120777), lambda p: text)["problem"]

    def missing(_p):
        raise OSError(2, "no")

    assert _holder.record("web", "/run/x", missing) == {}


def test_the_audit_row_of_a_held_program():
    held = "%s --unit web --hold --restarts 20/10 --listen 127.0.0.1:80,backlog=8 80 -- /usr/bin/web" % HOOK
    rec = {"holder": "40", "child": "41", "starts": "3", "state": "running", "last": "signal 9"}
    check, level, detail = _holder.audit_row(held, rec, 40)
    assert (check, level) == ("holder", "pass") and "owns 127.0.0.1:80" in detail and "after signal 9" in detail
    assert _holder.audit_row(held, rec, 77)[1] == "fail"  # another process is the program now
    assert _holder.audit_row(held, {}, 40)[1] == "warn"
    assert _holder.audit_row(held, {"problem": "x is not a root-only regular file"}, 40)[1] == "fail"
    restart_only = "%s --unit web --hold --restarts 20/10 80 -- /usr/bin/web" % HOOK
    assert "restarts only" in _holder.audit_row(restart_only, rec, 40)[2]
    assert _holder.audit_row("%s --unit web 80 -- /usr/bin/web" % HOOK, rec, 40) is None
    assert _holder.audit_row("/usr/bin/web", rec, 40) is None


def test_which_programs_preload_the_library():
    lib = "/usr/lib/netsvc-resilience/libnetsvc-preload.so"
    a = "[program:a]\ncommand=%s --unit a --hold --restarts 20/10 --listen 0.0.0.0:80 --preload %s 80 -- /bin/a\n" % (
        HOOK, lib)
    b = "[program:b]\ncommand=%s --unit b --hold --restarts 20/10 81 -- /bin/b\n[program:c]\ncommand=/bin/c\n" % HOOK
    assert _holder.preloading([("/x/a.conf", a), ("/x/b.conf", b)], lib) == ["a"]
    assert _holder.preloading([("/x/b.conf", b)], lib) == []
    assert _holder.preloading([("/x/a.conf", a)], "/other/lib.so") == []
