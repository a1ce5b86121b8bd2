"""What hardening does to a service's normal work: runs inside one test container (stdlib only).

  python3 harm_driver.py CONFIG.json   ->  JSON on stdout

CONFIG: {"configs": [{"name", "port"}], "rounds", "bulk_bytes", "bulk_path", "small_path",
         "rate", "seconds", "delay_ms"}

Every configuration is the same nginx (one instance per configuration, same config but the
port), measured side by side and in turns (round-robin), so drift hits them alike:
- bulk: one HTTP GET of ``bulk_bytes`` per configuration per round, through a delay line of
  ``delay_ms`` each way (a round trip of twice that); MB/s, bytes delivered, and the server
  side's send buffer (``ss -tm`` skmem tb) near the end of the transfer - locked buffers show
  there;
- latency: an open-loop steady load of ``rate`` small requests per second for ``seconds`` per
  configuration per round over plain loopback; every request's time, then p50/p99.

The delay line: this kernel has no sch_netem, so two TUN devices, one in this network
namespace (10.200.0.1) and one in a namespace "harmcli" (10.200.0.2), joined by this process,
which holds each packet ``delay_ms`` before passing it on. MTU 65000: a few thousand packets a
second at most, far below what the relay can move; TCP sees a real round trip.
"""
import fcntl
import heapq
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
NETNS = "harmcli"
SERVER_IP, CLIENT_IP = "10.200.0.1", "10.200.0.2"


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def tun(name):
    if not os.path.exists("/dev/net/tun"):  # a container's /dev has none; its device rules allow 10:200
        os.makedirs("/dev/net", exist_ok=True)
        os.mknod("/dev/net/tun", 0o600 | 0o020000, os.makedev(10, 200))
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class DelayLine(object):
    """Two TUN devices, each packet held ``delay`` seconds before it goes out the other one."""

    def __init__(self, delay):
        subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL, check=False)
        sh("ip", "netns", "add", NETNS)
        self.fds = {tun("harm0"): None, tun("harm1"): None}
        a, b = list(self.fds)
        for fd in (a, b):
            os.set_blocking(fd, False)
        self.fds[a], self.fds[b] = b, a
        sh("ip", "link", "set", "harm1", "netns", NETNS)
        sh("ip", "addr", "add", SERVER_IP + "/30", "dev", "harm0")
        sh("ip", "link", "set", "harm0", "mtu", "65000", "up")
        for argv in (["ip", "addr", "add", CLIENT_IP + "/30", "dev", "harm1"],
                     ["ip", "link", "set", "harm1", "mtu", "65000", "up"], ["ip", "link", "set", "lo", "up"]):
            sh("ip", "netns", "exec", NETNS, *argv)
        self.delay = delay
        self.queue = []
        self.seq = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run)
        self.thread.daemon = True
        self.thread.start()

    def run(self):
        while not self.stop:
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _due, _seq, out, packet = heapq.heappop(self.queue)
                try:
                    os.write(out, packet)
                except OSError:
                    pass
            wait = max(0.0, self.queue[0][0] - now) if self.queue else 0.05
            ready, _w, _x = select.select(list(self.fds), [], [], wait)
            for fd in ready:
                for _i in range(64):
                    try:
                        packet = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    self.seq += 1
                    heapq.heappush(self.queue, (time.monotonic() + self.delay, self.seq, self.fds[fd], packet))

    def close(self):
        self.stop = True
        self.thread.join(2)
        for fd in self.fds:
            os.close(fd)
        subprocess.run(["ip", "netns", "del", NETNS], stderr=subprocess.DEVNULL, check=False)


def http_get(address, port, path, sink=None):
    """One HTTP/1.0 GET; (bytes of body, seconds). ``sink(received)`` is called as data arrives."""
    t0 = time.monotonic()
    s = socket.create_connection((address, port), timeout=30)
    s.sendall(("GET %s HTTP/1.0\r\nHost: bench\r\n\r\n" % path).encode())
    head, got = b"", 0
    while b"\r\n\r\n" not in head:
        head += s.recv(65536)
    body = head.split(b"\r\n\r\n", 1)[1]
    got = len(body)
    while True:
        data = s.recv(1 << 20)
        if not data:
            break
        got += len(data)
        if sink:
            sink(got)
    s.close()
    return got, time.monotonic() - t0


BULK_CLIENT = r"""
import json, socket, subprocess, sys, time
port, path, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
t0 = time.monotonic()
s = socket.create_connection(("%s", port), timeout=60)
s.sendall(("GET %%s HTTP/1.0\r\nHost: bench\r\n\r\n" %% path).encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(65536)
got = len(head.split(b"\r\n\r\n", 1)[1])
asked = False
while True:
    data = s.recv(1 << 20)
    if not data:
        break
    got += len(data)
    if not asked and got >= size * 0.9:
        asked = True
        sys.stdout.write("ASK\n")
        sys.stdout.flush()
        sys.stdin.readline()
s.close()
print(json.dumps({"bytes": got, "seconds": time.monotonic() - t0}))
""" % SERVER_IP


def server_sndbuf(port):
    """The send buffer (skmem tb) of the server side of the one connection on ``port``."""
    out = subprocess.run(["ss", "-Htmn", "state", "connected", "( sport = :%d )" % port],
                         stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
    for part in out.replace(",", " ").replace("(", " ").replace(")", " ").split():
        if part.startswith("tb") and part[2:].isdigit():
            return int(part[2:])
    return None


def bulk(port, path, size):
    """One transfer through the delay line, run in the client namespace."""
    p = subprocess.Popen(["ip", "netns", "exec", NETNS, sys.executable, "-c", BULK_CLIENT, str(port), path,
                          str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
    sndbuf = None
    line = p.stdout.readline()
    if line.strip() == "ASK":
        sndbuf = server_sndbuf(port)
        p.stdin.write("go\n")
        p.stdin.flush()
        line = p.stdout.readline()
    p.wait(60)
    result = json.loads(line)
    result["mb_s"] = result["bytes"] / result["seconds"] / 1e6
    result["sndbuf"] = sndbuf
    return result


def steady(port, path, rate, seconds):
    """Open loop: a request every 1/rate s (each on its own thread), every request's seconds."""
    times, failed = [], [0]
    lock = threading.Lock()

    def one():
        try:
            _n, took = http_get("127.0.0.1", port, path)
            with lock:
                times.append(took)
        except OSError:
            with lock:
                failed[0] += 1

    threads = []
    t0 = time.monotonic()
    for i in range(int(rate * seconds)):
        due = t0 + i / float(rate)
        time.sleep(max(0.0, due - time.monotonic()))
        t = threading.Thread(target=one)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(10)
    return times, failed[0]


def pct(values, q):
    vals = sorted(values)
    return vals[min(len(vals) - 1, int(round(q * (len(vals) - 1))))] if vals else None


def main():
    with open(sys.argv[1]) as f:
        conf = json.load(f)
    line = DelayLine(conf["delay_ms"] / 1000.0)
    out = {"configs": {c["name"]: {"bulk": [], "latency_s": [], "failed": 0} for c in conf["configs"]}}
    try:
        names = [c["name"] for c in conf["configs"]]
        ports = {c["name"]: c["port"] for c in conf["configs"]}
        for r in range(conf["rounds"]):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                out["configs"][name]["bulk"].append(bulk(ports[name], conf["bulk_path"], conf["bulk_bytes"]))
            for name in order:
                times, failed = steady(ports[name], conf["small_path"], conf["rate"], conf["seconds"])
                out["configs"][name]["latency_s"].extend(times)
                out["configs"][name]["failed"] += failed
    finally:
        line.close()
    for c in out["configs"].values():
        c["mb_s"] = statistics.median(x["mb_s"] for x in c["bulk"])
        c["bytes_delivered"] = sum(x["bytes"] for x in c["bulk"])
        c["bytes_expected"] = conf["bulk_bytes"] * len(c["bulk"])
        c["sndbuf"] = statistics.median(x["sndbuf"] for x in c["bulk"] if x["sndbuf"] is not None) \
            if any(x["sndbuf"] for x in c["bulk"]) else None
        c["p50_ms"] = pct(c["latency_s"], 0.50) * 1000
        c["p99_ms"] = pct(c["latency_s"], 0.99) * 1000
        c["requests"] = len(c.pop("latency_s"))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
