"""netsvc.resilience benchmark suite (controller side). Run it with `make bench [PART=name]`.

  python3 benchmarks/bench.py [recovery|vm|sysctl|rollout|fleet|harm|all|PART,PART...] [--smoke] [--out DIR]

Every part is a side-by-side comparison in ONE run on the same container(s):
  recovery  SIGKILL -> serving under a bounded loopback load, >= 10 kills per configuration:
            tutorial unit (Restart=on-failure, RestartSec=5s) with and without SO_REUSEADDR,
            the collection's default hardening with and without SO_REUSEADDR, socket
            activation, a crash storm; plus the server's own exec -> listening floor, and the
            restart hook's own time vs TIME_WAIT count (0, 1k, 10k), native and Python twin.
  sysctl    8 keys with one sysctl_tcp task vs 8 ansible.posix.sysctl tasks (>= 5 runs).
  rollout   harden_restart.yml on 1, 5, 10 hosts (first run, re-run) vs the naive playbook.
  fleet     harden_restart.yml on 1, 10, 25, 50 hosts vs the naive playbook, forks = hosts (medians
            of 3 rounds at 1 and 10 hosts), with the controller's peak memory, a one-ping floor
            and a per-task profile at 50 hosts.
  vm        the recovery driver on Linux 5.10 (scripts/vm.sh): tutorial, default hook, native
            socket activation and preload, servers without SO_REUSEADDR.
  supervisord  SIGKILL -> serving and failed connects under load for supervisord programs: as
            supervisord runs them, hardened (the hook's holder restarts the server), hardened with
            socket_activation: preload (the holder owns the socket); with and without SO_REUSEADDR.
  harm      the service's normal work, hardened or not: five copies of Debian's nginx (left as
            installed twice, socket_activation: preload, cleanup: true, cleanup: false), bulk
            throughput and the server's send buffer through a 20 ms round trip, p50/p99
            request latency under a steady load, bytes delivered; ratios to the unhardened one.
Results: DIR/results.json (machine, kernel, systemd, every sample), results.md, *.svg.
Containers are labelled netsvc.bench=<this run> and removed at the end, even on failure.
--smoke runs one kill of the hardened configuration only (used by the test suite).
"""
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests"))
import harness as HN  # noqa: E402  (tests/harness.py: the test bed's shared helpers)

VENV = HN.VENV
IMAGE = HN.IMAGE
sh = HN.sh
env = HN.env
# this run's containers only: a second run (or make test) is never touched
FLEET = HN.Fleet("netsvc.bench=%d-%d" % (os.getpid(), int(time.time())), "netsvc-bench")


def log(msg):
    sys.stderr.write("[bench] %s\n" % msg)
    sys.stderr.flush()


def cleanup_containers():
    FLEET.destroy_all()


def start_hosts(names):
    return FLEET.start(names)


def destroy_hosts(names):
    FLEET.destroy(names)


def playbook(inv, path, *extra):
    """Run ansible-playbook; returns wall seconds (raises on failure)."""
    return HN.playbook(inv, path, *extra)[0]


def stats(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"n": 0}
    p90 = vals[min(len(vals) - 1, int(math.ceil(0.9 * len(vals))) - 1)]
    return {"n": len(vals), "median": round(statistics.median(vals), 2), "p90": round(p90, 2),
            "max": round(vals[-1], 2), "min": round(vals[0], 2)}


def bench_path(*p):
    return os.path.join(TOP, "benchmarks", *p)


# ---------------------------------------------------------------------------- recovery + cleanup

TUT_NOREUSE = [("bench-tut-noreuse-%d.service" % i, 7200 + i) for i in range(1, 11)]
TUT_REUSE = [("bench-tut-reuse-%d.service" % i, 7210 + i) for i in range(1, 11)]


def recovery_rows(data):
    """The driver's output as report rows (medians, p90, max, failed connects...)."""
    rows = []
    for cfg in data["configs"]:
        s = cfg["samples"]
        row = {"name": cfg["name"], "mode": cfg["mode"], "samples": s, "wall_s": cfg["wall_s"],
               "load_connections": cfg["load_connections"]}
        if cfg["mode"] != "storm":
            row["recovery_ms"] = stats([x.get("recovery_ms") for x in s])
            row["recovered"] = sum(1 for x in s if x.get("recovered"))
            row["failed_connects"] = stats([x.get("failed_connects") for x in s])
            row["eaddrinuse"] = sum(1 for x in s if x.get("eaddrinuse"))
            row["start_limit"] = sum(1 for x in s if x.get("start_limit"))
        rows.append(row)
    return rows


def recovery(results, smoke=False):
    host = "netsvc-bench-recovery"
    inv = start_hosts([host])
    try:
        units = [] if smoke else (
            [{"name": u[:-8], "port": p} for u, p in TUT_NOREUSE]
            + [{"name": u[:-8], "port": p, "reuseaddr": True} for u, p in TUT_REUSE])
        units += [{"name": "bench-hard-noreuse", "port": 7230},
                  {"name": "bench-hard-reuse", "port": 7231, "reuseaddr": True},
                  {"name": "bench-sa", "port": 7232, "start": False},
                  {"name": "bench-storm", "port": 7233},
                  {"name": "bench-nohook", "port": 7234, "reuseaddr": True},
                  {"name": "bench-preload", "port": 7235},
                  {"name": "bench-hook-reuse", "port": 7236, "reuseaddr": True}]
        playbook(inv, bench_path("recovery_setup.yml"), "-e", json.dumps({"netsvc_test_units": units}))
        probe = os.path.join(TOP, "plugins", "module_utils", "primitives", "_probe.py")
        sh(["docker", "cp", probe, host + ":/root/_probe.py"])
        sh(["docker", "cp", bench_path("recovery_driver.py"), host + ":/root/recovery_driver.py"])
        kills = 1 if smoke else 10
        configs = [
            {"name": "hardened, no SO_REUSEADDR", "units": [["bench-hard-noreuse.service", 7230]], "kills": kills,
             "mode": "sequential", "timeout": 20},
        ]
        if not smoke:
            configs = [
                {"name": "tutorial, no SO_REUSEADDR", "units": TUT_NOREUSE, "kills": 1, "mode": "parallel",
                 "timeout": 90},
                {"name": "tutorial, SO_REUSEADDR", "units": TUT_REUSE, "kills": 1, "mode": "parallel", "timeout": 30},
            ] + configs + [
                # the default (cleanup: auto): no hook, the listener was read with SO_REUSEADDR
                # 20 kills each for the three rows whose ratios are targets (medians of 10 move ~15 %)
                {"name": "hardened, SO_REUSEADDR", "units": [["bench-hard-reuse.service", 7231]], "kills": 2 * kills,
                 "mode": "sequential", "timeout": 20},
                {"name": "hardened, SO_REUSEADDR, cleanup: true", "units": [["bench-hook-reuse.service", 7236]],
                 "kills": 2 * kills, "mode": "sequential", "timeout": 20},
                {"name": "hardened, SO_REUSEADDR, cleanup: false", "units": [["bench-nohook.service", 7234]],
                 "kills": 2 * kills, "mode": "sequential", "timeout": 20},
                {"name": "socket activation", "units": [["bench-sa.service", 7232]], "kills": kills,
                 "mode": "sequential", "timeout": 20, "socket_activation": True},
                {"name": "socket activation, preload (no SO_REUSEADDR)", "units": [["bench-preload.service", 7235]],
                 "kills": kills, "mode": "sequential", "timeout": 20, "socket_activation": True},
                {"name": "crash storm (hardened)", "units": [["bench-storm.service", 7233]], "kills": 12,
                 "mode": "storm", "timeout": 30},
            ]
        conf = {"configs": configs, "floor": {"port": 7299, "runs": 3 if smoke else 10}, "seed": 20261121}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(conf, f)
        sh(["docker", "cp", f.name, host + ":/root/bench.json"])
        out = subprocess.run(["docker", "exec", host, "python3", "/root/recovery_driver.py", "/root/bench.json"],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
        data = json.loads(out)
        results["floor_ms"] = {"samples": data["floor_ms"], "stats": stats(data["floor_ms"])}
        rows = recovery_rows(data)
        results["recovery"] = rows
        results["systemd"] = subprocess.run(["docker", "exec", host, "systemctl", "--version"], stdout=subprocess.PIPE,
                                            universal_newlines=True, check=False).stdout.splitlines()[0]
        # what systemd really runs before each start of the hardened units (cleanup: auto decided it)
        results["prestart"] = {
            unit: "netsvc-sockclean" in subprocess.run(
                ["docker", "exec", host, "systemctl", "show", "-p", "ExecStartPre", "--value", unit],
                stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
            for unit in ("bench-hard-noreuse.service", "bench-hard-reuse.service", "bench-hook-reuse.service",
                         "bench-nohook.service")}
        if not smoke:
            sh(["docker", "cp", bench_path("cleanup_driver.py"), host + ":/root/cleanup_driver.py"])
            sh(["docker", "cp", bench_path("..", "plugins", "module_utils", "primitives", "_sockdiag.py"),
                host + ":/root/netsvc_sockdiag.py"])
            out = subprocess.run(["docker", "exec", host, "python3", "/root/cleanup_driver.py"],
                                 stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
            results["cleanup"] = json.loads(out)
    finally:
        destroy_hosts([host])
        os.unlink(inv)


# ---------------------------------------------------------------------------- harm

HARM = [
    {"name": "unhardened", "id": "plain", "port": 7401, "service": None},
    # the same unhardened nginx again (A/A): how far two identical servers differ in one run
    {"name": "unhardened, second copy", "id": "plain2", "port": 7405, "service": None},
    {"name": "preload", "id": "preload", "port": 7402,
     "service": {"name": "nginx-harm-preload.service", "ports": [7402], "socket_activation": "preload"}},
    {"name": "hook (cleanup: true)", "id": "hook", "port": 7403,
     "service": {"name": "nginx-harm-hook.service", "ports": [7403], "cleanup": True}},
    {"name": "no hook (cleanup: false)", "id": "nohook", "port": 7404,
     "service": {"name": "nginx-harm-nohook.service", "ports": [7404], "cleanup": False}},
]


def harm(results, rounds=9):
    """The service's normal work in four configurations, side by side in one container."""
    host = "netsvc-bench-harm"
    inv = start_hosts_image([host], os.environ.get("NETSVC_DAEMONS_IMAGE", "localhost/netsvc-debian12-daemons:latest"))
    try:
        playbook(inv, bench_path("harm_setup.yml"), "-e", json.dumps({
            "harm_configs": [{"name": c["id"], "port": c["port"], "service": c["service"]} for c in HARM]}))
        sh(["docker", "cp", bench_path("harm_driver.py"), host + ":/root/harm_driver.py"])
        conf = {"configs": [{"name": c["name"], "port": c["port"]} for c in HARM], "rounds": rounds,
                "bulk_bytes": 16 << 20, "bulk_path": "/16m", "small_path": "/small", "rate": 200, "seconds": 5,
                "delay_ms": 10}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(conf, f)
        sh(["docker", "cp", f.name, host + ":/root/harm.json"])
        out = subprocess.run(["docker", "exec", host, "python3", "/root/harm_driver.py", "/root/harm.json"],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
        data = json.loads(out)["configs"]
        base = data["unhardened"]
        rows = []
        for c in HARM:
            d = data[c["name"]]
            rows.append({"name": c["name"], "mb_s": round(d["mb_s"], 2), "sndbuf": d["sndbuf"],
                         "p50_ms": round(d["p50_ms"], 3), "p99_ms": round(d["p99_ms"], 3),
                         "bytes_delivered": d["bytes_delivered"], "bytes_expected": d["bytes_expected"],
                         "requests": d["requests"], "failed": d["failed"],
                         "mb_s_samples": [round(x["mb_s"], 2) for x in d["bulk"]],
                         "ratio_mb_s": _ratio(d["mb_s"], base["mb_s"], 3),
                         "ratio_p50": _ratio(d["p50_ms"], base["p50_ms"], 3),
                         "ratio_p99": _ratio(d["p99_ms"], base["p99_ms"], 3),
                         "ratio_sndbuf": _ratio(d["sndbuf"], base["sndbuf"], 3) if d["sndbuf"] else None})
        results["harm"] = {"rows": rows, "conf": conf, "listening": subprocess.run(
            ["docker", "exec", host, "ss", "-Hltnp"], stdout=subprocess.PIPE, universal_newlines=True,
            check=False).stdout}
    finally:
        destroy_hosts([host])
        os.unlink(inv)


def start_hosts_image(names, image, init=None):
    return FLEET.start(names, image=image, init=init or HN.INIT)


# ---------------------------------------------------------------------------- supervisord

# (row name, program, port, SO_REUSEADDR, the netsvc_services entry or None: left as it is)
# "v1": the program as 1.0.0 hardened it (hook in front, supervisord's respawn), written by the
# setup. Left as it is without SO_REUSEADDR, a program goes FATAL (EADDRINUSE for ~60 s): no row.
SUP = [
    ("supervisord as is, SO_REUSEADDR", "plain_reuse", 7311, True, None),
    ("1.0.0 hardening (hook, supervisord respawns), no SO_REUSEADDR", "v1_noreuse", 7310, False, "v1"),
    ("hardened (holder restarts), no SO_REUSEADDR", "hold_noreuse", 7312, False, {}),
    ("hardened (holder restarts), SO_REUSEADDR", "hold_reuse", 7313, True, {}),
    ("hardened, preload (holder owns the socket), no SO_REUSEADDR", "held_noreuse", 7314, False,
     {"socket_activation": "preload"}),
    ("hardened, preload (holder owns the socket), SO_REUSEADDR", "held_reuse", 7315, True,
     {"socket_activation": "preload"}),
]


# the harm rows: (row name, small program of SUP, its port, bulk program, bulk port)
SUP_HARM = [
    ("as supervisord runs it", "plain_reuse", 7311, "bulk_plain", 7321),
    # the same again (A/A): how far two identical programs differ in one run
    ("as supervisord runs it, second copy", "plain2_reuse", 7317, "bulk_plain2", 7327),
    ("hardened (holder restarts)", "hold_reuse", 7313, "bulk_hold", 7323),
    ("hardened, preload (holder owns the socket)", "held_reuse", 7315, "bulk_held", 7325),
]


def supervisord(results, kills=10):
    """SIGKILL -> serving and failed connects under load for supervisord programs: as supervisord
    runs them, and hardened (the hook's holder, with and without the socket), in one container."""
    host = "netsvc-bench-sup"
    inv = start_hosts_image([host], os.environ.get("NETSVC_SUPERVISORD_IMAGE",
                                                   "localhost/netsvc-debian12-supervisord:latest"),
                            ["/usr/bin/supervisord", "-n", "-c", "/etc/supervisor/supervisord.conf"])
    try:
        configs = [{"name": prog, "port": port, "reuseaddr": reuse, "v1": svc == "v1",
                    "service": dict(svc, name=prog, ports=[port]) if isinstance(svc, dict) else None}
                   for _row, prog, port, reuse, svc in SUP]
        # the bulk servers of the harm rows: the same hardening as their small twins
        twins = {prog: c for (_row, prog, _p, _r, _s), c in zip(SUP, configs)}
        for _row, prog, port, bulk, bport in SUP_HARM:
            if prog not in twins:  # a program of the harm rows only, left as it is
                twins[prog] = {"name": prog, "port": port, "reuseaddr": True, "v1": False, "service": None}
                configs.append(twins[prog])
            svc = twins[prog]["service"]
            configs.append({"name": bulk, "port": bport, "reuseaddr": True, "v1": False, "bulk": 16 << 20,
                            "service": dict(svc, name=bulk, ports=[bport]) if svc else None})
        setup = {"sup_configs": configs, "netsvc_init": "supervisord"}
        playbook(inv, bench_path("supervisord_setup.yml"), "-e", json.dumps(setup))
        sh(["docker", "cp", bench_path("supervisord_driver.py"), host + ":/root/supervisord_driver.py"])
        conf = {"configs": [{"name": row, "program": prog, "port": port} for row, prog, port, _r, _s in SUP],
                "kills": kills, "seed": 20261207, "bulk_bytes": 16 << 20, "rounds": 5,
                "harm": [{"name": row, "program": prog, "port": port, "bulk_program": bulk, "bulk_port": bport}
                         for row, prog, port, bulk, bport in SUP_HARM]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(conf, f)
        sh(["docker", "cp", f.name, host + ":/root/sup.json"])
        out = subprocess.run(["docker", "exec", host, "python3", "/root/supervisord_driver.py", "/root/sup.json"],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
        data = json.loads(out)
        rows = []
        for cfg in data["configs"]:
            s = cfg["samples"]
            rows.append({"name": cfg["name"], "samples": s, "recovered": sum(1 for x in s if x["recovered"]),
                         "recovery_ms": stats([x["recovery_ms"] for x in s]),
                         "failed_connects": stats([x["failed_connects"] for x in s]),
                         "failed_total": sum(x["failed_connects"] or 0 for x in s),
                         "lost_total": sum(x.get("lost_with_the_killed") or 0 for x in s),
                         "load_connections": cfg["load_connections"], "wall_s": cfg["wall_s"]})
        commands = subprocess.run(["docker", "exec", host, "sh", "-c", "grep -h '^command' /etc/supervisor/conf.d/*"],
                                  stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
        results["supervisord"] = {"rows": rows, "version": data["supervisord"], "kills": kills,
                                  "commands": commands.splitlines(), "harm": data["harm"]}
    finally:
        destroy_hosts([host])
        os.unlink(inv)


# ---------------------------------------------------------------------------- the kernel 5.10 VM

HARD_NOREUSE_VM = [("bench-vmhard-%d.service" % i, 7240 + i) for i in range(1, 11)]


def vm_recovery(results):
    """The same driver on Linux 5.10 (scripts/vm.sh): the hook cannot destroy TIME_WAIT there.

    Tutorial unit and default hardening without SO_REUSEADDR: ten units killed once each, in
    parallel (each kill costs ~60 s); native socket activation and preload: ten kills each.
    """
    name = "bench-vm"
    vm = json.loads(subprocess.run([os.path.join(TOP, "scripts", "vm.sh"), "start", name], stdout=subprocess.PIPE,
                                   universal_newlines=True, check=True).stdout)
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as inv:
        inv.write("%s ansible_host=%s ansible_port=%s ansible_user=%s ansible_ssh_private_key_file=%s "
                  "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' "
                  "ansible_python_interpreter=/usr/bin/python3\n" % (
                      name, vm["address"], vm["port"], vm["user"], vm["identity_file"]))

    def vm_ssh(*argv, **kw):
        return subprocess.run([os.path.join(TOP, "scripts", "vm.sh"), "ssh", name] + list(argv),
                              universal_newlines=True, check=True, **kw)

    try:
        units = ([{"name": u[:-8], "port": p} for u, p in TUT_NOREUSE]
                 + [{"name": u[:-8], "port": p} for u, p in HARD_NOREUSE_VM]
                 + [{"name": "bench-sa", "port": 7232, "start": False}, {"name": "bench-preload", "port": 7235}])
        services = ([{"name": u, "ports": [p]} for u, p in HARD_NOREUSE_VM]
                    + [{"name": "bench-sa.service", "ports": [7232], "socket_activation": True,
                        "accepts_inherited_fds": True},
                       {"name": "bench-preload.service", "ports": [7235], "socket_activation": "preload"}])
        playbook(inv.name, bench_path("recovery_setup.yml"), "-e",
                 json.dumps({"netsvc_test_units": units, "bench_services": services,
                             "netsvc_proc_sys_rw": False}))  # a VM's /proc/sys is writable as it is
        for src, dest in ((os.path.join(TOP, "plugins", "module_utils", "primitives", "_probe.py"), "/root/_probe.py"),
                          (bench_path("recovery_driver.py"), "/root/recovery_driver.py")):
            with open(src) as f:
                vm_ssh("cat > " + dest, input=f.read())
        configs = [
            {"name": "tutorial, no SO_REUSEADDR", "units": TUT_NOREUSE, "kills": 1, "mode": "parallel", "timeout": 120},
            {"name": "hardened (cleanup hook), no SO_REUSEADDR", "units": HARD_NOREUSE_VM, "kills": 1,
             "mode": "parallel", "timeout": 120},
            {"name": "socket activation", "units": [["bench-sa.service", 7232]], "kills": 10, "mode": "sequential",
             "timeout": 30, "socket_activation": True},
            {"name": "socket activation, preload (no SO_REUSEADDR)", "units": [["bench-preload.service", 7235]],
             "kills": 10, "mode": "sequential", "timeout": 30, "socket_activation": True},
        ]
        conf = json.dumps({"configs": configs, "floor": {"port": 7299, "runs": 5}, "seed": 20261122})
        vm_ssh("cat > /root/bench.json", input=conf)
        out = vm_ssh("python3 /root/recovery_driver.py /root/bench.json", stdout=subprocess.PIPE).stdout
        data = json.loads(out)
        results["vm"] = {"kernel": vm_ssh("uname -r", stdout=subprocess.PIPE).stdout.strip(),
                         "systemd": vm_ssh("systemctl --version", stdout=subprocess.PIPE).stdout.splitlines()[0],
                         "accel": vm["accel"], "floor_ms": {"samples": data["floor_ms"],
                                                            "stats": stats(data["floor_ms"])},
                         "recovery": recovery_rows(data)}
    finally:
        subprocess.run([os.path.join(TOP, "scripts", "vm.sh"), "stop", name], check=False)
        os.unlink(inv.name)


# ---------------------------------------------------------------------------- sysctl


def sysctl(results, runs=5):
    host = "netsvc-bench-sysctl"
    inv = start_hosts([host])
    try:
        playbook(inv, os.path.join(TOP, "molecule", "_shared", "prepare.yml"))
        samples = {"one sysctl_tcp task": [], "8 ansible.posix.sysctl tasks": []}
        for i in range(runs):
            variants = (("one sysctl_tcp task", "sysctl_one.yml"),
                        ("8 ansible.posix.sysctl tasks", "sysctl_perkey.yml"))
            for name, pb in variants:
                samples[name].append(round(playbook(inv, bench_path(pb), "-e", "bench_set=%d" % (i % 2)), 3))
        base = [round(playbook(inv, bench_path("noop.yml")), 3) for _i in range(runs)]
        one = statistics.median(samples["one sysctl_tcp task"])
        per = statistics.median(samples["8 ansible.posix.sysctl tasks"])
        b = statistics.median(base)
        results["sysctl"] = {"samples": samples, "noop_playbook_s": base, "ratio_wall": round(per / one, 2),
                             "per_key_extra_s": round(per - max(one, b), 2)}
    finally:
        destroy_hosts([host])
        os.unlink(inv)


# ---------------------------------------------------------------------------- rollout


def tree_rss_mb(root):
    """Proportional set size of a process and all its descendants (the controller:
    ansible-playbook and its forks), MiB."""
    kids = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(pid))
            except (IOError, OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:  # PSS: pages shared by the forks are split between them, not counted per fork
            with open("/proc/%d/smaps_rollup" % pid) as f:
                total += sum(int(x.split()[1]) for x in f if x.startswith("Pss:"))
        except (IOError, OSError, ValueError):
            pass
    return total / 1024.0


def measured_playbook(inv, path, extra, forks):
    """(wall seconds, peak controller RSS MiB, output) of one ansible-playbook run."""
    t0 = time.monotonic()
    proc = subprocess.Popen(HN.playbook_argv(inv, path, *extra), env=env({"ANSIBLE_FORKS": str(forks)}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            done.wait(0.25)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output = proc.communicate()[0]
    wall = time.monotonic() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.stderr.write(output[-4000:])
        raise RuntimeError("%s failed (rc=%d)" % (path, proc.returncode))
    return wall, round(peak[0], 1), output


def task_profile(output, top=12):
    """profile_tasks' TASKS RECAP lines -> [(task, seconds)], slowest first."""
    rows = []
    recap = output.split("TASKS RECAP", 1)[-1]
    for line in recap.splitlines():
        name, sep, secs = line.rpartition(" ")
        if sep and secs.endswith("s") and name.rstrip(" -"):
            try:
                rows.append((name.rstrip(" -").strip(), float(secs[:-1])))
            except ValueError:
                pass
    return rows[:top]


def fleet_curve(results, sizes=(1, 10, 25, 50), rounds=None):
    """Rollout wall time for 1-50 hosts, ours vs naive, same forks for both (= hosts), first run
    and re-run, the controller's peak memory, and a per-task profile at the largest size.

    Medians of 3 rounds at 1 and 10 hosts (a 4-20 s run on 2 shared cores moves 20-30 % between
    runs), one round at 25 and 50 hosts (their runs are long enough to be steadier, and a round
    there takes 4-8 minutes). Every round starts fresh hosts for each playbook."""
    rounds = rounds or {1: 3, 10: 3}
    knob = "/proc/sys/fs/inotify/max_user_instances"
    with open(knob) as f:
        if int(f.read()) < 8192:
            # every systemd container takes inotify instances; at the default 128 about 7 of 30
            # exit at start (docs/testbed.md). A host-wide knob, raised for this test bed only.
            log("raising %s to 8192 for %d systemd containers" % (knob, max(sizes)))
            with open(knob, "w") as w:
                w.write("8192\n")
    rows = []
    variants = (("collection", os.path.join(TOP, "playbooks", "harden_restart.yml"),
                 # as the naive playbook: no become (the docker connection is root already)
                 lambda n: ["-e", "netsvc_crash_test=none", "-e", "netsvc_become=false", "-e", "netsvc_canary=%d" % n,
                            "-e", "netsvc_batch=%d" % n]),
                ("naive", bench_path("naive.yml"), lambda n: []))
    for n in sizes:
        row = {"hosts": n, "forks": max(n, 5), "rounds": rounds.get(n, 1)}
        samples = {v: {"first": [], "rerun": [], "mem": []} for v, _pb, _x in variants}
        noop = []
        for rnd in range(row["rounds"]):
            # the two playbooks alternate which goes first, by size and by round
            for variant, pb, extra in (variants if (n + rnd) % 2 else variants[::-1]):
                names = ["netsvc-bench-f%d" % i for i in range(n)]
                inv = start_hosts(names)
                try:
                    playbook(inv, bench_path("rollout_prepare.yml"))
                    args = ["-e", "@" + bench_path("rollout_vars.yml")] + extra(n)
                    first, mem1, out1 = measured_playbook(inv, pb, args, row["forks"])
                    again, mem2, out2 = measured_playbook(inv, pb, args, row["forks"])
                    got = samples[variant]
                    got["first"].append(round(first, 2))
                    got["rerun"].append(round(again, 2))
                    got["mem"].append(max(mem1, mem2))
                    if n == max(sizes) and rnd == 0:
                        got["profile"] = task_profile(out1)
                        got["rerun_profile"] = task_profile(out2)
                    if variant == "collection":
                        # the floor of any playbook here: ansible-playbook's start-up and one module call per host
                        noop.append(round(measured_playbook(inv, bench_path("noop.yml"), [], row["forks"])[0], 2))
                    log("fleet %s on %d hosts, round %d: first %.1f s, re-run %.1f s, controller peak %.0f MiB" % (
                        variant, n, rnd + 1, first, again, max(mem1, mem2)))
                finally:
                    destroy_hosts(names)
                    os.unlink(inv)
        for variant, got in samples.items():
            first = statistics.median(got["first"])
            row[variant] = {"first_s": round(first, 2), "rerun_s": round(statistics.median(got["rerun"]), 2),
                            "first_s_per_host": round(first / n, 3), "peak_rss_mb": max(got["mem"]),
                            "first_samples": got["first"], "rerun_samples": got["rerun"]}
            for key in ("profile", "rerun_profile"):
                if key in got:
                    row[variant][key] = got[key]
        row["noop_s"] = round(statistics.median(noop), 2)
        row["first_ratio_naive_over_ours"] = round(row["naive"]["first_s"] / row["collection"]["first_s"], 2)
        row["rerun_over_first"] = round(row["collection"]["rerun_s"] / row["collection"]["first_s"], 2)
        rows.append(row)
    results["fleet"] = rows


def rollout(results, sizes=(1, 5, 10), rounds=3):
    """Each round: fresh hosts, first run, re-run; the two playbooks alternate which goes first.

    Medians over the rounds: one run of a 5-second playbook on 2 noisy cores varies by +-20 %.
    """
    rows = []
    variants = {
        "collection": (os.path.join(TOP, "playbooks", "harden_restart.yml"),
                       lambda n: ["-e", "netsvc_crash_test=none", "-e", "netsvc_become=false",
                                  "-e", "netsvc_canary=%d" % n, "-e", "netsvc_batch=%d" % n]),
        "naive": (bench_path("naive.yml"), lambda n: []),
    }
    for n in sizes:
        samples = {v: {"first_s": [], "rerun_s": []} for v in variants}
        for rnd in range(rounds):
            order = ["collection", "naive"] if rnd % 2 == 0 else ["naive", "collection"]
            for variant in order:
                pb, extra = variants[variant]
                names = ["netsvc-bench-r%d" % i for i in range(n)]
                inv = start_hosts(names)
                try:
                    playbook(inv, bench_path("rollout_prepare.yml"))
                    first = playbook(inv, pb, "-e", "@" + bench_path("rollout_vars.yml"), *extra(n))
                    again = playbook(inv, pb, "-e", "@" + bench_path("rollout_vars.yml"), *extra(n))
                    samples[variant]["first_s"].append(round(first, 2))
                    samples[variant]["rerun_s"].append(round(again, 2))
                    log("rollout %s on %d hosts, round %d: first %.1f s, re-run %.1f s" % (variant, n, rnd + 1,
                                                                                           first, again))
                finally:
                    destroy_hosts(names)
                    os.unlink(inv)
        row = {"hosts": n, "rounds": rounds}
        for variant, smp in samples.items():
            row[variant] = {"first_s": round(statistics.median(smp["first_s"]), 2),
                            "rerun_s": round(statistics.median(smp["rerun_s"]), 2), "samples": smp}
        row["first_ratio_naive_over_ours"] = round(row["naive"]["first_s"] / row["collection"]["first_s"], 2)
        row["rerun_over_first"] = round(row["collection"]["rerun_s"] / row["collection"]["first_s"], 2)
        rows.append(row)
    results["rollout"] = rows


# ---------------------------------------------------------------------------- report


def svg_bars(title, rows, unit, log_scale):
    """A small horizontal bar chart; rows: [(label, value, note)]."""
    width, left, bar_w, row_h = 760, 250, 420, 26
    vals = [v for _l, v, _n in rows if v]
    top = max(vals) if vals else 1
    low = min(vals) if vals else 1

    def scale(v):
        if not v:
            return 0
        if log_scale:
            lo = math.log10(max(low / 2, 0.1))
            return bar_w * (math.log10(v) - lo) / max(math.log10(top) - lo, 1e-9)
        return bar_w * v / top

    h = 40 + row_h * len(rows)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (width, h),
           '<text x="10" y="20" font-size="14" font-weight="bold">%s%s</text>' % (
               title, " (log scale)" if log_scale else "")]
    for i, (label, v, note) in enumerate(rows):
        y = 32 + i * row_h
        out.append('<text x="10" y="%d">%s</text>' % (y + 14, label))
        out.append('<rect x="%d" y="%d" width="%.1f" height="16" fill="%s"/>' % (
            left, y + 2, max(scale(v), 1), "#4a9d4a" if note != "fail" else "#c44"))
        out.append('<text x="%.1f" y="%d">%s</text>' % (left + max(scale(v), 1) + 6, y + 14,
                                                        ("%s %s" % (v, unit)) if v is not None else note))
    out.append("</svg>")
    return "\n".join(out)


def _ratio(a, b, digits=2):
    return round(a / b, digits) if a is not None and b else None


def targets(results):
    """Each target from the issues: (what, target, measured, met, why-if-missed)."""
    out = []
    rec = {r["name"]: r for r in results.get("recovery", [])}

    def med(name):
        return (rec.get(name) or {}).get("recovery_ms", {}).get("median")

    hook1k = None
    for row in results.get("cleanup", []):
        if row["sockets"] == 1000:
            hook0 = statistics.median([r["native_ms"] for r in results["cleanup"] if r["sockets"] == 0][0])
            hook1k = round(statistics.median(row["native_ms"]) - hook0, 2)
    checks = [
        ("hardened, no SO_REUSEADDR: median SIGKILL -> serving", "<= 100 ms", med("hardened, no SO_REUSEADDR"),
         lambda v: v is not None and v <= 100, ""),
        ("hardened, SO_REUSEADDR: median SIGKILL -> serving", "<= 60 ms", med("hardened, SO_REUSEADDR"),
         lambda v: v is not None and v <= 60, ""),
        ("default (cleanup: auto), SO_REUSEADDR: median / cleanup: false median", "<= 1.15",
         _ratio(med("hardened, SO_REUSEADDR"), med("hardened, SO_REUSEADDR, cleanup: false")),
         lambda v: v <= 1.15, ""),
        ("hook forced (cleanup: true), SO_REUSEADDR: median / cleanup: false median", "(reference)",
         _ratio(med("hardened, SO_REUSEADDR, cleanup: true"), med("hardened, SO_REUSEADDR, cleanup: false")),
         lambda v: True, ""),
        ("socket activation: failed connects", "0", (rec.get("socket activation") or {}).get(
            "failed_connects", {}).get("max"), lambda v: v == 0, ""),
        ("crash storm: unit active at the end", "True", ((rec.get("crash storm (hardened)") or {}).get(
            "samples") or [{}])[0].get("active_at_end"), lambda v: v is True, ""),
        ("hook: time added by 1,000 TIME_WAIT sockets (vs none)", "<= 20 ms", hook1k,
         lambda v: v is not None and v <= 20,
         "the kernel's SOCK_DESTROY of a TIME_WAIT socket costs ~15 us here (`ss -K` alone), twice the "
         "7.5 us measured when the target was set"),
        ("sysctl: per-key / one call", ">= 3x", (results.get("sysctl") or {}).get("ratio_wall"),
         lambda v: v is not None and v >= 3, ""),
    ]
    for where, rows in (("kernel %s" % results.get("kernel"), results.get("recovery", [])),
                        ("kernel %s (VM)" % (results.get("vm") or {}).get("kernel"), (results.get("vm") or {}).get(
                            "recovery", []))):
        by = {r["name"]: r for r in rows}
        pre, nat = by.get("socket activation, preload (no SO_REUSEADDR)"), by.get("socket activation")
        if pre and nat and nat["recovery_ms"].get("median"):
            checks.append(("%s: preload median / native socket activation median" % where, "<= 1.2",
                           round(pre["recovery_ms"]["median"] / nat["recovery_ms"]["median"], 2),
                           lambda v: v <= 1.2, "the server differs: the Python test server takes LISTEN_FDS "
                           "natively, the preload row runs the same server through the library"))
            checks.append(("%s: preload failed connects (max per kill)" % where, "0",
                           pre["failed_connects"].get("max"), lambda v: v == 0, ""))
    for r in results.get("rollout", []):
        checks.append(("rollout %d host(s): naive first / collection first" % r["hosts"], ">= 2x",
                       r["first_ratio_naive_over_ours"], lambda v: v >= 2,
                       "per-host round trips dominate: the collection makes 3 module calls on a first run "
                       "(pre-flight; kernel, cleanup and units in one; post-check), the naive playbook 10 tasks "
                       "of which 5 are copies of 3 round trips each; on this host the ratio is at its margin"))
        checks.append(("rollout %d host(s): re-run / first" % r["hosts"], "<= 0.5", r["rerun_over_first"],
                       lambda v: v <= 0.5,
                       "a converged re-run is one host_check call; it is slower when the host drifted (then "
                       "every concern runs again) or when ansible-playbook's own start-up dominates"))
    fleet = results.get("fleet", [])
    for r in fleet:
        checks.append(("fleet %d host(s): naive first / collection first" % r["hosts"], ">= 2x",
                       r["first_ratio_naive_over_ours"], lambda v: v >= 2, ""))
        floor = "ansible-playbook's own start-up (~1 s) and one module call per host are a floor"
        if r.get("noop_s"):
            floor = ("a one-ping playbook on these hosts takes %s s, %d %% of the first run: ansible-playbook's "
                     "start-up and one module call per host are a floor" % (
                         r["noop_s"], round(100 * r["noop_s"] / r["collection"]["first_s"])))
            # both targets at once: re-run <= 0.35 x first <= 0.35 x naive / 2
            both = round(0.35 * r["naive"]["first_s"] / 2, 2)
            if both <= r["noop_s"] * 1.1:
                floor += ("; with the 2x target, a re-run would have to take <= %s s (0.175x the naive first run), "
                          "within 10 %% of that floor or below it" % both)
        checks.append(("fleet %d host(s): re-run / first" % r["hosts"], "<= 0.35", r["rerun_over_first"],
                       lambda v: v <= 0.35, floor))
    sup = {r["name"]: r for r in (results.get("supervisord") or {}).get("rows", [])}
    for reuse in ("no SO_REUSEADDR", "SO_REUSEADDR"):
        row = sup.get("hardened, preload (holder owns the socket), %s" % reuse)
        if row:
            checks.append(("supervisord, preload, %s: median SIGKILL -> serving" % reuse, "<= 100 ms",
                           row["recovery_ms"].get("median"), lambda v: v is not None and v <= 100, ""))
            checks.append(("supervisord, preload, %s: failed connects (all kills)" % reuse, "0", row["failed_total"],
                           lambda v: v == 0, ""))
    harm_rows = (results.get("harm") or {}).get("rows", [])
    # servers that run the same code during normal work: the unhardened one's second copy, and
    # both drop-in variants (the hook runs only at a start): how far they spread is the noise
    same_names = ("unhardened, second copy", "hook (cleanup: true)", "no hook (cleanup: false)")
    same_code = [r for r in harm_rows if r["name"] in same_names]
    for r in harm_rows[1:]:
        for key, what in (("ratio_mb_s", "bulk MB/s"), ("ratio_p50", "p50 latency"), ("ratio_p99", "p99 latency")):
            spread = [abs(x[key] - 1) * 100 for x in same_code if x.get(key) is not None]
            why = "run-to-run noise of the same nginx on 2 shared cores exceeds 2 %: see the samples"
            if spread:
                why = ("servers running the same code in normal work (a second unhardened copy, hook, no hook) "
                       "differ from the unhardened one by up to %.1f %% in this run" % max(spread))
                beyond = r[key] is not None and abs(r[key] - 1) * 100 > max(spread) + 0.05
                # faster is more MB/s but less latency
                faster = r[key] is not None and (r[key] > 1 if key == "ratio_mb_s" else r[key] < 1)
                if faster and r["name"] != "unhardened, second copy":
                    why += ("; this one is faster by more than that (cause not investigated), not slower" if beyond
                            else "; this one is faster, not slower")
                elif r[key] is not None and r["name"] != "unhardened, second copy" and not beyond:
                    why += "; this one is slower, by no more than that"
            checks.append(("harm, %s: %s / unhardened" % (r["name"], what), "within 2 % (0.98-1.02)", r[key],
                           lambda v: v is not None and 0.98 <= v <= 1.02, why))
        checks.append(("harm, %s: bytes delivered" % r["name"], "all", r["bytes_delivered"] == r["bytes_expected"],
                       lambda v: v is True, ""))
        if r.get("ratio_sndbuf") is not None:
            checks.append(("harm, %s: server send buffer at the end of a 16 MiB transfer / unhardened" % r["name"],
                           "within 10 %", r["ratio_sndbuf"], lambda v: 0.9 <= v <= 1.1, ""))
    per_host = {r["hosts"]: r["collection"]["first_s_per_host"] for r in fleet}
    if 10 in per_host and 50 in per_host:
        naive = {r["hosts"]: r["naive"]["first_s"] / r["hosts"] for r in fleet}
        checks.append(("fleet: collection first-run s per host, 10 -> 50 hosts", "flat or falling (<= 1.05x)",
                       round(per_host[50] / per_host[10], 2), lambda v: v <= 1.05,
                       "2 cores run the controller and all 50 hosts: on the same hosts the naive playbook's time "
                       "per host grows %.2fx from 10 to 50 hosts" % (naive[50] / naive[10])))
    for what, target, value, ok, why in checks:
        if value is None:
            continue
        met = ok(value)
        out.append((what, target, value, met, "" if met else why))
    return out


def prestart_line(prestart):
    """One line: which hardened unit runs the hook before each start (systemctl show)."""
    if not prestart:
        return []
    return ["", "Pre-start hook in the unit, as `systemctl show` reads it (the default is `cleanup: auto`): "
            + "; ".join("%s: %s" % (u, "hook" if hooked else "none") for u, hooked in sorted(prestart.items())) + "."]


def recovery_table(rows, fl):
    """Markdown lines for recovery rows, plus chart and failed-connect rows."""
    md = ["Floor (the server's own exec -> listening): median %s ms, max %s ms." % (fl.get("median"), fl.get("max")),
          "",
          "| configuration | kills | recovered | median ms | p90 ms | max ms | x floor | failed connects/kill "
          "(median / max) | EADDRINUSE | start limit hit |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    chart, fails = [], []
    for r in rows:
        if r["mode"] == "storm":
            s = r["samples"][0]
            md.append("| %s | %d in a row | active at end: **%s** | | | | | | %s | %s |" % (
                r["name"], s["kills"], s["active_at_end"], s["eaddrinuse"], s["start_limit"]))
            continue
        st = r["recovery_ms"]
        ratio = round(st["median"] / fl["median"], 1) if st.get("median") and fl.get("median") else "-"
        md.append("| %s | %d | %d | %s | %s | %s | %s | %s / %s | %d | %d |" % (
            r["name"], len(r["samples"]), r["recovered"], st.get("median", "-"), st.get("p90", "-"),
            st.get("max", "-"), ratio, r["failed_connects"].get("median", "-"), r["failed_connects"].get("max", "-"),
            r["eaddrinuse"], r["start_limit"]))
        chart.append((r["name"], st.get("median"), "ok" if r["recovered"] == len(r["samples"]) else "fail"))
        fails.append((r["name"], r["failed_connects"].get("median"), "ok"))
    chart.append(("floor (exec -> listening)", fl.get("median"), "ok"))
    return md, chart, fails


def report(results, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    machine = (results["machine"], results["kernel"],
               results.get("systemd", "systemd not read (no recovery part in this run)"), results["cores"])
    md = ["# netsvc.resilience benchmarks — %s" % results["date"], "",
          "Machine: %s; kernel %s; %s; %d cores." % machine, ""]
    if "recovery" in results:
        fl = results["floor_ms"]["stats"]
        md += ["## SIGKILL -> serving under load (%s)" % "each configuration in the same container, one run", ""]
        lines, chart, fails = recovery_table(results["recovery"], fl)
        md += lines + prestart_line(results.get("prestart"))
        with open(os.path.join(out_dir, "recovery.svg"), "w") as f:
            f.write(svg_bars("Median SIGKILL -> serving (ms)", chart, "ms", True))
        with open(os.path.join(out_dir, "failed_connects.svg"), "w") as f:
            f.write(svg_bars("Failed connects per kill (median, a connect every ~2 ms)", fails, "", False))
        md += ["", "![recovery](recovery.svg)", "", "![failed connects](failed_connects.svg)", ""]
    if "vm" in results:
        vm = results["vm"]
        md += ["## SIGKILL -> serving on Linux %s (%s, QEMU %s)" % (vm["kernel"], vm["systemd"], vm["accel"]),
               "", "The same driver inside the test bed's VM: TIME_WAIT cannot be destroyed on this kernel. "
               "Tutorial and hook rows: ten units killed once each, in parallel.", ""]
        md += recovery_table(vm["recovery"], vm["floor_ms"]["stats"])[0] + [""]
    if "cleanup" in results:
        md += ["## Restart hook cost vs TIME_WAIT sockets on the port", "",
               "Nothing in flight (TIME_WAIT sockets hold no data): the default drain (2 s) is never "
               "entered; `--drain-ms 0` is the same hook without it, timed in turns with it.", "",
               "| TIME_WAIT sockets | native hook, median ms | same, `--drain-ms 0` | with / without drain | "
               "Python twin, median ms | left after |", "|---|---|---|---|---|---|"]
        for row in results["cleanup"]:
            native, nodrain = stats(row["native_ms"]).get("median"), stats(row.get("nodrain_ms") or []).get("median")
            md.append("| %d | %s | %s | %s | %s | %s |" % (
                row["sockets"], native, nodrain if nodrain is not None else "-",
                _ratio(native, nodrain) if nodrain else "-", stats(row["python_ms"]).get("median"), row["left"]))
        md.append("")
    if "sysctl" in results:
        s = results["sysctl"]
        md += ["## 8 sysctl keys: one sysctl_tcp task vs 8 ansible.posix.sysctl tasks", "",
               "| variant | runs (wall s) | median s |", "|---|---|---|"]
        for k, v in s["samples"].items():
            md.append("| %s | %s | %s |" % (k, ", ".join(str(x) for x in v), round(statistics.median(v), 2)))
        one = statistics.median(s["samples"]["one sysctl_tcp task"])
        per = statistics.median(s["samples"]["8 ansible.posix.sysctl tasks"])
        md += ["", "Ratio per-key / one call: **%s x** (wall time of the whole ansible-playbook run). An empty "
               "playbook with one round trip takes %s s here: the one-call task costs about that one round "
               "trip, the per-key variant %s s more." % (
                   s["ratio_wall"], round(statistics.median(s["noop_playbook_s"]), 2), round(per - one, 2)), ""]
    if "rollout" in results:
        md += ["## Rollout: harden_restart.yml vs the naive playbook (fresh hosts each round; medians of %d "
               "rounds)" % results["rollout"][0].get("rounds", 1), "",
               "| hosts | collection first s | re-run s | re-run / first | naive first s | naive re-run s | "
               "naive / collection (first) |", "|---|---|---|---|---|---|---|"]
        for r in results["rollout"]:
            md.append("| %d | %s | %s | %s | %s | %s | %s |" % (
                r["hosts"], r["collection"]["first_s"], r["collection"]["rerun_s"], r["rerun_over_first"],
                r["naive"]["first_s"], r["naive"]["rerun_s"], r["first_ratio_naive_over_ours"]))
        md.append("")
    if "fleet" in results:
        md += ["## Fleet curve: harden_restart.yml vs the naive playbook, forks = hosts (medians of the rounds)", "",
               "| hosts | forks | rounds | collection first s | s/host | re-run s | re-run / first "
               "| controller PSS MiB | naive first s | naive re-run s | naive PSS MiB | naive / collection "
               "| one ping s |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["fleet"]:
            c, nv = r["collection"], r["naive"]
            md.append("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["hosts"], r["forks"], r.get("rounds", 1), c["first_s"], c["first_s_per_host"], c["rerun_s"],
                r["rerun_over_first"], c["peak_rss_mb"], nv["first_s"], nv["rerun_s"], nv["peak_rss_mb"],
                r["first_ratio_naive_over_ours"], r.get("noop_s", "")))
        md += ["", "One ping: a playbook with one `ping` task on the same hosts and forks - ansible-playbook's "
               "start-up and one module call per host, the floor of any run.", "",
               "Every round (first runs, s): " + "; ".join(
                   "%d hosts: collection %s, naive %s" % (
                       r["hosts"], r["collection"].get("first_samples", [r["collection"]["first_s"]]),
                       r["naive"].get("first_samples", [r["naive"]["first_s"]])) for r in results["fleet"]) + "."]
        big = results["fleet"][-1]
        for title, key, other in (("first run", "profile", "naive task"), ("re-run", "rerun_profile", "")):
            cp = big["collection"].get(key, [])
            np_ = big["naive"].get(key, []) if other else []
            md += ["", "Where the time goes at %d hosts (profile_tasks, %s, slowest tasks):" % (big["hosts"], title),
                   "", "| collection task | s | | %s | s |" % other, "|---|---|---|---|---|"]
            for i in range(max(len(cp), len(np_))):
                a = cp[i] if i < len(cp) else ("", "")
                b = np_[i] if i < len(np_) else ("", "")
                md.append("| %s | %s | | %s | %s |" % (a[0], a[1], b[0], b[1]))
        md.append("")
    if "supervisord" in results:
        sup = results["supervisord"]
        md += ["## supervisord programs: SIGKILL -> serving under load (supervisord %s, one container)"
               % sup["version"],
               "", "The test bed's echo server as six programs (as nobody), %d kills each, 1.2-2 s apart (past "
               "startsecs=1), under a connect every 2 ms. Failed: a connect made after the killed process was gone "
               "that was refused, reset or unanswered until the first answer (what restart_probe counts); lost: one "
               "the killed process had already accepted or queued, lost with it as in any crash." % sup["kills"], "",
               "| configuration | recovered | median ms | p90 ms | max ms | failed per kill (median / max) "
               "| failed in all | lost with the killed | load connections |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sup["rows"]:
            md.append("| %s | %d/%d | %s | %s | %s | %s / %s | %s | %s | %s |" % (
                r["name"], r["recovered"], len(r["samples"]), r["recovery_ms"].get("median"),
                r["recovery_ms"].get("p90"), r["recovery_ms"].get("max"), r["failed_connects"].get("median"),
                r["failed_connects"].get("max"), r["failed_total"], r.get("lost_total", "-"), r["load_connections"]))
        if sup.get("harm"):
            base = sup["harm"][0]
            md += ["", "The programs' normal work, in turns (5 rounds): a 16 MiB response over loopback, then "
                   "200 small requests/s for 3 s; what each listens on, our variables in the server's environment "
                   "at exec (the library takes LISTEN_* out of it at load: the server's children never get them), "
                   "and how long `supervisorctl stop` takes.", "",
                   "| program | MB/s (median) | / as is | bytes delivered | p50 ms | p99 ms | / as is | failed | "
                   "listens on | server's env at exec | stop ms |", "|---|---|---|---|---|---|---|---|---|---|---|"]
            for h in sup["harm"]:
                md.append("| %s | %s | %s | %s of %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    h["name"], h["mb_s"], _ratio(h["mb_s"], base["mb_s"], 3), h["bytes_delivered"],
                    h["bytes_expected"], h["p50_ms"], h["p99_ms"], _ratio(h["p99_ms"], base["p99_ms"], 3),
                    h["failed"], h["listen"], ", ".join(h["env_netsvc"]) or "-", h["stop_ms"]))
            samples = "; ".join("%s: %s" % (h["name"], h["mb_s_samples"]) for h in sup["harm"])
            md += ["", "Bulk samples (MB/s): " + samples + "."]
        md += ["", "What supervisord runs (its program lines after hardening):", "", "```"] + sup["commands"] + [
            "```", ""]
    if "harm" in results:
        c = results["harm"]["conf"]
        md += ["## The service's normal work: hardened vs not (the same nginx five times, one run)", "",
               "Bulk: %d MiB by HTTP through a delay line of %d ms each way (a %d ms round trip; TUN devices "
               "and a relay, the kernel here has no sch_netem), %d rounds, the configurations in turns; the "
               "server's send buffer (`ss -tm` skmem tb) near the end of each transfer. Latency: %d small "
               "requests/s for %d s per configuration per round over loopback, open loop." % (
                   c["bulk_bytes"] >> 20, c["delay_ms"], 2 * c["delay_ms"], c["rounds"], c["rate"], c["seconds"]),
               "", "| configuration | MB/s (median) | / unhardened | send buffer B | p50 ms | / unhardened | p99 ms | "
               "/ unhardened | bytes delivered | requests (failed) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["harm"]["rows"]:
            md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s of %s | %s (%s) |" % (
                r["name"], r["mb_s"], r["ratio_mb_s"], r["sndbuf"], r["p50_ms"], r["ratio_p50"], r["p99_ms"],
                r["ratio_p99"], r["bytes_delivered"], r["bytes_expected"], r["requests"], r["failed"]))
        md += ["", "Bulk samples (MB/s): " + "; ".join(
            "%s: %s" % (r["name"], r["mb_s_samples"]) for r in results["harm"]["rows"]) + ".", ""]
    tg = targets(results)
    if tg:
        md += ["## Targets", "", "| target | wanted | measured | met | why, if missed |", "|---|---|---|---|---|"]
        md += ["| %s | %s | %s | %s | %s |" % (w, t, v, "yes" if m else "**no**", why) for w, t, v, m, why in tg]
        md.append("")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    return os.path.join(out_dir, "results.md")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if args and args[0] == "report":  # re-render a committed run: bench.py report DIR
        with open(os.path.join(args[1], "results.json")) as f:
            path = report(json.load(f), args[1])
        with open(path) as f:
            print(f.read())
        return 0
    smoke = "--smoke" in sys.argv
    part = args[0] if args else "all"
    parts = set(part.split(",")) if part != "all" else {"recovery", "vm", "sysctl", "rollout", "fleet", "harm",
                                                        "supervisord"}
    date = datetime.date.today().isoformat()
    out_dir = os.path.join(TOP, "docs", "benchmarks", date)
    if "--out" in sys.argv:
        out_dir = sys.argv[sys.argv.index("--out") + 1]
    results = {"date": date, "machine": "%s, %s" % (platform.node(), platform.processor() or platform.machine()),
               "kernel": platform.release(), "cores": os.cpu_count(), "part": part, "smoke": smoke}
    cleanup_containers()
    t0 = time.monotonic()
    errors = []
    try:
        for name, run in (("recovery", lambda: recovery(results, smoke)), ("vm", lambda: vm_recovery(results)),
                          ("sysctl", lambda: sysctl(results)), ("rollout", lambda: rollout(results)),
                          ("fleet", lambda: fleet_curve(results)), ("harm", lambda: harm(results)),
                          ("supervisord", lambda: supervisord(results))):
            if name in parts and (name == "recovery" or not smoke):
                try:
                    run()
                except (RuntimeError, subprocess.CalledProcessError, ValueError) as e:
                    # keep what the other parts measured; the run still fails at the end
                    log("part %s failed: %s" % (name, e))
                    errors.append("%s: %s" % (name, e))
    finally:
        cleanup_containers()
    results["errors"] = errors
    results["wall_s"] = round(time.monotonic() - t0, 1)
    if smoke:
        row = results["recovery"][0]
        print("bench smoke: %s: recovered %d/%d, %s ms" % (
            row["name"], row["recovered"], len(row["samples"]), row["recovery_ms"].get("median")))
        return 0 if row["recovered"] == len(row["samples"]) else 1
    path = report(results, out_dir)
    with open(path) as f:
        print(f.read())
    log("done in %.0f s: %s" % (results["wall_s"], out_dir))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
