# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _hook
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._unit import UnitError

# `systemctl show -p ...` of Debian 12's vendor units, as read in the daemons container
MEMCACHED = {"User": "", "CapabilityBoundingSet": "cap_setgid cap_setuid cap_sys_resource",
             "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "PrivateUsers": "no", "NoExecPaths": ""}
REDIS = {"User": "redis", "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
         "PrivateUsers": "yes", "NoExecPaths": "/", "ExecPaths": "/usr/bin/redis-server /usr/lib /lib"}
NGINX = {"User": "", "CapabilityBoundingSet": "cap_chown cap_dac_override cap_net_admin cap_net_raw",
         "RestrictAddressFamilies": "", "PrivateUsers": "no"}
# systemd 219 shows the bounding set as a number
EL7_FULL = {"User": "", "CapabilityBoundingSet": "18446744073709551615"}
EL7_DROPPED = {"User": "", "CapabilityBoundingSet": "%d" % (0xffffffffff & ~(1 << 12))}

HOOK = "/usr/lib/netsvc-resilience/netsvc-sockclean"


def test_sandbox_blockers_of_real_vendor_units():
    assert _hook.sandbox_blockers(NGINX) == []
    assert _hook.sandbox_blockers(MEMCACHED) == ["CapabilityBoundingSet= without CAP_NET_ADMIN",
                                                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX (no AF_NETLINK)"]
    redis = _hook.sandbox_blockers(REDIS)
    assert redis[0] == "User=redis (no CAP_NET_ADMIN)"
    assert "CapabilityBoundingSet= without CAP_NET_ADMIN" in redis
    assert any(b.startswith("PrivateUsers=yes") for b in redis)
    assert any(b.startswith("NoExecPaths=/") for b in redis)


def test_sandbox_blockers_on_systemd_219_numbers_and_deny_lists():
    assert _hook.sandbox_blockers(EL7_FULL) == []
    assert _hook.sandbox_blockers(EL7_DROPPED) == ["CapabilityBoundingSet= without CAP_NET_ADMIN"]
    assert _hook.sandbox_blockers({"RestrictAddressFamilies": "~AF_NETLINK AF_PACKET"})
    assert _hook.sandbox_blockers({"RestrictAddressFamilies": "~AF_PACKET"}) == []
    assert _hook.sandbox_blockers({"User": "root", "DynamicUser": "no"}) == []
    assert _hook.sandbox_blockers({"DynamicUser": "yes"}) == ["DynamicUser=yes (no CAP_NET_ADMIN)"]


@pytest.mark.parametrize("version,privilege,blockers,line,extra,mode", [
    (252, "auto", [], "+-" + HOOK + " --unit %n 80", {}, "prefix"),
    (231, "auto", ["User=x"], "+-" + HOOK + " --unit %n 80", {}, "prefix"),
    (219, "auto", [], "-" + HOOK + " --unit %n 80", {}, "none"),
    (219, "auto", ["User=redis (no CAP_NET_ADMIN)"], "-" + HOOK + " --unit %n 80",
     {"PermissionsStartOnly": "yes"}, "permissions_start_only"),
    (230, "permissions_start_only", [], "-" + HOOK + " --unit %n 80", {"PermissionsStartOnly": "yes"},
     "permissions_start_only"),
    (252, "none", ["User=x"], "-" + HOOK + " --unit %n 80", {}, "none"),
])
def test_plan_exec_per_version_and_privilege(version, privilege, blockers, line, extra, mode):
    plan = _hook.plan_exec(HOOK, "web.service", [80], version, privilege, blockers)
    assert (plan["line"], plan["extra_service"], plan["mode"]) == (line, extra, mode)


def test_plan_exec_warnings_and_refusals():
    pso = _hook.plan_exec(HOOK, "redis.service", [6379], 219, "auto", ["User=redis (no CAP_NET_ADMIN)"])
    assert "PermissionsStartOnly=yes" in pso["warnings"][0] and "ExecStop=" in pso["warnings"][0]
    assert "needed because of User=redis" in pso["warnings"][0]
    none = _hook.plan_exec(HOOK, "redis.service", [6379], 252, "none", ["User=redis (no CAP_NET_ADMIN)"])
    assert "cannot destroy sockets there: User=redis" in none["warnings"][0]
    assert _hook.plan_exec(HOOK, "web.service", [80], 252, "auto", [])["warnings"] == []
    with pytest.raises(UnitError, match="systemd 252 has the '\\+' prefix .since 231.*use privilege=auto"):
        _hook.plan_exec(HOOK, "web.service", [80], 252, "permissions_start_only", ["User=x"])
    with pytest.raises(UnitError, match="systemd 219 has no '\\+' ExecStartPre= prefix"):
        _hook.plan_exec(HOOK, "web.service", [80], 219, "prefix", [])
    with pytest.raises(UnitError, match="privilege 'root'"):
        _hook.plan_exec(HOOK, "web.service", [80], 252, "root", [])


EX_PRIVILEGED = ("{ path=%s ; argv[]=%s --unit memcached.service 11211 ; flags=ignore-failure privileged ; "
                 "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }" % (HOOK, HOOK))
EX_PLAIN = EX_PRIVILEGED.replace("flags=ignore-failure privileged", "flags=ignore-failure")
PRE = ("{ path=%s ; argv[]=%s --unit memcached.service 11211 ; ignore_errors=yes ; start_time=[n/a] ; "
       "stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }" % (HOOK, HOOK))


def _failing(checks, show):
    return [prop for _d, prop, check, _e in checks if not check(show.get(prop, ""))]


def test_expected_readback_checks_argv_and_privilege_flags():
    checks = _hook.expected_readback(HOOK, "memcached.service", [11211], "prefix", 252)
    assert _failing(checks, {"ExecStartPre": PRE, "ExecStartPreEx": EX_PRIVILEGED}) == []
    assert _failing(checks, {"ExecStartPre": PRE, "ExecStartPreEx": EX_PLAIN}) == ["ExecStartPreEx"]
    # systemctl show omits an empty list: a reset ExecStartPre= reads as absent
    assert _failing(checks, {}) == ["ExecStartPre", "ExecStartPreEx"]
    other_port = _hook.expected_readback(HOOK, "memcached.service", [11212], "prefix", 252)
    assert _failing(other_port, {"ExecStartPre": PRE, "ExecStartPreEx": EX_PRIVILEGED}) == [
        "ExecStartPre", "ExecStartPreEx"]


def test_expected_readback_before_243_and_with_permissions_start_only():
    old = _hook.expected_readback(HOOK, "memcached.service", [11211], "permissions_start_only", 239)
    assert [c[1] for c in old] == ["ExecStartPre", "PermissionsStartOnly"]
    assert _failing(old, {"ExecStartPre": PRE, "PermissionsStartOnly": "yes"}) == []
    assert _failing(old, {"ExecStartPre": PRE, "PermissionsStartOnly": "no"}) == ["PermissionsStartOnly"]


def test_pick_payload_native_else_python_with_a_stable_interpreter():
    payload = {"native": {"x86_64": b"\x7fELF-x86", "aarch64": b"\x7fELF-arm"}, "python": "print('hook')\n"}
    assert _hook.pick_payload(payload, "x86_64", "/usr/bin/python3") == (b"\x7fELF-x86", "native-x86_64")
    assert _hook.pick_payload(payload, "arm64", "/usr/bin/python3") == (b"\x7fELF-arm", "native-aarch64")
    text, kind = _hook.pick_payload(payload, "ppc64le", "/usr/libexec/platform-python")
    assert kind == "python" and text == "#!/usr/libexec/platform-python -IS\nprint('hook')\n"
    with pytest.raises(UnitError, match="s390x"):
        _hook.pick_payload({"native": {}}, "s390x", "/usr/bin/python3")
    assert _hook.host_python("/opt/py/bin/python", exists=lambda p: p == "/usr/libexec/platform-python") \
        == "/usr/libexec/platform-python"
    assert _hook.host_python("/opt/py/bin/python", exists=lambda p: False) == "/opt/py/bin/python"
