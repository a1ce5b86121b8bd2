# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pre-flight and the post-check (netsvc.resilience.host_check): one look at the host, the
run lock, and the applied-state record.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). The pure parts are in _host_state.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import time

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _command,
    _constants,
    _failure,
    _files,
    _hook,
    _host_state,
    _preload,
    _probe,
    _reuse,
    _selinux,
    _sockdiag,
    _sysctl,
    _systemd,
    _unit,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import atomic_write, read_text


def host_facts(module, service_mgr):
    facts = _host_state.read_os_release()
    facts["service_mgr"] = service_mgr
    v = sys.version_info
    facts["python_version"] = "%d.%d.%d" % (v[0], v[1], v[2])
    facts["python"] = {"version": {"major": v[0], "minor": v[1], "micro": v[2]}, "executable": sys.executable}
    facts["supervisorctl"] = module.get_bin_path("supervisorctl") or ""
    facts["hook_dir"] = _hook.hook_dir(facts["os_family"])
    facts["kernel"] = os.uname()[2]
    facts["selinux"] = _selinux.mode()
    # a real try on our own loopback sockets: can this kernel destroy full / TIME_WAIT sockets?
    facts["sock_destroy"] = _sockdiag.probe_destroy()
    return facts


def root_record(path):
    """A file's text if root wrote it and only root could have: a regular file (not a symlink)
    owned by root, not writable by group or others, in a directory that is root's up to /.
    None otherwise (absent, or anything else wrote it)."""
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return None
    if (not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022
            or _sockdiag.unsafe_dir(os.path.dirname(path))):
        return None
    return read_text(path)


def hook_journal(module, unit, hook_path, invocation=None):
    """The hook's journal line of the unit's last start (``invocation``), parsed with its time;
    {} when none.

    Only an entry the hook itself wrote as root counts: _UID=0 and _EXE the hook (or, for the
    Python twin, _CMDLINE running it) - journald sets those from the sender, a service cannot.
    A line any process of the service logs with `logger -t netsvc-sockclean` is not one."""
    journalctl = module.get_bin_path("journalctl")
    if not journalctl:
        return {}
    argv = [journalctl, "-u", unit, "_UID=0", "SYSLOG_IDENTIFIER=" + _constants.HOOK_NAME, "-n", "20", "-o", "json",
            "--no-pager", "-q"]
    _rc, out, _err = _command.run(module, argv, check=False)
    return _host_state.trusted_hook_line(out.splitlines(), hook_path, invocation)


def observe(module, services, units, supervisorctl, ports, journal=False, hook_path=None):
    """One look: systemctl show for every unit, supervisorctl status, one LISTEN dump."""
    shows = {}
    if units:
        argv = [module.get_bin_path("systemctl", required=True), "show"] + units
        for prop in sorted(set(_host_state.UNIT_PROPS + _host_state.HEALTH_PROPS + _host_state.HOOK_PROPS)):
            argv += ["-p", prop]
        _rc, out, _err = _command.run(module, argv)
        blocks = _systemd.parse_show_many(out)
        if len(blocks) != len(units):
            raise _failure.Failure("systemctl show returned %d blocks for %d units" % (len(blocks), len(units)))
        shows = dict(zip(units, blocks))
    supervisor = {}
    if supervisorctl and any(s["backend"] == "supervisord" for s in services):
        _rc, out, _err = _command.run(module, [supervisorctl, "status"], check=False)
        supervisor = _host_state.parse_supervisor_status(out)
    listening = set()
    if ports:
        try:
            listening = set(_sockdiag.listening_ports(ports))
        except _sockdiag.DiagError as e:
            raise _failure.Failure("cannot list listening sockets (sock_diag): %s" % str(e))
    health = _host_state.service_health(services, shows, supervisor, listening)
    preload_served(module, services, health, shows)
    for row in health:
        status = root_record(os.path.join(_constants.HOOK_STATUS_DIR, row["unit"] + ".status"))
        show = shows.get(row["unit"], {}) if row["backend"] == "systemd" else {}
        lines = hook_journal(module, row["unit"], hook_path, show.get("InvocationID")) \
            if journal and row["backend"] == "systemd" and hook_path else None
        row["hook"] = _host_state.hook_report(show, status, _constants.HOOK_NAME, lines, time.time() - time.monotonic())
    if journal:  # the audit: why a running systemd service without the hook can do without it
        rows = {row["unit"]: row for row in health}
        for unit, (flag, reason) in _reuse.listener_reuse(without_hook(health)).items():
            rows[unit]["hook"]["reuse"] = {"flag": flag, "reason": reason}
    return shows, supervisor, health


def listeners_or_fail(module, ports):
    """The LISTEN sockets on ``ports`` (one sock_diag dump), or the task fails saying why."""
    try:
        return _sockdiag.listeners(ports)
    except _sockdiag.DiagError as e:
        raise _failure.Failure("cannot list listening sockets (sock_diag): %s" % str(e))


def accept_problem(listener, taken, owners, in_unit, unit):
    """Why a connection to ``listener`` was not served by ``unit`` (None when it was): nobody
    accepted it (``taken`` False), or a process outside the unit did. ``owners``: the processes
    holding the accepted socket, or - a server that answered and closed it at once - those that
    can accept from the listener (PID 1 only passes it on); ``in_unit(pid)``: is the pid in
    the unit's cgroup."""
    where = "%s port %d" % (listener["address"], listener["port"])
    if taken is None:
        return None  # not reachable from here (no loopback of its family): not probed
    if not taken:
        return ("a connection to %s was not accepted (it waits in the backlog of whoever holds the port, with "
                "nobody to accept it)" % where)
    if any(in_unit(o["pid"]) for o in owners):
        return None
    named = ", ".join("PID %d (%s)" % (o["pid"], o["command"][:60]) for o in owners) or "no process it can see"
    return "a connection to %s was accepted by %s, not by %s" % (where, named, unit)


def cgroup_reader(unit):
    """in_unit(pid): is the pid in ``unit``'s cgroup, read once per pid and kept (the serve check
    reads it while the probe's connection is open, and asks again after it closed)."""
    seen = {}

    def in_unit(pid):
        if pid not in seen:
            seen[pid] = _probe.in_unit_cgroup(pid, unit)
        return seen[pid]

    return in_unit


def served_by_the_service(module, health, timeout):
    """Active and listening is not enough: for every systemd service that looks healthy, one
    connection to each of its ports (loopback for a wildcard; nothing is sent) must be
    accepted by a process of the service itself - not left in PID 1's backlog by a socket unit
    whose service cannot start, nor taken by another program on the port."""
    rows = [r for r in health if r["healthy"] and r["backend"] == "systemd" and r["ports"]]
    if not rows:
        return
    listeners = listeners_or_fail(module, sorted({x for r in rows for x in r["ports"]}))
    for row in rows:
        for port in row["ports"]:
            first = sorted((x for x in listeners if x["port"] == port), key=lambda x: x["family"])[:1]
            for listener in first:
                in_unit = cgroup_reader(row["unit"])
                try:
                    taken, owners, error = _sockdiag.accept_probe(listener, timeout, check=in_unit)
                except _sockdiag.DiagError as e:
                    taken, owners, error = False, None, str(e)
                if owners is None:  # answered and closed at once: who can accept from the listener
                    owners = [o for o in _sockdiag.listener_owners([listener["inode"]])[listener["inode"]]
                              if o["pid"] != 1]
                why = error or accept_problem(listener, taken, owners, in_unit, row["unit"])
                if why:
                    row["healthy"] = False
                    row["problems"].append(why)


def preload_served(module, services, health, shows):
    """A preload service must be served from its socket unit: a listener of its own on its ports
    (it now asks for another address or option, which the library leaves to the kernel) makes
    it unhealthy, and that is drift the next run mirrors again."""
    preload = {s["name"] for s in services if s.get("mode") == "preload"}
    rows = [r for r in health if r["name"] in preload and r["exists"]]
    if not rows:
        return
    listeners = listeners_or_fail(module, sorted({p for r in rows for p in r["ports"]}))
    owners = _sockdiag.listener_owners([x["inode"] for x in listeners])
    for row in rows:
        mine = [x for x in listeners if x["port"] in row["ports"]]
        why = _preload.not_served(mine, owners, lambda pid, unit=row["unit"]: _probe.in_unit_cgroup(pid, unit),
                                  shows.get(row["unit"], {}).get("ActiveState"))
        if why:
            row["healthy"] = False
            row["problems"].append("%s is not served from its socket unit: %s" % (row["unit"], why))


def without_hook(health, names=None):
    """{unit: ports} of the running systemd services with ports and no hook in their unit
    (``names``: only these services)."""
    return {row["unit"]: row["ports"] for row in health if row["backend"] == "systemd" and row["ports"]
            and not row["socket_activation"] and not row["hook"]["installed"] and row["active"]
            and (names is None or row["name"] in names)}


def hooks_moved(health, shows):
    """Drift: a running service's listeners moved to other addresses than its hook cleans."""
    hooked = {}
    for row in health:
        if row["backend"] == "systemd" and row["active"] and row["ports"] and not row["socket_activation"]:
            cleans = _host_state.hook_cleans(shows.get(row["unit"], {}), _constants.HOOK_NAME)
            if cleans is not None:
                hooked[row["unit"]] = cleans
    if not hooked:
        return []
    ports = {row["unit"]: row["ports"] for row in health if row["unit"] in hooked}
    live = {unit: (_reuse.stable_targets(hooked.get(unit), targets), why)
            for unit, (targets, why) in _reuse.unit_hook_targets(ports).items()}
    return _host_state.moved_listeners(hooked, live)


def lost_reuse(reuse):
    """Drift reasons from _reuse's {unit: (flag, reason)}: cleanup auto left a unit without the
    hook because its listeners had SO_REUSEADDR, and now one does not (a new server version)."""
    return ["%s: cleanup auto left out the hook, but now %s" % (unit, why)
            for unit, (flag, why) in sorted(reuse.items()) if flag is False]


SPEC = dict(
    services=dict(type="list", elements="dict", default=[]),
    wait=dict(type="float", default=0),
    require_healthy=dict(type="bool", default=False),
    inputs_digest=dict(type="str", no_log=False),
    record=dict(type="bool", default=False),
    sysctl_files=dict(type="list", elements="path", default=[_constants.SYSCTL_FILE]),
    hook_dir=dict(type="str"),
    state_file=dict(type="path", default=_constants.APPLIED_STATE_FILE),
    hook_journal=dict(type="bool", default=False),
    serve_check=dict(type="bool", default=False),
    lock=dict(type="str", default="none", choices=["none", "acquire", "release"]),
    run_id=dict(type="str"),
    lock_holder=dict(type="str", default=""),
    lock_wait=dict(type="float", default=900),
    lock_lease=dict(type="float", default=600),
    lock_file=dict(type="path", default=_constants.RUN_LOCK),
    supported=dict(type="dict"),
)


def check_input(module, p, service_mgr):
    """Every option checked before anything is looked at; returns the services."""
    try:
        _validate.number(p["wait"], "wait", 0, 600, " seconds")
        _validate.number(p["lock_wait"], "lock_wait", 0, 7200, " seconds")
        _validate.number(p["lock_lease"], "lock_lease", 5, 86400, " seconds")
        for key in ("state_file", "lock_file"):
            _validate.abs_path(p[key], key)
        for path in p["sysctl_files"]:
            _validate.abs_path(path, "sysctl_files entry")
        if p["hook_dir"] not in (None, "auto"):
            _validate.abs_path(p["hook_dir"], "hook_dir")
        for key in ("inputs_digest", "run_id", "lock_holder"):
            if p[key] is not None:
                _validate.single_line(p[key], key, 256)
        if p["lock"] != "none" and not p["run_id"]:
            raise _validate.InputError("lock=%s needs run_id (this run's id)" % p["lock"])
        for family, minimum in sorted((p["supported"] or {}).items()):
            _validate.number(int(minimum) if isinstance(minimum, str) and minimum.isdigit() else minimum,
                             "supported[%s]" % family, 1, 1000)
        return _host_state.check_services(p["services"], service_mgr)
    except ValueError as e:
        raise _failure.Failure(str(e))


def units_of(services):
    units = []
    for svc in services:
        if svc["backend"] == "systemd":
            units.append(_unit.unit_name(svc["name"]))
            if svc["socket_activation"]:
                units.append(_unit.socket_name(svc["name"]))
    return units


def look_until_healthy(module, p, services, units, facts):
    ports = sorted({x for s in services for x in s["ports"]})
    deadline = time.monotonic() + p["wait"]
    while True:
        hook_dir = facts["hook_dir"] if p["hook_dir"] in (None, "auto") else p["hook_dir"]
        hook_path = os.path.join(hook_dir, _constants.HOOK_NAME)
        shows, _sup, health = observe(module, services, units, facts["supervisorctl"], ports, p["hook_journal"],
                                      hook_path)
        if p["serve_check"]:
            served_by_the_service(module, health, min(2.0, max(0.2, deadline - time.monotonic())))
        healthy = all(row["healthy"] for row in health)
        if healthy or time.monotonic() >= deadline:
            return shows, health, healthy
        time.sleep(0.1)


def unlisted(module, services, hardened):
    """Of ``hardened`` (the systemd services the collection's ledger has files for), those this
    run does not list: left as they are (another play may list them), each named in a warning
    with how to undo it."""
    listed = {s["name"] for s in services}
    names = [u for u in hardened if u not in listed]
    for name in names:
        module.warn("%s was hardened by an earlier run (the collection's ledger has its files) but is not in "
                    "netsvc_services: this run leaves it as it is. To undo it: list it again with the settings it "
                    "should have; or roll the host back (playbooks/rollback.yml); or, for it alone, run "
                    "netsvc.resilience.service_restart_policy with name=%s state=absent and "
                    "netsvc.resilience.prestart_hook with services=[{name: %s, ports: [its ports], cleanup: false}]"
                    % (name, name, name))
    return names


def applied_state(module, p, services, units, shows, health, facts, result):
    """Compare the host with its applied-state record; with record=true, store it."""
    hook_directory = facts["hook_dir"] if p["hook_dir"] == "auto" else p["hook_dir"]
    sysctl_keys = []
    for path in p["sysctl_files"]:
        sysctl_keys.extend(k for k in _host_state.sysctl_keys(read_text(path)) if k not in sysctl_keys)
    snapshot = {
        "files": _host_state.snapshot_paths(
            _host_state.watch_paths(services, p["sysctl_files"], hook_directory, p["state_file"])),
        "sysctl": _sysctl.read_live(sysctl_keys),
        "units": _host_state.unit_state(shows, units),
    }
    text = read_text(p["state_file"])
    try:
        record = json.loads(text) if text else None
    except ValueError:
        record = None
    reasons = _host_state.drift(record, p["inputs_digest"], snapshot)
    # what root runs or reads must stay root's: every file the collection wrote (its ledger)
    led = _files.load_ledger()
    reasons += _host_state.ownership_drift(led["files"], _files.unsafe_path)
    reasons += ["%s: a directory the collection created, %s" % (d, why) for d, why in _files.own_dirs_drift(led)]
    if not reasons and not p["record"]:  # would be converged: is each auto decision still true?
        auto = {s["name"] for s in services if s["cleanup"] == "auto"}
        reasons = lost_reuse(_reuse.listener_reuse(without_hook(health, auto)))
        # and does each hook still clean what its service listens on?
        reasons += hooks_moved(health, shows)
    if os.path.exists(p["state_file"] + ".unverified"):
        reasons.insert(0, "the last run stopped before its post-check (killed or failed): every concern runs again")
    if not result["healthy"]:
        reasons.append("not every service is healthy: %s" % "; ".join(
            problem for row in health for problem in row["problems"]))
    result["drift"] = reasons[:20]
    result["converged"] = not reasons
    if not p["record"]:
        return
    if not result["healthy"]:
        raise _failure.Failure("not recording the applied state: %s" % "; ".join(
            "%s: %s" % (r["name"], ", ".join(r["problems"])) for r in health if not r["healthy"]), **result)
    new = json.dumps({"version": _host_state.RECORD_VERSION, "inputs": p["inputs_digest"], "snapshot": snapshot},
                     sort_keys=True, indent=1) + "\n"
    if new != text:
        result["changed"] = True
        if not module.check_mode:
            try:
                atomic_write(module, p["state_file"], new, 0o600)
            except (IOError, OSError) as e:
                raise _failure.Failure("writing %s failed: %s" % (p["state_file"], str(e)))
    if not module.check_mode and os.path.exists(p["state_file"] + ".unverified"):
        os.unlink(p["state_file"] + ".unverified")
    result.update(recorded=not module.check_mode, converged=True, drift=[])


def lock_before(module, p):
    """lock=acquire: one run at a time on this host (waits; a killed run's lease expires)."""
    if p["lock"] != "acquire" or module.check_mode:
        return None
    info = _host_state.take_lock(module, p["lock_file"], p["run_id"], p["lock_holder"] or "unknown", p["lock_wait"],
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
            result["lock"]["released"] = _host_state.release_lock(p["lock_file"], p["run_id"])
        elif p["inputs_digest"] and os.path.exists(p["state_file"]):
            os.rename(p["state_file"], p["state_file"] + ".unverified")
    if p["lock"] == "release":
        result["lock"] = {"released": _host_state.release_lock(p["lock_file"], p["run_id"])}


def run(module):
    """host_check: the pre-flight or post-check. Returns (result, why unhealthy or None)."""
    p = module.params
    service_mgr = _unit.service_manager()
    services = check_input(module, p, service_mgr)
    facts = host_facts(module, service_mgr)
    lock = lock_before(module, p)
    units = units_of(services)
    shows, health, healthy = look_until_healthy(module, p, services, units, facts)
    result = dict(changed=False, services=health, healthy=healthy, converged=False, drift=[], recorded=False,
                  ansible_facts={"netsvc_host": facts})
    if p["supported"] is not None:
        refused = _host_state.refusals(facts, p["supported"], services, health,
                                       {s["name"] for s in p["services"] if isinstance(s, dict) and s.get("command")})
        if refused:
            if lock is not None:
                _host_state.release_lock(p["lock_file"], p["run_id"])
            raise _failure.Failure("this host cannot be hardened: %s" % "; ".join(refused), **result)
    result["hardened"] = _unit.services_of_paths(_files.load_ledger()["files"])
    if p["supported"] is not None:  # the pre-flight: what an earlier run hardened, no longer listed
        result["unlisted"] = unlisted(module, services, result["hardened"])
    if p["inputs_digest"]:
        applied_state(module, p, services, units, shows, health, facts, result)
    lock_after(module, p, result, lock)
    if p["require_healthy"] and not healthy:
        return result, "unhealthy after %ss: %s" % (p["wait"], "; ".join(
            "%s: %s" % (r["name"], ", ".join(r["problems"])) for r in health if not r["healthy"]))
    return result, None
