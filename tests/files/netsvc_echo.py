"""Tiny TCP service for tests and the demo: answers "ok\n" and closes (the server closes
first, so every served connection leaves a TIME_WAIT socket on the service's port, like a
busy HTTP/1.0 server).

  netsvc_echo.py PORT [--reuseaddr] [--bind ADDR] [--device DEV] [--mark N] [--reuseport]
                      [--freebind] [--transparent] [--threaded] [--bulk BYTES [--sndbuf BYTES]]
                      [--user UID]

Does NOT set SO_REUSEADDR unless --reuseaddr is given (the seed's failure: after a SIGKILL
the restart gets EADDRINUSE while TIME_WAIT sockets hold the port). Takes its listening
socket from systemd when LISTEN_FDS is set (socket activation, fd 3).
--bind: the address to listen on (0.0.0.0 by default). --device, --mark, --reuseport,
--freebind, --transparent: set that option on the listening socket before bind() (what a
socket unit must mirror). --threaded: accept() runs in a thread; SIGTERM makes the main
thread shutdown() the listener and join that thread, as servers that stop gracefully do.
--bulk BYTES: each connection gets BYTES bytes instead of "ok\n"; with --sndbuf, each accepted
socket gets that send buffer (SO_SNDBUFFORCE, root): the whole response is written into the
kernel at once, and the server closes at once - a response then still in flight is the
kernel's to deliver, as after a graceful restart.
--user UID: after bind(), drop to that uid (and gid) as privilege-dropping servers do; the
process is then not dumpable (its /proc/self/task/*/syscall unreadable).
"""
import os
import signal
import socket
import sys
import threading

SO_MARK = 36
IP_FREEBIND = 15
IP_TRANSPARENT = 19


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def listener(port, reuse):
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        try:
            return socket.socket(fileno=3)
        except TypeError:  # Python < 3.7
            return socket.fromfd(3, socket.AF_INET6, socket.SOCK_STREAM)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if arg("--device"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, arg("--device").encode())
    if arg("--mark"):
        s.setsockopt(socket.SOL_SOCKET, SO_MARK, int(arg("--mark")))
    for flag, level, name in (("--reuseport", socket.SOL_SOCKET, socket.SO_REUSEPORT),
                              ("--freebind", socket.SOL_IP, IP_FREEBIND),
                              ("--transparent", socket.SOL_IP, IP_TRANSPARENT)):
        if flag in sys.argv:
            s.setsockopt(level, name, 1)
    s.bind((arg("--bind", "0.0.0.0"), port))
    s.listen(4096)
    return s


SO_SNDBUFFORCE = 32


def serve(s, answer):
    sndbuf = int(arg("--sndbuf", "0"))
    while True:
        conn, _addr = s.accept()
        if sndbuf:
            conn.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, sndbuf)
        try:
            conn.sendall(answer)
        except OSError:
            pass
        finally:
            conn.close()


def main():
    port = int(sys.argv[1])
    s = listener(port, "--reuseaddr" in sys.argv[2:])
    if arg("--user"):
        uid = int(arg("--user"))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    answer = b"x" * int(arg("--bulk")) if arg("--bulk") else b"ok\n"
    print("listening on %d" % port, flush=True)
    if "--threaded" not in sys.argv:
        serve(s, answer)
        return

    def accept_loop():
        try:
            serve(s, answer)
        except OSError as e:  # the listener was shut down: the graceful stop
            print("accept loop ended: %s" % e, flush=True)

    t = threading.Thread(target=accept_loop)
    t.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_a: stop.set())
    stop.wait()
    s.shutdown(socket.SHUT_RDWR)
    t.join()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
