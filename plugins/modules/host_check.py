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
version_added: 1.0.0
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
  serve_check:
    description:
      - Also require that each systemd service is served by the service itself - one connection
        to each of its ports (through loopback for a wildcard address; nothing is sent on it)
        must be accepted by a process in the service's own cgroup within the wait. A port held
        by someone else (a socket unit whose service cannot start, another program) makes the
        service unhealthy, naming who holds it.
      - Under socket activation the connection starts the service, as a client's would.
    type: bool
    default: false
    version_added: 1.1.0
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
      - sysctl.d files the collection writes (sysctl_tcp's default file unless told otherwise;
        C([]) - none). Their keys' live values are part of the applied state, and so is every
        directory systemd-sysctl reads at boot.
    type: list
    elements: path
    default: [/etc/sysctl.d/90-netsvc-resilience.conf]
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
  supported:
    description:
      - The pre-flight's refusal - os_family to the minimum major version it accepts (any Ubuntu
        of a listed family); the role passes C(harden_restart_supported), RedHat 7 and Debian 11.
      - When set, the call fails with every reason the host cannot be hardened, one sentence
        each - an unsupported distribution, Python older than 3.6, a systemd service that does
        not exist, supervisord programs without C(supervisorctl) or without a command - and
        releases the run lock it took.
    type: dict
  hook_journal:
    description:
      - Also read each systemd service's last hook line from the journal (one C(journalctl) per
        service). A hook inside a read-only sandbox (C(ProtectSystem=strict)) cannot write its
        status file but still logs; the newer of the two is reported. The audit turns it on.
      - With it, each running systemd service without the hook also gets C(hook.reuse) - whether
        every listener on its ports sets SO_REUSEADDR (read from the live socket, see the
        prestart_hook module's C(cleanup=auto)); the audit's rebind row then says if it needs none.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Pre-flight - facts, services and whether the host still is as the last verified run left it
  netsvc.resilience.host_check:
    services: "{{ netsvc_services }}"
    inputs_digest: "{{ my_inputs_digest }}"
  register: pre

- name: Post-check - every service active and listening within 10 s; record the verified state
  netsvc.resilience.host_check:
    services: "{{ netsvc_services }}"
    wait: 10
    require_healthy: true
    inputs_digest: "{{ my_inputs_digest }}"
    record: true
"""

RETURN = r"""
ansible_facts:
  description: C(netsvc_host) - distribution, distribution_version, distribution_major_version,
    os_family, service_mgr, python_version, python (version major/minor/micro, executable),
    supervisorctl (path or empty), hook_dir (the OS family's default hook directory), kernel
    (release), selinux (C(enforcing), C(permissive) or C(disabled), read from selinuxfs),
    sock_destroy (a real try on loopback sockets of its own - C(full) and
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
hardened:
  description:
    - The systemd services the collection's ledger has files for (a drop-in or socket unit it
      wrote) - what a rollback of this host undoes.
  returned: always
  type: list
  elements: str
unlisted:
  description:
    - With O(supported) (the pre-flight) - systemd services the collection's ledger has files for
      (a drop-in or socket unit an earlier run wrote) that O(services) does not list. The run
      leaves them as they are (another play or group may list them) and names each in a warning
      with how to undo it; C(playbooks/rollback.yml) undoes them with the rest of the host.
  returned: with supported
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _host_check
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _module


def main():
    _module.execute(AnsibleModule(argument_spec=_host_check.SPEC, required_if=[("record", True, ("inputs_digest",))],
                                  supports_check_mode=True), _host_check.run)


if __name__ == "__main__":
    main()
