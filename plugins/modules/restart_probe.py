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
version_added: 0.1.0
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

import os
import signal as sig
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.netsvc.resilience.plugins.module_utils import _probe as P
from ansible_collections.netsvc.resilience.plugins.module_utils import _unit as U
from ansible_collections.netsvc.resilience.plugins.module_utils import _validate as V


class Target(object):
    def __init__(self, module, name, backend):
        self.module = module
        self.backend = backend
        if backend == "systemd":
            self.name = U.check_unit_name(name)
            self.ctl = module.get_bin_path("systemctl", required=True)
        else:
            self.name = U.check_program_name(U.program_name(name))
            self.ctl = module.get_bin_path("supervisorctl", required=True)

    def state(self):
        """(pid, active, restarts)"""
        if self.backend == "systemd":
            _rc, out, _err = U.run(self.module, [self.ctl, "show", self.name, "-p", "MainPID", "-p", "ActiveState",
                                                 "-p", "NRestarts"], check=False)
            show = U.parse_show(out)
            return (int(show.get("MainPID") or 0), show.get("ActiveState") == "active",
                    int(show.get("NRestarts") or 0))
        _rc, out, _err = U.run(self.module, [self.ctl, "status", self.name], check=False)
        fields = out.split()
        # STARTING counts as running: the process is up, supervisord only waits startsecs
        running = len(fields) > 1 and fields[1] in ("RUNNING", "STARTING")
        pid = 0
        if running:
            _rc, out, _err = U.run(self.module, [self.ctl, "pid", self.name], check=False)
            pid = int(out.strip()) if out.strip().isdigit() else 0
        return pid, running, 0

    def journal(self, since_epoch):
        if self.backend != "systemd":
            return ""
        jc = self.module.get_bin_path("journalctl")
        if not jc:
            return ""
        _rc, out, _err = U.run(self.module, [jc, "-u", self.name, "--since", "@%d" % int(since_epoch), "-o", "cat",
                                             "--no-pager"], check=False)
        return out


def new_pid(target, old):
    """The unit's main PID once it differs from ``old``, else 0."""
    pid = target.state()[0]
    return pid if pid and pid != old else 0


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            port=dict(type="int", required=True),
            host=dict(type="str", default="127.0.0.1"),
            signal=dict(type="str", default="KILL", choices=["KILL", "SEGV", "ABRT", "TERM", "INT", "QUIT", "HUP"]),
            kills=dict(type="int", default=1),
            kill_interval_ms=dict(type="float", default=0),
            timeout=dict(type="float", default=30),
            slo_ms=dict(type="float"),
            expect=dict(type="str", default=""),
            connect_timeout=dict(type="float", default=0.25),
            connect_interval_ms=dict(type="float", default=2),
            backend=dict(type="str", default="auto", choices=["auto", "systemd", "supervisord"]),
        ),
        supports_check_mode=True,
    )
    V.require_python(module)  # before any Python 3 code: a clean message on an old host
    p = module.params
    try:
        # every option before anything is looked at or killed
        V.port(p["port"], "port")
        V.number(p["kills"], "kills", 1, 100)
        V.number(p["kill_interval_ms"], "kill_interval_ms", 0, 60000, " ms")
        V.number(p["timeout"], "timeout", 1, 600, " seconds")
        if p["slo_ms"] is not None:
            V.number(p["slo_ms"], "slo_ms", 0.001, 600000, " ms (a recovery time: positive, at most the timeout)")
        V.number(p["connect_timeout"], "connect_timeout", 0.001, 60, " seconds")
        V.number(p["connect_interval_ms"], "connect_interval_ms", 0.1, 10000, " ms")
        if len(p["expect"]) > 4096:  # the bytes the service answers: any text, bounded
            raise V.InputError("expect is %d characters long; at most 4096" % len(p["expect"]))
        host = P.check_loopback(p["host"])
        backend = p["backend"]
        if backend == "auto":
            backend = "systemd" if os.path.isdir("/run/systemd/system") else "supervisord"
        target = Target(module, p["name"], backend)
    except (P.ProbeError, U.UnitError, V.InputError) as e:
        module.fail_json(msg=to_native(e))
    signum = getattr(sig, "SIG" + p["signal"])
    expect = p["expect"].encode("utf-8")
    interval = max(p["connect_interval_ms"], 0.1) / 1000.0

    pid, active, restarts0 = target.state()
    if not pid:
        # a socket-activated service may not have started yet: one connection starts it
        P.try_connect(host, p["port"], 1.0, expect)
        deadline = time.monotonic() + 5
        pid = (P.wait_until(lambda: target.state()[0], deadline, 0.01) or 0)
        pid, active, restarts0 = target.state()
    if not pid:
        module.fail_json(msg="%s has no running main process to kill (is it started?)" % target.name)
    if module.check_mode:
        module.exit_json(changed=False, recovered=False, failed_connects=0, restarts=0, eaddrinuse_seen=False,
                         start_limit_hit=False, active_at_end=active, pid_before=pid, pid_after=pid, journal=[],
                         verdict="check mode: would send SIG%s to PID %d of %s %d time(s)"
                                 % (p["signal"], pid, target.name, p["kills"]))

    since = time.time() - 1
    deadline = time.monotonic() + p["timeout"]
    pid_before = pid
    killed = []
    t_kill = None
    interval = p["kill_interval_ms"] / 1000.0
    for n in range(p["kills"]):
        if n and interval:
            # a storm at a fixed pace: every interval, whatever main process there is now
            time.sleep(max(0.0, t_kill + interval - time.monotonic()))
            pid = new_pid(target, killed[-1])
            if not pid:
                continue  # nothing new to kill at this tick (restarting, or the start limit was hit)
        elif n:
            # wait for the next main process, then kill it at once
            pid = P.wait_until(lambda old=killed[-1]: new_pid(target, old), deadline, 0.001)
            if not pid:
                break
        if target.backend == "systemd" and not P.in_unit_cgroup(pid, target.name):
            module.fail_json(msg="PID %d is not in %s's cgroup (any more): not signalled" % (pid, target.name),
                             kills_done=len(killed))
        try:
            os.kill(pid, signum)
        except OSError as e:
            module.fail_json(msg="cannot send SIG%s to PID %d: %s" % (p["signal"], pid, to_native(e)))
        t_kill = time.monotonic()
        killed.append(pid)
    if not killed:
        module.fail_json(msg="nothing was killed", kills_done=0)

    # Count only connections made after the killed process is gone: one it had already
    # accepted when the signal landed is lost with it, as in any crash.
    P.wait_until(lambda: P.process_gone(killed[-1]), min(deadline, time.monotonic() + 2), 0.0005)
    failed = [0]
    t_ok = [None]

    def serving():
        if not P.try_connect(host, p["port"], p["connect_timeout"], expect):
            failed[0] += 1  # refused, reset or unanswered: a client would have seen an error
            return False
        t = time.monotonic()
        if target.backend == "supervisord":
            # supervisorctl is slow (a Python start per call): the killed process is gone
            # (waited for above), so whoever answers on the port is the new process
            t_ok[0] = t
            return True
        cur, _act, _r = target.state()
        if cur and cur not in killed:  # answered by a new main process
            t_ok[0] = t
            return True
        # answered, but by the process being killed (the signal is not delivered yet):
        # served, so not a failure, but not a recovery either
        return False

    ok = P.wait_until(serving, deadline, interval)
    recovery_ms = (t_ok[0] - t_kill) * 1000.0 if ok else None
    # give a crash loop the chance to show itself before judging the end state
    time.sleep(0.2)
    pid_after, active_end, restarts1 = target.state()
    found = P.scan_journal(target.journal(since))
    passed, why = P.verdict(bool(ok), recovery_ms, p["slo_ms"])
    # A crash test changes no configuration and leaves the service as it found it (running):
    # not a change, so a playbook with a crash test stays idempotent.
    result = dict(
        changed=False,
        recovered=bool(ok),
        failed_connects=failed[0],
        restarts=max(restarts1 - restarts0, 0),
        eaddrinuse_seen=bool(found["eaddrinuse"]),
        start_limit_hit=bool(found["start_limit"]),
        active_at_end=active_end,
        pid_before=pid_before,
        pid_after=pid_after,
        kills_done=len(killed),
        journal=(found["eaddrinuse"] + found["start_limit"])[:20],
        verdict="%s after SIG%s x%d: %s" % (target.name, p["signal"], len(killed), why),
    )
    if ok:
        result["recovery_ms"] = round(recovery_ms, 2)
    if not passed:
        module.fail_json(msg=result["verdict"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
