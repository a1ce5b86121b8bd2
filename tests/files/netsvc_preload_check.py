"""The preload library on this host's kernel: passed fds close-on-exec, LISTEN_* gone, exact match.

  netsvc_preload_check.py LIBRARY

Plays PID 1 for one child: binds 0.0.0.0:PORT as a socket unit does, passes it as fd 3 with
LISTEN_FDS=1 and LISTEN_PID = the child's pid, and preloads LIBRARY into the child, which
reports (JSON on stdout): fd 3's FD_CLOEXEC, which LISTEN_* variables it still sees, what a
bind() of 127.0.0.1:PORT (narrower than the passed socket) did and what the library wrote on
stderr, and whether a bind() of 0.0.0.0:PORT got the passed socket. Loopback only, bounded.
"""
import json
import os
import socket
import subprocess
import sys

CHILD = r"""
import fcntl, json, os, socket, sys
port = int(sys.argv[1])
out = {"cloexec": bool(fcntl.fcntl(3, fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
       "env": sorted(k for k in os.environ if k.startswith("LISTEN_"))}
narrow = socket.socket()
try:
    narrow.bind(("127.0.0.1", port))
    out["narrow"] = "bound"
except OSError as e:
    out["narrow"] = e.errno
same = socket.socket()
same.bind(("0.0.0.0", port))
out["same_is_passed"] = os.fstat(same.fileno()).st_ino == os.fstat(3).st_ino
print(json.dumps(out))
"""

BOOT = r"""
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LD_PRELOAD=sys.argv[2])
os.execve(sys.executable, [sys.executable, "-c", sys.argv[3], sys.argv[4]], env)
"""


def main():
    library = sys.argv[1]
    pid1 = socket.socket()
    pid1.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    pid1.bind(("0.0.0.0", 0))
    pid1.listen(16)
    port = pid1.getsockname()[1]
    proc = subprocess.run([sys.executable, "-c", BOOT, str(pid1.fileno()), library, CHILD, str(port)],
                          pass_fds=[pid1.fileno()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30, check=False)
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {"error": proc.stderr}
    out["stderr"] = proc.stderr.strip()
    out["port"] = port
    out["kernel"] = os.uname()[2]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
