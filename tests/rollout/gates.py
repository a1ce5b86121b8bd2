"""The rollout's gates, on the ansible-core that runs this (issue 27).

  python tests/rollout/gates.py --playbook BIN --host REAL [--python PATH] [--become|--no-become]

Each case runs playbooks/harden_restart.yml against one real host (a container with a
service on port 7070, reached with the docker connection) and "ghosts" - inventory names
with no container behind them, unreachable the moment anything touches them. A ghost that
shows up in the rollout play's output was touched. Cases:

  check mode           --check --diff on REAL: rc 0, nothing on the host changes (files, live
                       values, the lock), the diff is shown where a change is due
  unreachable canary   ghost first: the rollout stops before any other host, REAL untouched
  failing crash test   REAL first with an SLO of 1 ms: its crash test fails, no ghost touched
  later batch fails    REAL, then batch 2 = REAL again (another name) and a ghost: half of it
                       fails, Ansible goes on, the gate (max-fail 0) stops before batch 3
  percentage           the same with netsvc_max_fail_percentage=50: batch 3 runs
  tags                 "later batch fails" run with --tags kernel: the gate still holds
  skip-tags refused    --skip-tags kernel fails the canary before any change (the concerns are
                       one call: harden_restart_kernel=false leaves the kernel out)
  list-tags            --list-tags shows the tags the docs advertise
  canary percentage    netsvc_canary=40% of 5 hosts: REAL and a ghost are the canaries; the ghost
                       fails, and with netsvc_max_fail_percentage=50 the gate still stops (a
                       canary failed) before batch 2
  canary refused       netsvc_canary=true: refused by the gate with the rule, REAL untouched
  no netsvc_services   a ghost without services first: one line says why it is left out, it
                       is never touched (so never the canary: REAL is), and the run succeeds

The scripts that call it run it with ansible-core 2.16 (scripts/el-leg.sh) and with the
main leg's (scripts/test.sh, step rollout). Prints one line per case; exits 1 on a failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLLOUT = "PLAY [Harden restart behaviour of network services]"
SERVICE = "{name: netsvc-echo.service, ports: [7070]}"


def inventory(path, hosts, python, real):
    """``hosts``: [(name, has_services)] in inventory order; a name starting with "real" is
    the real container (another name for it: a second host of a later batch)."""
    lines = ["all:", "  vars:", "    ansible_connection: community.docker.docker"]
    if python:
        lines.append("    ansible_python_interpreter: %s" % python)
    lines.append("  hosts:")
    for name, services in hosts:
        lines.append("    %s:" % name)
        if name.startswith("real"):
            lines.append("      ansible_host: %s" % real)
        lines.append("      netsvc_services: %s" % ("[%s]" % SERVICE if services else "[]"))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def run(args, hosts, extra):
    with tempfile.TemporaryDirectory() as tmp:
        inv = os.path.join(tmp, "inventory.yml")
        inventory(inv, hosts, args.python, args.host)
        argv = [args.playbook, "-i", inv, os.path.join(TOP, "playbooks", "harden_restart.yml"),
                "-e", "netsvc_become=%s" % ("true" if args.become else "false")] + extra
        t0 = time.monotonic()
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                             timeout=600, check=False)
        if os.environ.get("NETSVC_GATES_DEBUG"):
            sys.stderr.write(out.stdout[-3000:])
        return out.returncode, out.stdout, time.monotonic() - t0


# tasks that name a host without connecting to it: the host selection and the gate
NO_CONNECTION = ("Say why", "Stop the rollout", "Put the others")


def touched(output, host):
    """Was ``host`` touched by the rollout play: does a task other than the selection and the
    gate (which never connect) name it?"""
    rollout = output.split(ROLLOUT, 1)[1] if ROLLOUT in output else ""
    rollout = rollout.split("PLAY RECAP", 1)[0]
    for block in rollout.split("\nTASK [")[1:]:
        if block.startswith(NO_CONNECTION):
            continue
        if "[%s]" % host in block or "[%s ->" % host in block:
            return True
    return False


def snapshot(container):
    """What the collection could write on the host: files (with their digests), live values, lock."""
    script = ("find /etc/systemd/system /etc/sysctl.d /usr/lib/netsvc-resilience /var/lib/netsvc-resilience "
              "/run/netsvc-resilience -xdev -type f 2>/dev/null | sort | xargs -r sha256sum; "
              "cat /proc/sys/net/ipv4/tcp_fin_timeout /proc/sys/net/ipv4/ip_local_reserved_ports; "
              "systemctl show -p NRestarts -p MainPID netsvc-echo.service")
    return subprocess.run(["docker", "exec", container, "sh", "-c", script], stdout=subprocess.PIPE,
                          universal_newlines=True, check=False).stdout


def case(name, ok, why, seconds):
    print("[rollout] %-22s %s (%.0f s)%s" % (name, "PASS" if ok else "FAIL", seconds, "" if ok else ": " + why),
          flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--playbook", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--python")
    ap.add_argument("--become", action="store_true")
    args = ap.parse_args()
    real = "real"
    version = subprocess.run([args.playbook, "--version"], stdout=subprocess.PIPE, universal_newlines=True,
                             check=False).stdout.splitlines()[0]
    print("[rollout] %s, host %s" % (version, args.host), flush=True)
    results = []
    later = ("real-b", "ghost-b", "ghost-c")

    # check mode on the real host: nothing changes there (the crash test kills nothing either)
    before = snapshot(args.host)
    rc, out, t = run(args, [(real, True)], ["--check", "--diff"])
    after = snapshot(args.host)
    results.append(case("check mode", rc == 0 and before == after and before.strip() != "",
                        "rc=%d, host changed: %s" % (rc, before != after), t))

    # a canary that does not answer: nothing else is touched (Ansible ends the play when a
    # whole batch failed; the gate would, too)
    rc, out, t = run(args, [("ghost-canary", True), (real, True), ("ghost-b", True), ("ghost-c", True)], [])
    results.append(case("unreachable canary", rc != 0 and touched(out, "ghost-canary") and not any(
        touched(out, h) for h in (real, "ghost-b", "ghost-c")),
        "rc=%d, later hosts touched: %s" % (rc, [h for h in (real, "ghost-b", "ghost-c") if touched(out, h)]), t))

    # a canary whose crash test misses its SLO: nothing else is touched
    rc, out, t = run(args, [(real, True), ("ghost-b", True), ("ghost-c", True)],
                     ["-e", "harden_restart_slo_ms=1", "-e", "netsvc_batch=1",
                      "-e", "harden_restart_crash_test_converged=true"])
    results.append(case("failing crash test", rc != 0 and touched(out, real) and "Crash test" in out and not any(
        touched(out, h) for h in ("ghost-b", "ghost-c")),
        "rc=%d, ghosts touched: %s" % (rc, [h for h in ("ghost-b", "ghost-c") if touched(out, h)]), t))

    # batch 2 half fails (Ansible itself goes on): the gate stops the rollout before batch 3
    hosts = [(real, True), ("real-b", True), ("ghost-b", True), ("ghost-c", True)]
    rc, out, t = run(args, hosts, ["-e", "netsvc_batch=2"])
    results.append(case("later batch fails", rc != 0 and touched(out, "real-b") and touched(out, "ghost-b")
                        and not touched(out, "ghost-c") and "rollout stopped before ghost-c" in out,
                        "rc=%d, touched: %s" % (rc, [h for h in later if touched(out, h)]), t))

    # a run limited by tags is gated the same way (the selection and the gate are tagged always)
    rc, out, t = run(args, hosts, ["-e", "netsvc_batch=2", "--tags", "kernel"])
    results.append(case("tags", rc != 0 and touched(out, "real-b") and not touched(out, "ghost-c")
                        and "rollout stopped before ghost-c" in out,
                        "rc=%d, touched: %s" % (rc, [h for h in later if touched(out, h)]), t))

    # --skip-tags cannot split the one call: refused on the canary before any change, and the
    # rollout stops there
    rc, out, t = run(args, [(real, True), ("ghost-b", True)], ["--skip-tags", "kernel"])
    results.append(case("skip-tags refused", rc != 0 and "set harden_restart_kernel=false instead" in out
                        and "Kernel settings, restart hook" not in out and not touched(out, "ghost-b"),
                        "rc=%d" % rc, t))

    # the advertised tags are listed
    rc, out, t = run(args, hosts, ["--list-tags"])
    listed = out.split("TASK TAGS: [")[-1].split("]")[0].split(", ") if "TASK TAGS: [" in out else []
    missing = [tag for tag in ("harden", "kernel", "cleanup", "units", "verify") if tag not in listed]
    results.append(case("list-tags", rc == 0 and not missing, "rc=%d, missing: %s" % (rc, missing), t))

    # the same with netsvc_max_fail_percentage=50: 1 of 3 done failed, batch 3 runs
    rc, out, t = run(args, hosts, ["-e", "netsvc_batch=2", "-e", "netsvc_max_fail_percentage=50"])
    results.append(case("percentage", rc != 0 and touched(out, "ghost-c") and "rollout stopped" not in out,
                        "rc=%d, touched: %s" % (rc, [h for h in later if touched(out, h)]), t))

    # a percentage canary: 40% of 5 hosts is 2 canaries, as serial makes it (it read 0 before)
    five = [(real, True), ("ghost-b", True), ("ghost-c", True), ("ghost-d", True), ("ghost-e", True)]
    rc, out, t = run(args, five, ["-e", "netsvc_canary=40%", "-e", "netsvc_max_fail_percentage=50"])
    results.append(case("canary percentage", rc != 0 and touched(out, real) and touched(out, "ghost-b")
                        and not touched(out, "ghost-c") and "rollout stopped before ghost-c" in out
                        and "(a canary)" in out,
                        "rc=%d, touched: %s" % (rc, [h for h, _s in five if touched(out, h)]), t))

    # a canary value serial would not read as a count: refused before any change
    rc, out, t = run(args, [(real, True), ("ghost-b", True)], ["-e", "netsvc_canary=true"])
    results.append(case("canary refused", rc != 0 and not touched(out, real) and "is neither a number" in out,
                        "rc=%d, real touched: %s" % (rc, touched(out, real)), t))

    # a crash-test value other than canary, all or none: refused before any change (it meant none)
    rc, out, t = run(args, [(real, True), ("ghost-b", True)], ["-e", "netsvc_crash_test=true"])
    results.append(case("crash test value refused", rc != 0 and not touched(out, real)
                        and "it must be canary (the crash test on the" in out,
                        "rc=%d, real touched: %s" % (rc, touched(out, real)), t))

    # a host without netsvc_services first: left out with one line, never touched (so never the
    # canary: REAL is), and the run succeeds
    rc, out, t = run(args, [("ghost-bare", False), (real, True)], [])
    results.append(case("no netsvc_services", rc == 0 and not touched(out, "ghost-bare") and touched(out, real)
                        and "netsvc_services is not set for this host" in out,
                        "rc=%d, bare touched: %s" % (rc, touched(out, "ghost-bare")), t))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
