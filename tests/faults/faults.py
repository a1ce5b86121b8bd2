"""Faults made to happen for real (issue 15), each checked on the host afterwards.

  python3 tests/faults/faults.py [--only NAME,...] [--failing-minutes N] [--out FILE]

Debian 12 systemd containers from the test bed (labelled with this run's id, removed at the
end), the collection's harden_restart playbook, and per fault: inject it, run, then read the
host - files byte for byte, temp files, what systemd loaded, the record and the run lock.
Prints a markdown table (fault | injected how | what the collection did | left on the host)
and exits 1 when a property does not hold. The reboot host gets systempaths=unconfined (docker
CLI only), so that systemd-sysctl can write /proc/sys at boot as on a real machine.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness as HN  # noqa: E402

TOP = HN.TOP
RUN = "%d-%d" % (os.getpid(), int(time.time()))
# make test removes containers by its run label, also when this script is killed
FLEET = HN.Fleet("netsvc.run=%s" % os.environ.get("NETSVC_RUN_ID", "faults-" + RUN), "netsvc-faults")
A, B, C, D = "netsvc-fault-a", "netsvc-fault-b", "netsvc-fault-c", "netsvc-fault-d"
SERVICES = [{"name": "netsvc-echo.service", "ports": [7070]}]
DROPINS = "/etc/systemd/system/netsvc-echo.service.d"
ROWS = []
FAILED = []


def log(msg):
    sys.stderr.write("[faults] %s\n" % msg)
    sys.stderr.flush()


def check(name, ok, what):
    if not ok:
        FAILED.append("%s: %s" % (name, what))
        log("FAILED %s: %s" % (name, what))
    return ok


def row(fault, how, did, left):
    ROWS.append((fault, how, did, left))


def harden(inv, check_rc=True, json_out=False, **extra):
    vars_ = dict(netsvc_services=SERVICES)
    vars_.update(extra)
    env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"} if json_out else None
    return HN.playbook(inv, os.path.join(TOP, "playbooks", "harden_restart.yml"), "-e", json.dumps(vars_),
                       check=check_rc, extra_env=env)


def harden_bg(inv, **extra):
    """harden_restart.yml in the background, in a process group of its own (killed by id)."""
    vars_ = dict(netsvc_services=SERVICES)
    vars_.update(extra)
    argv = HN.playbook_argv(inv, os.path.join(TOP, "playbooks", "harden_restart.yml"), "-e", json.dumps(vars_))
    return subprocess.Popen(argv, env=HN.env({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            start_new_session=True)


def sh(host, script, check_rc=True):
    return HN.Fleet.exec(host, script, check=check_rc)


def digests(host, pattern):
    return sh(host, "sha256sum %s 2>/dev/null | sort; true" % pattern)


def task_results(output, task_name):
    """Per-host results of a task (ANSIBLE_STDOUT_CALLBACK=json output)."""
    out = []
    for play in HN.json_results(output)["plays"]:
        for task in play["tasks"]:
            # a role's task is named "<role> : <task>" in the json callback's output
            if task["task"]["name"] == task_name or task["task"]["name"].endswith(" : " + task_name):
                out.extend(task["hosts"].values())
    return out


PREFLIGHT = "Read the host in one call (OS, Python, service manager, services, applied state), under the run lock"


# ---------------------------------------------------------------------------- the faults


def disk_full(inv, directory, pattern, extra, what):
    """A tmpfs that cannot hold the new file, over a directory the collection writes."""
    name = "disk full: %s" % directory
    harden(inv)
    sh(A, "mkdir -p /root/fault-save && cp -a %s/. /root/fault-save/ && mount -t tmpfs -o size=16k tmpfs %s && "
          "cp -a /root/fault-save/. %s/ && (dd if=/dev/zero of=%s/.filler bs=1k count=64 2>/dev/null; true)"
       % (directory, directory, directory, directory))
    try:
        before = digests(A, pattern)
        live_before = sh(A, "cat /proc/sys/net/ipv4/tcp_keepalive_time")
        _w, rc, out = harden(inv, check_rc=False, **extra)
        after = digests(A, pattern)
        temps = sh(A, "ls -a %s | grep '^\\.netsvc-' ; true" % directory).strip()
        lock = sh(A, "ls /run/netsvc-resilience/run.lock 2>/dev/null; true").strip()
        live_after = sh(A, "cat /proc/sys/net/ipv4/tcp_keepalive_time")
        msg = [line for line in out.splitlines() if "No space left on device" in line]
        check(name, rc != 0, "the run did not fail")
        check(name, bool(msg) and directory in msg[0], "no error naming the path: %s" % out[-1500:])
        check(name, before == after and before.strip(), "files changed:\n%s\n%s" % (before, after))
        check(name, not temps, "temp files left: %s" % temps)
        check(name, not lock, "the run lock was not released after the failure")
        check(name, live_before == live_after, "live value changed: %s -> %s" % (live_before, live_after))
        row(name, "tmpfs of 16 KiB over %s, the files copied in, the rest filled" % directory,
            "failed: `%s`" % (msg[0].split('"msg": ')[-1].strip(' ",}')[:180] if msg else "?"),
            "%s byte-identical, no temp file, live values unchanged, run lock released" % what)
    finally:
        sh(A, "umount %s; rm -rf /root/fault-save" % directory, check_rc=False)


def rejected_change(name, inv, policy, marker):
    """A policy change systemd refuses: the run fails with a line holding ``marker`` and the
    drop-ins stay byte-identical. Returns that line ('' when none)."""
    before = digests(A, DROPINS + "/*.conf")
    _w, rc, out = harden(inv, check_rc=False, crash_recovery_policy=policy)
    lines = [x for x in out.splitlines() if marker in x]
    check(name, rc != 0 and lines, "the run did not fail with %r: %s" % (marker, out[-1500:]))
    check(name, before == digests(A, DROPINS + "/*.conf"), "drop-ins changed")
    return lines[0] if lines else ""


def verify_objects(inv):
    name = "systemd-analyze verify objects"
    harden(inv)
    line = rejected_change(name, inv, {"extra_service": {"NoSuchDirective": "x"}}, "verify rejected")
    loaded = sh(A, "systemctl show netsvc-echo -p NeedDaemonReload --value").strip()
    check(name, "NoSuchDirective" in line and "netsvc-echo.service" in line, "no unit or message: %s" % line)
    check(name, loaded == "no", "NeedDaemonReload=%s" % loaded)
    row(name, "an unknown directive in the policy (extra_service: NoSuchDirective)",
        "failed naming netsvc-echo.service and systemd's \"Unknown key name 'NoSuchDirective'\"",
        "drop-ins byte-identical; NeedDaemonReload=no (what systemd runs is what is on disk)")


def reload_fails(inv):
    name = "daemon-reload fails"
    harden(inv)
    sh(A, "printf '#!/bin/sh\\n[ \"$1\" = daemon-reload ] && { echo \"Failed to reload daemon: Access denied "
          "(fault injected by tests/faults)\" >&2; exit 1; }\\nexec /usr/bin/systemctl \"$@\"\\n' "
          "> /usr/local/sbin/systemctl && chmod 755 /usr/local/sbin/systemctl")
    try:
        line = rejected_change(name, inv, {"restart_sec": "1s"}, "daemon-reload failed")
        effective = sh(A, "/usr/bin/systemctl show netsvc-echo -p RestartUSec -p NeedDaemonReload").split()
        check(name, "fault injected" in line and "restored" in line, "no systemd message: %s" % line)
        check(name, effective == ["RestartUSec=0", "NeedDaemonReload=no"], "unit changed: %s" % effective)
        row(name, "a systemctl earlier in PATH that fails `daemon-reload` (\"Access denied\")",
            "failed with systemd's message; every file restored", "drop-ins byte-identical; the unit as before "
            "(RestartUSec=0, NeedDaemonReload=no)")
    finally:
        sh(A, "rm -f /usr/local/sbin/systemctl", check_rc=False)


def controller_killed(inv):
    # on a systemd host the kernel settings and the drop-ins are one call (one transaction): the
    # kill lands once the sysctl file is written, inside that call or after it
    name = "controller killed mid-run"
    harden(inv)
    proc = harden_bg(inv, harden_restart_extra_sysctls={"net.ipv4.tcp_keepalive_time": 710},
                     crash_recovery_policy={"restart_sec": "500ms"}, harden_restart_lock_lease=15)
    deadline = time.time() + 120
    while time.time() < deadline and "710" not in sh(A, "cat /etc/sysctl.d/90-netsvc-resilience.conf; true"):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # our own ansible-playbook, by its process group
    proc.wait()
    t_kill = time.time()
    units_done = "RestartSec=500ms" in sh(A, "cat %s/50-netsvc-resilience.conf" % DROPINS)
    state = sh(A, "ls /var/lib/netsvc-resilience/ /run/netsvc-resilience/").split()
    check(name, "applied-state.json" not in state and "applied-state.json.unverified" in state,
          "record not set aside: %s" % state)
    check(name, "run.lock" in state, "no run lock left by the killed run: %s" % state)
    _w, rc, out = harden(inv, json_out=True, harden_restart_extra_sysctls={"net.ipv4.tcp_keepalive_time": 710},
                         crash_recovery_policy={"restart_sec": "500ms"})
    pre = task_results(out, PREFLIGHT)[0]
    warnings = " ".join(pre.get("warnings", []))
    state = sh(A, "ls /var/lib/netsvc-resilience/ /run/netsvc-resilience/").split()
    check(name, rc == 0, "the next run failed")
    check(name, "took over the run lock" in warnings, "no take-over reported: %s" % warnings)
    check(name, any("stopped before its post-check" in d for d in pre.get("drift", [])), "drift: %s" % pre.get("drift"))
    check(name, "applied-state.json" in state and "applied-state.json.unverified" not in state
          and "run.lock" not in state, "after the next run: %s" % state)
    check(name, "RestartSec=500ms" in sh(A, "cat %s/50-netsvc-resilience.conf" % DROPINS), "units not converged")
    _w, rc, out = harden(inv, json_out=True, harden_restart_extra_sysctls={"net.ipv4.tcp_keepalive_time": 710},
                         crash_recovery_policy={"restart_sec": "500ms"})
    check(name, task_results(out, PREFLIGHT)[0].get("converged"), "the third run is not a converged re-run")
    row(name, "SIGKILL of ansible-playbook's process group once the one call had written the sysctl file "
        "(its drop-ins: %s)" % ("written" if units_done else "not yet"),
        "the next run waited for the killed run's lease (15 s), took the lock over, said so, and ran every "
        "concern: drift \"%s\"" % [d for d in pre.get("drift", []) if "stopped" in d][0][:80],
        "no record from the killed run (set aside as .unverified); after the next run: a verified record, the "
        "lock released; a third run converged in one round trip (%.0f s after the kill)" % (time.time() - t_kill))


def two_runs(inv):
    name = "two runs at once"
    extra = dict(harden_restart_extra_sysctls={"net.ipv4.tcp_keepalive_time": 720})
    first, second = harden_bg(inv, **extra), harden_bg(inv, **extra)
    outs = [p.communicate()[0] for p in (first, second)]
    rcs = [p.returncode for p in (first, second)]
    pres = [task_results(o, PREFLIGHT)[0] for o in outs]
    waited = [p for p in pres if any("waited" in w for w in p.get("warnings", []))]
    conf = sh(A, "cat /etc/sysctl.d/90-netsvc-resilience.conf")
    check(name, rcs == [0, 0], "rc %s" % rcs)
    check(name, len(waited) == 1, "warnings: %s" % [p.get("warnings") for p in pres])
    settings = [x for x in conf.splitlines() if x.startswith("net.ipv4.tcp_keepalive_time")]
    check(name, settings == ["net.ipv4.tcp_keepalive_time = 720"], conf)
    check(name, sh(A, "ls /run/netsvc-resilience/run.lock 2>/dev/null; true").strip() == "", "lock left")
    row(name, "two harden_restart runs started together against one host",
        "one waited for the other and said so (\"%s\"); the second then found the host converged" % [
            w for w in waited[0]["warnings"] if "waited" in w][0][:70] if waited else "?",
        "one consistent sysctl file and drop-in set, a verified record, no lock left")


def permanent_failure(inv, minutes):
    name = "a permanently failing service"
    sh(A, "printf '[Service]\\nExecStart=/bin/sh -c \"exit 1\"\\nRestart=on-failure\\nRestartSec=5s\\n' "
          "> /lib/systemd/system/netsvc-fail.service && systemctl daemon-reload")
    HN.playbook(inv, os.path.join(TOP, "tests", "faults", "policy.yml"), "-e",
                json.dumps({"fault_unit": "netsvc-fail.service"}))
    cpu = "awk '{print $14+$15}' /proc/1/stat /proc/$(systemctl show -p MainPID --value systemd-journald)/stat"
    t0 = time.time()
    c0 = [int(x) for x in sh(A, cpu).split()]
    sh(A, "systemctl start netsvc-fail.service", check_rc=False)
    time.sleep(minutes * 60)
    c1 = [int(x) for x in sh(A, cpu).split()]
    journal = sh(A, "journalctl --since @%d -o cat --no-pager" % int(t0))
    # a Type=simple unit logs "Started", a revive "Starting netsvc-revive@<unit>.service - ..."
    started = ("Started netsvc-fail.service", "Starting netsvc-fail.service")
    starts = sum(1 for x in journal.splitlines() if x.startswith(started))
    revives = sum(1 for x in journal.splitlines() if x.startswith("Starting netsvc-revive@netsvc-fail.service"))
    recent = sh(A, "journalctl -u netsvc-fail --since @%d -o cat --no-pager" % int(time.time() - 40))
    last = sum(1 for x in recent.splitlines() if x.startswith(started))
    lines = len(journal.splitlines())

    def per_min(n):
        return round(n / minutes, 1)

    cpu_s = round((sum(c1) - sum(c0)) / 100.0, 2)
    check(name, last > 0, "not revived in the last 40 s:\n%s" % "\n".join(journal.splitlines()[-40:]))
    check(name, revives >= int(minutes * 60 / 35), "%d revives in %s min" % (revives, minutes))
    check(name, per_min(starts) <= 45, "%s starts/min" % per_min(starts))
    row(name, "ExecStart exits 1 at once, default policy, %s min" % minutes,
        "kept reviving it: %s starts/min (bursts of 20, then %s revives/min)" % (per_min(starts), per_min(revives)),
        "%s CPU s/min in PID 1 + journald, %s journal lines/min" % (round(cpu_s / minutes, 2), per_min(lines)))
    sh(A, "systemctl stop netsvc-fail.service 'netsvc-revive@netsvc-fail.service.service'; "
          "rm -rf /lib/systemd/system/netsvc-fail.service /etc/systemd/system/netsvc-fail.service.d; "
          "systemctl daemon-reload; systemctl reset-failed", check_rc=False)
    return {"starts_per_min": per_min(starts), "cpu_s_per_min": round(cpu_s / minutes, 2),
            "journal_lines_per_min": per_min(lines), "revives_per_min": per_min(revives)}


def crash_storm(inv):
    name = "a crash storm: 100 SIGKILLs 50 ms apart"
    harden(inv)
    tw = "ss -Htan state time-wait '( sport = :7070 )' | wc -l"
    _w, _rc, out = HN.playbook(inv, os.path.join(TOP, "tests", "faults", "storm.yml"), "-e",
                               json.dumps({"kills": 1, "interval": 0}),
                               extra_env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    one = int(sh(A, tw))
    time.sleep(1)
    _w, _rc, out = HN.playbook(inv, os.path.join(TOP, "tests", "faults", "storm.yml"), "-e",
                               json.dumps({"kills": 100, "interval": 50}),
                               extra_env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    storm = int(sh(A, tw))
    res = task_results(out, "Storm")[0]
    check(name, res.get("active_at_end") and res.get("recovered"), "not serving at the end: %s" % res.get("verdict"))
    check(name, storm <= one + 20, "TIME_WAIT piled up: %d after the storm, %d after one restart" % (storm, one))
    row(name, "restart_probe kills=100 kill_interval_ms=50 under a loopback load",
        "%s SIGKILLs landed; %s" % (res.get("kills_done"), res.get("verdict")),
        "unit active and serving; %d TIME_WAIT sockets on the port after it, %d after a single restart"
        % (storm, one))


def reboot(_inv):
    """A clean reboot (container restart) of a hardened host: a new network namespace, so every
    sysctl is back at the kernel default until systemd-sysctl applies the files at boot."""
    name = "a reboot after hardening"
    host = "netsvc-fault-r"
    units = [{"name": "netsvc-echo", "port": 7070}, {"name": "netsvc-pre", "port": 7071}]
    services = [{"name": "netsvc-echo.service", "ports": [7070]},
                {"name": "netsvc-pre.service", "ports": [7071], "socket_activation": "preload"}]
    # /proc/sys writable at boot (docker CLI only), and systemd's own shutdown signal
    inv = FLEET.start([host], run_opts="--security-opt systempaths=unconfined --stop-signal SIGRTMIN+3")
    for path in ("molecule/_shared/prepare.yml", "molecule/_shared/prepare_service.yml"):
        HN.playbook(inv, os.path.join(TOP, path), "-e", json.dumps({"netsvc_test_units": units,
                                                                    "netsvc_proc_sys_rw": False}))
    sh(host, "systemctl enable netsvc-echo.service netsvc-pre.service")  # as a package would
    vars_ = json.dumps({"netsvc_services": services})
    HN.playbook(inv, os.path.join(TOP, "playbooks", "harden_restart.yml"), "-e", vars_)
    keys = "net.ipv4.tcp_fin_timeout net.core.somaxconn net.ipv4.ip_local_reserved_ports"
    want = sh(host, "sysctl -n %s" % keys).split("\n")
    t0 = time.time()
    subprocess.run(["docker", "restart", "-t", "30", host], stdout=subprocess.DEVNULL, check=True)
    boot = ""
    while time.time() - t0 < 120 and boot not in ("running", "degraded"):
        boot = sh(host, "systemctl is-system-running --wait 2>&1; true").strip()  # until PID 1 answers
        time.sleep(0.2)
    t_boot = time.time() - t0
    live = sh(host, "sysctl -n %s" % keys).split("\n")
    show = sh(host, "systemctl show netsvc-echo.service netsvc-pre.service netsvc-pre.socket -p Id -p ActiveState "
                    "-p Restart -p ExecStartPreEx -p Environment --no-pager")
    listeners = sh(host, "ss -Htlnp '( sport = :7070 or sport = :7071 )'")
    _w, rc, out = HN.playbook(inv, os.path.join(TOP, "playbooks", "harden_restart.yml"), "-e", vars_, check=False,
                              extra_env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    pre = task_results(out, PREFLIGHT)
    pre = pre[0] if pre else {}
    _w, _rc, probe = HN.playbook(inv, os.path.join(TOP, "tests", "faults", "storm.yml"), "-e",
                                 json.dumps({"kills": 1, "interval": 0}),
                                 extra_env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    killed = task_results(probe, "Storm")[0]
    check(name, boot in ("running", "degraded"), "boot: %s" % boot)
    check(name, live == want and live[0] == "15" and live[2] == "7070-7071",
          "sysctls after the reboot %s, before %s" % (live, want))
    check(name, show.count("ActiveState=active") == 3 and show.count("Restart=on-failure") == 2
          and "netsvc-sockclean" in show and "libnetsvc-preload.so" in show, show)
    check(name, "pid=1," in listeners and "netsvc-pre" not in listeners.split("pid=1,")[0] and
          listeners.count("LISTEN") == 2, "listeners: %s" % listeners)
    check(name, rc == 0 and pre.get("converged") and not pre.get("drift"),
          "host_check after the reboot: rc %s drift %s" % (rc, pre.get("drift")))
    check(name, killed.get("recovered"), "SIGKILL after the reboot: %s" % killed.get("verdict"))
    row(name, "`docker restart` (clean shutdown, SIGRTMIN+3) of a host hardened with a hook service and a "
        "`preload` service; /proc/sys writable at boot (systempaths=unconfined)",
        "booted in %.0f s; systemd-sysctl re-applied the file (%s); socket unit, drop-ins and hook in effect; "
        "the next run's pre-flight: converged, no drift" % (t_boot, ", ".join("%s=%s" % kv for kv in zip(
            keys.split(), live))),
        "both services serving (7071 from PID 1's socket); a SIGKILL after the reboot: %s" % killed.get("verdict"))
    FLEET.destroy([host])


def unreachable_mid_batch(names):
    name = "a host unreachable mid-batch"
    inv = HN.Fleet.inventory(names)
    extra = dict(netsvc_canary=1, netsvc_batch=2, netsvc_crash_test="none", harden_restart_lock_lease=20)
    proc = harden_bg(inv, **extra)
    deadline = time.time() + 180
    while time.time() < deadline and "applied-state.json" not in sh(names[0], "ls /var/lib/netsvc-resilience; true"):
        time.sleep(0.1)
    subprocess.run(["docker", "stop", "-t", "0", names[2]], stdout=subprocess.DEVNULL, check=False)
    out = proc.communicate()[0]
    results = HN.json_results(out)
    stats = results.get("stats", {})
    unreachable = [h for h, s in stats.items() if s.get("unreachable") or s.get("failures")]
    b_state = sh(names[1], "ls /var/lib/netsvc-resilience /run/netsvc-resilience 2>/dev/null; true").split()
    d_touched = sh(names[3], "ls /etc/systemd/system/netsvc-echo.service.d 2>/dev/null; true").strip()
    check(name, proc.returncode != 0, "the run did not fail")
    check(name, unreachable == [names[2]], "failed hosts: %s" % unreachable)
    # the gate is a task before each batch, not max_fail_percentage: the unreachable host's batch
    # peer finishes its run (verified record, lock released), and the gate stops the rollout
    # before the next batch
    check(name, "applied-state.json" in b_state and "run.lock" not in b_state, "%s: %s" % (names[1], b_state))
    check(name, not d_touched, "the next batch ran on %s: %s" % (names[3], d_touched))
    check(name, "rollout stopped before %s" % names[3] in out, "the gate did not say why it stopped")
    # the host comes back; the next run converges all (nothing to take over: the peer released its
    # lock, and the stopped host's /run is gone with its container's tmpfs)
    subprocess.run(["docker", "start", names[2]], stdout=subprocess.DEVNULL, check=True)
    HN.playbook(HN.Fleet.inventory([names[2]]), os.path.join(TOP, "molecule/_shared/prepare.yml"))
    t0 = time.time()
    _w, rc, out = harden(inv, check_rc=False, json_out=True, netsvc_crash_test="none")
    took = time.time() - t0
    pre = {r.get("_ansible_delegated_vars", {}).get("ansible_host", i): r
           for i, r in enumerate(task_results(out, PREFLIGHT))}
    warnings = " ".join(w for r in pre.values() for w in r.get("warnings", []))
    recorded = [h for h in names if "applied-state.json" in sh(h, "ls /var/lib/netsvc-resilience; true").split()]
    check(name, rc == 0, "the next run failed (rc %s)" % rc)
    check(name, "took over the run lock" not in warnings, "a lease was left: %s" % warnings)
    check(name, recorded == names, "hosts with a verified record after the next run: %s" % recorded)
    row(name, "4 hosts, canary 1 then batches of 2; the 3rd host's container stopped once the canary finished",
        "its batch peer finished its run; the gate stopped the rollout before the next batch (max-fail 0) and said "
        "why; the recap names %s as unreachable; the 4th host untouched" % unreachable,
        "its batch peer: hardened and verified, its lock released; the next run (host back) converged all 4 hosts "
        "(%.0f s)" % took)


def main():
    only = None
    minutes = 2
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    if "--failing-minutes" in sys.argv:
        minutes = float(sys.argv[sys.argv.index("--failing-minutes") + 1])
    out_file = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    faults = [
        ("disk-dropins", lambda inv: disk_full(inv, DROPINS, DROPINS + "/*.conf",
                                               {"crash_recovery_policy": {"restart_sec": "1s"}}, "drop-ins")),
        ("disk-sysctl", lambda inv: disk_full(inv, "/etc/sysctl.d", "/etc/sysctl.d/*.conf",
                                              {"harden_restart_extra_sysctls": {"net.ipv4.tcp_keepalive_time": 700}},
                                              "sysctl.d files")),
        ("verify", verify_objects), ("reload", reload_fails), ("killed", controller_killed), ("two", two_runs),
        ("storm", crash_storm), ("reboot", reboot), ("failing", lambda inv: permanent_failure(inv, minutes)),
    ]
    t0 = time.time()
    try:
        inv = FLEET.start([A])
        for path in ("molecule/_shared/prepare.yml", "molecule/_shared/prepare_service.yml"):
            HN.playbook(inv, os.path.join(TOP, path), "-e",
                        json.dumps({"netsvc_test_units": [{"name": "netsvc-echo", "port": 7070}]}))
        for key, fn in faults:
            if only and key not in only:
                continue
            log("fault: %s" % key)
            t = time.time()
            try:
                fn(inv)
            except (RuntimeError, ValueError, KeyError, IndexError) as e:
                check(key, False, "raised %s: %s" % (type(e).__name__, e))
            log("  %s: %.0f s" % (key, time.time() - t))
        if not only or "unreachable" in only:
            names = [A + "-1", B, C, D]
            inv4 = FLEET.start(names)
            for path in ("molecule/_shared/prepare.yml", "molecule/_shared/prepare_service.yml"):
                HN.playbook(inv4, os.path.join(TOP, path), "-e",
                            json.dumps({"netsvc_test_units": [{"name": "netsvc-echo", "port": 7070}]}))
            for n in names:
                sh(n, "systemctl enable netsvc-echo.service")  # as a package would: it starts at boot
            unreachable_mid_batch(names)
    finally:
        FLEET.destroy_all()
    table = ["| fault | injected how | what the collection did | left on the host |", "|---|---|---|---|"]
    table += ["| %s |" % " | ".join(r) for r in ROWS]
    text = "\n".join(table) + "\n"
    print(text)
    if out_file:
        with open(out_file, "w") as f:
            f.write(text)
    log("%d fault(s), %d failed property(ies), %.0f s" % (len(ROWS), len(FAILED), time.time() - t0))
    for f in FAILED:
        log("FAILED: " + f)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
