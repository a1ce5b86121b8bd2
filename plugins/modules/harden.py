#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: harden
short_description: Kernel settings, restart hook and crash-recovery units of a host in one call and one transaction
version_added: 1.1.0
description:
  - The one composed entry of the collection; the C(harden_restart) role calls it once per host.
    Each of O(kernel), O(prestart) and O(units) is the options of the module that does that
    part alone - M(netsvc.resilience.sysctl_tcp), M(netsvc.resilience.prestart_hook),
    M(netsvc.resilience.service_restart_policy) - checked as that module checks them.
  - Everything is checked and planned before anything is written; bad input in any part fails
    the call with nothing done.
  - Then one transaction writes the parts in that order - the sysctl file and live values, the
    hook and its C(ExecStartPre=) drop-ins, the crash-recovery drop-ins and socket units - with
    one C(systemd-analyze verify) and one C(daemon-reload). A failed write, verify or reload
    puts every part back, the kernel values included.
  - What systemd and the kernel then use is read back, as each module does.
  - supervisord programs are written after the transaction. A program whose O(units) entry has
    C(cleanup_hook=auto) runs its command through the hook this call installs.
  - The action plugin sends the hook and, for C(socket_activation=preload), the preload library
    with the call - no extra round trip.
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
  kernel:
    description:
      - The options of M(netsvc.resilience.sysctl_tcp). The result has RV(kernel).
    type: dict
  prestart:
    description:
      - The options of M(netsvc.resilience.prestart_hook), without its payload (the action
        plugin sends the hook). The result has RV(prestart). Its effective mismatches fail the
        call when its C(effective_mismatch) is C(fail).
    type: dict
  units:
    description:
      - The options of M(netsvc.resilience.service_restart_policy), one service's or several in
        C(services). The result is that module's, at the top level.
    type: dict
notes:
  - At least one of O(kernel), O(prestart) and O(units) is needed.
seealso:
  - module: netsvc.resilience.sysctl_tcp
  - module: netsvc.resilience.prestart_hook
  - module: netsvc.resilience.service_restart_policy
"""

EXAMPLES = r"""
- name: Kernel settings, the restart hook and the restart policy of two services, one call
  netsvc.resilience.harden:
    kernel:
      profile: fast_restart
      reserved_ports: [8080, 9000]
    prestart:
      services:
        - {name: web.service, ports: [8080]}
    units:
      services:
        - name: web.service
        - name: worker
          backend: supervisord
          ports: [9000]
          command: /usr/bin/worker --port 9000
          cleanup_hook: auto
  register: hardened
"""

RETURN = r"""
results:
  description:
    - With O(units) and its C(services), one result per service as
      M(netsvc.resilience.service_restart_policy) returns them; with one service's options,
      that service's keys are at the top level instead.
  returned: when O(units) is given
  type: list
  elements: dict
prestart:
  description: The result M(netsvc.resilience.prestart_hook) would return, read back.
  returned: when O(prestart) is given
  type: dict
kernel:
  description: The result M(netsvc.resilience.sysctl_tcp) would return, read back.
  returned: when O(kernel) is given
  type: dict
warning_messages:
  description: Every part's warnings, also shown as task warnings.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsvc.resilience.plugins.module_utils import _harden
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _module


def main():
    _module.execute(AnsibleModule(argument_spec=_harden.SPEC, supports_check_mode=True), _harden.run)


if __name__ == "__main__":
    main()
