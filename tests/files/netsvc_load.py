"""Bounded loopback load for tests and benchmarks.

  netsvc_load.py PORT COUNT [--serve] [--send TEXT] [--host ADDR]
  netsvc_load.py PORT COUNT --finwait SECONDS

Makes COUNT connections to 127.0.0.1:PORT (--host: another loopback address) (at most 20,000,
at most 60 s), reading the answer of each. With --serve it first listens on PORT itself and closes each accepted
connection first, which leaves COUNT TIME_WAIT sockets on PORT (an unrelated port's
leftovers, for tests that prove the cleanup does not touch them).
With --send TEXT (backslash escapes allowed, e.g. 'quit\\r\\n' for memcached, 'QUIT\\r\\n'
for redis, 'GET / HTTP/1.0\\r\\n\\r\\n' for HTTP; '' sends nothing) it sends TEXT on each
connection and reads until the server closes: a real daemon then closes first, and each connection leaves a
TIME_WAIT socket on the daemon's port, as a crash under load does.
With --finwait it listens on PORT, and for each of COUNT connections the server writes until
the client's window is full and closes: COUNT orphaned FIN_WAIT_1 sockets (full sockets, with
data and a FIN queued) stay on PORT while the clients hold their ends unread for SECONDS (at
most 120).
Prints: connections made, failures.
"""
import socket
import sys
import threading
import time


def finwait(port, count, hold):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(count)
    clients = []
    for _i in range(count):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(("127.0.0.1", port))
        s, _addr = srv.accept()
        s.setblocking(False)
        try:
            while True:
                s.send(b"x" * 65536)
        except OSError:
            pass
        s.close()  # orphaned with unsent data: FIN_WAIT_1
        clients.append(c)
    srv.close()
    print("made %d failed 0" % len(clients), flush=True)
    time.sleep(min(hold, 120))


def main():
    port, count = int(sys.argv[1]), min(int(sys.argv[2]), 20000)
    if "--finwait" in sys.argv[3:]:
        finwait(port, min(count, 200), float(sys.argv[sys.argv.index("--finwait") + 1]))
        return
    serve = "--serve" in sys.argv[3:]
    host = sys.argv[sys.argv.index("--host") + 1] if "--host" in sys.argv[3:] else "127.0.0.1"
    send = None
    if "--send" in sys.argv[3:]:
        send = sys.argv[sys.argv.index("--send") + 1].encode("latin-1").decode("unicode_escape").encode("latin-1")
    if serve:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
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
            c = socket.create_connection((host, port), timeout=2)
            if send is not None:
                c.sendall(send)
                while c.recv(65536):
                    pass
            else:
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
