"""AWX / Ansible Automation Platform, as far as it runs here (issue 16): no registry, so no
execution-environment image is built, but everything up to the build and the engine itself.

  python3 tests/awx/awx.py [--keep DIR]

1. The execution environment: `ansible-builder introspect` of the installed collection lists
   its Python and system needs (meta/execution-environment.yml); `ansible-builder create` of
   an EE definition that installs the collection from its built tarball gives a build context
   whose Containerfile installs the collection and introspects it; the context's own
   introspect.py, run on the collection installed the way the image build installs it,
   finds the same requirements.
2. The engine: playbooks/harden_restart.yml and audit.yml run under ansible-runner (what AWX
   and AAP run jobs with) from an AWX-style project against two test-bed containers; the job
   status, rc, job events and the stats show every host's result.
Exits 1 when a property does not hold.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness as HN  # noqa: E402

TOP = HN.TOP
BIN = os.path.join(HN.VENV, "bin")
RUN = os.environ.get("NETSVC_RUN_ID", "awx-%d" % os.getpid())
FLEET = HN.Fleet("netsvc.run=%s" % RUN, "netsvc-awx")
HOSTS = ["netsvc-awx-a", "netsvc-awx-b"]
FAILED = []


def log(msg):
    sys.stderr.write("[awx] %s\n" % msg)
    sys.stderr.flush()


def check(what, ok, detail=""):
    log("%s: %s%s" % ("ok" if ok else "FAILED", what, "" if ok else " - " + str(detail)[:1500]))
    if not ok:
        FAILED.append(what)


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False, **kw)


def build_collection(work):
    out = run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", work, TOP])
    tarballs = glob.glob(os.path.join(work, "netsvc-resilience-*.tar.gz"))
    if out.returncode or not tarballs:
        raise RuntimeError("collection build failed: %s" % out.stdout)
    coll = os.path.join(work, "collections")
    out = run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--force", "-p", coll, tarballs[0]])
    if out.returncode:
        raise RuntimeError("collection install failed: %s" % out.stdout)
    return tarballs[0], coll


def execution_environment(work):
    tarball, coll = build_collection(work)
    name = os.path.basename(tarball)
    out = run([os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize", coll])
    check("ansible-builder introspect lists jmespath (requirements.txt)",
          "jmespath  # from collection netsvc.resilience" in out.stdout, out.stdout)
    check("ansible-builder introspect lists the ssh client (bindep.txt)",
          "openssh-clients [platform:rpm]  # from collection netsvc.resilience" in out.stdout, out.stdout)
    definition = os.path.join(work, "execution-environment.yml")
    with open(definition, "w") as f:
        f.write("""---
version: 3
images:
  base_image:
    name: registry.example.com/ansible/ee-minimal:latest
dependencies:
  ansible_core:
    package_pip: ansible-core>=2.16
  ansible_runner:
    package_pip: ansible-runner
  galaxy:
    collections:
      - name: /build/%s
        type: file
additional_build_files:
  - src: %s
    dest: .
""" % (name, name))
    ctx = os.path.join(work, "context")
    out = run([os.path.join(BIN, "ansible-builder"), "create", "-f", definition, "--context", ctx,
               "--output-filename", "Containerfile"])
    check("ansible-builder create writes a build context", out.returncode == 0 and os.path.isfile(
        os.path.join(ctx, "Containerfile")), out.stdout)
    with open(os.path.join(ctx, "Containerfile")) as f:
        containerfile = f.read()
    with open(os.path.join(ctx, "_build", "requirements.yml")) as f:
        requirements = f.read()
    check("the context carries the collection tarball", os.path.isfile(os.path.join(ctx, "_build", name)))
    check("its galaxy requirements install it from that file",
          "name: /build/%s" % name in requirements and "type: file" in requirements, requirements)
    check("the Containerfile installs the collections and introspects them",
          "ansible-galaxy collection install" in containerfile and "introspect.py introspect" in containerfile,
          containerfile)
    # the image build's own introspection, on the collection installed as the build installs it
    pip_out, bindep_out = os.path.join(work, "pip.txt"), os.path.join(work, "bindep.txt")
    out = run([os.path.join(BIN, "python"), os.path.join(ctx, "_build", "scripts", "introspect.py"), "introspect",
               "--write-pip", pip_out, "--write-bindep", bindep_out, coll])
    with open(pip_out) as f:
        pip = f.read()
    with open(bindep_out) as f:
        bindep = f.read()
    check("the build's introspect.py finds jmespath and the ssh client",
          out.returncode == 0 and "jmespath" in pip and "openssh-client [platform:dpkg]" in bindep,
          out.stdout + pip + bindep)


def runner_job(work, playbook, extravars):
    """One AWX-style job: a private data dir with a project, an inventory and extra vars."""
    pdd = os.path.join(work, "runner-" + playbook.split(".")[0])
    os.makedirs(os.path.join(pdd, "project"))
    os.makedirs(os.path.join(pdd, "inventory"))
    os.makedirs(os.path.join(pdd, "env"))
    with open(os.path.join(pdd, "project", playbook), "w") as f:  # the project's playbook, as in AWX
        f.write("---\n- name: The collection's playbook\n  ansible.builtin.import_playbook: "
                "netsvc.resilience.%s\n" % playbook.split(".")[0])
    with open(os.path.join(pdd, "inventory", "hosts"), "w") as f:
        f.write("[fleet]\n" + "".join("%s ansible_connection=community.docker.docker\n" % h for h in HOSTS))
    with open(os.path.join(pdd, "env", "extravars"), "w") as f:
        json.dump(extravars, f)
    envvars = dict(HN.env(), PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    envvars.pop("ANSIBLE_STDOUT_CALLBACK", None)
    with open(os.path.join(pdd, "env", "envvars"), "w") as f:
        json.dump({k: envvars[k] for k in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CONFIG", "PATH")}, f)
    out = run([os.path.join(BIN, "ansible-runner"), "run", pdd, "-p", playbook, "--ident", "job"],
              env=dict(os.environ, PATH=envvars["PATH"]))
    art = os.path.join(pdd, "artifacts", "job")
    status, rc = (HN.read(os.path.join(art, name)) for name in ("status", "rc"))
    events = []
    for path in sorted(glob.glob(os.path.join(art, "job_events", "*.json")),
                       key=lambda p: int(os.path.basename(p).split("-")[0])):
        with open(path) as f:
            events.append(json.load(f))
    return status, rc, events, out.stdout


def host_results(events, task_suffix):
    return {e["event_data"]["host"]: e["event"] for e in events
            if e.get("event", "").startswith("runner_on_") and e.get("event_data", {}).get("task", "").endswith(
                task_suffix)}


def engine(work):
    services = [{"name": "netsvc-echo.service", "ports": [7070]}]
    status, rc, events, out = runner_job(work, "harden_restart.yml", {"netsvc_services": services})
    check("harden_restart.yml under ansible-runner: status successful, rc 0", (status, rc) == ("successful", "0"),
          out[-3000:])
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    per_host = stats[-1]["event_data"] if stats else {}
    check("the job's stats name every host, none failed or unreachable",
          all(h in per_host.get("ok", {}) for h in HOSTS) and not per_host.get("failures")
          and not per_host.get("dark"), per_host)
    pre = host_results(events, "Read the host in one call (OS, Python, service manager, services, applied state), "
                               "under the run lock")
    post = host_results(events, "Every service is active, listening and served by itself, then record the "
                                "verified state")
    check("a job event per host for the pre-flight and the post-check",
          pre == dict.fromkeys(HOSTS, "runner_on_ok") == post, (pre, post))
    audit_dir = os.path.join(work, "audit")
    status, rc, events, out = runner_job(work, "audit.yml",
                                         {"netsvc_services": services, "netsvc_audit_dir": audit_dir})
    check("audit.yml under ansible-runner: status successful, rc 0", (status, rc) == ("successful", "0"), out[-3000:])
    report = {}
    if os.path.exists(os.path.join(audit_dir, "audit.json")):
        with open(os.path.join(audit_dir, "audit.json")) as f:
            report = json.load(f)
    check("its report has a row set for every host", sorted(h["host"] for h in report.get("hosts", [])) == HOSTS,
          report.get("summary"))
    summary = [e for e in events if e.get("event") == "runner_on_ok"
               and e["event_data"].get("task") == "Summary"]
    check("the job events carry the summary with the report's absolute path",
          summary and audit_dir + "/audit.html" in json.dumps(summary[0]["event_data"]["res"]), summary)


def main():
    work = tempfile.mkdtemp(prefix="netsvc-awx-")
    if "--keep" in sys.argv:
        work = sys.argv[sys.argv.index("--keep") + 1]
        os.makedirs(work, exist_ok=True)
    try:
        execution_environment(work)
        inv = FLEET.start(HOSTS)
        for path in ("molecule/_shared/prepare.yml", "molecule/_shared/prepare_service.yml"):
            HN.playbook(inv, os.path.join(TOP, path), "-e",
                        json.dumps({"netsvc_test_units": [{"name": "netsvc-echo", "port": 7070}]}))
        engine(work)
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        check("no error", False, "%s: %s" % (type(e).__name__, e))
    finally:
        FLEET.destroy_all()
        if "--keep" not in sys.argv:
            shutil.rmtree(work, ignore_errors=True)
    log("%d failed" % len(FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
