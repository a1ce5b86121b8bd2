"""Where the audit writes its report (issue 27): under the directory ansible-playbook was
started from - run from a checkout and from the installed collection, each from another
directory, never into the playbooks' own directory.

  python tests/rollout/audit_location.py --playbook BIN --host REAL [--galaxy BIN]

Prints one line per case; exits 1 on a failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--playbook", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--galaxy")
    args = ap.parse_args()
    args.playbook = os.path.abspath(args.playbook)
    galaxy = os.path.abspath(args.galaxy or os.path.join(os.path.dirname(args.playbook), "ansible-galaxy"))
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        inv = os.path.join(tmp, "inventory.ini")
        with open(inv, "w") as f:
            f.write("%s ansible_connection=community.docker.docker netsvc_become=false "
                    "netsvc_services='[{\"name\": \"netsvc-echo.service\", \"ports\": [7070]}]'\n" % args.host)
        subprocess.run([galaxy, "collection", "build", "--force", "--output-path", tmp, TOP], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tarball = [os.path.join(tmp, n) for n in os.listdir(tmp) if n.endswith(".tar.gz")][0]
        installed = os.path.join(tmp, "installed")
        subprocess.run([galaxy, "collection", "install", "--force", "-p", installed, tarball], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = {k: v for k, v in os.environ.items() if k not in ("NETSVC_AUDIT_DIR",)}
        checkout = os.path.join(TOP, "playbooks", "audit.yml")
        for name, playbook, collections in (
                ("from a checkout", checkout, env.get("ANSIBLE_COLLECTIONS_PATH", "")),
                ("installed collection", "netsvc.resilience.audit", installed)):
            cwd = tempfile.mkdtemp(dir=tmp)
            run_env = dict(env, ANSIBLE_COLLECTIONS_PATH=collections, PWD=cwd)
            out = subprocess.run([args.playbook, "-i", inv, playbook], cwd=cwd, env=run_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, universal_newlines=True, check=False)
            report = os.path.join(cwd, "netsvc-audit", "audit.html")
            playbook_dir = os.path.dirname(playbook) if os.path.isabs(playbook) else os.path.join(
                installed, "ansible_collections", "netsvc", "resilience", "playbooks")
            stray = os.path.exists(os.path.join(playbook_dir, "netsvc-audit"))
            good = out.returncode == 0 and os.path.exists(report) and report in out.stdout and not stray
            ok = ok and good
            print("[audit] %-22s %s%s" % (name, "PASS" if good else "FAIL",
                                          "" if good else ": rc=%d, report %s, stray %s\n%s" % (
                                              out.returncode, os.path.exists(report), stray, out.stdout[-2000:])),
                  flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
