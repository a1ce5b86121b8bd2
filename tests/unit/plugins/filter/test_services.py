# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.netsvc.resilience.plugins.filter.services import (
    canaries,
    given_options,
    hooked_services,
    reserved_ports,
    restart_hook,
    restart_policies,
    select_services,
    service_ports,
)

SERVICES = [
    {"name": "a.service", "ports": [8080, 443]},
    {"name": "b.service", "ports": [9000], "reserve_ports": False},
    {"name": "c.service", "ports": ["7000-7010", 443], "reserve_ports": True},
    {"name": "d.service"},
]


def test_flag_false_excludes_missing_flag_includes():
    assert service_ports(SERVICES, "reserve_ports") == [443, "7000-7010", 8080]


def test_without_flag_all_ports():
    assert service_ports(SERVICES) == [443, "7000-7010", 8080, 9000]


def test_empty_and_bad_input():
    assert service_ports(None) == []
    with pytest.raises(AnsibleFilterError):
        service_ports("a.service")
    with pytest.raises(AnsibleFilterError):
        service_ports(["a.service"])


def names(services):
    return [x["name"] for x in services]


def test_select_services_uses_model_defaults():
    services = [
        {"name": "a", "ports": [1]},
        {"name": "b", "ports": [2], "cleanup": False},
        {"name": "c", "ports": [3], "socket_activation": True},
        {"name": "d"},
        {"name": "e", "ports": [5], "backend": "supervisord"},
        {"name": "f", "ports": [6], "cleanup": True},
    ]
    # cleanup defaults to auto: not off, but not an explicit true either
    assert names(select_services(services, has_ports=True, cleanup=[True, "auto"],
                                 socket_activation=False)) == ["a", "e", "f"]
    assert names(select_services(services, cleanup=True)) == ["f"]
    assert names(select_services(services, backend=["auto", "systemd"])) == ["a", "b", "c", "d", "f"]
    assert names(select_services(services, backend="supervisord")) == ["e"]
    with pytest.raises(AnsibleFilterError):
        select_services([{"ports": [1]}])


def test_restart_policies_merge_policy_overrides_and_wrap_supervisord_commands():
    services = [
        {"name": "web.service", "ports": [8080, "9000-9010"], "restart": {"start_limit_burst": 50},
         "cleanup": True, "reserve_ports": False},
        {"name": "job", "backend": "supervisord", "ports": [7000], "command": "/usr/bin/job --port 7000"},
        {"name": "raw", "backend": "supervisord", "ports": [7001], "command": "/usr/bin/raw", "cleanup": False},
        {"name": "sa", "ports": [7002], "socket_activation": True, "accepts_inherited_fds": True},
    ]
    out = restart_policies(services, {"restart_sec": 0, "start_limit_burst": 20}, "/usr/lib/x/hook", "auto")
    assert out[0] == {"restart_sec": 0, "start_limit_burst": 50, "name": "web.service", "backend": "auto",
                      "socket_activation": False, "accepts_inherited_fds": False, "ports": [8080],
                      "cleanup_hook": "/usr/lib/x/hook"}
    assert out[1]["command"] == "/usr/bin/job --port 7000" and out[1]["cleanup_hook"] == "/usr/lib/x/hook"
    assert out[1]["backend"] == "supervisord" and out[1]["start_limit_burst"] == 20
    assert out[2]["command"] == "/usr/bin/raw" and "cleanup_hook" not in out[2]
    assert out[3]["socket_activation"] and out[3]["accepts_inherited_fds"] and out[3]["ports"] == [7002]
    assert "cleanup_hook" not in restart_policies(services[1:2], None, "", "auto")[0]
    # a program defined in supervisord's own files needs no command here, and still gets the hook
    defined = restart_policies([{"name": "web", "ports": [9500]}], None, "/h", "auto")[0]
    assert "command" not in defined and defined["cleanup_hook"] == "/h"
    assert restart_policies([dict(services[1], user="job")], None, "/h")[0]["user"] == "job"


def test_restart_policies_bad_restart_is_an_error_naming_the_service():
    with pytest.raises(AnsibleFilterError) as e:
        restart_policies([{"name": "web", "restart": "always"}])
    assert "service web: restart must be a dict" in str(e.value)


def test_given_options_leave_unset_values_to_the_module():
    names = ["path", "apply", "live_readonly", "privilege"]
    assert given_options(names, ["/etc/sysctl.d/x.conf", None, False, ""]) == {
        "path": "/etc/sysctl.d/x.conf", "live_readonly": False}
    assert given_options([], []) == {}
    with pytest.raises(AnsibleFilterError, match="2 names but 1 values"):
        given_options(["a", "b"], [1])


HOSTS = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("canary, expected", [
    (1, ["a"]), ("2", ["a", "b"]), ("40%", ["a", "b"]), ("10%", ["a"]), ("100%", HOSTS), (" 60% ", ["a", "b", "c"]),
    (9, HOSTS),
])
def test_canaries_as_serial_makes_the_first_batch(canary, expected):
    assert canaries(HOSTS, canary) == expected


@pytest.mark.parametrize("bad", [True, False, 0, "0", -1, "abc", "150%", "0%", "%", 1.5, None, "40 %x"])
def test_a_canary_serial_would_not_read_as_a_count_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="netsvc_canary"):
        canaries(HOSTS, bad)


@pytest.mark.parametrize("entry, message", [
    ({"name": "web", "port": [8080]}, "netsvc_services[0] (web): unknown key(s) port; the keys are"),
    ({"name": "web", "cleanup": "atuo"}, "cleanup 'atuo' must be one of true, false, auto"),
    ({"name": "web", "cleanup": 1}, "cleanup 1 must be one of"),
    ({"name": "web", "backend": "systemv"}, "backend 'systemv' must be one of auto, systemd, supervisord"),
])
def test_a_role_used_alone_refuses_what_harden_restart_refuses(entry, message):
    """Issue 38: crash_recovery alone took `port: [8080]` (changed=1, no port) and `cleanup: atuo`."""
    import re

    for use in (restart_policies, select_services, service_ports):
        with pytest.raises(AnsibleFilterError, match=re.escape(message)):
            use([{"name": "ok"}, entry][1:])
    assert restart_policies([{"name": "web", "cleanup": False, "ports": [80]}])[0]["ports"] == [80]


def test_the_data_model_keys_are_harden_restarts_argument_spec():
    import os

    import yaml

    from ansible_collections.netsvc.resilience.plugins.filter import services

    spec = os.path.join(os.path.dirname(services.__file__), "..", "..", "roles", "harden_restart", "meta",
                        "argument_specs.yml")
    with open(spec) as f:
        options = yaml.safe_load(f)["argument_specs"]["main"]["options"]["netsvc_services"]["options"]
    assert sorted(options) == sorted(services.SERVICE_KEYS)
    assert sorted(options["backend"]["choices"]) == sorted(services._CHOICES["backend"])


def test_reserved_ports_with_the_kernel_concern_and_without_it():
    services = [
        {"name": "a.service", "ports": [8080]},                                  # hooked (cleanup auto)
        {"name": "b.service", "ports": [9000], "cleanup": False},                # no hook
        {"name": "c.service", "ports": [7000], "socket_activation": "preload"},  # a socket unit: no hook
        {"name": "d.service", "ports": [7100], "cleanup": True, "reserve_ports": False},
        {"name": "e.service", "ports": [7200], "cleanup": True},
        {"name": "f.service"},
    ]
    # kernel on: every service's ports but reserve_ports: false; kernel_tuning_reserved_ports wins
    assert reserved_ports(services, True) == [7000, 7200, 8080, 9000]
    assert reserved_ports(services, True, [1234]) == [1234]
    assert reserved_ports(services, True, []) == []
    # kernel off, the hook on: only what the hook cleans
    assert reserved_ports(services, False) == [7200, 8080]
    assert reserved_ports(services, False, [1234]) == [7200, 8080]
    assert [s["name"] for s in hooked_services(services)] == ["a.service", "b.service", "d.service", "e.service"]
    assert reserved_ports(None, False) == [] and hooked_services(None) == []


def test_restart_hook_from_the_same_call_or_prestart_cleanup():
    # the hook options of the same call decide when set
    assert restart_hook({"services": []}) == "auto"
    assert restart_hook({"state": "present"}, "absent") == "auto"
    assert restart_hook({"state": "absent"}, "present", "/opt/hook") == ""
    # else prestart_cleanup's own variables: absent -> none, a path when set, else auto
    assert restart_hook({}) == "auto"
    assert restart_hook({}, None, None) == "auto"
    assert restart_hook({}, "present", "/opt/netsvc/hook") == "/opt/netsvc/hook"
    assert restart_hook({}, "absent", "/opt/netsvc/hook") == ""
    with pytest.raises(AnsibleFilterError, match="'gone' must be present or absent"):
        restart_hook({}, "gone")
    with pytest.raises(AnsibleFilterError, match="must be a dict"):
        restart_hook(["auto"])
