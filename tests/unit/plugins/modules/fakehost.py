# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake host for whole-module tests: a temporary root and a table of command answers.

Every path the collection touches on a host (/etc, /run, /var/lib/netsvc-resilience, the hook
directories, /proc/sys, the unit and sysctl directories) is mapped into a temporary directory,
at the level of the os/open calls, so a module's real main() runs unchanged: its atomic
writes, ownership checks, ledger and put-back all happen on real files under that root.

Commands answer from a table (argv prefix -> (rc, out, err) or a function of argv); any other
command fails the test. ``systemctl`` is answered by FakeSystemd, which behaves as systemd does
where the modules look: ``show`` reports what was loaded at the last ``daemon-reload`` (the
fragment, the drop-ins in systemd's order, the properties they set) and NeedDaemonReload=yes
while the files on disk differ from that.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import builtins
import io
import os
import stat

# host paths mapped into the temporary root (anything else is the real file system)
PREFIXES = ("/etc/", "/run/", "/var/lib/netsvc-resilience", "/usr/lib/netsvc-resilience",
            "/usr/libexec/netsvc-resilience", "/usr/local/libexec/netsvc-resilience", "/proc/sys/",
            "/lib/systemd/", "/usr/lib/systemd/", "/usr/lib/sysctl.d", "/lib/sysctl.d",
            "/usr/local/lib/sysctl.d", "/usr/lib/os-release")
# os functions whose first argument is a path (dir_fd-relative names pass through)
ONE_PATH = ("open", "stat", "lstat", "listdir", "scandir", "mkdir", "rmdir", "unlink", "remove", "chmod",
            "chown", "lchown", "readlink", "access", "utime", "truncate", "listxattr", "getxattr", "setxattr",
            "removexattr")
TWO_PATHS = ("rename", "replace", "link", "symlink")

DEBIAN12 = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'

# what the fake systemd reports for a directive (property name, default)
PROPERTIES = {
    "Restart": ("Restart", "no"),
    "RestartSec": ("RestartUSec", "100ms"),
    "StartLimitBurst": ("StartLimitBurst", "5"),
    "StartLimitIntervalSec": ("StartLimitIntervalUSec", "10s"),
    "KillMode": ("KillMode", "control-group"),
    "TimeoutStopSec": ("TimeoutStopUSec", "1min 30s"),
    "LimitNOFILE": ("LimitNOFILE", "524288"),
    "OOMPolicy": ("OOMPolicy", "stop"),
    "RestartSteps": ("RestartSteps", "0"),
    "RestartMaxDelaySec": ("RestartMaxDelayUSec", "infinity"),
    "FileDescriptorStoreMax": ("FileDescriptorStoreMax", "0"),
    "PermissionsStartOnly": ("PermissionsStartOnly", "no"),
}
LISTS = ("OnFailure", "ExecStartPre", "ExecStartPost", "ExecStart", "Environment")


class CommandNotInTable(AssertionError):
    pass


class FakeHost(object):
    """The temporary root, the command table and what ran; see the module docstring."""

    def __init__(self, root, monkeypatch, keep=()):
        self.root = str(root)
        self.keep = (self.root,) + tuple(keep)  # real directories under a mapped prefix (the tests' own)
        self.overlays = set()  # single host paths outside the prefixes, answered from the root too
        self.commands = []  # (prefix tuple, answer)
        self.ran = []
        self.systemd = FakeSystemd(self)
        self._patch(monkeypatch)
        self.write("/etc/os-release", DEBIAN12)
        for directory in ("/etc/systemd/system", "/run/systemd/system", "/etc/sysctl.d", "/proc/sys/net/core",
                          "/proc/sys/net/ipv4", "/var/lib", "/usr/lib", "/usr/libexec", "/usr/local/libexec",
                          "/usr/local/lib"):
            os.makedirs(self.root + directory, 0o755, exist_ok=True)

    # ---------------------------------------------------------------- paths
    def real(self, path):
        """The file under the temporary root that stands for host ``path``."""
        if isinstance(path, bytes):
            return self.real(path.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        if isinstance(path, str) and path in self.overlays:
            return self.root + path
        if isinstance(path, str) and path.startswith(PREFIXES) and not path.startswith(self.keep) \
                and not self.root.startswith(path.rstrip("/") + "/"):  # the root's own parents stay real
            return self.root + path
        return path

    def _patch(self, monkeypatch):
        real_open = builtins.open

        def mapped(fn):
            def call(path, *a, **k):
                return fn(self.real(path) if isinstance(path, (str, bytes)) else path, *a, **k)
            return call

        def mapped2(fn):
            def call(src, dst, *a, **k):
                return fn(self.real(src), self.real(dst), *a, **k)
            return call

        for name in ONE_PATH:
            monkeypatch.setattr(os, name, mapped(getattr(os, name)))
        for name in TWO_PATHS:
            monkeypatch.setattr(os, name, mapped2(getattr(os, name)))
        monkeypatch.setattr(builtins, "open", mapped(real_open))
        monkeypatch.setattr(io, "open", mapped(real_open))
        # functions that took os.lstat as a default argument before it was mapped
        from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _host_state, _sockdiag

        monkeypatch.setattr(_sockdiag.unsafe_dir, "__defaults__", (os.lstat,))
        monkeypatch.setattr(_host_state.ownership_drift, "__defaults__", (os.lstat,))

    # ---------------------------------------------------------------- files
    def write(self, path, text, mode=0o644):
        real = self.real(path)
        os.makedirs(os.path.dirname(real), 0o755, exist_ok=True)
        with open(real, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.chmod(real, mode)

    def overlay(self, path, text):
        """Answer ``path`` (say /proc/PID/cgroup) from the root although it is outside the prefixes."""
        self.overlays.add(path)
        self.write(path, text)

    def read(self, path):
        try:
            with open(self.real(path), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (IOError, OSError):
            return None

    def tree(self):
        """{host path: (bytes, mode, uid)} of every file under the root: what a put-back must keep."""
        out = {}
        for top, _dirs, files in os.walk(self.root):
            for name in files:
                real = os.path.join(top, name)
                st = os.lstat(real)
                with open(real, "rb") as f:
                    out[real[len(self.root):]] = (f.read(), stat.S_IMODE(st.st_mode), st.st_uid)
        return out

    # ---------------------------------------------------------------- commands
    def answer(self, prefix, reply):
        """Answer commands starting with ``prefix`` (argv words, the tool by its base name)."""
        self.commands.insert(0, (tuple(prefix), reply))

    def run_command(self, argv):
        argv = [str(a) for a in argv]
        self.ran.append(argv)
        words = [os.path.basename(argv[0])] + argv[1:]
        for prefix, reply in self.commands:
            if tuple(words[:len(prefix)]) == prefix:
                return reply(words) if callable(reply) else reply
        if words[0] == "systemctl":
            return self.systemd.systemctl(words[1:])
        raise CommandNotInTable("the fake host has no answer for %s" % argv)

    def count(self, *prefix):
        return sum(1 for argv in self.ran if [os.path.basename(argv[0])] + argv[1:len(prefix)] == list(prefix))


class FakeSystemd(object):
    """systemctl as the modules use it, from the unit files under the fake root."""

    UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")

    def __init__(self, host):
        self.host = host
        self.version = 252
        self.loaded = {}  # unit -> {path: text} as of the last daemon-reload
        self.reload_rc = 0
        self.main_pid = {}
        self.restarts = {}

    def add_unit(self, name, text):
        self.host.write("/lib/systemd/system/" + name, text)
        self.daemon_reload()

    def files(self, unit):
        """The unit's fragment and drop-ins on disk, in systemd's order."""
        fragment = next((d + "/" + unit for d in self.UNIT_DIRS if os.path.isfile(self.host.real(d + "/" + unit))),
                        None)
        dropins = {}
        for d in reversed(self.UNIT_DIRS):  # a name in an earlier directory hides the same name in a later one
            real = self.host.real(d + "/" + unit + ".d")
            if os.path.isdir(real):
                dropins.update({n: d + "/" + unit + ".d/" + n for n in os.listdir(real) if n.endswith(".conf")})
        paths = ([fragment] if fragment else []) + [dropins[n] for n in sorted(dropins)]
        return {p: self.host.read(p) for p in paths}

    def daemon_reload(self):
        if self.reload_rc == 0:
            self.loaded = {}
            for d in self.UNIT_DIRS:
                real = self.host.real(d)
                if os.path.isdir(real):
                    for name in os.listdir(real):
                        if not name.endswith(".d") and name not in self.loaded:
                            self.loaded[name] = self.files(name)
        return (self.reload_rc, "", "" if self.reload_rc == 0 else "Failure to reload daemon: Access denied")

    def properties(self, unit):
        files = self.loaded.get(unit)
        if files is None:
            return {"LoadState": "not-found", "ActiveState": "inactive", "FragmentPath": "", "DropInPaths": ""}
        paths = list(files)
        props = dict(PROPERTIES.values())
        lists = {name: [] for name in LISTS}
        specifiers = {"%n": unit, "%N": unit.rsplit(".", 1)[0], "%p": unit.split("@")[0].rsplit(".", 1)[0],
                      "%i": unit.split("@", 1)[1].rsplit(".", 1)[0] if "@" in unit else "", "%%": "%"}
        for path in paths:
            text = files[path] or ""
            for spec, value in specifiers.items():
                text = text.replace(spec, value)
            for raw in text.splitlines():
                key, sep, value = raw.strip().partition("=")
                key, value = key.strip(), value.strip()
                if not sep or key.startswith(("#", ";", "[")):
                    continue
                if key in PROPERTIES:
                    props[PROPERTIES[key][0]] = value
                elif key in LISTS:
                    lists[key] = [] if value == "" else lists[key] + [value]
        props.update(OnFailure=" ".join(w for v in lists["OnFailure"] for w in v.split()),
                     ExecStartPre=" ".join(exec_entry(v, False) for v in lists["ExecStartPre"]),
                     ExecStartPreEx=" ".join(exec_entry(v, True) for v in lists["ExecStartPre"]),
                     ExecStart=" ".join(exec_entry(v, False) for v in lists["ExecStart"]),
                     Environment=" ".join(lists["Environment"]),
                     LoadState="loaded", ActiveState="active", SubState="running",
                     NRestarts=str(self.restarts.get(unit, 0)),
                     MainPID=str(self.main_pid.get(unit, 0)), FragmentPath=paths[0] if paths else "",
                     DropInPaths=" ".join(paths[1:]),
                     NeedDaemonReload="no" if self.files(unit) == files else "yes")
        return props

    def systemctl(self, args):
        if args[:1] == ["--version"]:
            return 0, "systemd %d (%d.1-1)\n+PAM\n" % (self.version, self.version), ""
        if args[:1] == ["daemon-reload"]:
            return self.daemon_reload()
        if args[:1] == ["show"]:
            units, wanted, i = [], None, 1
            while i < len(args):
                if args[i] == "-p":
                    wanted = (wanted or []) + args[i + 1].split(",")
                    i += 2
                    continue
                if args[i].startswith("--property="):
                    wanted = (wanted or []) + args[i].split("=", 1)[1].split(",")
                elif not args[i].startswith("-"):
                    units.append(args[i])
                i += 1
            blocks = []
            for unit in units:
                props = self.properties(unit)
                keys = wanted if wanted is not None else sorted(props)
                blocks.append("".join("%s=%s\n" % (k, props.get(k, "")) for k in keys))
            return 0, "\n".join(blocks), ""
        raise CommandNotInTable("the fake systemd has no answer for systemctl %s" % " ".join(args))


def exec_entry(value, ex):
    """An Exec*= line as `systemctl show` prints it (flags only in the *Ex form, systemd >= 243)."""
    prefixes = ""
    while value[:1] in ("-", "+", "!", "@", ":"):
        prefixes, value = prefixes + value[0], value[1:]
    argv = value.split()
    path = argv[0] if argv else ""
    if ex:
        flags = " ".join(f for p, f in (("-", "ignore-failure"), ("+", "privileged")) if p in prefixes)
        return "{ path=%s ; argv[]=%s ; flags=%s ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; " \
               "status=0/0 }" % (path, value, flags)
    return "{ path=%s ; argv[]=%s ; ignore_errors=%s ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; " \
           "code=(null) ; status=0/0 }" % (path, value, "yes" if "-" in prefixes else "no")


SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
while True:
    c, _a = s.accept()
    c.sendall(b"ok\\n")
    c.close()
"""


class FakeService(object):
    """A real loopback server that the fake systemd restarts after it dies (Restart=always,
    ``restart_ms`` later), as the unit ``unit``: its MainPID, NRestarts and cgroup line."""

    def __init__(self, host, unit, port, restart_ms=50):
        import threading

        self.host, self.unit, self.port, self.restart_ms = host, unit, port, restart_ms
        self.proc = None
        self.stopping = False
        self.started = []
        self._start()
        self.thread = threading.Thread(target=self._supervise)
        self.thread.daemon = True
        self.thread.start()

    def _start(self):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(self.port)])
        self.started.append(self.proc.pid)
        self.host.overlay("/proc/%d/cgroup" % self.proc.pid, "0::/system.slice/%s\n" % self.unit)
        self.host.systemd.main_pid[self.unit] = self.proc.pid

    def _supervise(self):
        import time

        while not self.stopping:
            if self.proc.poll() is not None:
                self.host.systemd.main_pid[self.unit] = 0
                time.sleep(self.restart_ms / 1000.0)
                if self.stopping:
                    return
                self.host.systemd.restarts[self.unit] = self.host.systemd.restarts.get(self.unit, 0) + 1
                self._start()
            time.sleep(0.002)

    def stop(self):
        """End the server this object started (by its PID), and the supervision."""
        self.stopping = True
        self.thread.join(2)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
