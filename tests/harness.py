"""Test-bed helpers shared by the benchmarks and the fault tests (controller side, stdlib only).

Containers are started with the flags that work here (scripts/testbed.sh run) and carry a
label naming this run, so clean-up removes this run's containers and nothing else.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("NETSVC_VENV", os.path.join(TOP, ".venv"))
IMAGE = os.environ.get("NETSVC_IMAGE", "localhost/netsvc-debian12-systemd:latest")
INIT = os.environ.get("NETSVC_INIT", "/lib/systemd/systemd")


def sh(argv, **kw):
    return subprocess.run(argv, check=True, universal_newlines=True, **kw)


def env(extra=None):
    """ansible-playbook's environment: this checkout as netsvc.resilience, the demo's ansible.cfg."""
    e = dict(os.environ)
    coll = os.path.join(TOP, ".cache", "collections")
    os.makedirs(os.path.join(coll, "ansible_collections", "netsvc"), exist_ok=True)
    link = os.path.join(coll, "ansible_collections", "netsvc", "resilience")
    if not os.path.islink(link):
        os.symlink(TOP, link)
    e.update(ANSIBLE_COLLECTIONS_PATH=coll, ANSIBLE_CONFIG=os.path.join(TOP, "demo", "ansible.cfg"),
             ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_FORKS="10")
    e.update(extra or {})
    return e


def playbook_argv(inv, path, *extra):
    return [os.path.join(VENV, "bin", "ansible-playbook"), "-i", inv, path] + list(extra)


def playbook(inv, path, *extra, check=True, extra_env=None):
    """Run ansible-playbook; returns (wall seconds, rc, output)."""
    t0 = time.monotonic()
    out = subprocess.run(playbook_argv(inv, path, *extra), env=env(extra_env), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    wall = time.monotonic() - t0
    if check and out.returncode != 0:
        with tempfile.NamedTemporaryFile("w", prefix="netsvc-playbook-", suffix=".log", delete=False) as f:
            f.write(out.stdout)
        failed = [line for line in out.stdout.splitlines() if line.startswith(("fatal:", "failed:"))
                  or '"msg":' in line]
        sys.stderr.write("\n".join(failed[-10:]) + "\n")
        raise RuntimeError("%s failed (rc=%d), whole output in %s" % (path, out.returncode, f.name))
    return wall, out.returncode, out.stdout


def read(path, missing="?"):
    """A small file's stripped text, or ``missing``."""
    try:
        with open(path) as f:
            return f.read().strip()
    except (IOError, OSError):
        return missing


def json_results(output):
    """ansible-playbook's output with ANSIBLE_STDOUT_CALLBACK=ansible.builtin.json, as a dict."""
    # callbacks such as profile_tasks print after the JSON document: decode the document only
    return json.JSONDecoder().raw_decode(output[output.index("{"):])[0]


class Fleet(object):
    """Test hosts of one run: started with the test bed's flags, labelled, removed together."""

    def __init__(self, label, network):
        self.label = label  # "key=value"
        self.network = network
        self.names = []

    def start(self, names, image=IMAGE, init=INIT, run_opts=""):
        """Start the hosts; ``run_opts``: extra docker run options (scripts/testbed.sh run)."""
        subprocess.run(["docker", "network", "create", "--label", self.label, self.network], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        run_env = dict(os.environ, NETSVC_RUN_OPTS=run_opts)
        for n in names:
            sh([os.path.join(TOP, "scripts", "testbed.sh"), "run", n, image, self.label, self.network]
               + (list(init) if isinstance(init, (list, tuple)) else [init]), env=run_env)
            self.names.append(n)
        return self.inventory(names)

    @staticmethod
    def inventory(names, group="fleet"):
        with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as inv:
            inv.write("[%s]\n" % group + "".join("%s ansible_connection=community.docker.docker\n" % n
                                                 for n in names))
        return inv.name

    def destroy(self, names=None):
        names = list(names or self.names)
        if names:
            subprocess.run(["docker", "rm", "-f"] + names, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
        self.names = [n for n in self.names if n not in names]

    def destroy_all(self):
        """Every container and the network of this run (by its label), also after a crash."""
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=" + self.label], stdout=subprocess.PIPE,
                             universal_newlines=True, check=False).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f"] + ids, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(["docker", "network", "rm", self.network], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        self.names = []

    @staticmethod
    def exec(name, script, check=True):
        """Run a shell script in a host; returns its stdout."""
        out = subprocess.run(["docker", "exec", name, "sh", "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, check=False)
        if check and out.returncode != 0:
            raise RuntimeError("%s: %s failed (rc=%d): %s" % (name, script, out.returncode, out.stdout[-2000:]))
        return out.stdout
