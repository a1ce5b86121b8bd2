#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: service_restart_policy
short_description: Crash-recovery drop-ins for systemd services (or supervisord programs)
version_added: 0.1.0
description:
  - Writes a drop-in C(/etc/systemd/system/<unit>.d/<dropin_name>.conf) with a restart policy
    for a service, never the vendor's unit file.
  - Directives are rendered for the host's systemd version. C(StartLimitInterval=) and
    C(StartLimitBurst=) go in C([Service]) before 230 and C(StartLimitIntervalSec=) in
    C([Unit]) from 230. C(RestartSteps=), C(RestartMaxDelaySec=) and C(RestartMode=) are
    rendered only from 254, C(OOMPolicy=) only from 243; older hosts get a warning.
  - The result is checked with C(systemd-analyze verify) before it takes effect; its exit code
    is 0 on "Unknown key" warnings, so the output is read. Any line about our drop-in restores
    the previous drop-in (or none) and fails with systemd's message.
    C(daemon-reload) runs only when something changed.
  - After the reload the effective values are read back with C(systemctl show), returned, and
    compared with what was asked (see O(effective_mismatch)).
  - "Defaults are measured, not the tutorial's. C(Restart=on-failure) and C(RestartSec=0): the
    first restart within 3 ms, 46 ms to serving for a Python server; C(RestartSec=100ms)
    lands on systemd's 250 ms timer grid (100-350 ms). Start limit 20 starts in 10 s: a crash
    storm of 10+ kills stays inside it, while systemd's default 5 in 10 s is exhausted in
    under a second. With O(revive), a unit that still hits the limit (a permanent failure)
    is started again every O(revive_delay) by C(OnFailure=netsvc-revive@%n.service): a
    permanent failure costs a burst of starts every 30 s, a transient one is never fatal."
  - Optional socket activation (O(socket_activation)) writes C(<unit>.socket) (C(ListenStream=)
    per port, C(Accept=no), C(Backlog=)), enables and starts it. The listening socket then
    survives every crash and connections wait in the backlog instead of being refused.
  - With O(backend=supervisord), or O(backend=auto) on a host without systemd, writes a
    supervisord program file instead (C(/etc/supervisord.d/*.ini) on EL,
    C(/etc/supervisor/conf.d/*.conf) on Debian) and runs C(reread)/C(update) for that program
    only when its file changed.
author:
  - netsvc.resilience maintainers (@netsvc)
extends_documentation_fragment:
  - netsvc.resilience.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - The systemd service (C(.service) is added when missing) or supervisord program name.
      - Validated against systemd's unit-name rules; path separators, C(..), control
        characters and a leading C(-) or C(.) are refused.
      - Required unless O(services) is given.
    type: str
  services:
    description:
      - Several services in one call. Each entry is a dict of this module's options (C(name)
        required), which override the options given at the top level for that service. An
        unknown key fails the call, naming it.
      - Every systemd service's files are planned and validated first, then written. One
        C(systemd-analyze verify) checks them all, and a problem puts every file back. One
        C(daemon-reload) follows, and then each service's effective values are read. A
        supervisord program is applied after them, with C(reread) and C(update) for that
        program only.
      - The result then has RV(results), one entry per service, shaped like a loop's
        results (C(item), C(changed) and the keys below).
    type: list
    elements: dict
  state:
    description: C(absent) removes exactly what this module wrote for the service and reloads.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description: C(auto) uses systemd when it is PID 1, else supervisord.
    type: str
    choices: [auto, systemd, supervisord]
    default: auto
  dropin_name:
    description: File name (without C(.conf)) of the drop-in in C(<unit>.d/).
    type: str
    default: 50-netsvc-resilience
  apply_defaults:
    description:
      - Fill unset restart options with the measured defaults (see description).
      - Set to false for a drop-in that carries only the directives given (e.g. a hook).
    type: bool
    default: true
  restart:
    description: C(Restart=). Default C(on-failure).
    type: str
    choices: ["no", always, on-success, on-failure, on-abnormal, on-abort, on-watchdog]
  restart_sec:
    description: C(RestartSec=) as a systemd time span or seconds. Default C(0).
    type: raw
  start_limit_interval:
    description: C(StartLimitIntervalSec=) (C(StartLimitInterval=) before systemd 230). Default C(10s).
    type: raw
  start_limit_burst:
    description: C(StartLimitBurst=). Default 20.
    type: int
  restart_steps:
    description: C(RestartSteps=) (systemd >= 254) for exponential back-off.
    type: int
  restart_max_delay:
    description: C(RestartMaxDelaySec=) (systemd >= 254).
    type: raw
  restart_mode:
    description: C(RestartMode=) (systemd >= 254).
    type: str
    choices: [normal, direct]
  restart_prevent_exit_status:
    description: C(RestartPreventExitStatus=) exit codes or signal names.
    type: list
    elements: str
  success_exit_status:
    description: C(SuccessExitStatus=) exit codes or signal names.
    type: list
    elements: str
  kill_mode:
    description: C(KillMode=). V(process) and V(none) warn (children keep the port).
    type: str
    choices: [control-group, mixed, process, none]
  timeout_stop_sec:
    description: C(TimeoutStopSec=).
    type: raw
  limit_nofile:
    description: C(LimitNOFILE=) (N, SOFT:HARD or infinity).
    type: str
  oom_policy:
    description: C(OOMPolicy=) (systemd >= 243).
    type: str
    choices: [continue, stop, kill]
  exec_start_pre:
    description: C(ExecStartPre=) command lines (absolute path; C(-) prefix ignores failure).
    type: list
    elements: str
  exec_stop_post:
    description: C(ExecStopPost=) command lines.
    type: list
    elements: str
  watchdog_sec:
    description: C(WatchdogSec=).
    type: raw
  extra_unit:
    description:
      - Escape hatch for other C([Unit]) directives (name to value or list of values).
      - Names are checked; directives with their own option here are refused; values must be one line.
    type: dict
  extra_service:
    description: Escape hatch for other C([Service]) directives, checked like O(extra_unit).
    type: dict
  revive:
    description:
      - Add C(OnFailure=netsvc-revive@%n.service), which starts the service again
        O(revive_delay) after systemd gave up because of the start limit. Default true.
    type: bool
  revive_delay:
    description: How long the revive unit waits (one value per host, shared by all services).
    type: str
    default: 30s
  socket_activation:
    description:
      - C(false)/C(none) - no socket unit.
      - C(native) (C(true) is an alias) - write and start C(<unit>.socket) listening on O(ports)
        and wire the service to it. Only for a service that takes inherited sockets
        (C(LISTEN_FDS), fd 3); set O(accepts_inherited_fds) to confirm. Refused while another
        process listens on a port.
      - "C(preload) - for a server never written for socket activation (nginx, socat, most
        in-house servers). The service must be running: C(<unit>.socket) mirrors the sockets it
        listens on now (family, address, port; C(BindIPv6Only=ipv6-only) where it binds IPv4 and
        IPv6 separately). The drop-in adds C(LD_PRELOAD) (appended to the unit's own, never
        replacing it) with the collection's library, which puts PID 1's socket in place of the
        server's bind(). Then the service is moved over - stop, bind the socket unit (again
        while TIME_WAIT sockets of a server without SO_REUSEADDR block it, at most
        O(switch_timeout)), start - and verified: every listener must be PID 1's socket, held
        by the service too. Any failure restores every file and restarts the service as before.
        After that the listening socket outlives every crash, on every kernel."
      - C(preload) is refused, writing nothing, for a statically linked or Go executable, a
        setuid/setgid one, an ExecStart that cannot be resolved, a port held by another
        process, or a service that is not listening.
      - With O(state=absent) the socket unit and the library go, and the service is started
        again binding its ports itself (again while TIME_WAIT blocks it, at most O(switch_timeout)).
    type: raw
    default: false
  accepts_inherited_fds:
    description: Confirms the service takes its listening socket from systemd (sd_listen_fds).
    type: bool
    default: false
  ports:
    description:
      - Ports for O(socket_activation), and the ports the supervisord O(cleanup_hook) cleans.
    type: list
    elements: int
    default: []
  backlog:
    description: C(Backlog=) of the socket unit.
    type: int
    default: 4096
  fd_store_max:
    description: C(FileDescriptorStoreMax=) on the service, to hand back live connections.
    type: int
  must_exist:
    description: Fail when the unit or program does not exist (with O(state=present)).
    type: bool
    default: true
  command:
    description: supervisord only, the program's command line.
    type: str
  startsecs:
    description: supervisord only, C(startsecs=).
    type: int
    default: 1
  startretries:
    description: supervisord only, C(startretries=) (each retry waits 1 s longer).
    type: int
    default: 100
  stopsignal:
    description: supervisord only, C(stopsignal=).
    type: str
    default: TERM
  stopwaitsecs:
    description: supervisord only, C(stopwaitsecs=).
    type: int
  supervisor_dir:
    description: supervisord only, override the include directory (default per OS family).
    type: path
  user:
    description:
      - supervisord only, the user the program runs as. Default - the C(user=) of the program
        file this module replaces, if any (hardening never turns a program into root).
      - Without O(cleanup_hook) it is rendered as C(user=). With it, the hook runs as root,
        cleans the ports and then switches to this user (its uid, gid and groups, resolved on
        the host) before starting the command - supervisord's C(user=) would leave the hook
        without CAP_NET_ADMIN.
    type: str
  cleanup_hook:
    description:
      - supervisord only, the pre-start cleanup hook (as installed by C(prestart_hook)). The
        program's command becomes C(HOOK --unit NAME [--user UID:GID:GROUPS] PORT... --
        COMMAND) when O(ports) are given.
    type: path
  preload_library:
    description:
      - Where the preload library goes. Default C(<hook directory>/libnetsvc-preload.so)
        (C(/usr/libexec/netsvc-resilience) on EL, C(/usr/lib/netsvc-resilience) on Debian/Ubuntu).
    type: path
  switch_timeout:
    description:
      - Seconds a switch to or from O(socket_activation=preload) may wait for a port to become
        bindable (TIME_WAIT sockets of a server without SO_REUSEADDR last ~60 s on kernels that
        cannot destroy them).
    type: float
    default: 75
  payload:
    description: Set by the action plugin (the preload library's builds); do not set it yourself.
    type: dict
  effective_mismatch:
    description:
      - After the reload, C(Restart), C(RestartUSec), the start limit and C(OnFailure) that
        systemd really uses are compared with what was asked. A difference (a foreign drop-in
        that sorts after ours, in C(/etc) or C(/run)) fails the call by default, naming the
        directive and the file that wins; C(warn) turns it into a warning.
    type: str
    choices: [fail, warn]
    default: fail
notes:
  - Facts behind the defaults and warnings are in docs/linux-facts.md of this collection.
"""

EXAMPLES = r"""
- name: Harden a service with the measured defaults
  netsvc.resilience.service_restart_policy:
    name: myapp.service

- name: Socket activation for a service that accepts LISTEN_FDS
  netsvc.resilience.service_restart_policy:
    name: myapp
    socket_activation: true
    accepts_inherited_fds: true
    ports: [8080]

- name: Two services in one call, one daemon-reload
  netsvc.resilience.service_restart_policy:
    restart_sec: 0
    services:
      - name: web.service
      - name: worker.service
        start_limit_burst: 50

- name: A server never written for socket activation (nginx) - its socket outlives every crash
  netsvc.resilience.service_restart_policy:
    name: nginx.service
    socket_activation: preload
    ports: [80]

- name: A supervisord program
  netsvc.resilience.service_restart_policy:
    name: myapp
    backend: supervisord
    command: /usr/bin/myapp --port 8080
"""

RETURN = r"""
path:
  description: The drop-in (systemd) or program file (supervisord) written.
  returned: always
  type: str
content:
  description: Rendered content of that file (empty when absent).
  returned: always
  type: str
backend:
  description: systemd or supervisord.
  returned: always
  type: str
systemd_version:
  description: The host's systemd version (0 for supervisord).
  returned: always
  type: int
effective:
  description:
    - Values systemd really uses after the reload (C(systemctl show)), for example
      C(Restart), C(RestartUSec), C(StartLimitBurst), C(StartLimitIntervalUSec), C(KillMode),
      C(OnFailure), C(DropInPaths); for supervisord the C(supervisorctl status) line.
  returned: always
  type: dict
socket_path:
  description: The socket unit written, if any.
  returned: always
  type: str
warning_messages:
  description: Warnings of this run (each also raised as an Ansible warning).
  returned: always
  type: list
  elements: str
preload:
  description:
    - With O(socket_activation=preload) - C(streams) (the mirrored C(ListenStream=) values),
      C(bind_v6only), C(switched) (true when the ports already were PID 1's sockets), C(switch)
      (C(gap_ms) - connections refused only during this gap - and C(bind_attempts)),
      C(listeners_after) (inode and PIDs of each listener), C(library); after removal,
      C(restarted_after_s).
  returned: for systemd services
  type: dict
effective_mismatches:
  description: Differences between what was asked and what systemd uses, each naming the file that wins.
  returned: for systemd services
  type: list
  elements: str
results:
  description: With O(services), one result per service (C(item) is the entry as given).
  returned: when O(services) is given
  type: list
  elements: dict
"""

import glob
import os
import pwd
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.netsvc.resilience.plugins.module_utils import _hook as K
from ansible_collections.netsvc.resilience.plugins.module_utils import _hostcheck as H
from ansible_collections.netsvc.resilience.plugins.module_utils import _preload as PL
from ansible_collections.netsvc.resilience.plugins.module_utils import _prestart as PS
from ansible_collections.netsvc.resilience.plugins.module_utils import _probe as P
from ansible_collections.netsvc.resilience.plugins.module_utils import _sockdiag as D
from ansible_collections.netsvc.resilience.plugins.module_utils import _systemd as SD
from ansible_collections.netsvc.resilience.plugins.module_utils import _unit as U
from ansible_collections.netsvc.resilience.plugins.module_utils import _validate as V
from ansible_collections.netsvc.resilience.plugins.module_utils._files import FileSet, read_text

SHOW_PROPS = ["Restart", "RestartUSec", "StartLimitBurst", "StartLimitIntervalUSec", "StartLimitInterval",
              "KillMode", "TimeoutStopUSec", "LimitNOFILE", "OOMPolicy", "RestartSteps",
              "RestartMaxDelayUSec", "OnFailure", "DropInPaths", "FragmentPath", "LoadState",
              "ActiveState", "SubState", "MainPID", "NRestarts", "ExecStartPre", "FileDescriptorStoreMax",
              "NeedDaemonReload"]


def systemd_plan(module, p, warnings, systemctl, version):
    """One service's change, planned and validated: nothing is written here."""
    name = U.check_unit_name(p["name"])
    dropin = U.check_dropin_name(p["dropin_name"])
    _rc, out, _err = U.run(module, [systemctl, "show", name, "-p", "LoadState", "-p", "FragmentPath"], check=False)
    show = U.parse_show(out)
    if p["state"] == "present" and p["must_exist"] and show.get("LoadState") != "loaded":
        module.fail_json(msg="service %s does not exist on this host (LoadState=%s); install it first or set "
                             "must_exist=false" % (name, show.get("LoadState", "unknown")))

    dropin_path = U.dropin_path(name, dropin)
    socket_name = U.socket_name(name)
    socket_path = os.path.join(U.SYSTEMD_DIR, socket_name)
    files = FileSet(module)
    content = ""
    revive = opts = None

    mode = p["socket_activation"]
    preload = None
    if p["state"] == "present" and mode == "preload":
        preload = plan_preload(module, p, name, socket_name)
        p = dict(p, extra_unit=preload["extra_unit"], extra_service=preload["extra_service"])
    if p["state"] == "present":
        opts = U.normalize_options(p)
        if mode == "native":
            if not p["accepts_inherited_fds"]:
                module.fail_json(msg="socket_activation for %s needs accepts_inherited_fds=true: the service must take "
                                     "its listening socket from systemd (LISTEN_FDS, fd 3), or it will fail to "
                                     "bind a port the socket unit holds" % name)
            if not p["ports"]:
                module.fail_json(msg="socket_activation for %s needs ports" % name)
        content, more = U.render_dropin(opts, version)
        warnings.extend(more)
        files.want(dropin_path, content)
        if opts.get("revive"):
            revive = U.render_revive(opts["revive_delay"])
        if mode == "native":
            files.want(socket_path, U.render_socket(name, p["ports"], p["backlog"]))
        if preload:
            files.want(socket_path, preload["socket_text"])
            files.want(preload["library"], preload["library_content"])
    else:
        files.want(dropin_path, None)
        current = read_text(socket_path) or ""
        if "netsvc.resilience" in current:  # only a socket unit we wrote
            files.want(socket_path, None)
        if PL.HEADER in current:  # the service binds its ports itself again afterwards
            preload = {"undo": True, "library": p["preload_library"] or os.path.join(
                K.hook_dir(H.read_os_release()["os_family"]), PL.LIBRARY_NAME)}

    socket_start = False
    if p["state"] == "present" and mode == "native":
        _rc, sout, _err = U.run(module, [systemctl, "show", socket_name, "-p", "ActiveState"], check=False)
        if U.parse_show(sout).get("ActiveState") != "active":
            try:
                held = D.listening_ports(p["ports"])
            except D.DiagError as e:
                module.fail_json(msg="cannot check whether ports %s are free (sock_diag): %s; nothing was "
                                     "written" % (p["ports"], to_native(e)))
            if held:
                module.fail_json(
                    msg="port(s) %s are held by a running process (probably %s itself). To switch %s to "
                        "socket activation: stop it (systemctl stop %s), re-run this task (it starts "
                        "%s), and the first connection starts the service with the inherited socket"
                        % (held, name, name, name, socket_name))
            socket_start = True
    return dict(name=name, show=show, files=files, content=content, revive=revive, dropin_path=dropin_path,
                opts=opts, effective_mismatch=p["effective_mismatch"],
                socket_name=socket_name, socket_path=socket_path, socket_start=socket_start,
                socket_stop=p["state"] == "absent" and socket_path in files.paths,
                present=p["state"] == "present", socket_activation=mode != "none", preload=preload,
                ports=sorted(set(p["ports"])), switch_timeout=p["switch_timeout"])


def plan_preload(module, p, name, socket_name):
    """socket_activation: preload for one service: checked, mirrored, rendered - nothing written."""
    def in_unit(pid):
        return P.in_unit_cgroup(pid, name)

    info = PL.observe(SD.Systemd(module), name, sorted(set(p["ports"])), in_unit)
    library = p["preload_library"] or os.path.join(K.hook_dir(H.read_os_release()["os_family"]), PL.LIBRARY_NAME)
    V.abs_path(library, "preload_library", plain=True)
    builds = PS.decode_payload(p["payload"] or {})["native"]
    arch = K.NATIVE_ARCHES.get(os.uname()[4])
    if not builds.get(arch):
        raise U.UnitError("socket_activation: preload for %s: no build of the preload library for %s (x86_64 and "
                          "aarch64 are shipped); nothing was written" % (name, os.uname()[4]))
    hook = "-%s --unit %%n %s" % (p["cleanup_hook"], " ".join(str(x) for x in sorted(set(p["ports"])))) \
        if p["cleanup_hook"] else None
    preload_value = PL.ld_preload(info["environment"], library)
    extra_unit, extra_service = PL.service_directives(socket_name, preload_value, p["backlog"])
    merged_unit = dict(p["extra_unit"] or {})
    merged_unit.update(extra_unit)
    merged_service = dict(p["extra_service"] or {})
    merged_service.update(extra_service)
    return dict(info, library=library, library_content=builds[arch], extra_unit=merged_unit,
                extra_service=merged_service, socket_text=PL.render_socket(name, info["streams"], info["bind_v6only"],
                                                                           p["backlog"], hook))


def referenced_elsewhere(plans, marker):
    """Does a drop-in other than the ones these plans write mention ``marker``?"""
    ours = {pl["dropin_path"] for pl in plans}
    return any(f not in ours and marker in (read_text(f) or "")
               for f in glob.glob(os.path.join(U.SYSTEMD_DIR, "*.service.d", "*.conf")))


def plan_revive(module, plans):
    """Files shared by services: the revive template while any drop-in of ours references it,
    and the preload library, removed with the last service that used it."""
    revive_path = os.path.join(U.SYSTEMD_DIR, U.REVIVE_TEMPLATE)
    shared = FileSet(module)
    wanted = [pl["revive"] for pl in plans if pl["revive"]]
    if wanted:
        shared.want(revive_path, wanted[-1])  # one template per host: the last service's delay wins
    elif not referenced_elsewhere(plans, "netsvc-revive@") and read_text(revive_path) is not None:
        shared.want(revive_path, None)
    kept = [pl for pl in plans if (pl["preload"] or {}).get("library") and not pl["preload"].get("undo")]
    undone = {pl["preload"]["library"] for pl in plans if (pl["preload"] or {}).get("undo")}
    for library in sorted(undone):
        if not kept and os.path.exists(library) and not referenced_elsewhere(plans, PL.LIBRARY_NAME):
            shared.want(library, None)
    return shared


def systemd_execute(module, systemd, plans, shared):
    """Write every planned file, verify them all, reload once (one transaction), start socket units."""
    undo = [pl for pl in plans if (pl["preload"] or {}).get("undo")]
    for pl in plans:
        if pl["socket_stop"]:
            if pl in undo:
                U.run(module, [systemd.systemctl, "stop", pl["name"]], check=False)
            U.run(module, [systemd.systemctl, "disable", "--now", pl["socket_name"]], check=False)
    tx = SD.DropinTransaction(module, systemd)
    for pl in plans:
        tx.add(pl["files"], pl["name"], pl["show"].get("FragmentPath") if pl["present"] else None)
    tx.add(shared)
    tx.commit()
    for pl in plans:
        if pl["socket_start"]:
            U.run(module, [systemd.systemctl, "enable", "--now", pl["socket_name"]])
    for library in {pl["preload"]["library"] for pl in undo}:
        directory = os.path.dirname(library)
        if not os.path.exists(library) and os.path.isdir(directory) and not os.listdir(directory):
            os.rmdir(directory)  # created for the library alone
    for pl in undo:
        try:
            took = PL.restart_on_its_own(module, systemd, pl["name"], pl["ports"], pl["switch_timeout"])
            pl["preload"]["restarted_after_s"] = took
        except U.UnitError as e:
            module.fail_json(msg="socket activation removed, but %s" % e)
    for pl in plans:
        if (pl["preload"] or {}).get("switched") is False:
            switch_preload(module, systemd, tx, pl)


def switch_preload(module, systemd, tx, pl):
    """Move a running service onto its socket unit; on any failure put everything back."""
    def in_unit(pid):
        return P.in_unit_cgroup(pid, pl["name"])

    try:
        pl["preload"]["switch"] = PL.switch_over(module, systemd, pl["name"], pl["socket_name"], pl["switch_timeout"])
        ok, listeners = PL.served_from_socket_unit(pl["ports"], in_unit)
        pl["preload"]["listeners_after"] = listeners
        if not ok:
            raise U.UnitError("after the switch %s does not serve from the sockets PID 1 holds: %s"
                              % (pl["name"], listeners))
    except (U.UnitError, D.DiagError) as e:
        U.run(module, [systemd.systemctl, "stop", pl["socket_name"], pl["name"]], check=False)
        tx.rollback()
        systemd.reload()
        try:
            PL.restart_on_its_own(module, systemd, pl["name"], pl["ports"], pl["switch_timeout"])
        except U.UnitError as again:
            e = "%s; and then: %s" % (e, again)
        module.fail_json(msg="socket_activation: preload for %s failed and was rolled back (every file restored, "
                             "the service restarted as before): %s" % (pl["name"], e))


def systemd_results(module, systemd, plans, shared):
    shows = systemd.show([pl["name"] for pl in plans], SHOW_PROPS)
    results = []
    for i, pl in enumerate(plans):
        diff = pl["files"].diff() + (shared.diff() if i == 0 else [])
        show = shows[pl["name"]]
        mismatches = []
        # in check mode (the audit) only an unchanged drop-in says what systemd uses now
        if pl["present"] and show.get("LoadState") == "loaded" and not (module.check_mode and pl["files"].changed):
            wanted = U.policy_readback(pl["opts"], pl["name"], systemd.version)
            mismatches = SD.effective_mismatches(pl["name"], wanted, show, pl["dropin_path"])
        switching = (pl["preload"] or {}).get("switched") is False
        changed = pl["files"].changed or pl["socket_start"] or switching or (i == 0 and shared.changed)
        results.append(dict(changed=changed,
                            path=pl["dropin_path"], content=pl["content"], backend="systemd",
                            systemd_version=systemd.version,
                            socket_path=pl["socket_path"] if pl["socket_activation"] else "",
                            diff=diff, effective=show, effective_mismatches=mismatches,
                            effective_mismatch=pl["effective_mismatch"],
                            preload={k: v for k, v in (pl["preload"] or {}).items()
                                     if k in ("streams", "bind_v6only", "switched", "switch", "listeners_after",
                                              "library", "restarted_after_s")}))
    return results


def supervisor_dir(p):
    """(include directory, file extension) of the host's supervisord programs."""
    if p["supervisor_dir"]:
        d = p["supervisor_dir"]
        return d, ".ini" if d.rstrip("/").endswith("supervisord.d") else ".conf"
    for family in ("RedHat", "Debian"):
        d, ext = U.supervisor_paths(family)
        if os.path.isdir(d):
            return d, ext
    return U.supervisor_paths(H.read_os_release()["os_family"])


def supervisor_options(module, name, p, vendor_user):
    """The program's options with its command through the hook, and the user it runs as.

    The vendor file's user= is kept when none is given: hardening never turns a program
    into root. With the hook, the hook drops to that user (numeric ids resolved here, with
    the host's NSS) after cleaning, since supervisord's own user= would leave it without
    CAP_NET_ADMIN.
    """
    user = p["user"] or vendor_user
    ports = sorted(set(p["ports"]))
    wrapped = bool(p["cleanup_hook"] and ports)
    ids = None
    if user:
        U.check_user_name(user)
        if wrapped:
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                module.fail_json(msg="supervisord program %s: user %r does not exist on this host; nothing was "
                                     "written" % (name, user))
            ids = (pw.pw_uid, pw.pw_gid, [g for g in os.getgrouplist(user, pw.pw_gid) if g != pw.pw_gid])
    command = U.supervisor_command(name, p["command"], p["cleanup_hook"] if wrapped else None, ports, ids)
    return dict(p, command=command, user=user, cleanup_hook=p["cleanup_hook"] if wrapped else None)


def supervisord_main(module, p, warnings):
    name = U.check_program_name(U.program_name(p["name"]))
    directory, ext = supervisor_dir(p)
    path = os.path.join(directory, name + ext)
    ctl = module.get_bin_path("supervisorctl", required=True)
    files = FileSet(module)
    content = ""
    # A program file we did not write (the "vendor" one) is kept next to it, outside the
    # include pattern, and put back on state=absent: rollback leaves the host as it was.
    backup = path + ".netsvc-orig"
    current = read_text(path)
    original = read_text(backup)
    if p["state"] == "present":
        vendor = original if original is not None else (current if "netsvc.resilience" not in (current or "") else None)
        content = U.render_program(name, supervisor_options(module, name, p, U.program_user(vendor)))
        if current is not None and "netsvc.resilience" not in current and original is None:
            files.want(backup, current)
        files.want(path, content)
    else:
        if current is not None and "netsvc.resilience" in current:
            files.want(path, original)
        if original is not None:
            files.want(backup, None)
    result = dict(changed=files.changed, path=path, content=content, backend="supervisord",
                  systemd_version=0, socket_path="", diff=files.diff())
    if files.changed and not module.check_mode:
        try:
            files.apply()
        except (IOError, OSError) as e:
            files.rollback()
            module.fail_json(msg="writing %s failed: %s" % (path, to_native(e)))
        rc, out, err = U.run(module, [ctl, "reread"], check=False)
        if rc != 0 or "ERROR" in out:
            files.rollback()
            U.run(module, [ctl, "reread"], check=False)
            module.fail_json(msg="supervisorctl reread rejected %s; previous file restored: %s"
                                 % (path, (out + err).strip()))
        U.run(module, [ctl, "update", name], check=False)
    _rc, out, _err = U.run(module, [ctl, "status", name], check=False)
    result["effective"] = {"status": out.strip()}
    return result


SPEC = dict(
    name=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    backend=dict(type="str", default="auto", choices=["auto", "systemd", "supervisord"]),
    dropin_name=dict(type="str", default="50-netsvc-resilience"),
    apply_defaults=dict(type="bool", default=True),
    restart=dict(type="str", choices=list(U.RESTART_VALUES)),
    restart_sec=dict(type="raw"),
    start_limit_interval=dict(type="raw"),
    start_limit_burst=dict(type="int"),
    restart_steps=dict(type="int"),
    restart_max_delay=dict(type="raw"),
    restart_mode=dict(type="str", choices=list(U.RESTART_MODES)),
    restart_prevent_exit_status=dict(type="list", elements="str"),
    success_exit_status=dict(type="list", elements="str"),
    kill_mode=dict(type="str", choices=list(U.KILL_MODES)),
    timeout_stop_sec=dict(type="raw"),
    limit_nofile=dict(type="str"),
    oom_policy=dict(type="str", choices=list(U.OOM_POLICIES)),
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
    stopsignal=dict(type="str", default="TERM"),
    stopwaitsecs=dict(type="int"),
    supervisor_dir=dict(type="path"),
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
    p["socket_activation"] = PL.normalize_mode(p["socket_activation"])
    V.number(p["switch_timeout"], "switch_timeout", 1, 600, " seconds")
    V.ports(p["ports"], "ports", ranges=False)
    V.number(p["backlog"], "backlog", 1, 1048576)
    V.number(p["startsecs"], "startsecs", 0, 3600, " seconds")
    V.number(p["startretries"], "startretries", 0, 10000)
    if p["stopwaitsecs"] is not None:
        V.number(p["stopwaitsecs"], "stopwaitsecs", 0, 86400, " seconds")
    if p["supervisor_dir"]:
        V.abs_path(p["supervisor_dir"], "supervisor_dir")
    if p["cleanup_hook"]:
        V.abs_path(p["cleanup_hook"], "cleanup_hook", plain=True)
    if p["user"]:
        U.check_user_name(p["user"])
    # the revive unit runs `/bin/sleep DELAY`: what both systemd and sleep(1) understand
    if not re.match(r"^\d{1,6}(\.\d{1,3})?[smhd]?\Z", str(p["revive_delay"])):
        raise V.InputError("revive_delay %r must be a number with an optional s, m, h or d suffix (e.g. 30s)"
                           % (p["revive_delay"],))


def service_params(module, p):
    """[(item or None, params)] - one entry per service, each validated as the module's options."""
    if p["services"] is None:
        try:
            check_options(p)
        except (V.InputError, U.UnitError) as e:
            module.fail_json(msg=to_native(e))
        return [(None, p)]
    out = []
    for i, item in enumerate(p["services"]):
        label = "services[%d]" % i
        if not isinstance(item, dict) or not item.get("name"):
            module.fail_json(msg="%s %r must be a dict with a name" % (label, item))
        label += " (%s)" % item["name"]
        unknown = sorted(set(item) - set(SPEC))
        if unknown:
            allowed = ", ".join(sorted(SPEC))
            module.fail_json(msg="%s: unknown option(s) %s; allowed: %s" % (label, ", ".join(unknown), allowed))
        merged = {k: v for k, v in p.items() if k != "services" and v is not None}
        merged.update(item)
        checked = ArgumentSpecValidator(SPEC).validate(merged)
        if checked.error_messages:
            module.fail_json(msg="%s: %s" % (label, "; ".join(checked.error_messages)))
        try:
            check_options(checked.validated_parameters)
        except (V.InputError, U.UnitError) as e:
            module.fail_json(msg="%s: %s" % (label, e))
        out.append((item, checked.validated_parameters))
    return out


def main():
    spec = dict(SPEC, services=dict(type="list", elements="dict"))
    module = AnsibleModule(
        argument_spec=spec,
        required_one_of=[("name", "services")],
        mutually_exclusive=[("name", "services")],
        supports_check_mode=True,
    )
    V.require_python(module)  # before any Python 3 code: a clean message on an old host
    service_mgr = U.service_manager()
    warnings = []
    systemd, supervisord = [], []
    try:
        for item, p in service_params(module, module.params):
            backend = U.resolve_backend(p["backend"], service_mgr)
            if backend == "supervisord" and p["state"] == "present" and not p["command"]:
                module.fail_json(msg="backend supervisord needs command (the program's command line): %s"
                                     % p["name"])
            if backend == "supervisord":
                U.check_program_name(U.program_name(p["name"]))  # before anything is written
                if p["state"] == "present" and p["socket_activation"] != "none":
                    # fcgi-program sockets do not outlive a crash (README: why not supervisord)
                    module.fail_json(msg="socket_activation=%s for %s: supervisord has no socket that outlives the "
                                         "program (an [fcgi-program:x] socket is closed and bound again when the "
                                         "program dies); use the cleanup hook there, or systemd"
                                         % (p["socket_activation"], p["name"]))
            (systemd if backend == "systemd" else supervisord).append((item, p))
        done = []
        if systemd:
            sd = SD.Systemd(module)
            plans = [systemd_plan(module, p, warnings, sd.systemctl, sd.version) for _item, p in systemd]
            shared = plan_revive(module, plans)
            if not module.check_mode and (shared.changed or any(
                    pl["files"].changed or pl["socket_start"] or (pl["preload"] or {}).get("switched") is False
                    for pl in plans)):
                systemd_execute(module, sd, plans, shared)
            done += zip([item for item, _p in systemd], systemd_results(module, sd, plans, shared))
        for item, p in supervisord:
            done.append((item, supervisord_main(module, p, warnings)))
    except U.UnitError as e:
        module.fail_json(msg=to_native(e))
    mismatches = [m for _item, r in done for m in r.get("effective_mismatches", [])]
    failing = [m for _item, r in done if r.get("effective_mismatch") == "fail" and not module.check_mode
               for m in r["effective_mismatches"]]
    warnings.extend(m for m in mismatches if m not in failing)
    for w in warnings:
        module.warn(w)
    if module.params["services"] is None:
        result = done[0][1]
    else:
        results = [dict(r, item=item) for item, r in done]
        result = dict(changed=any(r["changed"] for r in results), results=results,
                      diff=[d for r in results for d in r["diff"]])
    result["warning_messages"] = warnings
    if failing:
        module.fail_json(msg="systemd does not use the restart policy as written: %s" % "; ".join(failing), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
