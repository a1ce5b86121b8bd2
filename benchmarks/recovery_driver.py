"""Crash-recovery benchmark driver, run INSIDE one test container (stdlib only).

  python3 recovery_driver.py CONFIG_JSON

CONFIG_JSON: {"configs": [{"name", "units": [[unit, port], ...], "kills", "mode", "timeout"}],
              "floor": {"port": P, "runs": N}, "seed": S}
mode "sequential": one unit killed `kills` times with random spacing (0.3-1.2 s);
mode "parallel":   each unit killed once at a random offset (0-3 s), concurrently (for
                   configurations whose single recovery takes a minute);
mode "storm":      one unit killed `kills` times as soon as each new main process appears.
A bounded loopback load (a new connection every ~1.5 ms, each answered connection leaving a
TIME_WAIT socket on the service port, like the seed) runs on every port while its
configuration is measured. Prints one JSON document with every sample.
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _probe as P  # noqa: E402  (copied next to this file from plugins/module_utils)


def show(unit):
    out = subprocess.run(["systemctl", "show", unit, "-p", "MainPID", "-p", "ActiveState", "-p", "NRestarts"],
                         stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
    d = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return int(d.get("MainPID") or 0), d.get("ActiveState"), int(d.get("NRestarts") or 0)


def journal(unit, since):
    return subprocess.run(["journalctl", "-u", unit, "--since", "@%d" % int(since), "-o", "cat", "--no-pager"],
                          stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout


class Load(threading.Thread):
    """A new loopback connection every ~1.5 ms to each port, until stopped (bounded)."""

    def __init__(self, ports, max_seconds=120):
        threading.Thread.__init__(self)
        self.daemon = True
        self.ports = ports
        self.stop = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.made = 0

    def run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            for port in self.ports:
                if P.try_connect("127.0.0.1", port, 0.05, b"ok\n"):
                    self.made += 1
            time.sleep(0.0015)


def wait_serving(unit, port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, state, _n = show(unit)
        if pid and state == "active" and P.try_connect("127.0.0.1", port, 0.5, b"ok\n"):
            return pid
        time.sleep(0.02)
    return 0


def one_kill(unit, port, timeout, sa=False):
    """SIGKILL the main PID and measure until a NEW process answers on the port."""
    pid = wait_serving(unit, port, timeout)
    if not pid:
        return {"unit": unit, "recovered": False, "error": "not serving before the kill"}
    since = time.time() - 1
    _p, _s, n0 = show(unit)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    P.wait_until(lambda: P.process_gone(pid), t0 + 2, 0.0005)
    failed = 0
    deadline = t0 + timeout
    recovered_at = None
    while time.monotonic() < deadline:
        if P.try_connect("127.0.0.1", port, 5.0 if sa else 0.25, b"ok\n"):
            t = time.monotonic()
            cur, _s, _n = show(unit)
            if cur and cur != pid:
                recovered_at = t
                break
        else:
            failed += 1
        time.sleep(0.002)
    found = P.scan_journal(journal(unit, since))
    _p, state, n1 = show(unit)
    return {"unit": unit, "recovered": recovered_at is not None,
            "recovery_ms": round((recovered_at - t0) * 1000, 2) if recovered_at else None,
            "failed_connects": failed, "restarts": n1 - n0, "eaddrinuse": bool(found["eaddrinuse"]),
            "start_limit": bool(found["start_limit"]), "active_after": state == "active"}


def run_config(cfg, rng):
    units = cfg["units"]
    load = Load([p for _u, p in units])
    load.start()
    samples = []
    try:
        if cfg["mode"] == "parallel":
            out = [None] * len(units)

            def worker(i, unit, port, delay):
                time.sleep(delay)
                out[i] = one_kill(unit, port, cfg["timeout"])

            threads = [threading.Thread(target=worker, args=(i, u, p, rng.uniform(0, 3)))
                       for i, (u, p) in enumerate(units)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(cfg["timeout"] + 30)
            samples = [s for s in out if s]
        elif cfg["mode"] == "storm":
            unit, port = units[0]
            wait_serving(unit, port, 30)
            since = time.time() - 1
            killed = 0
            last = 0
            deadline = time.monotonic() + 30
            while killed < cfg["kills"] and time.monotonic() < deadline:
                pid, _s, _n = show(unit)
                if pid and pid != last:
                    os.kill(pid, signal.SIGKILL)
                    last = pid
                    killed += 1
                time.sleep(0.001)
            time.sleep(3)  # let a crash loop show itself
            ok = wait_serving(unit, port, 30)
            _p, state, _n = show(unit)
            found = P.scan_journal(journal(unit, since))
            samples = [{"unit": unit, "kills": killed, "active_at_end": state == "active", "serving_at_end": bool(ok),
                        "start_limit": bool(found["start_limit"]), "eaddrinuse": bool(found["eaddrinuse"])}]
        else:
            unit, port = units[0]
            for _i in range(cfg["kills"]):
                time.sleep(rng.uniform(0.3, 1.2))
                samples.append(one_kill(unit, port, cfg["timeout"], sa=cfg.get("socket_activation", False)))
                # a unit that gave up is reset so the next kill measures again
                if not samples[-1]["recovered"]:
                    subprocess.run(["systemctl", "reset-failed", unit], check=False)
                    subprocess.run(["systemctl", "start", unit], check=False)
    finally:
        load.stop.set()
        load.join(5)
    return {"name": cfg["name"], "mode": cfg["mode"], "samples": samples, "load_connections": load.made}


def floor(port, runs):
    """exec -> listening of the bare server: the physical limit without socket activation."""
    out = []
    for _i in range(runs):
        t0 = time.monotonic()
        proc = subprocess.Popen(["/usr/bin/python3", "/usr/local/bin/netsvc-echo", str(port), "--reuseaddr"],
                                stdout=subprocess.DEVNULL)
        ok = P.wait_until(lambda: P.try_connect("127.0.0.1", port, 0.2, b"ok\n"), t0 + 5, 0.0005)
        if ok:
            out.append(round((time.monotonic() - t0) * 1000, 2))
        proc.kill()
        proc.wait()
        time.sleep(0.2)
    return out


def main():
    with open(sys.argv[1]) as f:
        conf = json.load(f)
    rng = random.Random(conf.get("seed", 1))
    result = {"floor_ms": floor(conf["floor"]["port"], conf["floor"]["runs"]), "configs": []}
    for cfg in conf["configs"]:
        t0 = time.monotonic()
        r = run_config(cfg, rng)
        r["wall_s"] = round(time.monotonic() - t0, 1)
        result["configs"].append(r)
        sys.stderr.write("%s: %d samples in %.1f s\n" % (cfg["name"], len(r["samples"]), r["wall_s"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
