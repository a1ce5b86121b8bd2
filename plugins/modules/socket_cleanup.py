#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: socket_cleanup
short_description: Destroy the sockets a dead server left on its ports (TIME_WAIT, FIN_WAIT...)
version_added: 1.0.0
description:
  - Finds TCP sockets whose LOCAL port is one of O(ports) in the orphan states a dead process
    leaves (TIME_WAIT, FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK) and, with O(mode=kill),
    destroys them (SOCK_DESTROY) so a server that does not set SO_REUSEADDR can bind again.
  - Matches the local port only. The often copied C(ss -K dst :PORT) matches the remote port
    and kills the wrong sockets.
  - Never touches LISTEN sockets. A live listener is a port conflict, not leftover state.
    The module reports its owner (pid, command) and with O(fail_on_listener) fails.
  - ESTABLISHED and CLOSE_WAIT belong to live processes and are cleaned only with O(force).
  - "Implementation: sock_diag over netlink from Python's standard library. No output
    parsing, no dependency on the iproute version, the kernel filters by local port, destroy
    requests are batched, and each gets its own errno. It runs on EL7-EL10 and Debian/Ubuntu."
  - What the kernel can do is probed at run time. SOCK_DESTROY needs CONFIG_INET_DIAG_DESTROY
    and CAP_NET_ADMIN; TIME_WAIT can be destroyed only since Linux 6.0 (RHEL 8/9 only with a
    backport). Sockets are counted again afterwards, because the counts are the truth.
    RV(supported) says per state what worked, and the module fails only with O(require).
author:
  - netsvc.resilience maintainers (@netsvc)
extends_documentation_fragment:
  - netsvc.resilience.attributes
attributes:
  check_mode:
    support: full
    details: Check mode counts and reports what would be destroyed; it destroys nothing.
  diff_mode:
    support: full
    details: The diff shows the socket counts per state before and after.
options:
  ports:
    description: Local ports (integers) or ranges (C(low-high)).
    type: list
    elements: raw
    required: true
  states:
    description: TCP states to clean. C(listen) is never allowed.
    type: list
    elements: str
    choices: [time-wait, fin-wait-1, fin-wait-2, closing, last-ack, established, close-wait, syn-recv, syn-sent]
    default: [time-wait, fin-wait-1, fin-wait-2, closing, last-ack]
  family:
    description: Address family.
    type: str
    choices: [all, inet, inet6]
    default: all
  local_address:
    description: Only sockets bound to this local address.
    type: str
  mode:
    description: V(kill) destroys, V(report) only counts.
    type: str
    choices: [kill, report]
    default: kill
  force:
    description: Allow C(established) and C(close-wait), which belong to live processes.
    type: bool
    default: false
  fail_on_listener:
    description: Fail (as a port conflict) when a process listens on one of the ports, and clean nothing.
    type: bool
    default: false
  require:
    description: Fail when sockets are left that the kernel could not destroy.
    type: bool
    default: false
notes:
  - Facts in docs/linux-facts.md of this collection.
"""

EXAMPLES = r"""
- name: Clean leftover sockets on the service port before starting it
  netsvc.resilience.socket_cleanup:
    ports: [8080]

- name: Only report, and fail if something listens there
  netsvc.resilience.socket_cleanup:
    ports: [8080, "9000-9010"]
    mode: report
    fail_on_listener: true
"""

RETURN = r"""
before:
  description: Sockets per state on the ports before the run.
  returned: always
  type: dict
  sample: {"time-wait": 1000}
after:
  description: Sockets per state counted again after the run (equal to before in report/check mode).
  returned: always
  type: dict
destroyed:
  description: Sockets the kernel confirmed destroyed.
  returned: always
  type: int
would_destroy:
  description: Sockets that mode=kill would try to destroy (report and check mode).
  returned: always
  type: int
refused:
  description: Destroy requests the kernel refused, per errno name.
  returned: always
  type: dict
listeners:
  description: LISTEN sockets on the ports with their owners (pid, command).
  returned: always
  type: list
  elements: dict
supported:
  description: Per state, whether destroying worked (true), was refused (false) or was not tried (null).
  returned: always
  type: dict
capabilities:
  description:
    - Kernel release, CAP_NET_ADMIN, and what a real try on loopback sockets of the module's
      own found - C(timewait_destroy) and C(orphan_destroy) (an orphaned FIN_WAIT_1 socket, as a
      crash leaves) are true when the socket was gone afterwards, false when the kernel refused
      or acknowledged and kept it (Linux 5.10 does that for orphans), null when unknown
      (C(probe_errors) says why).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _socket_cleanup
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _module


def main():
    _module.execute(AnsibleModule(argument_spec=_socket_cleanup.SPEC, supports_check_mode=True), _socket_cleanup.run)


if __name__ == "__main__":
    main()
