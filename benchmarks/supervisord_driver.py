"""supervisord benchmark driver, run INSIDE the supervisord container (stdlib only).

  python3 supervisord_driver.py CONFIG_JSON

CONFIG_JSON: {"configs": [{"name", "program", "port"}], "kills": N, "seed": S}
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


def main():
    with open(sys.argv[1]) as f:
        conf = json.load(f)
    rnd = random.Random(conf.get("seed", 1))
    out = {"configs": [measure(c, conf["kills"], rnd) for c in conf["configs"]]}
    out["supervisord"] = subprocess.run(["supervisord", "--version"], stdout=subprocess.PIPE,
                                        universal_newlines=True, check=False).stdout.strip()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
