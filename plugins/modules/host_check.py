#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_check
short_description: Pre-flight facts, service health and the applied-state record in one round trip
version_added: 0.1.0
description:
  - Reads in one call what a rollout needs to know about a host, so a fleet run does not pay a
    round trip per question. It reads the distribution and OS family (C(/etc/os-release)),
    the Python running the module, and the service manager (systemd when C(/run/systemd/system)
    exists). For every service it reads whether it exists, whether it is active (for a
    socket-activated one, its C(.socket) unit) and whether its ports have a listening socket
    (one C(sock_diag) dump for all ports).
  - With O(wait) it waits until every service is healthy, up to that many seconds. With
    O(require_healthy) it fails naming each unhealthy service and why. This is the rollout's
    post-check.
  - "The applied-state record (O(inputs_digest), O(record)) lets a re-run skip work without
    hiding drift. After a verified rollout, O(record=true) stores what the host looks like:
    the content, mode and owner of every file the collection writes or that can override it
    (our sysctl file and every sysctl.d directory, the hook directory, each unit's drop-in
    directory, socket units, the revive template, supervisord program directories), the live
    values of the keys in O(sysctl_files), and the effective properties systemd reports for
    each unit (C(Restart), C(RestartUSec), start limit, C(DropInPaths), C(NeedDaemonReload)...).
    It also stores O(inputs_digest), a digest of the controller-side inputs."
  - A later call with the same O(inputs_digest) returns RV(converged=true) only when the host
    still matches that record and every service is healthy. Otherwise RV(drift) lists what
    differs.
  - Returns its facts under C(ansible_facts.netsvc_host), so facts from C(setup) are never
    overwritten.
author:
  - netsvc.resilience maintainers (@netsvc)
extends_documentation_fragment:
  - netsvc.resilience.attributes
attributes:
  check_mode:
    support: full
    details: In check mode the record is never written.
  diff_mode:
    support: none
options:
  services:
    description:
      - The services to look at, in the C(netsvc_services) data model; keys other than these
        are ignored, so the list can be passed as is.
      - C(name) (required) - systemd unit (C(.service) is added when there is no suffix) or
        supervisord program.
      - C(backend) - C(auto) (the default - systemd when systemd is the service manager, else
        supervisord), C(systemd) or C(supervisord).
      - C(ports) - TCP ports that must have a listening socket; entries that are not integers
        (port ranges) are ignored.
      - C(socket_activation) - check the C(.socket) unit instead of the service.
    type: list
    elements: dict
    default: []
  wait:
    description: Seconds to wait for every service to be healthy (0 - look once).
    type: float
    default: 0
  require_healthy:
    description: Fail when a service is not healthy (after O(wait)).
    type: bool
    default: false
  inputs_digest:
    description:
      - Digest of the controller-side inputs (variables and collection code). Compared with
        the record to compute RV(converged), and stored by O(record).
    type: str
  record:
    description:
      - Write the applied-state record (needs O(inputs_digest) and every service healthy).
        The record is bookkeeping of a verified run, not configuration; writing it is
        reported as a change only when its content changes.
    type: bool
    default: false
  sysctl_files:
    description:
      - sysctl.d files the collection writes. Their keys' live values are part of the applied
        state, and so is every directory systemd-sysctl reads at boot.
    type: list
    elements: path
    default: []
  hook_dir:
    description:
      - Directory of the pre-start cleanup hook (part of the applied state). C(auto) is the OS
        family's default (the one C(prestart_hook) uses); omit it when there is no hook.
    type: str
  state_file:
    description: Where the applied-state record lives.
    type: path
    default: /var/lib/netsvc-resilience/applied-state.json
  lock:
    description:
      - C(acquire) - one rollout at a time on this host. Takes the run lock O(lock_file), a lease
        of O(lock_lease) seconds held by O(run_id), waiting up to O(lock_wait) seconds while
        another live run holds it (and says so in a warning). A lock left by a killed run, or
        by a play stopped on this host before its end, expires with its lease. When the host
        is converged the lock is released at once; otherwise the applied-state record is set
        aside (C(.unverified)) until a post-check records again, so a run killed half-way
        never leaves a record of a verified host. With O(record=true) (the post-check) it
        renews the lease of this O(run_id).
      - C(release) - end this run (the post-check).
    type: str
    choices: [none, acquire, release]
    default: none
  run_id:
    description: This run's id (the same for every host and call of one run). Needed with O(lock).
    type: str
  lock_holder:
    description: Who runs (controller, user, PID), shown to a run that waits.
    type: str
    default: ""
  lock_wait:
    description: Seconds to wait for another run's lock before failing (nothing is changed then).
    type: float
    default: 900
  lock_lease:
    description: Seconds after which a lock counts as left by a killed or stopped run.
    type: float
    default: 600
  lock_file:
    description: The run lock.
    type: path
    default: /run/netsvc-resilience/run.lock
  hook_journal:
    description:
      - Also read each systemd service's last hook line from the journal (one C(journalctl) per
        service). A hook inside a read-only sandbox (C(ProtectSystem=strict)) cannot write its
        status file but still logs; the newer of the two is reported. The audit turns it on.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Pre-flight - facts, services and whether the host still is as the last verified run left it
  netsvc.resilience.host_check:
    services: "{{ netsvc_services }}"
    inputs_digest: "{{ my_inputs_digest }}"
    sysctl_files: [/etc/sysctl.d/90-netsvc-resilience.conf]
  register: pre

- name: Post-check - every service active and listening within 10 s; record the verified state
  netsvc.resilience.host_check:
    services: "{{ netsvc_services }}"
    wait: 10
    require_healthy: true
    inputs_digest: "{{ my_inputs_digest }}"
    record: true
    sysctl_files: [/etc/sysctl.d/90-netsvc-resilience.conf]
"""

RETURN = r"""
ansible_facts:
  description: C(netsvc_host) - distribution, distribution_version, distribution_major_version,
    os_family, service_mgr, python_version, python (version major/minor/micro, executable),
    supervisorctl (path or empty), hook_dir (the OS family's default hook directory), kernel
    (release), sock_destroy (a real try on loopback sockets of its own - C(full) and
    C(timewait) are true when the kernel destroyed one, false when it refused with
    EOPNOTSUPP, null when unknown, e.g. without CAP_NET_ADMIN; C(errors) per kind).
  returned: always
  type: dict
services:
  description: Per service - name, backend (resolved), unit, exists, load_state, active_state,
    active, ports, missing_ports, healthy, problems, and hook - what the pre-start cleanup hook
    really did - installed, privileged (runs with full privileges; null when this systemd does
    not show it), exec (code and status of its last run as systemd saw it) and last (its status
    file from that run - result ok/left/error, found, destroyed, left, cause, time, uid, kernel).
  returned: always
  type: list
  elements: dict
healthy:
  description: Every service exists, is active and listens on all its ports.
  returned: always
  type: bool
converged:
  description: The host matches the applied-state record for O(inputs_digest), and is healthy.
  returned: always
  type: bool
drift:
  description: Why RV(converged) is false (first 20 reasons).
  returned: always
  type: list
  elements: str
lock:
  description:
    - With O(lock) - C(waited_s), C(previous) (the lock found), C(expired) (taken over from a
      killed run), C(released).
  returned: with lock
  type: dict
recorded:
  description: The record now holds this host's verified state.
  returned: always
  type: bool
"""

import json
import os
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.netsvc.resilience.plugins.module_utils import _constants as C
from ansible_collections.netsvc.resilience.plugins.module_utils import _hook as K
from ansible_collections.netsvc.resilience.plugins.module_utils import _hostcheck as H
from ansible_collections.netsvc.resilience.plugins.module_utils import _sockdiag as D
from ansible_collections.netsvc.resilience.plugins.module_utils import _sysctl as S
from ansible_collections.netsvc.resilience.plugins.module_utils import _systemd as SD
from ansible_collections.netsvc.resilience.plugins.module_utils import _unit as U
from ansible_collections.netsvc.resilience.plugins.module_utils import _validate as V
from ansible_collections.netsvc.resilience.plugins.module_utils._files import atomic_write, read_text


def host_facts(module, service_mgr):
    facts = H.read_os_release()
    facts["service_mgr"] = service_mgr
    v = sys.version_info
    facts["python_version"] = "%d.%d.%d" % (v[0], v[1], v[2])
    facts["python"] = {"version": {"major": v[0], "minor": v[1], "micro": v[2]}, "executable": sys.executable}
    facts["supervisorctl"] = module.get_bin_path("supervisorctl") or ""
    facts["hook_dir"] = K.hook_dir(facts["os_family"])
    facts["kernel"] = os.uname()[2]
    # a real try on our own loopback sockets: can this kernel destroy full / TIME_WAIT sockets?
    facts["sock_destroy"] = D.probe_destroy()
    return facts


def hook_journal(module, unit):
    """The hook's last journal line for a unit (with its time), parsed; {} when none."""
    journalctl = module.get_bin_path("journalctl")
    if not journalctl:
        return {}
    _rc, out, _err = U.run(module, [journalctl, "-u", unit, "SYSLOG_IDENTIFIER=" + C.HOOK_NAME, "-n", "1",
                                    "-o", "short-unix", "--no-pager", "-q"], check=False)
    for line in reversed(out.splitlines()):
        stamp = line.split(" ", 1)[0]
        try:
            return D.parse_hook_line(line, float(stamp))
        except ValueError:
            continue
    return {}


def observe(module, services, units, supervisorctl, ports, journal=False):
    """One look: systemctl show for every unit, supervisorctl status, one LISTEN dump."""
    shows = {}
    if units:
        argv = [module.get_bin_path("systemctl", required=True), "show"] + units
        for prop in sorted(set(H.UNIT_PROPS + H.HEALTH_PROPS + H.HOOK_PROPS)):
            argv += ["-p", prop]
        _rc, out, _err = U.run(module, argv)
        blocks = SD.parse_show_many(out)
        if len(blocks) != len(units):
            module.fail_json(msg="systemctl show returned %d blocks for %d units" % (len(blocks), len(units)))
        shows = dict(zip(units, blocks))
    supervisor = {}
    if supervisorctl and any(s["backend"] == "supervisord" for s in services):
        _rc, out, _err = U.run(module, [supervisorctl, "status"], check=False)
        supervisor = H.parse_supervisor_status(out)
    listening = set()
    if ports:
        try:
            listening = set(D.listening_ports(ports))
        except D.DiagError as e:
            module.fail_json(msg="cannot list listening sockets (sock_diag): %s" % to_native(e))
    health = H.service_health(services, shows, supervisor, listening)
    for row in health:
        status = read_text(os.path.join(C.HOOK_STATUS_DIR, row["unit"] + ".status"))
        show = shows.get(row["unit"], {}) if row["backend"] == "systemd" else {}
        lines = hook_journal(module, row["unit"]) if journal and row["backend"] == "systemd" else None
        row["hook"] = H.hook_report(show, status, C.HOOK_NAME, lines)
    return shows, supervisor, health


SPEC = dict(
    services=dict(type="list", elements="dict", default=[]),
    wait=dict(type="float", default=0),
    require_healthy=dict(type="bool", default=False),
    inputs_digest=dict(type="str", no_log=False),
    record=dict(type="bool", default=False),
    sysctl_files=dict(type="list", elements="path", default=[]),
    hook_dir=dict(type="str"),
    state_file=dict(type="path", default=C.APPLIED_STATE_FILE),
    hook_journal=dict(type="bool", default=False),
    lock=dict(type="str", default="none", choices=["none", "acquire", "release"]),
    run_id=dict(type="str"),
    lock_holder=dict(type="str", default=""),
    lock_wait=dict(type="float", default=900),
    lock_lease=dict(type="float", default=600),
    lock_file=dict(type="path", default=C.RUN_LOCK),
)


def check_input(module, p, service_mgr):
    """Every option checked before anything is looked at; returns the services."""
    try:
        V.number(p["wait"], "wait", 0, 600, " seconds")
        V.number(p["lock_wait"], "lock_wait", 0, 7200, " seconds")
        V.number(p["lock_lease"], "lock_lease", 5, 86400, " seconds")
        for key in ("state_file", "lock_file"):
            V.abs_path(p[key], key)
        for path in p["sysctl_files"]:
            V.abs_path(path, "sysctl_files entry")
        if p["hook_dir"] not in (None, "auto"):
            V.abs_path(p["hook_dir"], "hook_dir")
        for key in ("inputs_digest", "run_id", "lock_holder"):
            if p[key] is not None:
                V.single_line(p[key], key, 256)
        if p["lock"] != "none" and not p["run_id"]:
            raise V.InputError("lock=%s needs run_id (this run's id)" % p["lock"])
        return H.check_services(p["services"], service_mgr)
    except ValueError as e:
        module.fail_json(msg=to_native(e))


def units_of(services):
    units = []
    for svc in services:
        if svc["backend"] == "systemd":
            units.append(U.unit_name(svc["name"]))
            if svc["socket_activation"]:
                units.append(U.socket_name(svc["name"]))
    return units


def look_until_healthy(module, p, services, units, facts):
    ports = sorted({x for s in services for x in s["ports"]})
    deadline = time.monotonic() + p["wait"]
    while True:
        shows, _sup, health = observe(module, services, units, facts["supervisorctl"], ports, p["hook_journal"])
        healthy = all(row["healthy"] for row in health)
        if healthy or time.monotonic() >= deadline:
            return shows, health, healthy
        time.sleep(0.1)


def applied_state(module, p, services, units, shows, health, facts, result):
    """Compare the host with its applied-state record; with record=true, store it."""
    hook_directory = facts["hook_dir"] if p["hook_dir"] == "auto" else p["hook_dir"]
    sysctl_keys = []
    for path in p["sysctl_files"]:
        sysctl_keys.extend(k for k in H.sysctl_keys(read_text(path)) if k not in sysctl_keys)
    snapshot = {
        "files": H.snapshot_paths(H.watch_paths(services, p["sysctl_files"], hook_directory, p["state_file"])),
        "sysctl": S.read_live(sysctl_keys),
        "units": H.unit_state(shows, units),
    }
    text = read_text(p["state_file"])
    try:
        record = json.loads(text) if text else None
    except ValueError:
        record = None
    reasons = H.drift(record, p["inputs_digest"], snapshot)
    if os.path.exists(p["state_file"] + ".unverified"):
        reasons.insert(0, "the last run stopped before its post-check (killed or failed): every concern runs again")
    if not result["healthy"]:
        reasons.append("not every service is healthy")
    result["drift"] = reasons[:20]
    result["converged"] = not reasons
    if not p["record"]:
        return
    if not result["healthy"]:
        module.fail_json(msg="not recording the applied state: %s" % "; ".join(
            "%s: %s" % (r["name"], ", ".join(r["problems"])) for r in health if not r["healthy"]), **result)
    new = json.dumps({"version": H.RECORD_VERSION, "inputs": p["inputs_digest"], "snapshot": snapshot},
                     sort_keys=True, indent=1) + "\n"
    if new != text:
        result["changed"] = True
        if not module.check_mode:
            try:
                atomic_write(module, p["state_file"], new, 0o644)
            except (IOError, OSError) as e:
                module.fail_json(msg="writing %s failed: %s" % (p["state_file"], to_native(e)))
    if not module.check_mode and os.path.exists(p["state_file"] + ".unverified"):
        os.unlink(p["state_file"] + ".unverified")
    result.update(recorded=not module.check_mode, converged=True, drift=[])


def lock_before(module, p):
    """lock=acquire: one run at a time on this host (waits; a killed run's lease expires)."""
    if p["lock"] != "acquire" or module.check_mode:
        return None
    info = H.take_lock(module, p["lock_file"], p["run_id"], p["lock_holder"] or "unknown", p["lock_wait"],
                       p["lock_lease"], lambda path, text: atomic_write(module, path, text, 0o644))
    prev = info["previous"] or {}
    if info["waited_s"] >= 1:
        module.warn("waited %.0f s for run %s (%s) to finish on this host" % (
            info["waited_s"], prev.get("run_id"), prev.get("holder")))
    if info["expired"]:
        module.warn("took over the run lock of run %s (%s): its lease expired - that run was killed, or its play "
                    "stopped on this host (max_fail_percentage, any_errors_fatal) before the end"
                    % (prev.get("run_id"), prev.get("holder")))
    return info


def lock_after(module, p, result, info):
    """The pre-flight: converged - release at once; else the record is unverified until the
    post-check records again. The post-check (record=true) only renewed the lease.
    lock=release ends the run."""
    if module.check_mode:
        return
    if info is not None:
        result["lock"] = dict(info, released=False)
        if p["record"]:
            pass
        elif result["converged"]:
            result["lock"]["released"] = H.release_lock(p["lock_file"], p["run_id"])
        elif p["inputs_digest"] and os.path.exists(p["state_file"]):
            os.rename(p["state_file"], p["state_file"] + ".unverified")
    if p["lock"] == "release":
        result["lock"] = {"released": H.release_lock(p["lock_file"], p["run_id"])}


def main():
    module = AnsibleModule(argument_spec=SPEC, required_if=[("record", True, ("inputs_digest",))],
                           supports_check_mode=True)
    V.require_python(module)  # before any Python 3 code: a clean message on an old host
    p = module.params
    service_mgr = U.service_manager()
    services = check_input(module, p, service_mgr)
    facts = host_facts(module, service_mgr)
    lock = lock_before(module, p)
    units = units_of(services)
    shows, health, healthy = look_until_healthy(module, p, services, units, facts)
    result = dict(changed=False, services=health, healthy=healthy, converged=False, drift=[], recorded=False,
                  ansible_facts={"netsvc_host": facts})
    if p["inputs_digest"]:
        applied_state(module, p, services, units, shows, health, facts, result)
    lock_after(module, p, result, lock)
    if p["require_healthy"] and not healthy:
        module.fail_json(msg="unhealthy after %ss: %s" % (p["wait"], "; ".join(
            "%s: %s" % (r["name"], ", ".join(r["problems"])) for r in health if not r["healthy"])), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
