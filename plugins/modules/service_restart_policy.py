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
  - After the reload the effective values are read back with C(systemctl show) and returned.
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
    type: str
    required: true
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
      - Write and start C(<unit>.socket) listening on O(ports) and wire the service to it.
      - Only if the service accepts inherited sockets (C(LISTEN_FDS), fd 3); set
        O(accepts_inherited_fds) to confirm. Refused while another process listens on a port.
    type: bool
    default: false
  accepts_inherited_fds:
    description: Confirms the service takes its listening socket from systemd (sd_listen_fds).
    type: bool
    default: false
  ports:
    description: Ports for O(socket_activation).
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
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.netsvc.resilience.plugins.module_utils import _sockdiag as D
from ansible_collections.netsvc.resilience.plugins.module_utils import _unit as U
from ansible_collections.netsvc.resilience.plugins.module_utils._files import FileSet, read_text

SYSTEMD_DIR = "/etc/systemd/system"
SHOW_PROPS = ["Restart", "RestartUSec", "StartLimitBurst", "StartLimitIntervalUSec", "StartLimitInterval",
              "KillMode", "TimeoutStopUSec", "LimitNOFILE", "OOMPolicy", "RestartSteps",
              "RestartMaxDelayUSec", "OnFailure", "DropInPaths", "FragmentPath", "LoadState",
              "ActiveState", "SubState", "MainPID", "NRestarts", "ExecStartPre", "FileDescriptorStoreMax"]


def run(module, argv, check=True):
    rc, out, err = module.run_command(argv, environ_update={"LANG": "C", "LC_ALL": "C"})
    if check and rc != 0:
        module.fail_json(msg="%s failed (rc=%d): %s" % (" ".join(argv), rc, (err or out).strip()), rc=rc)
    return rc, out, err


def listening_ports(ports):
    """Ports of ``ports`` that have a LISTEN socket (the sock_diag dump socket_cleanup uses)."""
    listeners = D.cleanup([(x, x) for x in ports], states=(), mode="report")["listeners"]
    return sorted({x["port"] for x in listeners})


def systemd_main(module, p, warnings):
    name = U.check_unit_name(p["name"])
    dropin = U.check_dropin_name(p["dropin_name"])
    systemctl = module.get_bin_path("systemctl", required=True)
    _rc, out, _err = run(module, [systemctl, "--version"])
    version = U.parse_version(out)
    _rc, out, _err = run(module, [systemctl, "show", name, "-p", "LoadState", "-p", "FragmentPath"], check=False)
    show = U.parse_show(out)
    if p["state"] == "present" and p["must_exist"] and show.get("LoadState") != "loaded":
        module.fail_json(msg="service %s does not exist on this host (LoadState=%s); install it first or set "
                             "must_exist=false" % (name, show.get("LoadState", "unknown")))

    dropin_path = os.path.join(SYSTEMD_DIR, name + ".d", dropin + ".conf")
    socket_name = name[: -len(".service")] + ".socket"
    socket_path = os.path.join(SYSTEMD_DIR, socket_name)
    revive_path = os.path.join(SYSTEMD_DIR, U.REVIVE_TEMPLATE)
    files = FileSet(module)
    content = ""
    revive_on = False

    if p["state"] == "present":
        opts = U.normalize_options(p)
        revive_on = bool(opts.get("revive"))
        if p["socket_activation"]:
            if not p["accepts_inherited_fds"]:
                module.fail_json(msg="socket_activation for %s needs accepts_inherited_fds=true: the service must take "
                                     "its listening socket from systemd (LISTEN_FDS, fd 3), or it will fail to "
                                     "bind a port the socket unit holds" % name)
            if not p["ports"]:
                module.fail_json(msg="socket_activation for %s needs ports" % name)
            bad = [x for x in p["ports"] if not 1 <= x <= 65535]
            if bad:
                module.fail_json(msg="ports %s are out of range 1-65535" % bad)
        content, more = U.render_dropin(opts, version)
        warnings.extend(more)
        files.want(dropin_path, content)
        if revive_on:
            files.want(revive_path, U.render_revive(opts["revive_delay"]))
        if p["socket_activation"]:
            files.want(socket_path, U.render_socket(name, p["ports"], p["backlog"]))
    else:
        files.want(dropin_path, None)
        if "netsvc.resilience" in (read_text(socket_path) or ""):  # only a socket unit we wrote
            files.want(socket_path, None)
    if not revive_on:
        # remove the revive template when no drop-in of ours references it any more
        others = [f for f in glob.glob(os.path.join(SYSTEMD_DIR, "*.service.d", "*.conf"))
                  if f != dropin_path and "netsvc-revive@" in (read_text(f) or "")]
        if not others and read_text(revive_path) is not None:
            files.want(revive_path, None)

    socket_start = False
    if p["state"] == "present" and p["socket_activation"]:
        _rc, sout, _err = run(module, [systemctl, "show", socket_name, "-p", "ActiveState"], check=False)
        if U.parse_show(sout).get("ActiveState") != "active":
            try:
                held = listening_ports(p["ports"])
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
    socket_stop = p["state"] == "absent" and socket_path in files.paths

    changed = files.changed or socket_start
    result = dict(changed=changed, path=dropin_path, content=content, backend="systemd",
                  systemd_version=version, socket_path=socket_path if p["socket_activation"] else "",
                  diff=files.diff())
    if module.check_mode or not changed:
        result["effective"] = effective(module, systemctl, name)
        return result

    if socket_stop:
        run(module, [systemctl, "disable", "--now", socket_name], check=False)
    try:
        files.apply()
    except (IOError, OSError) as e:
        files.rollback()
        module.fail_json(msg="writing %s failed: %s; previous files restored" % (dropin_path, to_native(e)))
    if p["state"] == "present" and show.get("FragmentPath"):
        analyze = module.get_bin_path("systemd-analyze")
        if analyze:
            _rc, vout, verr = run(module, [analyze, "verify", show["FragmentPath"]], check=False)
            problems = U.verify_problems(vout + "\n" + verr, dropin_path)
            if socket_start:
                problems += U.verify_problems(vout + "\n" + verr, socket_path)
            if problems:
                files.rollback()
                module.fail_json(msg="systemd-analyze verify rejected the drop-in for %s; the previous drop-in "
                                     "(or none) was restored: %s" % (name, "; ".join(problems)),
                                 content=content)
    if files.changed:
        run(module, [systemctl, "daemon-reload"])
    if socket_start:
        run(module, [systemctl, "enable", "--now", socket_name])
    result["effective"] = effective(module, systemctl, name)
    return result


def effective(module, systemctl, name):
    argv = [systemctl, "show", name]
    for prop in SHOW_PROPS:
        argv += ["-p", prop]
    _rc, out, _err = run(module, argv, check=False)
    return U.parse_show(out)


def supervisor_dir(p):
    """(include directory, file extension) of the host's supervisord programs."""
    if p["supervisor_dir"]:
        d = p["supervisor_dir"]
        return d, ".ini" if d.rstrip("/").endswith("supervisord.d") else ".conf"
    for family in ("RedHat", "Debian"):
        d, ext = U.supervisor_paths(family)
        if os.path.isdir(d):
            return d, ext
    family = "Debian"
    try:
        with open("/etc/os-release") as f:
            text = f.read()
        if "rhel" in text or "fedora" in text or "centos" in text:
            family = "RedHat"
    except (IOError, OSError):
        pass
    return U.supervisor_paths(family)


def supervisord_main(module, p, warnings):
    name = U.check_program_name(p["name"][: -len(".service")] if p["name"].endswith(".service") else p["name"])
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
        content = U.render_program(name, p)
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
        rc, out, err = run(module, [ctl, "reread"], check=False)
        if rc != 0 or "ERROR" in out:
            files.rollback()
            run(module, [ctl, "reread"], check=False)
            module.fail_json(msg="supervisorctl reread rejected %s; previous file restored: %s"
                                 % (path, (out + err).strip()))
        run(module, [ctl, "update", name], check=False)
    _rc, out, _err = run(module, [ctl, "status", name], check=False)
    result["effective"] = {"status": out.strip()}
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
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
            socket_activation=dict(type="bool", default=False),
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
        ),
        required_if=[("socket_activation", True, ("ports",))],
        supports_check_mode=True,
    )
    p = module.params
    backend = p["backend"]
    if backend == "auto":
        backend = "systemd" if os.path.isdir("/run/systemd/system") else "supervisord"
    warnings = []
    try:
        if backend == "systemd":
            result = systemd_main(module, p, warnings)
        else:
            if p["state"] == "present" and not p["command"]:
                module.fail_json(msg="backend supervisord needs command (the program's command line)")
            result = supervisord_main(module, p, warnings)
    except U.UnitError as e:
        module.fail_json(msg=to_native(e))
    for w in warnings:
        module.warn(w)
    result["warning_messages"] = warnings
    module.exit_json(**result)


if __name__ == "__main__":
    main()
