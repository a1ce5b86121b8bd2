#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: restart_probe
short_description: Crash test - kill a service like a crash would and measure its recovery
version_added: 1.0.0
description:
  - Sends O(signal) (SIGKILL by default) to the main process of a systemd service or
    supervisord program, then measures the time until the service is running again with a
    new main process and its port accepts a connection on loopback.
  - Counts failed connection attempts, restarts (systemd C(NRestarts)), and reads the
    journal since the kill for EADDRINUSE and start-limit messages.
  - With O(kills) > 1 it is a crash storm. Each new main process is killed as soon as it
    appears, and the result says whether the unit is active at the end.
  - Bounded in time by O(timeout); connects to loopback addresses only.
  - Fails when the service does not recover, or recovers slower than O(slo_ms).
author:
  - netsvc.resilience maintainers (@netsvc)
extends_documentation_fragment:
  - netsvc.resilience.attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is killed; the result says which process would be.
  diff_mode:
    support: none
options:
  name:
    description: The systemd service or supervisord program.
    type: str
    required: true
  port:
    description: TCP port the service listens on.
    type: int
    required: true
  host:
    description: Loopback address to connect to (127.0.0.0/8 or ::1 only).
    type: str
    default: 127.0.0.1
  signal:
    description: Signal sent to the main process.
    type: str
    choices: [KILL, SEGV, ABRT, TERM, INT, QUIT, HUP]
    default: KILL
  kills:
    description: Number of kills; more than 1 makes a crash storm.
    type: int
    default: 1
  kill_interval_ms:
    description:
      - With O(kills) > 1, the storm's pace - one SIGKILL of the current main process every this
        many milliseconds (a tick with no new main process is skipped). 0 - kill each new main
        process as soon as it appears.
    type: float
    default: 0
  timeout:
    description: Seconds to wait for recovery (1-600).
    type: float
    default: 30
  slo_ms:
    description: Fail when recovery takes longer than this many milliseconds.
    type: float
  expect:
    description: Text the service sends first; a connection counts only if it reads this.
    type: str
    default: ""
  connect_timeout:
    description:
      - Seconds one connection attempt may wait for the answer. With socket activation a
        connection made while the service is dead waits in the backlog; a longer timeout
        lets the probe see it served rather than count it as failed.
    type: float
    default: 0.25
  connect_interval_ms:
    description: Pause between connection attempts (the probe's load on the service).
    type: float
    default: 2
  backend:
    description: C(auto) uses systemd when it is PID 1, else supervisord.
    type: str
    choices: [auto, systemd, supervisord]
    default: auto
"""

EXAMPLES = r"""
- name: Crash-test myapp and require it back within 1 s
  netsvc.resilience.restart_probe:
    name: myapp.service
    port: 8080
    slo_ms: 1000
"""

RETURN = r"""
recovered:
  description: The service ran again with a new main process and accepted a connection.
  returned: always
  type: bool
recovery_ms:
  description: Milliseconds from the (last) kill to the first successful connection.
  returned: when recovered
  type: float
failed_connects:
  description:
    - Connection attempts made after the (last) killed process was gone that a client would
      have seen fail (refused, reset, or no answer within O(connect_timeout)). A connection
      the process had already accepted when it was killed is lost with it and not counted.
  returned: always
  type: int
restarts:
  description: How many times systemd restarted the unit during the probe (NRestarts delta).
  returned: always
  type: int
eaddrinuse_seen:
  description: The journal since the kill mentions EADDRINUSE.
  returned: always
  type: bool
start_limit_hit:
  description: The journal since the kill shows the start limit was hit.
  returned: always
  type: bool
active_at_end:
  description: The unit is active (program RUNNING) when the probe ends.
  returned: always
  type: bool
pid_before:
  description: Main PID killed (first kill).
  returned: always
  type: int
pid_after:
  description: Main PID at the end.
  returned: always
  type: int
journal:
  description: Matching journal lines (EADDRINUSE, start limit), at most 20.
  returned: always
  type: list
  elements: str
verdict:
  description: One line saying what happened.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _restart_probe
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _module


def main():
    _module.execute(AnsibleModule(argument_spec=_restart_probe.SPEC, supports_check_mode=True), _restart_probe.run)


if __name__ == "__main__":
    main()
