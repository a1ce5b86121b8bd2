# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _failure,
    _hook,
    _host_state,
    _supervisor,
    _sysctl,
    _systemd,
    _unit,
)

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
ROCKY = 'NAME="Rocky Linux"\nVERSION_ID="9.4"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
UNKNOWN_RHEL_LIKE = 'NAME="Acme Server"\nVERSION_ID="8.10"\nID=acme\nID_LIKE="rhel fedora"\n'


@pytest.mark.parametrize("text, expected", [
    (DEBIAN, {"distribution": "Debian", "distribution_version": "12", "distribution_major_version": "12",
              "os_family": "Debian"}),
    (ROCKY, {"distribution": "Rocky", "distribution_version": "9.4", "distribution_major_version": "9",
             "os_family": "RedHat"}),
    (UNKNOWN_RHEL_LIKE, {"distribution": "Acme", "distribution_version": "8.10",
                         "distribution_major_version": "8", "os_family": "RedHat"}),
    ("ID=ubuntu\nVERSION_ID=\"24.04\"\n",
     {"distribution": "Ubuntu", "distribution_version": "24.04", "distribution_major_version": "24",
      "os_family": "Debian"}),
    ("", {"distribution": "unknown", "distribution_version": "", "distribution_major_version": "",
          "os_family": "unknown"}),
])
def test_parse_os_release(text, expected):
    assert _host_state.parse_os_release(text) == expected


def test_hook_dir_per_family():
    assert _hook.hook_dir("RedHat") == "/usr/libexec/netsvc-resilience"
    assert _hook.hook_dir("Debian") == "/usr/lib/netsvc-resilience"
    assert _hook.hook_dir("Suse") == "/usr/local/libexec/netsvc-resilience"


def test_check_services_resolves_backend_and_keeps_integer_ports():
    out = _host_state.check_services([{"name": "web", "ports": [80, "9000-9010"], "restart": {}, "command": "x"},
                                     {"name": "job", "backend": "supervisord", "cleanup": False}], "systemd")
    assert out == [{"name": "web", "backend": "systemd", "ports": [80], "socket_activation": False,
                    "mode": "none", "cleanup": "auto"},
                   {"name": "job", "backend": "supervisord", "ports": [], "socket_activation": False,
                    "mode": "none", "cleanup": False}]
    assert _host_state.check_services([{"name": "web"}], "init")[0]["backend"] == "supervisord"


@pytest.mark.parametrize("services, words", [
    ([{"ports": [80]}], "non-empty name"),
    (["web"], "non-empty name"),
    ([{"name": "web", "backend": "upstart"}], "backend 'upstart'"),
    ([{"name": "web", "ports": 80}], "must be a list"),
    ([{"name": "web", "ports": [0, 70000]}], "ports entry 0 is not a TCP port: use an integer 1-65535"),
    ([{"name": "web", "socket_activation": "maybe"}], "socket_activation 'maybe'"),
    ([{"name": "web", "cleanup": "sometimes"}], "cleanup 'sometimes' must be true, false or auto"),
    ([{"name": "-H.service"}], "services[0]: unit name '-H.service' must not start with '-'"),
    ([{"name": "web"}, {"name": "../x"}], "services[1]: unit name '../x' must not contain '/' or '..'"),
    ([{"name": "job:1", "backend": "supervisord"}], "supervisord program name 'job:1'"),
])
def test_check_services_rejects_with_the_value_and_rule(services, words):
    with pytest.raises(ValueError) as e:
        _host_state.check_services(services, "systemd")
    assert words in str(e.value)


def test_unit_and_socket_names():
    assert _unit.unit_name("web") == "web.service"
    assert _unit.unit_name("web.service") == "web.service"
    assert _unit.socket_name("web") == "web.socket"
    assert _supervisor.program_name("web.service") == "web"
    assert _unit.dropin_path("web.service", "40-x") == "/etc/systemd/system/web.service.d/40-x.conf"


def test_parse_show_many_keeps_order_and_empty_values():
    text = "LoadState=loaded\nActiveState=active\n\nLoadState=not-found\nActiveState=inactive\nDropInPaths=\n"
    assert _systemd.parse_show_many(text) == [
        {"LoadState": "loaded", "ActiveState": "active"},
        {"LoadState": "not-found", "ActiveState": "inactive", "DropInPaths": ""}]


def test_parse_supervisor_status_groups_and_states():
    text = ("web                              RUNNING   pid 12, uptime 0:01:02\n"
            "grp:job    FATAL     Exited too quickly\n")
    assert _host_state.parse_supervisor_status(text) == {"web": "RUNNING", "job": "FATAL"}


def _svc(name, backend="systemd", ports=(), sa=False):
    return {"name": name, "backend": backend, "ports": list(ports), "socket_activation": sa}


def test_service_health_reasons():
    services = [_svc("ok", ports=[80]), _svc("down", ports=[81]), _svc("gone"), _svc("deaf", ports=[82, 83]),
                _svc("sa", ports=[84], sa=True), _svc("prog", backend="supervisord", ports=[85])]
    shows = {
        "ok.service": {"LoadState": "loaded", "ActiveState": "active"},
        "down.service": {"LoadState": "loaded", "ActiveState": "failed"},
        "gone.service": {"LoadState": "not-found", "ActiveState": "inactive"},
        "deaf.service": {"LoadState": "loaded", "ActiveState": "active"},
        "sa.service": {"LoadState": "loaded", "ActiveState": "inactive"},
        "sa.socket": {"LoadState": "loaded", "ActiveState": "active"},
    }
    rows = {r["name"]: r for r in _host_state.service_health(services, shows, {"prog": "RUNNING"}, {80, 82, 84, 85})}
    assert rows["ok"]["healthy"] and rows["ok"]["problems"] == []
    assert rows["down"]["problems"] == ["down.service is failed, not active", "nothing listens on port(s) 81"]
    assert rows["gone"]["exists"] is False and "does not exist (LoadState=not-found)" in rows["gone"]["problems"][0]
    assert rows["deaf"]["missing_ports"] == [83] and not rows["deaf"]["healthy"]
    assert rows["sa"]["healthy"] and rows["sa"]["checked_unit"] == "sa.socket"
    assert rows["prog"]["healthy"]


def _facts(distribution="Debian", version="12", family="Debian", python=(3, 11, 2), supervisorctl=""):
    return {"distribution": distribution, "distribution_version": version, "os_family": family,
            "distribution_major_version": version.split(".")[0], "supervisorctl": supervisorctl,
            "python_version": "%d.%d.%d" % python,
            "python": {"version": dict(zip(("major", "minor", "micro"), python))}}


SUPPORTED = {"RedHat": 7, "Debian": 11}


@pytest.mark.parametrize("facts,reason", [
    (_facts(), None),
    (_facts("CentOS", "7.9.2009", "RedHat", (3, 6, 8)), None),
    (_facts("Ubuntu", "22.04"), None),  # any Ubuntu of a supported family
    (_facts(version="10"), "Debian 10 (Debian) is not supported; supported: Debian >= 11, RedHat >= 7"),
    (_facts("CentOS", "6.10", "RedHat"), "CentOS 6.10 (RedHat) is not supported"),
    (_facts("Alpine", "3.20.1", "Alpine"), "Alpine 3.20.1 (Alpine) is not supported"),
    (_facts(version="n/a"), "Debian n/a (Debian) is not supported"),
    (_facts(python=(3, 5, 2)), "Python 3.5.2 is too old; the modules need 3.6+"),
])
def test_refusals_name_the_distribution_and_python(facts, reason):
    out = _host_state.refusals(facts, SUPPORTED, [], [], set())
    assert out == [] if reason is None else out[0].startswith(reason), out


def test_refusals_name_every_missing_service_and_supervisord_need():
    services = [_svc("ok", ports=[80]), _svc("gone", ports=[81]), _svc("web", backend="supervisord"),
                _svc("api", backend="supervisord")]
    shows = {"ok.service": {"LoadState": "loaded", "ActiveState": "active"},
             "gone.service": {"LoadState": "not-found", "ActiveState": "inactive"}}
    health = _host_state.service_health(services, shows, {}, {80})
    out = _host_state.refusals(_facts(), SUPPORTED, services, health, {"web"})
    assert out == ["gone.service does not exist (LoadState=not-found)", "nothing listens on port(s) 81",
                   "supervisord programs need supervisorctl, and this host has none",
                   "supervisord programs defined in no file supervisord reads need a command: api"]
    assert _host_state.refusals(_facts(supervisorctl="/usr/bin/supervisorctl"), SUPPORTED, services[2:], [],
                                {"web", "api"}) == []
    # a program supervisord already runs has its command in its own section
    running = _host_state.service_health(services[2:], {}, {"api": "RUNNING"}, set())
    assert _host_state.refusals(_facts(supervisorctl="/usr/bin/supervisorctl"), SUPPORTED, services[2:], running,
                                {"web"}) == []


def test_watch_paths_cover_what_can_override_us():
    paths = _host_state.watch_paths([_svc("web", ports=[80], sa=True), _svc("job", backend="supervisord")],
                                    ["/etc/sysctl.d/90-x.conf"], "/usr/lib/netsvc-resilience", "/var/lib/x/state.json")
    for p in ("/etc/sysctl.d/90-x.conf", "/run/sysctl.d", "/usr/lib/sysctl.d", "/etc/sysctl.conf",
              "/usr/lib/netsvc-resilience", "/etc/systemd/system/web.service.d", "/etc/systemd/system/web.socket",
              "/etc/systemd/system/netsvc-revive@.service", "/etc/supervisor/conf.d", "/etc/supervisord.d"):
        assert p in paths
    assert paths == sorted(paths)
    assert _host_state.watch_paths([], [], None, "/x") == []


def test_snapshot_sees_content_mode_and_new_files(tmp_path):
    d = tmp_path / "web.service.d"
    d.mkdir()
    f = d / "50-a.conf"
    f.write_text(u"[Service]\nRestart=always\n")
    single = tmp_path / "one.conf"
    single.write_text(u"x\n")
    paths = [str(d), str(single), str(tmp_path / "absent")]
    first = _host_state.snapshot_paths(paths)
    assert first[str(tmp_path / "absent")] is None
    assert list(first[str(d)]) == ["50-a.conf"]
    assert _host_state.snapshot_paths(paths) == first
    os.chmod(str(f), 0o600)
    assert _host_state.snapshot_paths(paths) != first
    os.chmod(str(f), 0o644)
    (d / "99-other.conf").write_text(u"[Service]\nRestart=no\n")
    assert set(_host_state.snapshot_paths(paths)[str(d)]) == {"50-a.conf", "99-other.conf"}


def test_sysctl_keys_and_live_values(tmp_path):
    text = ("# managed\nnet.ipv4.tcp_fin_timeout = 15\n-net.core.somaxconn=4096\n; comment\n\n"
            "net.ipv4.tcp_fin_timeout=15\n")
    assert _host_state.sysctl_keys(text) == ["net.ipv4.tcp_fin_timeout", "net.core.somaxconn"]
    proc = tmp_path / "net" / "ipv4"
    proc.mkdir(parents=True)
    (proc / "ip_local_reserved_ports").write_text(u"7070\t8080\n")
    live = _sysctl.read_live(["net.ipv4.ip_local_reserved_ports", "net.ipv4.nope"], proc_root=str(tmp_path))
    assert live == {"net.ipv4.ip_local_reserved_ports": "7070 8080", "net.ipv4.nope": None}


def test_unit_state_keeps_only_recorded_properties():
    shows = {"a.service": {"Restart": "on-failure", "ActiveState": "active", "NRestarts": "3"}}
    assert _host_state.unit_state(shows, ["a.service", "b.service"]) == {
        "a.service": {"Restart": "on-failure"}, "b.service": {}}


SNAP = {"files": {"/etc/x.d": {"a.conf": "h1 644 0:0"}}, "sysctl": {"k": "1"},
        "units": {"a.service": {"Restart": "on-failure", "NeedDaemonReload": "no"}}}


def _record(inputs="d1", snap=None):
    return {"version": _host_state.RECORD_VERSION, "inputs": inputs, "snapshot": snap or SNAP}


def test_drift_none_when_identical():
    assert _host_state.drift(_record(), "d1", SNAP) == []


@pytest.mark.parametrize("record, inputs, snapshot, reason", [
    (None, "d1", SNAP, "no applied-state record"),
    ({"version": 0}, "d1", SNAP, "no applied-state record"),
    (_record(inputs="d0"), "d1", SNAP, "inputs (variables or collection code) changed"),
    (_record(), "d1", dict(SNAP, sysctl={"k": "2"}), "sysctl: k changed"),
    (_record(), "d1", dict(SNAP, files={"/etc/x.d": {"a.conf": "h2 644 0:0"}}), "files: /etc/x.d changed"),
    (_record(), "d1", dict(SNAP, units={"a.service": {"Restart": "no", "NeedDaemonReload": "no"}}),
     "units: a.service changed"),
    (_record(), "d1", dict(SNAP, units={"a.service": {"Restart": "on-failure", "NeedDaemonReload": "yes"}}),
     "daemon-reload pending"),
])
def test_drift_names_what_differs(record, inputs, snapshot, reason):
    reasons = _host_state.drift(record, inputs, snapshot)
    assert reasons and reason in reasons[0]


def test_a_pending_daemon_reload_is_drift_even_when_recorded_that_way():
    snap = dict(SNAP, units={"a.service": {"Restart": "on-failure", "NeedDaemonReload": "yes"}})
    assert _host_state.drift(_record(snap=snap), "d1", snap) == [
        "units: a.service has changes systemd has not loaded (daemon-reload pending)"]


HOOK = "/usr/lib/netsvc-resilience/netsvc-sockclean"
RAN = ("{ path=/usr/bin/nginx ; argv[]=/usr/bin/nginx -t ; flags= ; start_time=[Sun 2026-11-22 08:05:39 UTC] ; "
       "stop_time=[Sun 2026-11-22 08:05:39 UTC] ; pid=2600 ; code=exited ; status=0 } "
       "{ path=%s ; argv[]=%s --unit nginx.service 80 ; flags=ignore-failure privileged ; "
       "start_time=[Sun 2026-11-22 08:05:39 UTC] ; stop_time=[Sun 2026-11-22 08:05:39 UTC] ; pid=2615 ; "
       "code=exited ; status=0 }" % (HOOK, HOOK))
STATUS = ("version=1\nunit=nginx.service\ntime=1795334739\nports=80\nresult=ok\nfound=200\ndestroyed=200\n"
          "left=0\nstates=time-wait 200\ncause=\nuid=0\nkernel=6.18.44\n")


def test_hook_report_from_what_systemd_and_the_hook_say():
    r = _host_state.hook_report({"ExecStartPreEx": RAN}, STATUS, "netsvc-sockclean")
    assert r["installed"] and r["privileged"] and r["exec"] == {"code": "exited", "status": "0"}
    assert (r["last"]["result"], r["last"]["found"], r["source"]) == ("ok", 200, "status")
    never = RAN.split("} {")[1].replace("pid=2615", "pid=0").replace("code=exited", "code=(null)") \
        .replace("flags=ignore-failure privileged", "ignore_errors=yes")
    r = _host_state.hook_report({"ExecStartPre": "{ " + never}, None, "netsvc-sockclean")
    assert r["installed"] and r["privileged"] is None and r["exec"] is None and r["last"] == {}
    assert _host_state.hook_report({"ExecStartPre": ""}, None, "netsvc-sockclean")["installed"] is False
    # a supervisord program: only the status file tells
    assert _host_state.hook_report({}, STATUS, "netsvc-sockclean")["installed"]


def test_the_status_file_is_the_record_and_the_journal_only_stands_in_without_one():
    journal = {"time": 1795334900, "result": "error", "cause": "netlink refused (socket(AF_NETLINK): EAFNOSUPPORT)"}
    r = _host_state.hook_report({"ExecStartPreEx": RAN}, STATUS, "netsvc-sockclean", journal)
    assert r["source"] == "status" and r["last"]["result"] == "ok"
    r = _host_state.hook_report({"ExecStartPreEx": RAN}, None, "netsvc-sockclean", journal)
    assert r["source"] == "journal" and r["last"]["result"] == "error"


HOOK = "/usr/lib/netsvc-resilience/netsvc-sockclean"
LINE = "netsvc-sockclean: ports 0.0.0.0:80: found 2, destroyed 2, left 0 (time-wait 2)"


def _entry(**fields):
    import json

    base = {"MESSAGE": LINE, "__REALTIME_TIMESTAMP": "1795334900000000", "SYSLOG_IDENTIFIER": "netsvc-sockclean"}
    base.update(fields)
    return json.dumps(base)


def test_only_a_line_the_hook_itself_wrote_as_root_is_trusted():
    ok = _host_state.trusted_hook_line([_entry(_UID="0", _EXE=HOOK)], HOOK)
    assert ok["found"] == 2 and ok["time"] == 1795334900
    # logger -t netsvc-sockclean from the service (any uid, or root through another program)
    forged = [_entry(_UID="33", _EXE="/usr/bin/logger", MESSAGE=LINE.replace("left 0", "left 0; forged")),
              _entry(_UID="0", _EXE="/usr/bin/logger"),
              _entry(_UID="33", _EXE=HOOK),
              _entry(_UID="0")]
    for entry in forged:
        assert _host_state.trusted_hook_line([entry], HOOK) == {}
    # the newest trusted entry wins over later forged ones; the Python twin counts by its command line
    assert _host_state.trusted_hook_line([_entry(_UID="0", _EXE=HOOK)] + forged, HOOK)["found"] == 2
    twin = _entry(_UID="0", _EXE="/usr/bin/python3.11", _CMDLINE="/usr/bin/python3 -IS %s --unit x 80" % HOOK)
    assert _host_state.trusted_hook_line([twin], HOOK)["found"] == 2
    assert _host_state.trusted_hook_line(["not json", "[]"], HOOK) == {}


def test_hook_cleans_and_moved_listeners():
    show = {"ExecStartPre": "{ path=%s ; argv[]=%s --unit web.service --drain-ms 2000 127.0.0.1:80 [::1]:80 ; "
                            "ignore_errors=yes ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; "
                            "status=0/0 }" % (HOOK, HOOK)}
    assert _host_state.hook_cleans(show, "netsvc-sockclean") == ["127.0.0.1:80", "[::1]:80"]
    assert _host_state.hook_cleans({}, "netsvc-sockclean") is None
    hooked = {"web.service": ["127.0.0.1:80", "[::1]:80"]}
    assert _host_state.moved_listeners(hooked, {"web.service": (["[::1]:80", "127.0.0.1:80"], None)}) == []
    assert _host_state.moved_listeners(hooked, {"web.service": (["80"], "not running")}) == []
    assert _host_state.moved_listeners(hooked, {"web.service": (["0.0.0.0:80"], None)}) == [
        "web.service: its hook cleans 127.0.0.1:80 [::1]:80, but it now listens on 0.0.0.0:80"]


def test_check_services_refuses_ports_it_cannot_check():
    with pytest.raises(ValueError, match="'http' is not a TCP port"):
        _host_state.check_services([{"name": "web", "ports": ["http"]}], "systemd")
    ok = _host_state.check_services([{"name": "web", "ports": [80, "9000-9010", "443"]}], "systemd")
    assert ok[0]["ports"] == [80, 443]


def test_the_run_lock_is_a_lease():
    held = _host_state.parse_lock(_host_state.lock_record("run-a", "ctl1 pid 10", 1000, 600))
    assert held["expires"] == 1600 and held["holder"] == "ctl1 pid 10"
    assert _host_state.lock_decision(None, "run-b", 1000) == "take"
    assert _host_state.lock_decision(held, "run-a", 1100) == "take"      # our own run (a later concern)
    assert _host_state.lock_decision(held, "run-b", 1100) == "wait"      # another live run
    assert _host_state.lock_decision(held, "run-b", 1601) == "take"      # a killed run's lease ran out
    assert _host_state.parse_lock("not json") is None and _host_state.parse_lock('{"x": 1}') is None


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_take_lock_waits_for_a_live_run_and_names_it(tmp_path):
    path = str(tmp_path / "run" / "run.lock")
    now = [1000.0]
    write = _write

    def sleep(s):
        now[0] += s
        if now[0] >= 1004:  # the other run ends after 4 s
            _host_state.release_lock(path, "run-a")

    os.makedirs(os.path.dirname(path))
    write(path, _host_state.lock_record("run-a", "ctl1", 1000, 600))
    info = _host_state.take_lock(None, path, "run-b", "ctl2", 60, 600, write, sleep=sleep, clock=lambda: now[0])
    assert info["waited_s"] == 4 and info["previous"]["holder"] == "ctl1" and not info["expired"]
    assert _host_state.parse_lock(_host_state.read_text(path))["run_id"] == "run-b"


def test_take_lock_takes_over_an_expired_lease(tmp_path):
    path = str(tmp_path / "run.lock")
    _write(path, _host_state.lock_record("run-killed", "ctl1", 0, 30))
    info = _host_state.take_lock(None, path, "run-b", "ctl2", 60, 600, _write,
                                 sleep=lambda s: None, clock=lambda: 100.0)
    assert info["waited_s"] == 0 and info["expired"] and info["previous"]["run_id"] == "run-killed"


def test_take_lock_gives_up_after_wait_and_changes_nothing(tmp_path):
    path = str(tmp_path / "run.lock")
    held = _host_state.lock_record("run-a", "ctl1", 1000, 600)
    _write(path, held)
    now = [1000.0]

    class Module(object):
        def fail_json(self, msg):
            raise AssertionError("module_utils fails by raising Failure, never fail_json: %s" % msg)

    def sleep(s):
        now[0] += s

    with pytest.raises(_failure.Failure) as e:
        _host_state.take_lock(Module(), path, "run-b", "ctl2", 5, 600, None, sleep=sleep, clock=lambda: now[0])
    assert "waited 5 s" in str(e.value) and "run-a (ctl1)" in str(e.value) and "nothing was changed" in str(e.value)
    assert _host_state.read_text(path) == held


def test_a_file_that_is_no_longer_roots_alone_is_drift(tmp_path):
    import os

    mine = tmp_path / "hook"
    mine.write_text("x")
    os.chmod(str(mine), 0o755)
    assert _host_state.ownership_drift([str(mine), str(tmp_path / "gone")], lambda p: None,
                                       lambda p: _St(0, 0, 0o100755) if p == str(mine) else os.lstat(p)) == []
    assert _host_state.ownership_drift([str(mine)], lambda p: None, lambda p: _St(65534, 0, 0o100755)) == [
        "%s: owned by 65534:0, not root's" % mine]
    assert _host_state.ownership_drift([str(mine)], lambda p: None, lambda p: _St(0, 0, 0o100775)) == [
        "%s: writable by group or others (mode 775)" % mine]
    owned = _host_state.ownership_drift([str(mine)], lambda p: "/usr/lib/x is owned by uid 1000",
                                        lambda p: _St(0, 0, 0o100755))
    assert owned == ["%s: /usr/lib/x is owned by uid 1000" % mine]


class _St(object):
    def __init__(self, uid, gid, mode):
        self.st_uid, self.st_gid, self.st_mode = uid, gid, mode


def test_a_status_file_older_than_the_last_start_is_not_that_start():
    # the unit last started 100 s after boot; booted at 1795334000 (realtime)
    show = {"ExecStartPreEx": RAN, "InactiveExitTimestampMonotonic": "100000000"}
    fresh = _host_state.hook_report(show, STATUS, "netsvc-sockclean", None, 1795334739 - 100)
    assert fresh["source"] == "status" and not fresh["stale"]
    stale = _host_state.hook_report(show, STATUS, "netsvc-sockclean", None, 1795334739 - 50)
    assert stale["stale"] and stale["last"] == {} and stale["source"] == ""
    # then a trusted journal line of that start stands in
    line = {"time": 1795334790, "result": "ok", "found": 1}
    assert _host_state.hook_report(show, STATUS, "netsvc-sockclean", line, 1795334739 - 50)["source"] == "journal"


def test_a_status_file_one_second_before_the_start_is_stale():
    # booted at 1795334639, started 100.2 s later (1795334739.2): a file from 1795334738 is
    # an earlier start's, one from the same second is this start's
    show = {"ExecStartPreEx": RAN, "InactiveExitTimestampMonotonic": "100200000"}
    earlier = STATUS.replace("time=1795334739", "time=1795334738")
    assert _host_state.hook_report(show, earlier, "netsvc-sockclean", None, 1795334639)["stale"]
    assert not _host_state.hook_report(show, STATUS, "netsvc-sockclean", None, 1795334639)["stale"]


def test_the_invocation_id_tells_this_start_from_an_earlier_one():
    this, other = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    show = {"ExecStartPreEx": RAN, "InactiveExitTimestampMonotonic": "100000000", "InvocationID": this}
    mine = STATUS + "invocation=%s\n" % this
    # same second or not, the id decides
    r = _host_state.hook_report(show, mine, "netsvc-sockclean", None, 1795334639 + 5)
    assert not r["stale"] and r["source"] == "status"
    r = _host_state.hook_report(show, STATUS + "invocation=%s\n" % other, "netsvc-sockclean", None, 1795334639)
    assert r["stale"] and r["last"] == {}


def test_a_trusted_line_of_an_earlier_start_is_not_the_last_start():
    # molecule daemons: redis's privileged hook logged (with _EXE) at one start; after it was
    # sandboxed, the next start's hook could neither clean nor log as root - the earlier line
    # must not stand in for it
    this, earlier = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
    old = _entry(_UID="0", _EXE=HOOK, _SYSTEMD_INVOCATION_ID=earlier)
    assert _host_state.trusted_hook_line([old], HOOK, this) == {}
    assert _host_state.trusted_hook_line([old], HOOK, earlier)["found"] == 2
    # without the unit's id (a systemd that has none) the newest trusted line counts, as before
    assert _host_state.trusted_hook_line([old], HOOK)["found"] == 2
    # an entry journald could not tie to a start is not trusted for a unit that has one
    assert _host_state.trusted_hook_line([_entry(_UID="0", _EXE=HOOK)], HOOK, this) == {}


def test_accept_problem_names_who_serves():
    from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _host_check

    listener = {"port": 80, "address": "0.0.0.0"}
    mine = [{"pid": 42, "command": "nginx: worker process"}]
    pid1 = [{"pid": 1, "command": "/sbin/init"}]
    assert _host_check.accept_problem(listener, True, mine, lambda pid: pid == 42, "nginx.service") is None
    assert "not accepted" in _host_check.accept_problem(listener, False, [], lambda pid: True, "nginx.service")
    why = _host_check.accept_problem(listener, True, pid1, lambda pid: pid == 42, "nginx.service")
    assert why == "a connection to 0.0.0.0 port 80 was accepted by PID 1 (/sbin/init), not by nginx.service"


def test_a_service_the_ledger_has_but_the_run_does_not_list_is_named_with_how_to_undo(monkeypatch):
    from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _host_check
    from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _files, _unit

    warned = []

    class Module(object):
        def warn(self, text):
            warned.append(text)

    files = {"/etc/systemd/system/nginx.service.d/50-netsvc-resilience.conf": {},
             "/etc/systemd/system/netsvc-np.socket": {},
             "/etc/systemd/system/netsvc-np.service.d/50-netsvc-resilience.conf": {},
             "/etc/sysctl.d/90-netsvc-resilience.conf": {}}
    monkeypatch.setattr(_files, "load_ledger", lambda path=None: {"files": files})
    hardened = _unit.services_of_paths(_files.load_ledger()["files"])
    assert hardened == ["netsvc-np.service", "nginx.service"]
    assert _host_check.unlisted(Module(), [{"name": "nginx.service"}], hardened) == ["netsvc-np.service"]
    assert len(warned) == 1 and warned[0].startswith("netsvc-np.service was hardened by an earlier run")
    assert "name=netsvc-np.service state=absent" in warned[0] and "playbooks/rollback.yml" in warned[0]
    del warned[:]
    assert _host_check.unlisted(Module(), [{"name": "nginx.service"}, {"name": "netsvc-np.service"}], hardened) == []
    assert warned == []


def test_the_serve_check_reads_a_pids_cgroup_once_and_keeps_it(monkeypatch):
    """Read while the probe's connection is open, the answer holds after a forked child is gone."""
    from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _host_check
    from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _probe

    alive = {42: True}
    monkeypatch.setattr(_probe, "in_unit_cgroup", lambda pid, unit: alive.pop(pid, False) and unit == "web.service")
    in_unit = _host_check.cgroup_reader("web.service")
    assert in_unit(42) is True
    assert in_unit(42) is True  # the process is gone now: the answer read while it lived is kept
    assert in_unit(7) is False
