# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preload library itself (files/native/<arch>/libnetsvc-preload.so), run for real.

Each test plays PID 1: it binds the listening sockets a socket unit would, passes them to a
child process as fds 3.. with LISTEN_FDS and LISTEN_PID = the child's pid (``exec`` keeps the
pid), preloads the shipped library into that child, and checks what the child's bind(),
setsockopt(), shutdown() and exec() do to the sockets - and what they must leave alone.
Loopback only, each child bounded in time.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

TOP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
ARCH = {"x86_64": "x86_64", "aarch64": "aarch64"}.get(platform.machine())
LIB = os.path.abspath(os.path.join(TOP, "files", "native", ARCH or "none", "libnetsvc-preload.so"))

pytestmark = pytest.mark.skipif(not ARCH or not os.path.exists(LIB) or not sys.platform.startswith("linux"),
                                reason="needs Linux on x86_64 or aarch64")

# what every child imports: a few helpers, then the test's own body
PRELUDE = textwrap.dedent("""
    import json, os, socket, subprocess, sys, threading, time
    out = {}
    def done():
        sys.stdout.write(json.dumps(out) + "\\n")
        sys.stdout.flush()
""")


def listener(family=socket.AF_INET, address="127.0.0.1", port=0, v6only=None, backlog=64):
    """A listening socket as systemd's socket unit makes it (SO_REUSEADDR set)."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    s.bind((address, port))
    s.listen(backlog)
    return s


# Places the passed sockets at 3.., sets LISTEN_PID to its own pid and execs the test body with
# the library preloaded (exec keeps the pid): what systemd does for a socket-activated service.
BOOT = textwrap.dedent("""
    import os, sys
    fds = [int(x) for x in sys.argv[1].split(",") if x]
    tmp = [os.dup(fd) for fd in fds]
    for i, fd in enumerate(tmp):
        if fd != 3 + i:
            os.dup2(fd, 3 + i)
        os.set_inheritable(3 + i, True)
    for fd in set(tmp + fds) - set(range(3, 3 + len(fds))):
        os.close(fd)
    env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)))
    if not fds:
        del env["LISTEN_PID"], env["LISTEN_FDS"]
    env.update(dict(x.split("=", 1) for x in sys.argv[2].split("\\n") if x))
    os.execve(sys.executable, [sys.executable] + sys.argv[3:], env)
""")


def run_child(body, passed, env=None, timeout=20, args=()):
    """Run ``body`` (Python) with ``passed`` sockets as fds 3.. and the library preloaded.
    Returns (the JSON the child printed last, its stderr)."""
    extra = dict({"LD_PRELOAD": LIB, "NETSVC_PRELOAD_BACKLOG": "4096"}, **(env or {}))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "LD_PRELOAD", "NETSVC_PRELOAD"))}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PRELUDE + textwrap.dedent(body))
    try:
        argv = [sys.executable, "-c", BOOT, ",".join(str(s.fileno()) for s in passed),
                "\n".join("%s=%s" % kv for kv in extra.items()), f.name] + list(args)
        proc = subprocess.run(argv, env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                              pass_fds=[s.fileno() for s in passed], universal_newlines=True, check=False)
    finally:
        os.unlink(f.name)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    assert lines, "child printed nothing (rc=%d): %s %s" % (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(lines[-1]), proc.stderr


def test_exact_match_takes_the_passed_socket_and_replays_only_what_the_server_set():
    pid1 = listener()
    port = pid1.getsockname()[1]
    out, err = run_child("""
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.bind(("127.0.0.1", %d))
        s.listen(5)
        out["ino_same"] = os.fstat(s.fileno()).st_ino == os.fstat(3).st_ino
        done()
    """ % port, [pid1])
    assert out["ino_same"], err
    # replayed onto PID 1's socket: what the server set
    assert pid1.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert pid1.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    # and nothing it did not set: the buffers keep a fresh socket's values (not locked)
    fresh = socket.socket()
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        assert pid1.getsockopt(socket.SOL_SOCKET, opt) == fresh.getsockopt(socket.SOL_SOCKET, opt)
    fresh.close()
    # the backlog floor (the socket unit's Backlog=) over the server's 5
    assert err == ""
    pid1.close()


def test_options_an_earlier_instance_left_are_put_back():
    pid1 = listener()
    port = pid1.getsockname()[1]
    pid1.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)   # as a previous instance set it
    pid1.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
    out, _err = run_child("""
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.bind(("127.0.0.1", %d))
        s.listen(5)
        done()
    """ % port, [pid1])
    assert pid1.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    assert pid1.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 0
    assert pid1.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    pid1.close()


def test_a_locked_buffer_left_by_an_earlier_instance_is_reported():
    pid1 = listener()
    port = pid1.getsockname()[1]
    pid1.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    _out, err = run_child("""
        s = socket.socket()
        s.bind(("127.0.0.1", %d))
        done()
    """ % port, [pid1])
    assert "keeps a send buffer of 65536 bytes that an earlier instance set" in err
    pid1.close()


def test_a_wider_socket_is_never_used():
    pid1 = listener(address="0.0.0.0")
    port = pid1.getsockname()[1]
    out, err = run_child("""
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", %d))
            out["bound"] = True
        except OSError as e:
            out["errno"] = e.errno
        out["mine"] = os.fstat(s.fileno()).st_ino == os.fstat(3).st_ino
        done()
    """ % port, [pid1])
    assert out == {"errno": 98, "mine": False}   # the real bind(): EADDRINUSE, PID 1 holds the port
    assert "bind(127.0.0.1:%d) does not match the socket systemd passed (0.0.0.0:%d): address differs" % (
        port, port) in err
    assert err.count("\n") == 1
    pid1.close()


def test_other_ports_and_families_are_left_to_the_real_bind():
    pid1 = listener()
    port = pid1.getsockname()[1]
    out, err = run_child("""
        other = socket.socket()
        other.bind(("127.0.0.1", 0))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", %d))
        out["other"] = os.fstat(other.fileno()).st_ino != os.fstat(3).st_ino
        out["udp"] = os.fstat(udp.fileno()).st_ino != os.fstat(3).st_ino
        done()
    """ % port, [pid1])
    assert out == {"other": True, "udp": True} and err == ""
    pid1.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="SO_MARK needs CAP_NET_ADMIN")
def test_an_option_that_decides_who_reaches_the_socket_must_match():
    pid1 = listener()
    port = pid1.getsockname()[1]
    out, err = run_child("""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, 36, 7)   # SO_MARK
        try:
            s.bind(("127.0.0.1", %d))
            out["bound"] = True
        except OSError as e:
            out["errno"] = e.errno
        done()
    """ % port, [pid1])
    assert out == {"errno": 98}
    assert "SO_MARK 7 asked, the socket systemd passed has 0; using the real bind()" in err
    pid1.close()


def test_passed_fds_and_variables_reach_no_other_program():
    a, b = listener(), listener()
    out, _err = run_child("""
        import fcntl
        out["cloexec"] = [bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC) for fd in (3, 4)]
        out["env"] = sorted(k for k in os.environ if k.startswith("LISTEN_") or k == "NETSVC_PRELOAD_FDS")
        # a helper the server starts the plain way (fork + exec, every inheritable fd kept)
        child = subprocess.run(["/bin/sh", "-c", 'for f in /proc/$$/fd/*; do readlink "$f"; done; env'],
                               stdout=subprocess.PIPE, close_fds=False, universal_newlines=True)
        out["child"] = child.stdout.split()
        out["inodes"] = ["socket:[%d]" % os.fstat(fd).st_ino for fd in (3, 4)]
        done()
    """, [a, b])
    assert out["cloexec"] == [True, True]
    assert out["env"] == []
    assert not set(out["inodes"]) & set(out["child"]), out
    assert not [x for x in out["child"] if x.startswith(("LISTEN_", "NETSVC_PRELOAD_FDS"))]
    a.close()
    b.close()


def test_a_reexec_of_the_same_process_gets_the_sockets_again():
    pid1 = listener()
    port = pid1.getsockname()[1]
    out, err = run_child("""
        import fcntl
        s = socket.socket()
        s.bind(("127.0.0.1", %d))
        if len(sys.argv) > 1:   # the re-executed image
            out["pid"] = os.getpid()
            out["mine"] = os.fstat(s.fileno()).st_ino == int(sys.argv[1])
            out["fd3_cloexec"] = bool(fcntl.fcntl(3, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
            out["env"] = sorted(k for k in os.environ if k.startswith(("LISTEN_", "NETSVC_PRELOAD_FDS")))
            done()
        else:
            sys.stdout.write(json.dumps({"first_pid": os.getpid()}) + "\\n")
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, sys.argv[0], str(os.fstat(3).st_ino)])
    """ % port, [pid1])
    assert out["mine"] and out["fd3_cloexec"] and out["env"] == [], (out, err)
    pid1.close()


# The end of a graceful-stop child (its listener ``s`` bound and listening): a thread accepts
# ("conn" per connection, then the errno that ends it), the main thread shutdown()s the listener
# and joins it, as servers that stop gracefully do.
GRACEFUL_STOP = """
        got = []
        def accepter():
            try:
                while True:
                    c, _a = s.accept()
                    got.append("conn")
                    c.close()   # a connection made before the child started: served, fine
            except OSError as e:
                got.append(e.errno)
        t = threading.Thread(target=accepter)
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        s.shutdown(socket.SHUT_RDWR)
        t.join(5)
        out["stopped_in_s"] = round(time.monotonic() - t0, 3)
        out["alive"] = t.is_alive()
        out["got"] = got
        done()
"""


def test_shutdown_wakes_the_accept_thread_and_leaves_pid1s_socket_and_queue_alone():
    pid1 = listener(backlog=64)
    port = pid1.getsockname()[1]
    queued = [socket.create_connection(("127.0.0.1", port)) for _i in range(3)]
    out, err = run_child("""
        s = socket.socket()
        s.bind(("127.0.0.1", %d))
        s.listen(16)
    """ % port + GRACEFUL_STOP, [pid1])
    assert not out["alive"] and out["stopped_in_s"] < 1, out
    assert out["got"][-1] == 22   # EINVAL, as after a real shutdown()
    # PID 1's socket still listens (SO_ACCEPTCONN), and takes a new connection
    assert pid1.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    served = out["got"].count("conn")
    late = socket.create_connection(("127.0.0.1", port), timeout=2)
    pid1.settimeout(2)
    left = 0
    try:
        while True:
            c, _a = pid1.accept()
            left += 1
            c.close()
            pid1.settimeout(0.2)
    except socket.timeout:
        pass
    # every queued connection is either served by the child or still queued for the next instance
    assert served + left == len(queued) + 1, (served, left, err)
    for c in queued + [late]:
        c.close()
    pid1.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges: needs root")
def test_a_server_that_dropped_privileges_stops_as_fast():
    """Issue 34: a server that binds as root, setuid()s to nobody (so it is not dumpable and
    cannot read its own /proc/self/task/TID/syscall) and stops with shutdown() + join took
    20 s (TimeoutStopSec) under the library. The accept wrappers find the thread instead."""
    pid1 = listener(backlog=64)
    port = pid1.getsockname()[1]
    out, err = run_child("""
        import ctypes
        s = socket.socket()
        s.bind(("127.0.0.1", %d))
        s.listen(16)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        PR_GET_DUMPABLE = 3
        out["dumpable"] = ctypes.CDLL(None, use_errno=True).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
        try:
            open("/proc/self/task/%%d/syscall" %% os.getpid()).read()  # the main thread: tid == pid
            out["proc_readable"] = True
        except OSError:
            out["proc_readable"] = False
    """ % port + GRACEFUL_STOP, [pid1])
    assert out["dumpable"] == 0 and out["proc_readable"] is False, out  # the case that hung
    assert not out["alive"] and out["stopped_in_s"] < 1 and out["got"] == [22], (out, err)
    assert pid1.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    pid1.close()


def test_a_paused_listener_is_resumed_on_pid1s_socket():
    pid1 = listener()
    port = pid1.getsockname()[1]
    out, _err = run_child("""
        s = socket.socket()
        s.bind(("127.0.0.1", %d))
        s.listen(16)
        s.shutdown(socket.SHUT_RD)          # haproxy pauses a listener so
        out["paused"] = os.fstat(s.fileno()).st_ino != os.fstat(3).st_ino
        s.listen(16)                        # and resumes it so
        out["resumed"] = os.fstat(s.fileno()).st_ino == os.fstat(3).st_ino
        done()
    """ % port, [pid1])
    assert out == {"paused": True, "resumed": True}
    assert pid1.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    pid1.close()


def test_accepted_sockets_keep_autotuning():
    """A 16 MiB transfer over loopback: the accepted socket's send buffer grows as it does
    without the library (within 10 %) - the library set no buffer on PID 1's socket."""
    body = """
        s = socket.socket()
        s.bind(("127.0.0.1", %d))
        s.listen(16)
        c, _a = s.accept()
        c.sendall(b"x" * (16 << 20))
        out["sndbuf"] = c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        c.close()
        done()
    """

    def transfer(preload):
        pid1 = listener()
        port = pid1.getsockname()[1]
        if not preload:
            pid1.close()

        def reader():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    c = socket.create_connection(("127.0.0.1", port), timeout=5)
                    break
                except OSError:
                    time.sleep(0.02)
            while c.recv(1 << 20):
                pass
            c.close()

        import threading
        t = threading.Thread(target=reader)
        t.start()
        env = {} if preload else {"LD_PRELOAD": "", "LISTEN_FDS": ""}
        out, _err = run_child(body % port, [pid1] if preload else [], env=env)
        t.join(10)
        if preload:
            pid1.close()
        return out["sndbuf"]

    plain, hardened = transfer(False), transfer(True)
    assert abs(hardened - plain) <= 0.1 * plain, (plain, hardened)
