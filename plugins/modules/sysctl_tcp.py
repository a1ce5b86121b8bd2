#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sysctl_tcp
short_description: Set TCP and network-core sysctls in one call, truthfully
version_added: 1.0.0
description:
  - Sets many C(net.ipv4.*), C(net.ipv6.*) and C(net.core.*) keys in one module call, from a
    named O(profile) plus user O(settings) that override it.
  - Persists them to a sysctl.d drop-in of its own, written whole and atomically (mode 0644),
    and applies live values by writing C(/proc/sys) directly (no dependency on the sysctl binary).
  - Merges O(reserved_ports) into C(net.ipv4.ip_local_reserved_ports) as a set, keeping the
    entries other tools put there, so an outgoing connection cannot take a service's port as
    its ephemeral source port while the service is down.
  - Reads every sysctl.d directory and C(/etc/sysctl.conf) in systemd-sysctl's order and
    reports each key another file would override at boot.
  - Refuses or warns about the popular myths, with the reason.
    C(net.ipv4.tcp_tw_recycle) is refused (removed in Linux 4.12, broke clients behind NAT).
    Setting C(net.ipv4.tcp_fin_timeout) warns that it does not shorten TIME_WAIT.
    Lowering C(net.ipv4.tcp_max_tw_buckets) warns (kernel docs say never to).
    C(net.ipv4.tcp_tw_reuse) with C(net.ipv4.tcp_timestamps=0) warns that it cannot work.
  - All keys are per network namespace. In a container they change that container only.
  - The file records, as comments, the live value each key had before this module first
    managed it and the reserved ports it added, so O(state=absent) (and the rollback
    playbook) can restore exactly what was there.
author:
  - netsvc.resilience maintainers (@netsvc)
extends_documentation_fragment:
  - netsvc.resilience.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the file before and after, and the live values before and after.
options:
  settings:
    description:
      - Full key names (C(net.ipv4.*), C(net.ipv6.*), C(net.core.*)) to values.
      - Values must have the key's own syntax (integers, "low high" ranges, ...); anything
        else (spaces between words aside), such as newlines, C(;), C($) or quotes, is refused.
      - With O(state=absent), the keys listed here are removed from the file and their live
        value is restored to what it was before this module first set them.
    type: dict
    default: {}
  profile:
    description:
      - Named set of values applied first; O(settings) override it.
      - V(fast_restart) sets C(net.ipv4.tcp_fin_timeout=15) (orphaned FIN_WAIT_2 connections
        of a killed server go after 15 s; TIME_WAIT is unaffected, nothing shortens it) and
        C(net.core.somaxconn=4096), C(net.ipv4.tcp_max_syn_backlog=4096) (a socket-activated
        or restarting service can queue connections through a restart).
    type: str
    choices: [none, fast_restart]
    default: none
  reserved_ports:
    description:
      - Ports (integers) or ranges (C(low-high)) to add to (O(state=present)) or remove from
        (O(state=absent)) C(net.ipv4.ip_local_reserved_ports).
      - Compared as sets; ranges are normalised; other entries are kept.
      - Keeps the ports out of automatic ephemeral assignment only; explicit binds are unaffected.
    type: list
    elements: raw
    default: []
  state:
    description: Whether the settings and ports should be present or removed.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description:
      - With O(state=absent), undo everything the file records. Every key is removed and its
        live value restored to what it was before this module first set it, the reserved
        ports this module added are removed (other entries stay), and the file is deleted.
    type: bool
    default: false
  path:
    description:
      - The sysctl.d file this module owns. Written whole; removed when it would be empty.
      - For a key set in several files, the file that sorts last by name wins at boot.
    type: path
    default: /etc/sysctl.d/90-netsvc-resilience.conf
  apply:
    description:
      - V(both) persists to O(path) and writes live values; V(persist) only writes the file;
        V(live) only writes C(/proc/sys).
    type: str
    choices: [both, persist, live]
    default: both
  on_conflict:
    description:
      - What to do when another sysctl file would override one of our keys at boot.
      - V(warn) reports it in RV(overridden_by) and as a warning; V(fail) fails before writing.
    type: str
    choices: [warn, fail]
    default: warn
  allow_unknown:
    description:
      - Allow keys that do not exist under C(/proc/sys) on this host (they are persisted
        only). Without it such keys fail, which catches typos.
    type: bool
    default: false
  live_readonly:
    description:
      - What to do when C(/proc/sys) is read-only (an unprivileged container).
      - V(fail) fails with a clear message before anything is written; V(skip) persists the
        file and reports C(live apply skipped) in RV(live_skipped) and a warning.
    type: str
    choices: [fail, skip]
    default: fail
  header:
    description: First comment line of the file (the ansible_managed text).
    type: str
    default: "Ansible managed: netsvc.resilience.sysctl_tcp"
notes:
  - Facts behind the checks are in docs/linux-facts.md of this collection.
seealso:
  - module: ansible.posix.sysctl
"""

EXAMPLES = r"""
- name: Tune the kernel for fast service restarts and reserve the service ports
  netsvc.resilience.sysctl_tcp:
    profile: fast_restart
    settings:
      net.core.somaxconn: 8192
    reserved_ports: [8080, "9000-9010"]

- name: Remove our reserved ports again (other entries stay)
  netsvc.resilience.sysctl_tcp:
    reserved_ports: [8080]
    state: absent
"""

RETURN = r"""
file:
  description: Path of the sysctl.d file this module owns.
  returned: always
  type: str
  sample: /etc/sysctl.d/90-netsvc-resilience.conf
persisted:
  description: Keys and values in the file after the run.
  returned: always
  type: dict
live_before:
  description: Live values of the managed keys before the run (null for a missing key).
  returned: always
  type: dict
live_after:
  description: Live values after the run (what would be, in check mode).
  returned: always
  type: dict
live_skipped:
  description: True when live values were not written because /proc/sys is read-only.
  returned: always
  type: bool
overridden_by:
  description: For each key another file would override at boot, the files and their values.
  returned: always
  type: dict
  sample: {"net.core.somaxconn": [{"file": "/etc/sysctl.d/99-sysctl.conf", "value": "128"}]}
warning_messages:
  description: The warnings of this run (each also raised as an Ansible warning), for asserts.
  returned: always
  type: list
  elements: str
netns:
  description:
    - The network namespace the values apply to. C(initial=false) means a container's own
      namespace (values apply to it only); null when it cannot be told.
  returned: always
  type: dict
  sample: {"inode": 4026532291, "initial": false, "container": "/.dockerenv"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _sysctl_tcp
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _module


def main():
    _module.execute(AnsibleModule(argument_spec=_sysctl_tcp.SPEC, supports_check_mode=True), _sysctl_tcp.run)


if __name__ == "__main__":
    main()
