# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The holder (netsvc-sockclean --hold, src/hold.h), the shipped x86_64 build run for real.

Each test starts the holder with a small Python server as its child on a loopback port, kills
the child as a crash would, and checks what the holder does: starts it again at once (with
--listen: not one connect refused meanwhile), passes on signals and exit statuses, gives up
after its restart limit, refuses bad options before it starts anything, and takes its child
with it when it is killed itself. Every process is started here and ended by pid.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

TOP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
HOOK = os.path.abspath(os.path.join(TOP, "files", "native", "x86_64", "netsvc-sockclean"))
LIB = os.path.abspath(os.path.join(TOP, "files", "native", "x86_64", "libnetsvc-preload.so"))

pytestmark = pytest.mark.skipif(os.uname()[4] != "x86_64" or not os.path.exists(HOOK),
                                reason="needs Linux on x86_64")

# answers "PID\n" and closes; binds without SO_REUSEADDR unless argv[2] says so
SERVER = textwrap.dedent("""
    import os, socket, sys
    if len(sys.argv) > 2 and sys.argv[2] == "native":  # takes the socket it is passed (sd_listen_fds)
        assert os.environ["LISTEN_PID"] == str(os.getpid()) and os.environ["LISTEN_FDS"] == "1"
        s = socket.socket(fileno=3)
    else:
        s = socket.socket()
        if len(sys.argv) > 2 and sys.argv[2] == "reuse":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(64)
    sys.stdout.write("listening %d umask %o cwd %s fds %s\\n" % (os.getpid(), os.umask(0), os.getcwd(),
                     os.environ.get("LISTEN_FDS")))
    sys.stdout.flush()
    while True:
        c, _a = s.accept()
        c.sendall(("%d\\n" % os.getpid()).encode())
        c.close()
""")


def _hook(tmp_path):
    path = str(tmp_path / "netsvc-sockclean")
    shutil.copy(HOOK, path)
    os.chmod(path, 0o755)
    (tmp_path / "server.py").write_text(SERVER)
    return path


def _port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _ask(port, timeout=3.0):
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return int(c.recv(64).decode().strip() or 0)
    finally:
        c.close()


def _children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (IOError, OSError):
                continue
    return out


def _wait(pred, timeout=10.0, step=0.005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(step)
    return None


def _new_server(port, old):
    """The pid of the server that answers now, once it is not ``old``; else 0."""
    got = _serving(port)
    return got if got and got != old else 0


def _serving(port):
    try:
        return _ask(port, 0.5)
    except OSError:
        return 0


@pytest.fixture
def started():
    procs = []

    def start(argv, **kw):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            for child in _children(p.pid):
                os.kill(child, signal.SIGKILL)
            p.kill()
        p.wait()


@pytest.mark.parametrize("mode", ["preload", "native", "restart-only"])
def test_a_killed_server_is_started_again_at_once(tmp_path, started, mode):
    """SIGKILL of the child: a new child serves; with --listen (the holder's socket: the library
    hands it to the server's own bind(), or the server takes fd 3 itself) not one connect is
    refused meanwhile."""
    hook, port = _hook(tmp_path), _port()
    held = mode != "restart-only"
    opts = {"preload": ["--listen", "127.0.0.1:%d,backlog=128" % port, "--preload", LIB],
            "native": ["--listen", "127.0.0.1:%d,backlog=128" % port], "restart-only": []}[mode]
    server = [sys.executable, "-S", str(tmp_path / "server.py"), str(port)] + (["native"] if mode == "native" else [])
    holder = started([hook, "--hold"] + opts + ["127.0.0.1:%d" % port, "--"] + server)
    first = _wait(lambda: _serving(port))
    assert first and first in _children(holder.pid)
    refused, stop = [0], []

    def load():  # a connect every 2 ms, each answered or counted
        while not stop:
            try:
                _ask(port)
            except OSError:
                refused[0] += 1
            time.sleep(0.002)

    t = threading.Thread(target=load)
    t.start()
    times, pid = [], first
    try:
        for _i in range(3):
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            new = _wait(lambda old=pid: _new_server(port, old))
            times.append(time.monotonic() - t0)
            assert new and new in _children(holder.pid)
            pid = new
    finally:
        stop.append(1)
        t.join()
    assert holder.poll() is None
    assert max(times) < 5
    if held:
        assert refused[0] == 0
    holder.kill()
    out = holder.communicate()[0]
    assert out.count("died by signal 9; starting it again") == 3


def test_signals_pass_on_and_the_exit_status_is_the_servers(tmp_path, started):
    hook = _hook(tmp_path)
    # a TERM to the holder reaches the server; it dies by it, and so does the holder
    p = started([hook, "--hold", "--", "sleep", "30"])
    _wait(lambda: _children(p.pid))
    os.kill(p.pid, signal.SIGTERM)
    assert p.wait(5) == -signal.SIGTERM
    # an exit code: on purpose, passed on, not restarted
    p = started([hook, "--hold", "--", "sh", "-c", "exit 3"])
    assert p.wait(5) == 3
    assert "starting it again" not in p.communicate()[0]
    # a signal the server handles: passed on, the server lives on
    p = started([hook, "--hold", "--", "sh", "-c", "trap 'echo got-usr1' USR1; while :; do sleep 0.05; done"])
    _wait(lambda: _children(p.pid))
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGUSR1)
    time.sleep(0.5)
    assert p.poll() is None
    os.kill(p.pid, signal.SIGTERM)
    p.wait(5)
    assert "got-usr1" in p.communicate()[0]


def test_the_restart_limit_ends_in_the_servers_own_status(tmp_path, started):
    hook = _hook(tmp_path)
    p = started([hook, "--hold", "--restarts", "3/10", "--", "sh", "-c", "kill -9 $$"])
    assert p.wait(10) == -signal.SIGKILL
    out = p.communicate()[0]
    assert out.count("starting it again") == 2
    assert "started 3 times in 10 s (at most 3 starts): giving up" in out


@pytest.mark.parametrize("args", [
    ["--listen", "127.0.0.1:99999"], ["--listen", "127.0.0.1:80,colour=red"], ["--listen", "80"],
    ["--restarts", "0/10"], ["--restarts", "65/10"], ["--restarts", "3"], ["--preload", "lib.so"],
    ["--listen", "[::1]:80,v6only,backlog=0"],
])
def test_bad_options_start_nothing(tmp_path, args):
    hook, marker = _hook(tmp_path), tmp_path / "ran"
    r = subprocess.run([hook, "--hold"] + args + ["--", "touch", str(marker)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=10, check=False)
    assert r.returncode == 2 and "not starting: bad" in r.stderr and args[1] in r.stderr
    assert not marker.exists()
    # and the options need --hold
    r = subprocess.run([hook, "--listen", "127.0.0.1:80", "--", "true"], stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=10, check=False)
    assert r.returncode == 2 and "need --hold" in r.stderr


def test_a_killed_holder_takes_its_server_with_it_and_keeps_what_it_was_given(tmp_path, started):
    """PR_SET_PDEATHSIG: a supervisor that restarts the holder finds the port free. The child
    runs with the holder's umask and directory; the library took the sockets (LISTEN_FDS) and
    removed the variables, so nothing the server starts gets them."""
    hook, port = _hook(tmp_path), _port()
    work = tmp_path / "work"
    work.mkdir()
    p = started([hook, "--hold", "--listen", "127.0.0.1:%d" % port, "--preload", LIB, "--", sys.executable, "-S",
                 str(tmp_path / "server.py"), str(port)], cwd=str(work), preexec_fn=lambda: os.umask(0o027))
    server = _wait(lambda: _serving(port))
    assert server
    os.kill(p.pid, signal.SIGKILL)
    p.wait(5)

    def gone():
        try:
            with open("/proc/%d/stat" % server) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except (IOError, OSError):
            return True

    assert _wait(gone, 5)
    out = p.stdout.read()
    assert "umask 27 cwd %s fds None" % work in out


def test_the_holders_record(tmp_path, started):
    if os.geteuid() != 0:
        pytest.skip("the record goes only into a root-owned directory")
    import tempfile

    hook = _hook(tmp_path)
    status = tempfile.mkdtemp(dir="/run")  # root's, every parent too, as the real one
    try:
        os.chmod(status, 0o755)
        p = started([hook, "--hold", "--unit", "web", "--status-dir", status, "--", "sleep", "30"])
        child = _wait(lambda: _children(p.pid))[0]
        os.kill(child, signal.SIGKILL)
        assert _wait(lambda: [c for c in _children(p.pid) if c != child])

        def record():
            try:
                with open(os.path.join(status, "web.hold")) as f:
                    text = f.read()
            except IOError:
                return None
            return text if "starts=2" in text else None

        fields = dict(line.split("=", 1) for line in _wait(record).splitlines())
        assert fields["holder"] == str(p.pid) and fields["state"] == "running" and fields["version"] == "1"
        assert int(fields["child"]) in _children(p.pid)
        assert not os.path.exists(os.path.join(status, "web.status"))  # no targets: no cleanup record
    finally:
        shutil.rmtree(status)
