"""Tiny TCP service for tests and the demo: answers "ok\n" and closes (the server closes
first, so every served connection leaves a TIME_WAIT socket on the service's port, like a
busy HTTP/1.0 server).

  netsvc_echo.py PORT [--reuseaddr]

Does NOT set SO_REUSEADDR unless --reuseaddr is given (the seed's failure: after a SIGKILL
the restart gets EADDRINUSE while TIME_WAIT sockets hold the port). Takes its listening
socket from systemd when LISTEN_FDS is set (socket activation, fd 3).
"""
import os
import socket
import sys


def listener(port, reuse):
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        try:
            return socket.socket(fileno=3)
        except TypeError:  # Python < 3.7
            return socket.fromfd(3, socket.AF_INET6, socket.SOCK_STREAM)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    return s


def main():
    port = int(sys.argv[1])
    s = listener(port, "--reuseaddr" in sys.argv[2:])
    print("listening on %d" % port, flush=True)
    while True:
        conn, _addr = s.accept()
        try:
            conn.sendall(b"ok\n")
        except OSError:
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
