"""The server side's send buffer during a bulk HTTP transfer (what autotuning made of it).

  netsvc_sndbuf.py PORT PATH

GETs PATH from 127.0.0.1:PORT, and at 90 % of the body reads the send buffer of the server's
end of this connection (`ss -tm`: skmem tb) before reading the rest. Prints JSON: bytes and
sndbuf. A send buffer set with setsockopt() stays where it was set (no autotuning); one left
alone grows with the transfer.
"""
import json
import socket
import subprocess
import sys


def sndbuf(port, client_port):
    out = subprocess.run(["ss", "-Htmn", "state", "connected", "( sport = :%d and dport = :%d )" % (port, client_port)],
                         stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
    for part in out.replace(",", " ").replace("(", " ").replace(")", " ").split():
        if part.startswith("tb") and part[2:].isdigit():
            return int(part[2:])
    return None


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # the client reads slower than loopback sends
    s.sendall(("GET %s HTTP/1.0\r\nHost: test\r\n\r\n" % path).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(65536)
    length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
    got, seen = len(head.split(b"\r\n\r\n", 1)[1]), None
    while True:
        data = s.recv(1 << 16)
        if not data:
            break
        got += len(data)
        if seen is None and got >= 0.9 * length:
            seen = sndbuf(port, s.getsockname()[1])
    print(json.dumps({"bytes": got, "length": length, "sndbuf": seen}))


if __name__ == "__main__":
    main()
