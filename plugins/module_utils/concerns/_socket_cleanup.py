# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cleaning a port's leftover sockets now (netsvc.resilience.socket_cleanup).

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). The sock_diag work is _sockdiag's (which
is also the Python twin of the restart hook and so imports nothing of the collection).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _failure, _sockdiag, _validate
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._sysctl import SysctlError, parse_ports

SPEC = dict(
    ports=dict(type="list", elements="raw", required=True),
    states=dict(type="list", elements="str", default=list(_sockdiag.ORPHAN_STATES),
                choices=list(_sockdiag.ORPHAN_STATES) + list(_sockdiag.LIVE_STATES) + ["syn-recv", "syn-sent"]),
    family=dict(type="str", default="all", choices=["all", "inet", "inet6"]),
    local_address=dict(type="str"),
    mode=dict(type="str", default="kill", choices=["kill", "report"]),
    force=dict(type="bool", default=False),
    fail_on_listener=dict(type="bool", default=False),
    require=dict(type="bool", default=False),
)

FAMILIES = {"all": (socket.AF_INET, socket.AF_INET6), "inet": (socket.AF_INET,), "inet6": (socket.AF_INET6,)}


def capabilities():
    """What this kernel does for this process: a real try on loopback sockets of its own."""
    try:
        with open("/proc/self/status") as f:
            cap = _sockdiag.has_cap_net_admin(f.read())
    except (IOError, OSError):
        cap = None
    probe = _sockdiag.probe_destroy()
    return {"kernel": os.uname()[2], "cap_net_admin": cap, "timewait_destroy": probe["timewait"],
            "orphan_destroy": probe["orphan"], "probe_errors": probe["errors"]}


def format_counts(counts):
    return "".join("%s %d\n" % kv for kv in sorted(counts.items()))


def check_input(p):
    """(ports as ranges, the local address or None); raises V.InputError naming the value."""
    try:
        ports = parse_ports(p["ports"])
    except SysctlError as e:
        raise _validate.InputError(str(e).replace("reserved port", "port"))
    if not ports:
        raise _validate.InputError("ports is empty: give at least one local port")
    live = [s for s in p["states"] if s in _sockdiag.LIVE_STATES]
    if live and not p["force"]:
        raise _validate.InputError("states %s belong to live processes (their connections would be cut): "
                                   "set force=true to clean them" % ", ".join(live))
    local = p["local_address"]
    if local:
        import ipaddress  # Python 3 only: imported here so that this file imports under 2.7

        try:
            local = str(ipaddress.ip_address(u"%s" % local))
        except ValueError:
            raise _validate.InputError("local_address %r is not an IP address" % local)
    return ports, local


def clean(module, p, ports, local, kill, caps):
    """sock_diag: look (and with fail_on_listener fail on a live listener before anything is
    cleaned), then destroy. Returns _sockdiag.cleanup's report with listener owners."""
    families = FAMILIES[p["family"]]
    try:
        r = _sockdiag.cleanup(ports, tuple(p["states"]), "report" if p["fail_on_listener"] or not kill else "kill",
                              local, families)
        if kill and p["fail_on_listener"] and not r["listeners"]:
            r = _sockdiag.cleanup(ports, tuple(p["states"]), "kill", local, families)
    except _sockdiag.DiagError as e:
        raise _failure.Failure("sock_diag is not usable here: %s" % e, capabilities=caps)
    owners = _sockdiag.listener_owners({x["inode"] for x in r["listeners"]}) if r["listeners"] else {}
    for lst in r["listeners"]:
        lst["owners"] = owners.get(lst["inode"], [])
    if r["listeners"] and p["fail_on_listener"]:
        who = ", ".join("%s (pid %s)" % (o["command"], o["pid"]) for x in r["listeners"] for o in x["owners"])
        raise _failure.Failure(
            "port conflict: %s listening on %s; a live listener is not leftover state, nothing was cleaned"
            % (who or "a process", ", ".join("%s:%d" % (x["address"], x["port"]) for x in r["listeners"])),
            listeners=r["listeners"], before=r["before"], after=r["after"], capabilities=caps)
    return r


def run(module):
    """socket_cleanup: returns (the result, why sockets were left or None when require is met)."""
    p = module.params
    try:
        ports, local = check_input(p)
    except _validate.InputError as e:
        raise _failure.Failure(str(e))
    caps = capabilities()
    kill = p["mode"] == "kill" and not module.check_mode
    r = clean(module, p, ports, local, kill, caps)
    would = sum(r["before"].values())
    supported = {s: r["supported"].get(s) for s in p["states"]}
    if not kill:  # not tried: say what the probe found this kernel does
        for s in p["states"]:
            supported[s] = caps["timewait_destroy"] if s in _sockdiag.TIMEWAIT_KIND else caps["orphan_destroy"]
    result = dict(changed=bool(r["destroyed"]) or (module.check_mode and p["mode"] == "kill" and would > 0),
                  before=r["before"], after=r["after"], destroyed=r["destroyed"],
                  would_destroy=would if not kill else 0, refused=r["refused"], listeners=r["listeners"],
                  supported=supported, capabilities=caps)
    if module._diff:
        after = {} if module.check_mode and p["mode"] == "kill" else r["after"]
        result["diff"] = dict(before_header="sockets on ports", after_header="sockets on ports",
                              before=format_counts(r["before"]), after=format_counts(after))
    left = sum(r["after"].values())
    if kill and p["require"] and left:
        why = _sockdiag.explain(r, caps["kernel"], os.getuid(), left)
        return result, "%d socket(s) left on the ports: %s" % (left, why)
    return result, None
