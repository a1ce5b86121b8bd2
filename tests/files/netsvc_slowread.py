"""A slow client: reads one response at a fixed rate, as a phone on a slow link would.

  netsvc_slowread.py PORT RATE [--host ADDR]

Connects to 127.0.0.1:PORT (or --host), reads until the server closes at RATE bytes/s (at
most 120 s), and prints JSON: bytes received, seconds, and the error that ended the read
(ECONNRESET when the connection was reset before the end), if any.
"""
import json
import socket
import sys
import time


def main():
    port, rate = int(sys.argv[1]), float(sys.argv[2])
    host = sys.argv[sys.argv.index("--host") + 1] if "--host" in sys.argv else "127.0.0.1"
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # a small window, as a slow reader keeps
    s.settimeout(30)
    s.connect((host, port))
    t0 = time.monotonic()
    got, error = 0, None
    try:
        while time.monotonic() - t0 < 120:
            data = s.recv(16384)
            if not data:
                break
            got += len(data)
            time.sleep(max(0.0, got / rate - (time.monotonic() - t0)))
    except OSError as e:
        error = str(e)
    print(json.dumps({"bytes": got, "seconds": round(time.monotonic() - t0, 2), "error": error}))


if __name__ == "__main__":
    main()
