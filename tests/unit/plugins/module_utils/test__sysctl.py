# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure sysctl logic of netsvc.resilience.sysctl_tcp: no host needed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _sysctl

K = _sysctl.RESERVED_PORTS_KEY

# ---------------------------------------------------------------- validation table

GOOD = [
    ("net.ipv4.tcp_fin_timeout", 15, "15"),
    ("net.ipv4.tcp_fin_timeout", " 30 ", "30"),
    ("net.ipv4.tcp_tw_reuse", 2, "2"),
    ("net.ipv4.tcp_tw_reuse", True, "1"),
    ("net.core.somaxconn", "4096", "4096"),
    ("net.ipv4.ip_local_port_range", "32768   60999", "32768 60999"),
    ("net.ipv4.ip_local_port_range", [1024, 65000], "1024 65000"),
    ("net.ipv4.tcp_rmem", "4096 131072 6291456", "4096 131072 6291456"),
    ("net.ipv4.tcp_max_tw_buckets", 262144, "262144"),
    (K, "9000-9010, 8080", "8080,9000-9010"),
    (K, [8080, "8081", "8082-8090"], "8080-8090"),
    (K, "", ""),
    ("net.ipv4.tcp_congestion_control", "bbr", "bbr"),  # generic rule: a simple word
    ("net.ipv6.conf.all.disable_ipv6", 0, "0"),
    ("net.core.default_qdisc", "fq_codel", "fq_codel"),
]

BAD = [
    ("net.ipv4.tcp_fin_timeout", "0", "out of range 1..3600"),
    ("net.ipv4.tcp_fin_timeout", "abc", "must be an integer"),
    ("net.ipv4.tcp_fin_timeout", "15; reboot", "must be an integer"),
    ("net.ipv4.tcp_tw_reuse", 3, "out of range 0..2"),
    ("net.ipv4.tcp_syncookies", "-1", "out of range 0..2"),
    ("net.core.somaxconn", "1\nnet.ipv4.ip_forward=1", "must be an integer"),
    ("net.ipv4.ip_local_port_range", "60999 32768", "low <= high"),
    ("net.ipv4.ip_local_port_range", "1024", "two integers"),
    ("net.ipv4.ip_local_port_range", "0 100", "out of range 1..65535"),
    ("net.ipv4.tcp_rmem", "1 2", "3 integers"),
    ("net.ipv4.tcp_rmem", "3 2 1", "increasing order"),
    (K, "80;81", "may hold only digits"),
    (K, "70000", "use an integer 1-65535"),
    (K, "90-80", "1 <= LOW <= HIGH <= 65535"),
    (K, "0", "use an integer 1-65535"),
    ("net.ipv4.tcp_congestion_control", "bbr$(id)", "is refused"),
    ("net.ipv4.tcp_congestion_control", "a\nb", "is refused"),
    ("net.ipv4.tcp_congestion_control", "'cubic'", "is refused"),
    ("net.core.default_qdisc", "fq  codel", "is refused"),
    ("net.ipv4.tcp_fin_timeout", {"a": 1}, "not a string"),
]


@pytest.mark.parametrize("key,value,expected", GOOD)
def test_good_values_normalise(key, value, expected):
    assert _sysctl.normalize_value(key, value) == expected


@pytest.mark.parametrize("key,value,fragment", BAD)
def test_bad_values_name_key_value_and_rule(key, value, fragment):
    with pytest.raises(_sysctl.SysctlError) as err:
        _sysctl.normalize_value(key, value)
    msg = str(err.value)
    assert fragment in msg
    assert key in msg or key == K


@pytest.mark.parametrize("key", [
    "kernel.panic", "vm.swappiness", "net.ipv4..tcp_fin_timeout", "net.ipv4", "net.ipv4.a b",
    "net.ipv4.tcp_fin_timeout\n", "net.ipv4.$x", "fs.file-max", "../etc/passwd",
])
def test_key_names_outside_scope_are_refused(key):
    with pytest.raises(_sysctl.SysctlError) as err:
        _sysctl.check_key_name(key)
    assert "not allowed" in str(err.value)


def test_tw_recycle_is_refused_with_the_reason():
    with pytest.raises(_sysctl.SysctlError) as err:
        _sysctl.check_key_name("net.ipv4.tcp_tw_recycle")
    assert "removed in Linux 4.12" in str(err.value)
    assert "NAT" in str(err.value)


def test_slash_keys_are_normalised():
    assert _sysctl.normalize_key("net/ipv4/tcp_fin_timeout") == "net.ipv4.tcp_fin_timeout"
    assert _sysctl.normalize_key("net/ipv4/conf/eth0.100/rp_filter") == "net.ipv4.conf.eth0/100.rp_filter"
    assert _sysctl.normalize_key("net.core.somaxconn") == "net.core.somaxconn"


# ---------------------------------------------------------------- port sets


def test_port_ranges_merge_as_sets():
    assert _sysctl.parse_ports("9000-9010,8080, 9005 ,9011") == [(8080, 8080), (9000, 9011)]
    assert _sysctl.format_ports(_sysctl.parse_ports("1,2,3,5")) == "1-3,5"


def test_port_subtraction_splits_ranges():
    assert _sysctl.subtract_ranges([(9000, 9010)], [(9005, 9005)]) == [(9000, 9004), (9006, 9010)]
    assert _sysctl.subtract_ranges([(1, 5)], [(1, 10)]) == []
    assert _sysctl.subtract_ranges([(1, 5), (8, 8)], [(9, 9)]) == [(1, 5), (8, 8)]


def test_port_values_compare_as_sets():
    assert _sysctl.values_equal(K, "8080,9000-9001", "9000,9001, 8080")
    assert not _sysctl.values_equal(K, "8080", "8081")
    assert _sysctl.values_equal("net.ipv4.ip_local_port_range", "1024\t65000", "1024 65000")


# ---------------------------------------------------------------- sysctl.d files


def test_parse_conf_skips_comments_and_normalises():
    text = "# c\n; c2\n\nnet/ipv4/tcp_fin_timeout=30\n-net.core.somaxconn = 1024\nbogus line\n"
    assert _sysctl.parse_conf(text) == [
        ("net.ipv4.tcp_fin_timeout", "30", 4),
        ("net.core.somaxconn", "1024", 5),
    ]


def test_ordered_files_masks_and_sorts_like_systemd():
    listing = {
        "/etc/sysctl.d": ["99-sysctl.conf", "50-local.conf", "README"],
        "/usr/lib/sysctl.d": ["50-local.conf", "10-default.conf", "99-zz.conf"],
        "/run/sysctl.d": ["60-run.conf"],
    }
    assert _sysctl.ordered_files(listing, conf_exists=True) == [
        "/usr/lib/sysctl.d/10-default.conf",
        "/etc/sysctl.d/50-local.conf",  # masks /usr/lib/sysctl.d/50-local.conf
        "/run/sysctl.d/60-run.conf",
        "/etc/sysctl.d/99-sysctl.conf",
        "/usr/lib/sysctl.d/99-zz.conf",
        "/etc/sysctl.conf",
    ]


def test_overrides_only_from_files_applied_later_with_other_values():
    own = "/etc/sysctl.d/90-netsvc-resilience.conf"
    files = [
        ("/usr/lib/sysctl.d/10-default.conf", "net.core.somaxconn = 128\n"),
        (own, "net.core.somaxconn = 4096\n"),
        ("/etc/sysctl.d/95-same.conf", "net.ipv4.tcp_fin_timeout = 15\n"),
        ("/etc/sysctl.d/99-other.conf", "net.core.somaxconn=1024\nnet.ipv4.tcp_*=7\n"),
    ]
    desired = {"net.core.somaxconn": "4096", "net.ipv4.tcp_fin_timeout": "15"}
    assert _sysctl.find_overrides(own, desired, files) == {
        "net.core.somaxconn": [{"file": "/etc/sysctl.d/99-other.conf", "value": "1024"}],
        "net.ipv4.tcp_fin_timeout": [{"file": "/etc/sysctl.d/99-other.conf", "value": "7"}],
    }


def test_overrides_when_our_file_does_not_exist_yet():
    own = "/etc/sysctl.d/90-netsvc-resilience.conf"
    files = [
        ("/usr/lib/sysctl.d/50-x.conf", "net.core.somaxconn = 1\n"),
        ("/usr/lib/sysctl.d/90-netsvc-resilience.conf", "net.core.somaxconn = 2\n"),  # masked
        ("/etc/sysctl.conf", "net.core.somaxconn = 3\n"),
    ]
    assert _sysctl.find_overrides(own, {"net.core.somaxconn": "4096"}, files) == {
        "net.core.somaxconn": [{"file": "/etc/sysctl.conf", "value": "3"}],
    }


def test_render_and_state_round_trip():
    text = _sysctl.render_conf({"net.core.somaxconn": "4096", K: "8080"},
                               {"net.core.somaxconn": "128"}, [(8080, 8080)], "Ansible managed: x")
    assert text.startswith("# Ansible managed: x\n")
    assert "net.core.somaxconn = 4096\n" in text
    assert _sysctl.parse_state(text) == ({"net.core.somaxconn": "128"}, [(8080, 8080)])
    assert {k: v for k, v, _n in _sysctl.parse_conf(text)} == {"net.core.somaxconn": "4096", K: "8080"}


# ---------------------------------------------------------------- planning

LIVE = {
    "net.ipv4.tcp_fin_timeout": "60",
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_max_syn_backlog": "512",
    "net.ipv4.tcp_timestamps": "1",
    "net.ipv4.tcp_max_tw_buckets": "262144",
    "net.ipv4.tcp_tw_reuse": "2",
    K: "5000",
}


def params(**kw):
    base = {"state": "present", "profile": "none", "settings": {}, "reserved_ports": []}
    base.update(kw)
    return base


def test_profile_then_user_settings_override():
    res = _sysctl.plan(params(profile="fast_restart", settings={"net.core.somaxconn": 8192}), LIVE, None)
    assert res["values"] == {
        "net.ipv4.tcp_fin_timeout": "15",
        "net.core.somaxconn": "8192",
        "net.ipv4.tcp_max_syn_backlog": "4096",
    }
    assert res["previous"] == {"net.ipv4.tcp_fin_timeout": "60", "net.core.somaxconn": "4096",
                               "net.ipv4.tcp_max_syn_backlog": "512"}
    assert res["warnings"] == []  # the profile's own tcp_fin_timeout does not nag


def test_fast_restart_profile_holds_no_myths():
    prof = _sysctl.PROFILES["fast_restart"]
    assert "net.ipv4.tcp_tw_recycle" not in prof
    assert "net.ipv4.tcp_tw_reuse" not in prof
    assert "net.ipv4.tcp_max_tw_buckets" not in prof


def test_reserved_ports_keep_other_entries_and_record_what_we_added():
    res = _sysctl.plan(params(reserved_ports=[8080, "5000"]), LIVE, None)
    assert res["values"][K] == "5000,8080"
    assert res["added"] == [(8080, 8080)]


def test_reserved_ports_no_change_is_stable():
    first = _sysctl.plan(params(reserved_ports=[8080]), LIVE, None)
    text = _sysctl.render_conf(first["values"], first["previous"], first["added"])
    live = dict(LIVE, **{K: "5000,8080"})
    second = _sysctl.plan(params(reserved_ports=["8080"]), live, text)
    assert _sysctl.render_conf(second["values"], second["previous"], second["added"]) == text
    assert _sysctl.live_changes(live, second["live_targets"]) == {}


def test_absent_removes_only_what_was_asked_and_restores_previous():
    first = _sysctl.plan(params(profile="fast_restart", reserved_ports=[8080, 8081]), LIVE, None)
    text = _sysctl.render_conf(first["values"], first["previous"], first["added"])
    live = dict(LIVE, **{K: "5000,8080-8081", "net.ipv4.tcp_fin_timeout": "15"})
    res = _sysctl.plan(params(state="absent", settings={"net.ipv4.tcp_fin_timeout": None},
                              reserved_ports=[8081]), live, text)
    assert "net.ipv4.tcp_fin_timeout" not in res["values"]
    assert res["restore"] == {"net.ipv4.tcp_fin_timeout": "60", K: "5000,8080"}
    assert res["live_targets"]["net.ipv4.tcp_fin_timeout"] == "60"
    assert res["values"][K] == "5000,8080"
    assert res["added"] == [(8080, 8080)]


def test_unknown_key_fails_unless_allowed():
    with pytest.raises(_sysctl.SysctlError) as err:
        _sysctl.plan(params(settings={"net.ipv4.tcp_no_such_key": 1}), LIVE, None)
    assert "does not exist on this host" in str(err.value)
    res = _sysctl.plan(params(settings={"net.ipv4.tcp_no_such_key": 1}, allow_unknown=True), LIVE, None)
    assert res["values"] == {"net.ipv4.tcp_no_such_key": "1"}
    assert "net.ipv4.tcp_no_such_key" not in res["live_targets"]


def test_reserved_key_in_settings_points_to_the_option():
    with pytest.raises(_sysctl.SysctlError) as err:
        _sysctl.plan(params(settings={K: "8080"}), LIVE, None)
    assert "reserved_ports option" in str(err.value)


@pytest.mark.parametrize("settings,live,fragment", [
    ({"net.ipv4.tcp_fin_timeout": 10}, LIVE, "does NOT shorten TIME_WAIT"),
    ({"net.ipv4.tcp_max_tw_buckets": 1000}, LIVE, "lowered from 262144 to 1000"),
    ({"net.ipv4.tcp_tw_reuse": 1}, dict(LIVE, **{"net.ipv4.tcp_timestamps": "0"}), "no effect while"),
    ({"net.ipv4.tcp_tw_reuse": 1, "net.ipv4.tcp_timestamps": 0}, LIVE, "no effect while"),
])
def test_myth_warnings(settings, live, fragment):
    res = _sysctl.plan(params(settings=settings), live, None)
    assert any(fragment in w for w in res["warnings"]), res["warnings"]


def test_no_warning_when_raising_tw_buckets_or_reuse_with_timestamps():
    res = _sysctl.plan(params(settings={"net.ipv4.tcp_max_tw_buckets": 300000,
                                        "net.ipv4.tcp_tw_reuse": 1}), LIVE, None)
    assert res["warnings"] == []


def test_bad_value_raises_before_any_plan_is_returned():
    with pytest.raises(_sysctl.SysctlError) as err:
        _sysctl.plan(params(profile="fast_restart", settings={"net.core.somaxconn": "1;reboot"}), LIVE, None)
    assert "net.core.somaxconn" in str(err.value)
    assert "1;reboot" in str(err.value)


def test_purge_restores_previous_values_and_removes_only_our_ports():
    first = _sysctl.plan(params(profile="fast_restart", reserved_ports=[8080]), LIVE, None)
    text = _sysctl.render_conf(first["values"], first["previous"], first["added"])
    live = dict(LIVE, **{K: "5000,8080", "net.ipv4.tcp_fin_timeout": "15", "net.ipv4.tcp_max_syn_backlog": "4096"})
    res = _sysctl.plan(params(state="absent", purge=True), live, text)
    assert res["values"] == {}
    assert res["previous"] == {}
    assert res["added"] == []
    assert res["restore"] == {"net.ipv4.tcp_fin_timeout": "60", "net.core.somaxconn": "4096",
                              "net.ipv4.tcp_max_syn_backlog": "512", K: "5000"}
    assert _sysctl.live_changes(live, res["live_targets"]) == {
        "net.ipv4.tcp_fin_timeout": "60", "net.ipv4.tcp_max_syn_backlog": "512", K: "5000"}


def test_purge_leaves_a_value_an_admin_set_since_and_names_it():
    first = _sysctl.plan(params(profile="fast_restart"), LIVE, None)
    text = _sysctl.render_conf(first["values"], first["previous"], first["added"])
    # the collection set 15 (from 60), then an admin set 33
    live = dict(LIVE, **{"net.ipv4.tcp_fin_timeout": "33", "net.ipv4.tcp_max_syn_backlog": "4096"})
    res = _sysctl.plan(params(state="absent", purge=True), live, text)
    assert "net.ipv4.tcp_fin_timeout" not in res["restore"]
    assert res["restore"]["net.ipv4.tcp_max_syn_backlog"] == "512"  # still ours: put back
    assert "net.ipv4.tcp_fin_timeout" not in _sysctl.live_changes(live, res["live_targets"])
    assert any("net.ipv4.tcp_fin_timeout is 33, not the 15 this file set" in w for w in res["warnings"])


def test_a_port_no_longer_asked_for_leaves_the_reserved_list_and_others_stay():
    first = _sysctl.plan(params(reserved_ports=[8080, 8081]), LIVE, None)
    text = _sysctl.render_conf(first["values"], first["previous"], first["added"])
    live = dict(LIVE, **{K: "5000,8080-8081"})
    res = _sysctl.plan(params(reserved_ports=[8080]), live, text)
    assert res["values"][K] == "5000,8080" and res["added"] == [(8080, 8080)]
    assert _sysctl.live_changes(live, res["live_targets"]) == {K: "5000,8080"}
    again = _sysctl.plan(params(reserved_ports=[8080]), dict(live, **{K: "5000,8080"}),
                         _sysctl.render_conf(res["values"], res["previous"], res["added"]))
    assert _sysctl.live_changes(dict(live, **{K: "5000,8080"}), again["live_targets"]) == {}


def test_ports_already_reserved_by_others_are_not_claimed():
    res = _sysctl.plan(params(reserved_ports=[5000]), LIVE, None)
    assert res["added"] == []
    assert K not in res["values"]
