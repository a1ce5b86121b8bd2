"""Bounded loopback load for tests and benchmarks.

  netsvc_load.py PORT COUNT [--serve]

Makes COUNT connections to 127.0.0.1:PORT (at most 20,000, at most 60 s), reading the
answer of each. With --serve it first listens on PORT itself and closes each accepted
connection first, which leaves COUNT TIME_WAIT sockets on PORT (an unrelated port's
leftovers, for tests that prove the cleanup does not touch them).
Prints: connections made, failures.
"""
import socket
import sys
import threading
import time


def main():
    port, count = int(sys.argv[1]), min(int(sys.argv[2]), 20000)
    serve = "--serve" in sys.argv[3:]
    if serve:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(4096)

        def accept():
            for _i in range(count):
                conn, _addr = srv.accept()
                conn.close()

        t = threading.Thread(target=accept)
        t.daemon = True
        t.start()
    deadline = time.monotonic() + 60
    made = failed = 0
    for _i in range(count):
        if time.monotonic() > deadline:
            break
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=2)
            c.recv(16)
            c.close()
            made += 1
        except OSError:
            failed += 1
    if serve:
        t.join(5)
        srv.close()
    print("made %d failed %d" % (made, failed))


if __name__ == "__main__":
    main()
