# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The crash test (netsvc.resilience.restart_probe): kill the service like a crash would and
measure SIGKILL -> serving.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). The stdlib-only helpers are in _probe.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import time

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _command,
    _failure,
    _holder,
    _supervisor,
    _unit,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._probe import (
    ProbeError,
    check_loopback,
    in_unit_cgroup,
    process_gone,
    scan_journal,
    try_connect,
    verdict,
    wait_until,
)

SIGNALS = ["KILL", "SEGV", "ABRT", "TERM", "INT", "QUIT", "HUP"]

SPEC = dict(
    name=dict(type="str", required=True),
    port=dict(type="int", required=True),
    host=dict(type="str", default="127.0.0.1"),
    signal=dict(type="str", default="KILL", choices=SIGNALS),
    kills=dict(type="int", default=1),
    kill_interval_ms=dict(type="float", default=0),
    timeout=dict(type="float", default=30),
    slo_ms=dict(type="float"),
    expect=dict(type="str", default=""),
    connect_timeout=dict(type="float", default=0.25),
    connect_interval_ms=dict(type="float", default=2),
    backend=dict(type="str", default="auto", choices=["auto", "systemd", "supervisord"]),
)


class Target(object):
    """The service being crash-tested: its main PID, state and journal, systemd or supervisord."""

    def __init__(self, module, name, backend):
        self.module = module
        self.backend = backend
        if backend == "systemd":
            self.name = _unit.check_unit_name(name)
            self.ctl = module.get_bin_path("systemctl", required=True)
        else:
            self.name = _supervisor.check_program_name(_supervisor.program_name(name))
            self.ctl = module.get_bin_path("supervisorctl", required=True)

    def state(self):
        """(pid, active, restarts)"""
        if self.backend == "systemd":
            argv = [self.ctl, "show", self.name, "-p", "MainPID", "-p", "ActiveState", "-p", "NRestarts"]
            _rc, out, _err = _command.run(self.module, argv, check=False)
            show = _unit.parse_show(out)
            return (int(show.get("MainPID") or 0), show.get("ActiveState") == "active",
                    int(show.get("NRestarts") or 0))
        _rc, out, _err = _command.run(self.module, [self.ctl, "status", self.name], check=False)
        fields = out.split()
        # STARTING counts as running: the process is up, supervisord only waits startsecs
        running = len(fields) > 1 and fields[1] in ("RUNNING", "STARTING")
        pid = 0
        if running:
            _rc, out, _err = _command.run(self.module, [self.ctl, "pid", self.name], check=False)
            # a held program's process is the holder: the server is its child
            pid = _holder.server_pid(int(out.strip())) if out.strip().isdigit() else 0
        return pid, running, 0

    def new_pid(self, old):
        """The main PID once it differs from ``old``, else 0."""
        pid = self.state()[0]
        return pid if pid and pid != old else 0

    def journal(self, since_epoch):
        if self.backend != "systemd":
            return ""
        jc = self.module.get_bin_path("journalctl")
        if not jc:
            return ""
        argv = [jc, "-u", self.name, "--since", "@%d" % int(since_epoch), "-o", "cat", "--no-pager"]
        _rc, out, _err = _command.run(self.module, argv, check=False)
        return out


def check_input(p):
    """Every option, before anything is looked at or killed. Returns the loopback host."""
    _validate.port(p["port"], "port")
    _validate.number(p["kills"], "kills", 1, 100)
    _validate.number(p["kill_interval_ms"], "kill_interval_ms", 0, 60000, " ms")
    _validate.number(p["timeout"], "timeout", 1, 600, " seconds")
    if p["slo_ms"] is not None:
        _validate.number(p["slo_ms"], "slo_ms", 0.001, 600000, " ms (a recovery time: positive, at most the timeout)")
    _validate.number(p["connect_timeout"], "connect_timeout", 0.001, 60, " seconds")
    _validate.number(p["connect_interval_ms"], "connect_interval_ms", 0.1, 10000, " ms")
    if len(p["expect"]) > 4096:  # the bytes the service answers: any text, bounded
        raise _validate.InputError("expect is %d characters long; at most 4096" % len(p["expect"]))
    return check_loopback(p["host"])


def first_pid(target, host, port, expect):
    """(pid, active, restarts) now; a socket-activated service not started yet gets one
    connection, which starts it."""
    pid, active, restarts = target.state()
    if not pid:
        try_connect(host, port, 1.0, expect)
        wait_until(lambda: target.state()[0], time.monotonic() + 5, 0.01)
        pid, active, restarts = target.state()
    return pid, active, restarts


def kill_all(module, target, pid, p, deadline):
    """Send the signal ``kills`` times: each new main process at once, or one per
    ``kill_interval_ms`` tick. Returns (killed PIDs, monotonic time of the last kill)."""
    signum = getattr(signal, "SIG" + p["signal"])
    interval = p["kill_interval_ms"] / 1000.0
    killed, t_kill = [], None
    for n in range(p["kills"]):
        if n and interval:
            # a storm at a fixed pace: every interval, whatever main process there is now
            time.sleep(max(0.0, t_kill + interval - time.monotonic()))
            pid = target.new_pid(killed[-1])
            if not pid:
                continue  # nothing new to kill at this tick (restarting, or the start limit was hit)
        elif n:
            # wait for the next main process, then kill it at once
            pid = wait_until(lambda old=killed[-1]: target.new_pid(old), deadline, 0.001)
            if not pid:
                break
        if target.backend == "systemd" and not in_unit_cgroup(pid, target.name):
            raise _failure.Failure("PID %d is not in %s's cgroup (any more): not signalled" % (pid, target.name),
                                   kills_done=len(killed))
        try:
            os.kill(pid, signum)
        except OSError as e:
            raise _failure.Failure("cannot send SIG%s to PID %d: %s" % (p["signal"], pid, e))
        t_kill = time.monotonic()
        killed.append(pid)
    if not killed:
        raise _failure.Failure("nothing was killed", kills_done=0)
    return killed, t_kill


def wait_serving(target, host, p, killed, deadline):
    """Connect until a NEW main process answers. Returns (monotonic time it did or None,
    failed connects). Only connections made after the killed process is gone count: one it
    had already accepted when the signal landed is lost with it, as in any crash."""
    wait_until(lambda: process_gone(killed[-1]), min(deadline, time.monotonic() + 2), 0.0005)
    expect = p["expect"].encode("utf-8")
    failed = [0]
    t_ok = [None]

    def serving():
        if not try_connect(host, p["port"], p["connect_timeout"], expect):
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

    wait_until(serving, deadline, max(p["connect_interval_ms"], 0.1) / 1000.0)
    return t_ok[0], failed[0]


def run(module):
    """restart_probe: kill the service like a crash would and measure SIGKILL -> serving.
    Returns (result, None) or (result, the verdict) when it did not come back in time."""
    p = module.params
    try:
        host = check_input(p)
        target = Target(module, p["name"], _unit.resolve_backend(p["backend"]))
    except (ProbeError, _unit.UnitError, _validate.InputError) as e:
        raise _failure.Failure(str(e))
    pid, active, restarts0 = first_pid(target, host, p["port"], p["expect"].encode("utf-8"))
    if not pid:
        raise _failure.Failure("%s has no running main process to kill (is it started?)" % target.name)
    if module.check_mode:
        return dict(changed=False, recovered=False, failed_connects=0, restarts=0, eaddrinuse_seen=False,
                    start_limit_hit=False, active_at_end=active, pid_before=pid, pid_after=pid, journal=[],
                    verdict="check mode: would send SIG%s to PID %d of %s %d time(s)"
                            % (p["signal"], pid, target.name, p["kills"])), None
    since = time.time() - 1
    deadline = time.monotonic() + p["timeout"]
    killed, t_kill = kill_all(module, target, pid, p, deadline)
    t_ok, failed = wait_serving(target, host, p, killed, deadline)
    recovery_ms = (t_ok - t_kill) * 1000.0 if t_ok else None
    time.sleep(0.2)  # give a crash loop the chance to show itself before judging the end state
    pid_after, active_end, restarts1 = target.state()
    found = scan_journal(target.journal(since))
    passed, why = verdict(t_ok is not None, recovery_ms, p["slo_ms"])
    # A crash test changes no configuration and leaves the service as it found it (running):
    # not a change, so a playbook with a crash test stays idempotent.
    result = dict(changed=False, recovered=t_ok is not None, failed_connects=failed,
                  restarts=max(restarts1 - restarts0, 0), eaddrinuse_seen=bool(found["eaddrinuse"]),
                  start_limit_hit=bool(found["start_limit"]), active_at_end=active_end, pid_before=pid,
                  pid_after=pid_after, kills_done=len(killed),
                  journal=(found["eaddrinuse"] + found["start_limit"])[:20],
                  verdict="%s after SIG%s x%d: %s" % (target.name, p["signal"], len(killed), why))
    if t_ok is not None:
        result["recovery_ms"] = round(recovery_ms, 2)
    return result, None if passed else result["verdict"]
