"""supervisord benchmark driver, run INSIDE the supervisord container (stdlib only).

  python3 supervisord_driver.py CONFIG_JSON

CONFIG_JSON: {"configs": [{"name", "program", "port"}], "kills": N, "seed": S,
              "harm": [{"name", "program", "port", "bulk_program", "bulk_port"}], "bulk_bytes": B,
              "rounds": R}
Each configuration in turn: a bounded loopback load (a connect every 2 ms to the program's
port, each answered or counted as failed: refused, reset or unanswered), and N SIGKILLs of the
program's server (supervisorctl's pid, or its child when that is the hook's holder) 0.3-0.8 s
apart. Per kill: from the signal to the first answer on a connection made after it, and the
load's failed connects in that window. Prints one JSON document with every sample.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time


def ask(port, timeout=2.0):
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return c.recv(16) == b"ok\n"
    finally:
        c.close()


def server_pid(program):
    out = subprocess.run(["supervisorctl", "pid", program], stdout=subprocess.PIPE, universal_newlines=True,
                         check=False).stdout.strip()
    pid = int(out) if out.isdigit() else 0
    if pid and os.path.basename(os.readlink("/proc/%d/exe" % pid)) == "netsvc-sockclean":
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = f.read().split()
        return int(kids[0]) if kids else 0
    return pid


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (IOError, OSError):
        return True


class Load(threading.Thread):
    def __init__(self, port, max_seconds=120):
        threading.Thread.__init__(self)
        self.daemon = True
        self.port, self.deadline = port, time.monotonic() + max_seconds
        self.stop = threading.Event()
        self.made = self.failed = 0
        self.fail_times = []

    def run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            self.made += 1
            started = time.monotonic()
            try:
                ok = ask(self.port)
            except OSError:
                ok = False
            if not ok:
                self.failed += 1
                self.fail_times.append((started, time.monotonic()))
            time.sleep(0.002)


def measure(cfg, kills, rnd):
    load = Load(cfg["port"])
    load.start()
    samples = []
    t_start = time.monotonic()
    try:
        for _i in range(kills):
            time.sleep(rnd.uniform(1.2, 2.0))
            pid = 0
            deadline = time.monotonic() + 10
            while not pid and time.monotonic() < deadline:
                pid = server_pid(cfg["program"])
                time.sleep(0 if pid else 0.01)
            if not pid:  # not running (FATAL, BACKOFF): nothing to kill, not recovered
                samples.append({"recovered": False, "recovery_ms": None, "failed_connects": None,
                                "lost_with_the_killed": None})
                continue
            t0 = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            while not gone(pid) and time.monotonic() < t0 + 2:
                time.sleep(0.0005)
            t_gone = time.monotonic()
            t_ok = None
            while time.monotonic() < t0 + 20:
                try:
                    if ask(cfg["port"], 5.0):
                        t_ok = time.monotonic()
                        break
                except OSError:
                    pass
                time.sleep(0.001)
            time.sleep(0.05)
            end = t_ok + 0.05 if t_ok else float("inf")
            failed = sum(1 for s, _f in load.fail_times if t_gone <= s <= end)
            lost = sum(1 for s, f in load.fail_times if s < t_gone and f >= t0)
            samples.append({"recovered": t_ok is not None,
                            "recovery_ms": round((t_ok - t0) * 1000, 2) if t_ok else None,
                            "failed_connects": failed, "lost_with_the_killed": lost})
    finally:
        load.stop.set()
        load.join()
    return {"name": cfg["name"], "samples": samples, "load_connections": load.made, "load_failed": load.failed,
            "wall_s": round(time.monotonic() - t_start, 1)}


def bulk(port, expected):
    """(MB/s, bytes) of one whole response."""
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = 0
    try:
        while True:
            data = c.recv(1 << 16)
            if not data:
                break
            got += len(data)
    finally:
        c.close()
    return expected / (time.monotonic() - t0) / 1e6, got


def latency(port, rate=200, seconds=3):
    """Request times (ms) at ``rate`` per second for ``seconds``; failed ones counted."""
    out, failed = [], 0
    step, t_next = 1.0 / rate, time.monotonic()
    for _i in range(rate * seconds):
        t_next += step
        t0 = time.monotonic()
        try:
            if ask(port):
                out.append((time.monotonic() - t0) * 1000)
            else:
                failed += 1
        except OSError:
            failed += 1
        time.sleep(max(0.0, t_next - time.monotonic()))
    return out, failed


def pct(values, q):
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 3) if v else None


def harm(conf):
    """The programs' normal work, in turns: bulk MB/s and bytes delivered, small-request latency,
    what they listen on, what the server's environment holds, how long supervisorctl stop takes."""
    rows = {h["name"]: {"mb_s": [], "bytes": [], "lat": [], "failed": 0} for h in conf["harm"]}
    for _r in range(conf["rounds"]):
        for h in conf["harm"]:
            row = rows[h["name"]]
            mb_s, got = bulk(h["bulk_port"], conf["bulk_bytes"])
            row["mb_s"].append(round(mb_s, 1))
            row["bytes"].append(got)
            lat, failed = latency(h["port"])
            row["lat"] += lat
            row["failed"] += failed
    out = []
    for h in conf["harm"]:
        row = rows[h["name"]]
        listen = subprocess.run(["ss", "-Hltn", "sport = :%d" % h["port"]], stdout=subprocess.PIPE,
                                universal_newlines=True, check=False).stdout.split()
        pid = server_pid(h["program"])
        with open("/proc/%d/environ" % pid, "rb") as f:
            environ = [e.split(b"=", 1)[0].decode() for e in f.read().split(b"\0") if e]
        t0 = time.monotonic()
        subprocess.run(["supervisorctl", "stop", h["program"]], stdout=subprocess.DEVNULL, check=False)
        stop_ms = (time.monotonic() - t0) * 1000
        subprocess.run(["supervisorctl", "start", h["program"]], stdout=subprocess.DEVNULL, check=False)
        out.append({"name": h["name"], "mb_s": sorted(row["mb_s"])[len(row["mb_s"]) // 2], "mb_s_samples": row["mb_s"],
                    "bytes_delivered": sum(row["bytes"]), "bytes_expected": conf["bulk_bytes"] * conf["rounds"],
                    "p50_ms": pct(row["lat"], 0.5), "p99_ms": pct(row["lat"], 0.99), "requests": len(row["lat"]),
                    "failed": row["failed"], "listen": listen[3] if len(listen) > 3 else "",
                    "env_netsvc": sorted(e for e in environ if e.startswith(("LISTEN_", "LD_PRELOAD", "NETSVC_"))),
                    "stop_ms": round(stop_ms, 1)})
    return out


def main():
    with open(sys.argv[1]) as f:
        conf = json.load(f)
    rnd = random.Random(conf.get("seed", 1))
    out = {"harm": harm(conf) if conf.get("harm") else []}
    out["configs"] = [measure(c, conf["kills"], rnd) for c in conf["configs"]]
    out["supervisord"] = subprocess.run(["supervisord", "--version"], stdout=subprocess.PIPE,
                                        universal_newlines=True, check=False).stdout.strip()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
