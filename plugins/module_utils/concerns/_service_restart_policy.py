# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service_restart_policy's units concern (crash-recovery drop-ins, native socket units, the
revive template: UnitsPlan), planned, written in one transaction, read back. This file checks
every entry, assigns it to a backend and hands on what is not the units': a service's preload
part to _preload_switch (PreloadsPlan), supervisord programs to _supervisord_program
(SupervisordPlan).

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). Rendering and parsing are _unit's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _preload_switch, _supervisord_program
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _command,
    _constants,
    _failure,
    _host_state,
    _plan,
    _preload,
    _probe,
    _selinux,
    _sockdiag,
    _systemd,
    _unit,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import (
    FileSet,
    UnsafePath,
    edited_since,
    read_text,
)

SHOW_PROPS = ["Restart", "RestartUSec", "StartLimitBurst", "StartLimitIntervalUSec", "StartLimitInterval",
              "KillMode", "TimeoutStopUSec", "LimitNOFILE", "OOMPolicy", "RestartSteps",
              "RestartMaxDelayUSec", "OnFailure", "DropInPaths", "FragmentPath", "LoadState",
              "ActiveState", "SubState", "MainPID", "NRestarts", "ExecStartPre", "FileDescriptorStoreMax",
              "NeedDaemonReload"]


class ServicePlan(_plan.Plan):
    """One systemd service's change, planned and validated (systemd_plan); nothing written yet.

    name                the unit (web.service)
    show                LoadState and FragmentPath as systemd reported them before the change
    files               the FileSet of its drop-in and native socket unit
    content             the drop-in's text ("" for state=absent)
    revive              the revive template's text, None without revive
    opts                the normalized options (_unit.normalize_options), None for state=absent
    present             state=present
    ports               its ports, sorted
    dropin_path         our drop-in's path
    socket_name         its socket unit's name
    socket_path         its socket unit's path
    socket_activation   socket_activation is native or preload
    socket_start        a native socket unit to enable --now after the commit
    socket_stop         our socket unit goes (state=absent)
    preload             a PreloadPlan (kind "none" when not preloaded)
    socket_was          what our socket unit is now: "native", "preload" or None (none of ours)
    rebind              our native socket unit goes while the service stays: it binds on its own again
    cycle               the service moves onto a (new or changed) socket unit: both stop before the
                        commit, the socket starts, then the service (socket_activation changed, or
                        the ports of a native socket unit)
    library_left        the preload library this service used before it left preload (None)
    effective_mismatch  fail or warn, as given
    switch_timeout      seconds a preload switch or undo may take, as given
    """

    __slots__ = ("name", "show", "files", "content", "revive", "opts", "present", "ports", "dropin_path",
                 "socket_name", "socket_path", "socket_activation", "socket_start", "socket_stop", "preload",
                 "effective_mismatch", "switch_timeout", "socket_was", "rebind", "cycle", "library_left")
    DEFAULTS = {"socket_was": None, "rebind": False, "cycle": False, "library_left": None}


def service_show(module, systemctl, name, p):
    """LoadState and FragmentPath; a service that must exist and does not is refused."""
    argv = [systemctl, "show", name, "-p", "LoadState", "-p", "FragmentPath"]
    _rc, out, _err = _command.run(module, argv, check=False)
    show = _unit.parse_show(out)
    if p["state"] == "present" and p["must_exist"] and show.get("LoadState") != "loaded":
        raise _failure.Failure("service %s does not exist on this host (LoadState=%s); install it first, or set "
                               "must_exist=false (in the roles: the service's restart: {must_exist: false})"
                               % (name, show.get("LoadState", "unknown")))
    return show


def socket_was(text):
    """Which socket unit of ours ``text`` (the unit's file now) is: "preload", "native" or None."""
    if _preload.HEADER in (text or ""):
        return "preload"
    if "netsvc.resilience" in (text or ""):
        return "native"
    return None


def plan_present(module, p, name, files, paths, version, warnings):
    """The drop-in, the revive template and the socket unit (native or preload) for state=present,
    from what the host has now: a socket unit of ours that the settings no longer ask for goes.
    Returns (content, revive, opts, a PreloadPlan)."""
    mode = p["socket_activation"]
    preload = _preload_switch.none(module)
    was = socket_was(read_text(paths["socket_path"]))
    if was == "preload" and mode == "none":
        preload = _preload_switch.plan_undo(module, p, paths)
    elif was == "native" and mode == "none":
        files.want(paths["socket_path"], None)
    if mode == "preload":
        preload, more = _preload_switch.plan(module, p, name, paths, was)
        warnings.extend(more)
        p = dict(p, extra_unit=preload.extra_unit, extra_service=preload.extra_service)
    opts = _unit.normalize_options(p)
    if mode == "native" and not p["accepts_inherited_fds"]:
        raise _failure.Failure("socket_activation for %s needs accepts_inherited_fds=true: the service must take "
                               "its listening socket from systemd (LISTEN_FDS, fd 3), or it will fail to "
                               "bind a port the socket unit holds" % name)
    if mode == "native" and not p["ports"]:
        raise _failure.Failure("socket_activation for %s needs ports" % name)
    content, more = _unit.render_dropin(opts, version)
    warnings.extend(more)
    files.want(paths["dropin_path"], content)
    revive = _unit.render_revive(opts["revive_delay"]) if opts.get("revive") else None
    if mode == "native":
        files.want(paths["socket_path"], _unit.render_socket(name, p["ports"], p["backlog"]))
    return content, revive, opts, preload


def plan_absent(module, p, files, paths, warnings):
    """state=absent: our drop-in and socket unit go; a preload service binds its ports itself
    again afterwards. A drop-in changed since the collection wrote it stays, named in
    ``warnings``. Returns a PreloadPlan (kind "undo" for a preloaded service: its socket unit
    goes with it)."""
    if edited_since(paths["dropin_path"]):
        warnings.append("%s was changed since the collection wrote it: left as it is (remove it yourself if it is "
                        "no longer wanted)" % paths["dropin_path"])
    else:
        files.want(paths["dropin_path"], None)
    was = socket_was(read_text(paths["socket_path"]))
    if was == "preload":
        return _preload_switch.plan_undo(module, p, paths)
    if was == "native":  # only a socket unit we wrote
        files.want(paths["socket_path"], None)
    return _preload_switch.none(module)


def native_socket_start(module, p, systemctl, name, socket_name, changed):
    """(start the native socket unit, move the service onto it): nothing to do while it is
    active and unchanged; a service that holds its ports itself (or through the socket unit it
    had) is stopped and started on the socket unit; ports held by any other process refuse."""
    _rc, sout, _err = _command.run(module, [systemctl, "show", socket_name, "-p", "ActiveState"], check=False)
    active = _unit.parse_show(sout).get("ActiveState") == "active"
    if active and not changed:
        return False, False
    try:
        listeners = _sockdiag.listeners(p["ports"])
    except _sockdiag.DiagError as e:
        raise _failure.Failure("cannot check whether ports %s are free (sock_diag): %s; nothing was written"
                               % (p["ports"], e))
    owners = _sockdiag.listener_owners([x["inode"] for x in listeners])

    def ours(o):
        return (o["pid"] == 1 and active) or _probe.in_unit_cgroup(o["pid"], name)

    foreign = [x for x in listeners if not any(ours(o) for o in owners.get(x["inode"], []))]
    if foreign:
        held = ", ".join("%s (pid %d)" % (o["command"][:60], o["pid"])
                         for x in foreign for o in owners.get(x["inode"], [])) or "unknown"
        raise _failure.Failure("port(s) %s are held by another process (%s), not by %s: socket activation for %s "
                               "cannot bind them; nothing was written"
                               % (sorted({x["port"] for x in foreign}), held, name, name))
    return True, bool(listeners) or active


def refuse_unbindable(module, systemctl, name, mode, ports):
    """Before anything is done: a socket unit whose ports SELinux would not let it bind (in the
    domain of the service's program) is refused, naming the domain and the fix."""
    def program():
        _rc, out, _err = _command.run(module, [systemctl, "show", name, "-p", "ExecStart"], check=False)
        return _preload.exec_path(_unit.parse_show(out).get("ExecStart"))

    why = _selinux.socket_unit_refusal(name, program, sorted(set(ports)))
    if why:
        raise _failure.Failure("socket_activation: %s for %s is refused, nothing was written: %s" % (mode, name, why))


def systemd_plan(module, p, warnings, systemctl, version):
    """One service's change, planned and validated: nothing is written here."""
    name = _unit.check_unit_name(p["name"])
    dropin = _unit.check_dropin_name(p["dropin_name"])
    show = service_show(module, systemctl, name, p)
    socket_name = _unit.socket_name(name)
    paths = dict(dropin_path=_unit.dropin_path(name, dropin), socket_name=socket_name,
                 socket_path=os.path.join(_unit.SYSTEMD_DIR, socket_name))
    files = FileSet(module)
    present = p["state"] == "present"
    mode = p["socket_activation"]
    content, revive, opts = "", None, None
    if present and mode in ("native", "preload"):
        refuse_unbindable(module, systemctl, name, mode, p["ports"])
    if present:
        content, revive, opts, preload = plan_present(module, p, name, files, paths, version, warnings)
    else:
        preload = plan_absent(module, p, files, paths, warnings)
    was = socket_was(read_text(paths["socket_path"]))
    socket_start, cycle = False, False
    if present and mode == "native":
        socket_start, cycle = native_socket_start(module, p, systemctl, name, socket_name,
                                                  paths["socket_path"] in files.paths)
    rebind = present and mode == "none" and was == "native"
    return ServicePlan(name=name, show=show, files=files, content=content, revive=revive, opts=opts,
                       effective_mismatch=p["effective_mismatch"], socket_start=socket_start,
                       socket_stop=(not present or rebind) and paths["socket_path"] in files.paths, present=present,
                       socket_activation=mode != "none", preload=preload, ports=sorted(set(p["ports"])),
                       switch_timeout=p["switch_timeout"], socket_was=was, rebind=rebind, cycle=cycle,
                       library_left=(_host_state.preload_library_path(p["preload_library"])
                                     if present and was == "preload" and mode == "native" else None),
                       **paths)


def referenced_elsewhere(plans, marker):
    """Does a drop-in other than the ones these plans write mention ``marker``, or a file
    supervisord reads (a held program preloads the library too)?"""
    return bool(_systemd.dropins_mentioning(marker, {pl.dropin_path for pl in plans})
                or _supervisord_program.mentioned(marker))


def plan_revive(module, plans):
    """Files shared by services: the revive template while any drop-in of ours references it,
    and the preload library, removed with the last service that used it."""
    revive_path = os.path.join(_unit.SYSTEMD_DIR, _unit.REVIVE_TEMPLATE)
    shared = FileSet(module)
    wanted = [pl.revive for pl in plans if pl.revive]
    if wanted:
        shared.want(revive_path, wanted[-1])  # one template per host: the last service's delay wins
    elif not referenced_elsewhere(plans, "netsvc-revive@") and read_text(revive_path) is not None:
        shared.want(revive_path, None)
    kept = [pl for pl in plans if pl.preload.kind == "present"]
    undone = {pl.preload.library for pl in plans if pl.preload.kind == "undo"} | {
        pl.library_left for pl in plans if pl.library_left}
    for library in sorted(undone):
        if not kept and os.path.exists(library) and not referenced_elsewhere(plans, _preload.LIBRARY_NAME):
            shared.want(library, None)
    return shared


class UnitsPlan(_plan.ConcernPlan):
    """The systemd services of a service_restart_policy call, planned (plan_units).

    services  a ServicePlan per service
    shared    the FileSet of what services share: the revive template, the preload library
    items     the ``services`` entry of each service (None: the module's own options), for the result
    """

    __slots__ = ("services", "shared", "items")
    DEFAULTS = {"items": None}
    result_key = _plan.UNITS

    def stage(self, module, tx):
        for pl in self.services:
            tx.add(pl.files, pl.name, pl.show.get("FragmentPath") if pl.present else None)
        tx.add(self.shared)

    @property
    def pending(self):
        return any(pl.socket_start or pl.cycle or pl.rebind for pl in self.services)

    def before_commit(self, module, systemd, tx):
        """Our native socket units that go are stopped first; a service that moves onto a new or
        changed socket unit, or off ours, stops with it (started again if the commit fails)."""
        for pl in self.services:
            if pl.rebind or pl.cycle:
                _command.run(module, [systemd.systemctl, "stop", pl.name, pl.socket_name], check=False)
                tx.restart_on_failure([pl.socket_name, pl.name] if pl.socket_was else [pl.name])
            if pl.socket_stop:
                _command.run(module, [systemd.systemctl, "disable", "--now", pl.socket_name], check=False)

    def after_commit(self, module, systemd, tx):
        """Native socket units start (a service moved onto one starts on it); a service whose
        socket unit went binds its ports itself again."""
        for pl in self.services:
            if pl.socket_start or (pl.cycle and pl.preload.kind == "present"):
                _command.run(module, [systemd.systemctl, "enable", "--now", pl.socket_name])
            if pl.cycle:
                _command.run(module, [systemd.systemctl, "start", pl.name])
            if pl.rebind:
                try:
                    _preload.restart_on_its_own(module, systemd, pl.name, pl.ports, pl.switch_timeout)
                except _unit.UnitError as e:
                    raise _failure.Failure("socket activation removed, but %s" % e)

    def finish(self, module, systemd):
        """[(entry, result)] per service."""
        return list(zip(self.items, systemd_results(module, systemd, self.services, self.shared)))


def plan_units(module, params, warnings, systemd):
    """The systemd services' checked parameters ``params`` planned, nothing written: (a
    UnitsPlan, a PreloadsPlan or None when no service is or was preloaded)."""
    services = [systemd_plan(module, p, warnings, systemd.systemctl, systemd.version) for p in params]
    preloaded = [pl for pl in services if pl.preload.kind != "none"]
    return (UnitsPlan(services=services, shared=plan_revive(module, services)),
            _preload_switch.PreloadsPlan(services=preloaded, warnings=warnings) if preloaded else None)


def systemd_results(module, systemd, plans, shared):
    shows = systemd.show([pl.name for pl in plans], SHOW_PROPS)
    results = []
    for i, pl in enumerate(plans):
        diff = pl.files.diff() + pl.preload.files.diff() + (shared.diff() if i == 0 else [])
        show = shows[pl.name]
        mismatches = []
        # in check mode (the audit) only an unchanged drop-in says what systemd uses now
        if pl.present and show.get("LoadState") == "loaded" and not (module.check_mode and pl.files.changed):
            wanted = _unit.policy_readback(pl.opts, pl.name, systemd.version)
            mismatches = _systemd.effective_mismatches(pl.name, wanted, show, pl.dropin_path)
        switching = pl.preload.to_switch
        changed = (pl.files.changed or pl.preload.files.changed or pl.socket_start or switching or pl.cycle
                   or pl.rebind or (i == 0 and shared.changed))
        results.append(dict(changed=changed,
                            path=pl.dropin_path, content=pl.content, backend="systemd",
                            systemd_version=systemd.version,
                            socket_path=pl.socket_path if pl.socket_activation else "",
                            diff=diff, effective=show, effective_mismatches=mismatches,
                            effective_mismatch=pl.effective_mismatch,
                            preload=pl.preload.report()))
    return results


SPEC = dict(
    name=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    backend=dict(type="str", default="auto", choices=["auto", "systemd", "supervisord"]),
    dropin_name=dict(type="str", default=_constants.POLICY_DROPIN),
    apply_defaults=dict(type="bool", default=True),
    restart=dict(type="str", choices=list(_unit.RESTART_VALUES)),
    restart_sec=dict(type="raw"),
    start_limit_interval=dict(type="raw"),
    start_limit_burst=dict(type="int"),
    restart_steps=dict(type="int"),
    restart_max_delay=dict(type="raw"),
    restart_mode=dict(type="str", choices=list(_unit.RESTART_MODES)),
    restart_prevent_exit_status=dict(type="list", elements="str"),
    success_exit_status=dict(type="list", elements="str"),
    kill_mode=dict(type="str", choices=list(_unit.KILL_MODES)),
    timeout_stop_sec=dict(type="raw"),
    limit_nofile=dict(type="str"),
    oom_policy=dict(type="str", choices=list(_unit.OOM_POLICIES)),
    exec_start_pre=dict(type="list", elements="str"),
    exec_stop_post=dict(type="list", elements="str"),
    watchdog_sec=dict(type="raw"),
    extra_unit=dict(type="dict"),
    extra_service=dict(type="dict"),
    revive=dict(type="bool"),
    revive_delay=dict(type="str", default="30s"),
    socket_activation=dict(type="raw", default=False),
    accepts_inherited_fds=dict(type="bool", default=False),
    ports=dict(type="list", elements="int", default=[]),
    backlog=dict(type="int", default=4096),
    fd_store_max=dict(type="int"),
    must_exist=dict(type="bool", default=True),
    command=dict(type="str"),
    startsecs=dict(type="int", default=1),
    startretries=dict(type="int", default=100),
    stopsignal=dict(type="str", choices=["TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2"]),
    stopwaitsecs=dict(type="int"),
    supervisor_dir=dict(type="path"),
    supervisor_conf=dict(type="path"),
    user=dict(type="str"),
    cleanup_hook=dict(type="path"),
    effective_mismatch=dict(type="str", default="fail", choices=["fail", "warn"]),
    preload_library=dict(type="path"),
    switch_timeout=dict(type="float", default=75),
    payload=dict(type="dict"),
)


def check_options(p):
    """What argument_spec cannot check, for one service's options; raises InputError/UnitError.

    Normalizes socket_activation to none | native | preload in place.
    """
    p["socket_activation"] = _preload.normalize_mode(p["socket_activation"])
    _validate.number(p["switch_timeout"], "switch_timeout", 1, 600, " seconds")
    _validate.ports(p["ports"], "ports", ranges=False)
    _validate.number(p["backlog"], "backlog", 1, 1048576)
    _validate.number(p["startsecs"], "startsecs", 0, 3600, " seconds")
    _validate.number(p["startretries"], "startretries", 0, 10000)
    if p["stopwaitsecs"] is not None:
        _validate.number(p["stopwaitsecs"], "stopwaitsecs", 0, 86400, " seconds")
    if p["supervisor_dir"]:
        _validate.abs_path(p["supervisor_dir"], "supervisor_dir")
    if p["supervisor_conf"]:
        _validate.abs_path(p["supervisor_conf"], "supervisor_conf")
    if p["command"] is not None:
        _validate.single_line(p["command"], "command (a supervisord program's single-line command)")
    if p["cleanup_hook"] and p["cleanup_hook"] != "auto":  # auto: resolve_hook
        _validate.abs_path(p["cleanup_hook"], "cleanup_hook", plain=True)
    if p["user"]:
        _unit.check_user_name(p["user"])
    # the revive unit runs `/bin/sleep DELAY`: what both systemd and sleep(1) understand
    if not re.match(r"^\d{1,6}(\.\d{1,3})?[smhd]?\Z", str(p["revive_delay"])):
        raise _validate.InputError("revive_delay %r must be a number with an optional s, m, h or d suffix (e.g. 30s)"
                                   % (p["revive_delay"],))


def service_params(module, p):
    """[(item or None, params)] - one entry per service, each validated as the module's options."""
    if p["services"] is None:
        try:
            check_options(p)
        except (_validate.InputError, _unit.UnitError) as e:
            raise _failure.Failure(str(e))
        return [(None, p)]
    out = []
    for i, item in enumerate(p["services"]):
        label = "services[%d]" % i
        if not isinstance(item, dict) or not item.get("name"):
            raise _failure.Failure("%s %r must be a dict with a name" % (label, item))
        label += " (%s)" % item["name"]
        top = {k: v for k, v in p.items() if k != "services" and v is not None}
        params = _validate.validated(module, label, item, SPEC, top)
        try:
            check_options(params)
        except (_validate.InputError, _unit.UnitError) as e:
            raise _failure.Failure("%s: %s" % (label, e))
        out.append((item, params))
    return out


def split_backends(module, params, service_mgr):
    """Every entry checked and assigned to systemd or supervisord before anything is written.
    Returns ([(item, p)] for systemd, [(item, p)] for supervisord)."""
    systemd, supervisord = [], []
    for item, p in service_params(module, params):
        backend = _unit.resolve_backend(p["backend"], service_mgr)
        if backend == "supervisord":
            why = _supervisord_program.refusal(p)
            if why:
                raise _failure.Failure(why)
        (systemd if backend == "systemd" else supervisord).append((item, p))
    return systemd, supervisord


def resolve_hook(entries, hook_path=None):
    """``cleanup_hook: auto`` of each entry's params made a path: ``hook_path`` when a harden
    call plans the hook itself (its path, or "" when it removes it), else the hook at its default
    path on this host when it is there ("" when not)."""
    for _item, p in entries:
        if p["cleanup_hook"] == "auto":
            if hook_path is None:
                default = _host_state.hook_dir_path(_constants.HOOK_NAME)
                hook_path = default if os.path.isfile(default) else ""
            p["cleanup_hook"] = hook_path


def plan(module, params, warnings, systemd, hook_path=None):
    """service_restart_policy's checked options ``params``: every entry checked, assigned to a
    backend, its ``cleanup_hook: auto`` resolved (resolve_hook), then planned. Returns the
    concerns' plans in the transaction's order: a UnitsPlan when there are systemd services, a
    PreloadsPlan when one is or was preloaded, a SupervisordPlan when there are supervisord
    programs. Nothing is written."""
    systemd_items, supervisord_items = split_backends(module, params, _unit.service_manager())
    resolve_hook(systemd_items + supervisord_items, hook_path)
    units = preloads = None
    if systemd_items:
        units, preloads = plan_units(module, [p for _item, p in systemd_items], warnings, systemd)
        units.items = [item for item, _p in systemd_items]
    return [pl for pl in (units, preloads, _supervisord_program.plan(module, supervisord_items)) if pl is not None]


def report(module, params, done, warnings):
    """The units' result from ``done`` ([(item, result)], systemd's then supervisord's): one
    service's result, or one per entry of ``services`` in ``results``. Returns (result, the
    effective mismatches that fail it)."""
    mismatches = [m for _item, r in done for m in r.get("effective_mismatches", [])]
    failing = [m for _item, r in done if r.get("effective_mismatch") == "fail" and not module.check_mode
               for m in r["effective_mismatches"]]
    warnings.extend(m for m in mismatches if m not in failing)
    if params["services"] is None:
        return done[0][1], failing
    results = [dict(r, item=item) for item, r in done]
    return dict(changed=any(r["changed"] for r in results), results=results,
                diff=[d for r in results for d in r["diff"]]), failing


def run(module):
    """service_restart_policy: returns (result, None or why systemd's read-back fails it)."""
    composed = [key for key in ("prestart", "kernel") if module.params.get(key) is not None]
    if composed:  # the action plugin hands such a call to harden: this is a call without it
        raise _failure.Failure("%s: deprecated here, and only the action plugin hands it to netsvc.resilience.harden "
                               "- call that module" % " and ".join(composed))
    warnings = []
    try:
        systemd = _systemd.Systemd(module)
        plans = plan(module, module.params, warnings, systemd)
        _keyed, done = _plan.results_by_key(plans, _plan.compose(module, systemd, plans))
    except (_unit.UnitError, UnsafePath) as e:
        raise _failure.Failure(str(e))
    result, failing = report(module, module.params, done, warnings)
    result["warning_messages"] = warnings
    if not failing:
        return result, None
    return result, "systemd does not use the restart policy as written: %s" % "; ".join(failing)
