# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import stat

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _elf, _preload
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._unit import UnitError

TOP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
NATIVE = os.path.join(TOP, "files", "native")


def v4(addr, port, inode=1):
    return {"family": socket.AF_INET, "address": addr, "port": port, "inode": inode}


def v6(addr, port, inode=2):
    return {"family": socket.AF_INET6, "address": addr, "port": port, "inode": inode}


@pytest.mark.parametrize("value,mode", [(False, "none"), (None, "none"), ("none", "none"), (True, "native"),
                                        ("native", "native"), ("preload", "preload")])
def test_normalize_mode_keeps_true_as_native(value, mode):
    assert _preload.normalize_mode(value) == mode


def test_normalize_mode_refuses_anything_else():
    with pytest.raises(UnitError, match="'maybe'"):
        _preload.normalize_mode("maybe")


def test_mirror_what_the_server_listens_on():
    # nginx's default: 0.0.0.0:80 and [::]:80 bound separately - the v6 one is IPv6-only
    assert _preload.mirror([v4("0.0.0.0", 80), v6("::", 80)]) == (["0.0.0.0:80", "[::]:80"], "ipv6-only")
    # a v6 wildcard alone is dual-stack, as a server gets by default
    assert _preload.mirror([v6("::", 8080)]) == (["[::]:8080"], "both")
    assert _preload.mirror([v4("127.0.0.1", 9000)]) == (["127.0.0.1:9000"], None)
    assert _preload.mirror([v6("::1", 9000)]) == (["[::1]:9000"], None)
    with pytest.raises(UnitError, match="BindIPv6Only= is per unit"):
        _preload.mirror([v4("0.0.0.0", 80), v6("::", 80), v6("::", 8080, 3)])


def test_render_socket_unit():
    text = _preload.render_socket("nginx.service", ["0.0.0.0:80", "[::]:80"], "ipv6-only", 4096,
                                  "-/usr/lib/x/netsvc-sockclean --unit %n 80")
    for line in ("ListenStream=0.0.0.0:80\n", "ListenStream=[::]:80\n", "BindIPv6Only=ipv6-only\n", "Accept=no\n",
                 "Backlog=4096\n", "Service=nginx.service\n",
                 "ExecStartPre=-/usr/lib/x/netsvc-sockclean --unit %n 80\n"):
        assert line in text
    assert text.startswith("# " + _preload.HEADER)


def test_ld_preload_is_appended_never_replaced():
    lib = "/usr/lib/netsvc-resilience/libnetsvc-preload.so"
    assert _preload.ld_preload("", lib) == lib
    assert _preload.ld_preload("LANG=C LD_PRELOAD=/usr/lib/libjemalloc.so.2", lib) == "/usr/lib/libjemalloc.so.2:" + lib
    assert _preload.ld_preload('"LD_PRELOAD=/a.so /b.so" X=1', lib) == "/a.so:/b.so:" + lib
    # idempotent: a unit that already has it keeps one copy
    assert _preload.ld_preload("LD_PRELOAD=/a.so:" + lib, lib) == "/a.so:" + lib
    unit, service = _preload.service_directives("nginx.socket", lib, 4096)
    assert unit == {"Requires": "nginx.socket", "After": "nginx.socket"}
    assert service["Sockets"] == "nginx.socket"
    assert service["Environment"] == ['"LD_PRELOAD=%s"' % lib, '"NETSVC_PRELOAD_BACKLOG=4096"']


def test_exec_path_and_foreign_listeners():
    show = "{ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx -g daemon on; ; ignore_errors=no ; start_time=[n/a] }"
    assert _preload.exec_path(show) == "/usr/sbin/nginx"
    assert _preload.exec_path("") is None
    listeners = [v4("0.0.0.0", 80, 10), v4("0.0.0.0", 81, 11), v4("0.0.0.0", 82, 12)]
    owners = {10: [{"pid": 1, "command": "systemd"}, {"pid": 55, "command": "nginx"}],
              11: [{"pid": 55, "command": "nginx"}],
              12: [{"pid": 77, "command": "apache2"}]}
    foreign = _preload.foreign_listeners(listeners, owners, {55})
    assert [(x["port"], [o["command"] for o in who]) for x, who in foreign] == [(82, ["apache2"])]


class St(object):
    def __init__(self, mode):
        self.st_mode = mode


def fake_programs(files):
    """(lstat, read_head) over ``files`` {path: (st_mode, bytes)}, as executable_refusal takes them."""
    def lstat(path):
        if path not in files:
            raise OSError(2, "No such file")
        return St(files[path][0])

    def read(path):
        return files[path][1]

    return lstat, read


def test_executable_refusals(tmp_path):
    dynamic = b""
    if os.path.exists("/bin/ls"):
        with open("/bin/ls", "rb") as f:
            dynamic = f.read()
    with open(os.path.join(NATIVE, "x86_64", "netsvc-sockclean"), "rb") as f:
        static = f.read()
    files = {
        "/usr/sbin/nginx": (stat.S_IFREG | 0o755, dynamic),
        "/usr/bin/su": (stat.S_IFREG | 0o4755, b""),
        "/usr/local/bin/app.py": (stat.S_IFREG | 0o755, b"#!/usr/sbin/nginx -x\nprint(1)\n"),
        "/usr/local/bin/static": (stat.S_IFREG | 0o755, static),
        "/etc": (stat.S_IFDIR | 0o755, b""),
        "/usr/local/bin/text": (stat.S_IFREG | 0o755, b"hello"),
    }

    lstat, read = fake_programs(files)

    if files["/usr/sbin/nginx"][1]:
        assert _preload.executable_refusal("/usr/sbin/nginx", read, lstat) is None
        assert _preload.executable_refusal("/usr/local/bin/app.py", read, lstat) is None  # judged by its interpreter
    assert "setuid/setgid" in _preload.executable_refusal("/usr/bin/su", read, lstat)
    assert "statically linked" in _preload.executable_refusal("/usr/local/bin/static", read, lstat)
    assert "does not exist" in _preload.executable_refusal("/nope", read, lstat)
    assert "not a regular file" in _preload.executable_refusal("/etc", read, lstat)
    assert "not an ELF file" in _preload.executable_refusal("/usr/local/bin/text", read, lstat)
    assert "cannot be resolved" in _preload.executable_refusal("nginx", read, lstat)


def test_secure_execution_and_env_wrappers_are_refused_by_what_they_run():
    """Issue 34: a python3 copy with cap_net_bind_service+ep was switched and rolled back with no
    reason given; `#!/usr/bin/env NAME` is judged by NAME; a static program behind env refuses."""
    with open(os.path.join(NATIVE, "x86_64", "netsvc-sockclean"), "rb") as f:
        static = f.read()
    dynamic = b"\x7fELF" + b"\0" * 60  # never inspected: the capability refuses first
    files = {
        "/usr/local/bin/cap-python3": (stat.S_IFREG | 0o755, dynamic),
        "/usr/local/bin/app": (stat.S_IFREG | 0o755, b"#!/usr/bin/env -S gostatic --flag\n"),
        "/usr/bin/env": (stat.S_IFREG | 0o755, dynamic),
        "/usr/local/bin/gostatic": (stat.S_IFREG | 0o755, static),
        "/usr/local/bin/bare": (stat.S_IFREG | 0o755, b"#!/usr/bin/env\n"),
        "/usr/local/bin/capped": (stat.S_IFREG | 0o755, b"#!/usr/bin/env cap-python3\n"),
    }

    lstat, read = fake_programs(files)

    def getxattr(path, name):
        assert name == "security.capability"
        if path == "/usr/local/bin/cap-python3":
            return b"\x01\x00\x00\x02\x00\x04\x00\x00"
        raise OSError(61, "No data available")

    why = _preload.executable_refusal("/usr/local/bin/cap-python3", read, lstat, getxattr)
    assert why.startswith("/usr/local/bin/cap-python3 has file capabilities") and "AT_SECURE" in why
    assert _preload.executable_refusal("/usr/local/bin/capped", read, lstat, getxattr).startswith(
        "/usr/local/bin/cap-python3 has file capabilities")
    assert "statically linked" in _preload.executable_refusal("/usr/local/bin/app", read, lstat, getxattr)
    assert "runs env without a program" in _preload.executable_refusal("/usr/local/bin/bare", read, lstat, getxattr)


def _auxv(*pairs):
    import struct

    return b"".join(struct.pack("@LL", k, v) for k, v in pairs + ((0, 0),))


def test_at_secure_is_read_from_the_auxiliary_vector():
    assert _preload.secure_execution(_auxv((6, 4096), (23, 1), (25, 12345))) == 1
    assert _preload.secure_execution(_auxv((6, 4096), (23, 0))) == 0
    assert _preload.secure_execution(_auxv((6, 4096))) is None
    assert _preload.secure_execution(b"") is None
    assert _preload.secure_execution(_auxv((6, 4096))[:-3]) is None  # truncated: no crash


def test_the_running_process_is_judged_by_its_auxv_and_the_program_it_runs_now():
    with open(os.path.join(NATIVE, "x86_64", "netsvc-sockclean"), "rb") as f:
        static = f.read()
    secure = {"/proc/7/auxv": _auxv((23, 1))}
    why = _preload.running_refusal(7, readlink=lambda p: "/usr/bin/python3.11", read=secure.__getitem__)
    assert why.startswith("its running process (pid 7) is in secure-execution mode (AT_SECURE=1")
    # a shell wrapper that exec()ed a static program: judged through /proc/PID/exe
    plain = {"/proc/8/auxv": _auxv((23, 0))}
    why = _preload.running_refusal(8, readlink=lambda p: "/opt/app/server", read=plain.__getitem__,
                                   read_head=lambda p: static, stat_fn=lambda p: St(stat.S_IFREG | 0o755),
                                   getxattr=lambda p, n: None)
    assert why.startswith("its running process (pid 8) runs /opt/app/server, which is statically linked")

    # only what is found in the program refuses: one that cannot be read here is not a reason
    def unreadable(path):
        raise OSError(13, "Permission denied")

    assert _preload.running_refusal(8, readlink=lambda p: "/opt/app/server", read=plain.__getitem__,
                                    read_head=unreadable, stat_fn=lambda p: St(stat.S_IFREG | 0o755),
                                    getxattr=lambda p, n: None) is None

    def gone(path):
        raise OSError(2, "No such process")

    assert _preload.running_refusal(9, readlink=gone, read=gone) is None


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_shipped_preload_library_loads_on_el7_glibc(arch):
    """No symbol version newer than GLIBC_2.17 (EL7), read from the file's .gnu.version_r."""
    with open(os.path.join(NATIVE, arch, _preload.LIBRARY_NAME), "rb") as f:
        info = _elf.inspect(f.read())
    assert info["glibc_versions"], "no GLIBC version needs found: the reader is broken"
    assert max(info["glibc_versions"]) <= (2, 17), info["glibc_versions"]
    assert info["machine"] == {"x86_64": 62, "aarch64": 183}[arch]


def test_the_native_hook_needs_no_libc_at_all():
    for arch in ("x86_64", "aarch64"):
        with open(os.path.join(NATIVE, arch, "netsvc-sockclean"), "rb") as f:
            info = _elf.inspect(f.read())
        assert info["interp"] is None and info["glibc_versions"] == []


def test_elf_refusals_and_junk():
    with pytest.raises(_elf.ElfError):
        _elf.inspect(b"#!/bin/sh\n")
    assert _elf.preload_refusal({"sections": [".go.buildinfo"], "interp": "/lib64/ld-linux-x86-64.so.2"}).startswith(
        "a Go binary")
    assert _elf.preload_refusal({"sections": [".text"], "interp": None}).startswith("statically linked")
    assert _elf.preload_refusal({"sections": [".text"], "interp": "/lib/ld.so"}) is None
