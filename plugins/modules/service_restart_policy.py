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
version_added: 1.0.0
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
  - With O(backend=supervisord), or O(backend=auto) on a host without systemd, it edits the
    program's own C([program:NAME]) section wherever supervisord defines it. The files are found
    as supervisord finds them (the main configuration the running supervisord read, its
    C([include] files=) globs, any file name) and parsed as supervisord parses them. Only the
    keys this module sets change (C(autorestart), C(startsecs), C(startretries),
    C(killasgroup), with the cleanup hook C(command) and C(user)); comments, order, every other
    section and every other key stay byte for byte. With the hook, the command runs through its
    holder (C(netsvc-sockclean --hold), native builds only). The server is the holder's child and
    is started again the moment it dies by a signal (supervisord itself respawns only on its next
    one-second poll), at most O(start_limit_burst) times in O(start_limit_interval) (default 20
    in 10 s); then the holder exits as the server did and supervisord's own policy applies.
    Signals pass on to the server, and its exit status is the holder's. A program defined nowhere gets a file of its
    own in the include directory (C(/etc/supervisord.d/*.ini) on EL, C(/etc/supervisor/conf.d/*.conf)
    on Debian). The original of every file edited is kept in the host's ledger, so O(state=absent)
    and rollback put the section back byte for byte. Then C(reread) and C(update) of that
    program's group.
  - "C(socket_activation=preload): the socket unit mirrors what the running server listens on -
    family, address, port, and the options that decide who reaches the socket or how it binds
    (C(BindToDevice=), C(Mark=), C(Transparent=), C(FreeBind=), C(ReusePort=), C(BindIPv6Only=),
    read from the live sockets with C(pidfd_getfd), Linux >= 5.6). A switched service whose
    listeners no longer match its socket unit (it asks for another address, or cannot start
    because the library left a mismatching C(bind()) to the kernel) is mirrored again: it binds
    on its own once more, then moves back onto a new socket unit."
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
      - Every service's and program's files are planned and validated first, then written. One
        C(systemd-analyze verify) checks the units and one C(supervisorctl reread) the
        supervisord files, and a problem puts every file back. One C(daemon-reload) follows,
        and then each service's effective values are read; each changed supervisord program's
        group is updated (C(update) for that program only) and its status read.
      - The result then has RV(results), one entry per service, shaped like a loop's
        results (C(item), C(changed) and the keys below).
    type: list
    elements: dict
  prestart:
    description:
      - Deprecated, use M(netsvc.resilience.harden)'s O(netsvc.resilience.harden#module:prestart).
        The action plugin hands a call with O(prestart) or O(kernel) to M(netsvc.resilience.harden)
        (this call's other options as its O(netsvc.resilience.harden#module:units)), which
        returns the same result.
      - The options of M(netsvc.resilience.prestart_hook), written in this call's transaction.
        The result has RV(prestart).
    type: dict
  kernel:
    description:
      - Deprecated, use M(netsvc.resilience.harden)'s O(netsvc.resilience.harden#module:kernel),
        as for O(prestart).
      - The options of M(netsvc.resilience.sysctl_tcp), written first in this call's
        transaction. The result has RV(kernel).
    type: dict
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
      - C(preload) is refused before any restart, writing nothing, for a statically linked or
        Go executable, one in secure-execution mode (setuid/setgid, file capabilities, or
        AT_SECURE read from the running server's C(/proc/PID/auxv)), a script whose
        interpreter (or C(env) program) is one of those, a running server whose C(/proc/PID/exe)
        is, an ExecStart that cannot be resolved, a port held by another process, or a service
        that is not listening. The message names the reason and what works instead.
      - With O(state=absent) the socket unit and the library go, and the service is started
        again binding its ports itself (again while TIME_WAIT blocks it, at most O(switch_timeout)).
      - "A supervisord program (needs O(ports) and the O(cleanup_hook)): the hook's holder
        (C(netsvc-sockclean --hold)), the program's process, binds the sockets the running program
        listens on (address, family, C(IPV6_V6ONLY), C(SO_REUSEPORT), C(IP_FREEBIND),
        C(IP_TRANSPARENT), C(SO_MARK) read off the live socket; C(SO_BINDTODEVICE) is refused) and
        hands them to every start of the server as C(LISTEN_FDS) - with C(preload) also the library,
        with C(native) (and O(accepts_inherited_fds)) nothing else. The program must be running.
        The preload refusals above apply to its command's executable and its running server."
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
    description:
      - supervisord only, the program's command line. Default - the command of the program's
        own section; needed only for a program defined nowhere yet.
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
    description: supervisord only, C(stopsignal=) when given; otherwise the section keeps its own.
    type: str
    choices: [TERM, HUP, INT, QUIT, KILL, USR1, USR2]
  stopwaitsecs:
    description: supervisord only, C(stopwaitsecs=).
    type: int
  supervisor_dir:
    description:
      - supervisord only, where a program defined in no file gets its own file (default per OS
        family).
    type: path
  supervisor_conf:
    description:
      - supervisord only, the main configuration file. Default - the one the running
        supervisord was started with (its C(-c)), else the first of C(/etc/supervisord.conf) and
        C(/etc/supervisor/supervisord.conf) that exists, as supervisord looks for it.
    type: path
  user:
    description:
      - supervisord only, the user the program runs as. Default - the C(user=) of the program's
        own section (never another section's; hardening never turns a program into root).
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
      - C(auto) is the hook at its default path on this host when it is there (none when it
        is not); under M(netsvc.resilience.harden), the hook that same call installs.
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
prestart:
  description:
    - With O(prestart), the result M(netsvc.resilience.prestart_hook) would return (C(path),
      C(hook_kind), C(dropins), C(privilege), C(sandbox), C(cleanup), C(effective_mismatches),
      C(warning_messages)). Its mismatches fail this call when its C(effective_mismatch) is
      C(fail).
  returned: when O(prestart) is given
  type: dict
kernel:
  description:
    - With O(kernel), the result M(netsvc.resilience.sysctl_tcp) would return (C(file),
      C(persisted), C(live_before), C(live_after) read back, C(live_skipped), C(overridden_by),
      C(netns), C(warning_messages)).
  returned: when O(kernel) is given
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _service_restart_policy
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _module


def main():
    # prestart and kernel: the action plugin hands such a call to netsvc.resilience.harden
    spec = dict(_service_restart_policy.SPEC, services=dict(type="list", elements="dict"),
                prestart=dict(type="dict", removed_in_version="2.0.0", removed_from_collection="netsvc.resilience"),
                kernel=dict(type="dict", removed_in_version="2.0.0", removed_from_collection="netsvc.resilience"))
    _module.execute(AnsibleModule(argument_spec=spec, required_one_of=[("name", "services")],
                                  mutually_exclusive=[("name", "services")], supports_check_mode=True),
                    _service_restart_policy.run)


if __name__ == "__main__":
    main()
