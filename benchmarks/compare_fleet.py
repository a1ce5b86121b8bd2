# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""harden_restart.yml on N fresh hosts, this checkout against another revision, in one run.

  python3 benchmarks/compare_fleet.py --before REV [--hosts 10] [--rounds 3] [--out DIR]

For a change that must not make the rollout slower (a refactor of the module layer): the two
collections run the same playbook with the same variables (benchmarks/rollout_vars.yml) on the
same number of fresh hosts, forks = hosts, no crash test, alternating which goes first each
round. Reported: the median first run and re-run of each, and after / before. REV is checked
out with `git worktree` in a temporary directory and removed afterwards.
"""
from __future__ import print_function

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests"))
import harness as HN  # noqa: E402

BENCH = os.path.join(TOP, "benchmarks")


def collection_path(checkout, cache):
    """A collections path holding ``checkout`` as netsvc.resilience."""
    path = os.path.join(cache, "ansible_collections", "netsvc")
    os.makedirs(path, exist_ok=True)
    os.symlink(checkout, os.path.join(path, "resilience"))
    return cache


def timed_run(inv, checkout, coll, hosts):
    args = ["-e", "@" + os.path.join(BENCH, "rollout_vars.yml"), "-e", "netsvc_crash_test=none",
            "-e", "netsvc_become=false", "-e", "netsvc_canary=%d" % hosts, "-e", "netsvc_batch=%d" % hosts]
    wall, _rc, _out = HN.playbook(inv, os.path.join(checkout, "playbooks", "harden_restart.yml"), *args,
                                  extra_env={"ANSIBLE_COLLECTIONS_PATH": coll, "ANSIBLE_FORKS": str(hosts)})
    return round(wall, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the revision to compare with (a commit, tag or branch)")
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="a directory for results.json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="netsvc-compare-")
    before = os.path.join(work, "before")
    subprocess.run(["git", "-C", TOP, "worktree", "add", "--detach", before, a.before], check=True,
                   stdout=subprocess.DEVNULL)
    fleet = HN.Fleet("netsvc.bench=compare-%d-%d" % (os.getpid(), int(time.time())), "netsvc-compare")
    variants = [("before", before, collection_path(before, os.path.join(work, "coll-before"))),
                ("after", TOP, collection_path(TOP, os.path.join(work, "coll-after")))]
    samples = {name: {"first": [], "rerun": []} for name, _c, _p in variants}
    try:
        for rnd in range(a.rounds):
            for name, checkout, coll in (variants if rnd % 2 else variants[::-1]):
                names = ["netsvc-cmp-%d" % i for i in range(a.hosts)]
                inv = fleet.start(names)
                try:
                    HN.playbook(inv, os.path.join(BENCH, "rollout_prepare.yml"))
                    first = timed_run(inv, checkout, coll, a.hosts)
                    again = timed_run(inv, checkout, coll, a.hosts)
                finally:
                    fleet.destroy(names)
                    os.unlink(inv)
                samples[name]["first"].append(first)
                samples[name]["rerun"].append(again)
                print("round %d, %s: first %.2f s, re-run %.2f s" % (rnd + 1, name, first, again), flush=True)
    finally:
        fleet.destroy_all()
        subprocess.run(["git", "-C", TOP, "worktree", "remove", "--force", before], check=False)
        shutil.rmtree(work, ignore_errors=True)
    med = {n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()}
    result = {"hosts": a.hosts, "rounds": a.rounds, "before": a.before,
              "after": subprocess.run(["git", "-C", TOP, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                                      universal_newlines=True, check=True).stdout.strip(),
              "samples": samples, "median": med,
              "after_over_before": {k: round(med["after"][k] / med["before"][k], 3) for k in ("first", "rerun")}}
    print(json.dumps(result, indent=1, sort_keys=True))
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
