# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash-recovery unit logic: rendering per systemd version, validation, parsing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _supervisor, _unit

HOSTILE_NAMES = [
    "", "../x.service", "a/b.service", "/etc/passwd", "x\n.service", "x\x00.service", "-x.service",
    ".service", "x;id.service", "$(id).service", "x`id`.service", "a b.service", "x.socket",
    "x.service/..", "a" * 300, "@.service", "a@b@c.service", "x\t.service", "..service", "x\x7f.service",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_unit_names_are_refused(name):
    with pytest.raises(_unit.UnitError) as err:
        _unit.check_unit_name(name)
    msg = str(err.value)
    # the message names the value (as given, or with the .service suffix added) and the rule
    assert repr(name) in msg or repr(name + ".service") in msg
    assert "unit name" in msg


@pytest.mark.parametrize("name,expected", [
    ("nginx", "nginx.service"),
    ("nginx.service", "nginx.service"),
    ("getty@tty1.service", "getty@tty1.service"),
    ("foo@.service", "foo@.service"),
    ("my-app_2:x\\x2d.service", "my-app_2:x\\x2d.service"),
])
def test_good_unit_names(name, expected):
    assert _unit.check_unit_name(name) == expected


def opts(**kw):
    base = {"apply_defaults": True}
    base.update(kw)
    return _unit.normalize_options(base)


def sections(text):
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            cur = line.strip("[]")
            out[cur] = []
        elif cur and "=" in line:
            out[cur].append(line)
    return out


@pytest.mark.parametrize("version", [219, 229])
def test_start_limit_in_service_before_230(version):
    text, _w = _unit.render_dropin(opts(), version)
    s = sections(text)
    assert "StartLimitInterval=10s" in s["Service"]
    assert "StartLimitBurst=20" in s["Service"]
    assert not any(x.startswith("StartLimit") for x in s["Unit"])


@pytest.mark.parametrize("version", [230, 239, 247, 252, 257])
def test_start_limit_in_unit_from_230(version):
    text, _w = _unit.render_dropin(opts(), version)
    s = sections(text)
    assert "StartLimitIntervalSec=10s" in s["Unit"]
    assert "StartLimitBurst=20" in s["Unit"]
    assert not any(x.startswith("StartLimit") for x in s["Service"])


def test_measured_defaults():
    text, warnings = _unit.render_dropin(opts(), 252)
    s = sections(text)
    assert s["Service"][:2] == ["Restart=on-failure", "RestartSec=0"]
    assert "OnFailure=netsvc-revive@%n.service" in s["Unit"]
    assert warnings == []  # the defaults never trip the start-limit warning


@pytest.mark.parametrize("version,rendered", [(219, False), (239, False), (247, False), (252, False),
                                              (254, True), (257, True)])
def test_backoff_only_from_254(version, rendered):
    text, warnings = _unit.render_dropin(opts(restart_sec="100ms", restart_steps=5, restart_max_delay="30s",
                                              restart_mode="direct"), version)
    assert ("RestartSteps=5" in text) is rendered
    assert ("RestartMaxDelaySec=30s" in text) is rendered
    assert ("RestartMode=direct" in text) is rendered
    assert any("added in 254" in w for w in warnings) is (not rendered)


def test_backoff_with_restartsec_zero_warns():
    _text, warnings = _unit.render_dropin(opts(restart_steps=5, restart_max_delay="30s"), 257)
    assert any("no effect with RestartSec=0" in w for w in warnings)


@pytest.mark.parametrize("version,rendered", [(219, False), (239, False), (243, True), (252, True)])
def test_oom_policy_from_243(version, rendered):
    text, warnings = _unit.render_dropin(opts(oom_policy="stop"), version)
    assert ("OOMPolicy=stop" in text) is rendered
    assert any("OOMPolicy" in w for w in warnings) is (not rendered)


def test_all_options_render():
    text, _w = _unit.render_dropin(opts(
        restart="always", restart_sec=0.5, restart_prevent_exit_status=["2", "SIGTERM"],
        success_exit_status=[143], kill_mode="mixed", timeout_stop_sec="1min 30s", limit_nofile="1024:4096",
        exec_start_pre=["-/usr/bin/true"], exec_stop_post=["/bin/true"], watchdog_sec=10,
        extra_unit={"Documentation": "https://example.invalid"}, extra_service={"Nice": 5, "NoNewPrivileges": True},
        fd_store_max=16), 252)
    for line in ["Restart=always", "RestartSec=0.5", "RestartPreventExitStatus=2 SIGTERM", "SuccessExitStatus=143",
                 "KillMode=mixed", "TimeoutStopSec=1min 30s", "LimitNOFILE=1024:4096", "ExecStartPre=-/usr/bin/true",
                 "ExecStopPost=/bin/true", "WatchdogSec=10", "Documentation=https://example.invalid", "Nice=5",
                 "NoNewPrivileges=yes", "FileDescriptorStoreMax=16"]:
        assert line + "\n" in text, line


def test_apply_defaults_false_renders_only_given_directives():
    text, warnings = _unit.render_dropin(_unit.normalize_options({"apply_defaults": False,
                                                                  "exec_start_pre": ["-/usr/bin/true"]}), 252)
    assert sections(text) == {"Service": ["ExecStartPre=-/usr/bin/true"]}
    assert warnings == []


@pytest.mark.parametrize("kw,fragment", [
    ({"kill_mode": "process"}, "child processes"),
    ({"kill_mode": "none"}, "EADDRINUSE"),
    ({"apply_defaults": False, "restart": "always", "restart_sec": "100ms"}, "exhausts it in under a second"),
    ({"restart": "always", "start_limit_interval": 0, "revive": False}, "tight loop"),
])
def test_fact_based_warnings(kw, fragment):
    _text, warnings = _unit.render_dropin(_unit.normalize_options(dict({"apply_defaults": True}, **kw)), 252)
    assert any(fragment in w for w in warnings), warnings


@pytest.mark.parametrize("kw,fragment", [
    ({"restart": "sometimes"}, "restart 'sometimes'"),
    ({"restart_sec": "5 parsecs"}, "not a systemd time span"),
    ({"restart_sec": "1s; rm -rf /"}, "not a systemd time span"),
    ({"start_limit_burst": 0}, "start_limit_burst 0"),
    ({"limit_nofile": "lots"}, "limit_nofile"),
    ({"exec_start_pre": ["true"]}, "absolute path"),
    ({"exec_start_pre": ["/bin/true\nExecStart=/bin/evil"]}, "single line"),
    ({"restart_prevent_exit_status": ["300"]}, "exit status 0-255"),
    ({"extra_service": {"ExecStart": "/bin/evil"}}, "has its own option"),
    ({"extra_service": {"lower": 1}}, "not a systemd directive name"),
    ({"extra_unit": {"Description": "a\nb"}}, "single line"),
])
def test_bad_options_name_value_and_rule(kw, fragment):
    with pytest.raises(_unit.UnitError) as err:
        _unit.normalize_options(kw)
    assert fragment in str(err.value)


def test_timespans():
    assert _unit.parse_timespan("0", "x") == 0
    assert _unit.parse_timespan("100ms", "x") == 100000
    assert _unit.parse_timespan("1min 30s", "x") == 90000000
    assert _unit.parse_timespan(5, "x") == 5000000
    assert _unit.parse_timespan("infinity", "x") is None


def test_render_is_deterministic_no_change_path():
    first = _unit.render_dropin(opts(), 252)
    second = _unit.render_dropin(opts(), 252)
    assert first == second


def test_parse_version_and_show():
    assert _unit.parse_version("systemd 252 (252.39-1~deb12u1)\n+PAM +AUDIT") == 252
    assert _unit.parse_version("systemd 219\n+PAM") == 219
    with pytest.raises(_unit.UnitError):
        _unit.parse_version("not systemd")
    assert _unit.parse_show("Restart=on-failure\nExecStartPre={ path=/x ; argv[]=/x a=b }\n") == {
        "Restart": "on-failure", "ExecStartPre": "{ path=/x ; argv[]=/x a=b }"}


def test_verify_problems_only_ours():
    out = ("/lib/systemd/system/x.service:3: Unknown key 'FooBar' in section [Service], ignoring.\n"
           "/etc/systemd/system/x.service.d/50-netsvc-resilience.conf:9: Unknown key 'NoSuch' in section "
           "[Service], ignoring.\n")
    assert _unit.verify_problems(out, "/etc/systemd/system/x.service.d/50-netsvc-resilience.conf") == [
        "/etc/systemd/system/x.service.d/50-netsvc-resilience.conf:9: Unknown key 'NoSuch' in section "
        "[Service], ignoring."]
    assert _unit.verify_problems("", "/x") == []


def test_supervisord_paths_and_names():
    assert _supervisor.supervisor_paths("RedHat") == ("/etc/supervisord.d", ".ini")
    assert _supervisor.supervisor_paths("Debian") == ("/etc/supervisor/conf.d", ".conf")
    with pytest.raises(_unit.UnitError):
        _supervisor.check_program_name("../web")


def test_socket_and_revive_rendering():
    sock = _unit.render_socket("web.service", [8080, 8443], 4096)
    assert "ListenStream=8080\nListenStream=8443\nAccept=no\nBacklog=4096\nService=web.service\n" in sock
    revive = _unit.render_revive("30s")
    assert "ExecStartPre=/bin/sleep 30s\n" in revive
    # the unit name is an argument of sh, never part of its script
    assert revive.rstrip().endswith("' netsvc-revive %i")


def _run_revive(tmp_path, result, journal_pid1, journal_service=""):
    """The revive unit's ExecStart script, as systemd hands it to sh ($$ -> $), against a fake
    systemctl/journalctl; returns what systemctl was asked to do."""
    import re
    import subprocess

    line = [x for x in _unit.render_revive("1s").splitlines() if x.startswith("ExecStart=")][0]
    script = re.match(r"ExecStart=/bin/sh -c '(.*)' netsvc-revive %i$", line).group(1).replace("$$", "$")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %s\n[ \"$1\" = show ] && echo Result=%s\nexit 0\n" % (log, result))
    # journalctl: PID 1's lines only when asked for _PID=1, the service's own lines otherwise
    (bin_dir / "journalctl").write_text(
        "#!/bin/sh\ncase \"$*\" in *_PID=1*) printf '%%s\\n' %s ;; *) printf '%%s\\n' %s ;; esac\n"
        % (shlex_quote(journal_pid1), shlex_quote(journal_service)))
    for f in ("systemctl", "journalctl"):
        os.chmod(str(bin_dir / f), 0o755)
    env = dict(os.environ, PATH="%s:/usr/bin:/bin" % bin_dir)
    subprocess.check_call(["/bin/sh", "-c", script, "netsvc-revive", "foo\\x2dbar.service"], env=env)
    return log.read_text().splitlines() if log.exists() else []


def shlex_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_revive_acts_on_systemds_own_record_and_keeps_escaped_names(tmp_path):
    calls = _run_revive(tmp_path, "start-limit-hit", "")
    assert calls[-2:] == ["reset-failed foo\\x2dbar.service", "--no-block start foo\\x2dbar.service"]


def test_revive_on_old_systemd_reads_pid1s_line_only(tmp_path):
    calls = _run_revive(tmp_path, "exit-code", "Start request repeated too quickly.")
    assert "--no-block start foo\\x2dbar.service" in calls


def test_a_line_the_service_logs_itself_never_revives(tmp_path):
    calls = _run_revive(tmp_path, "exit-code", "Main process exited, code=exited, status=3/NOTIMPLEMENTED",
                        "Start request repeated too quickly")
    assert not [c for c in calls if "start" in c.split()[:2] or c.startswith("reset-failed")], calls


def test_supervisor_command_through_the_hook_drops_to_the_user():
    cmd = _supervisor.supervisor_command("web", "/usr/bin/web -p 80", "/usr/lib/x/netsvc-sockclean", [80, 443],
                                         (996, 996, [27]))
    assert cmd == "/usr/lib/x/netsvc-sockclean --unit web --user 996:996:27 80 443 -- /usr/bin/web -p 80"
    assert _supervisor.supervisor_command("web", "/usr/bin/web", None, [80], None) == "/usr/bin/web"
    assert _supervisor.supervisor_command("web", "/usr/bin/web", "/h", [], None) == "/usr/bin/web"


def test_user_names_are_checked():
    with pytest.raises(_unit.UnitError, match="'root;x'"):
        _unit.check_user_name("root;x")


def test_an_escaped_unit_name_is_read_back_as_systemctl_show_quotes_it():
    # systemctl show quotes such words and escapes their backslashes (seen on systemd 252)
    shown = '"netsvc-revive@foo\\\\x2dbar.service.service"'
    assert _unit.show_words(shown) == ["netsvc-revive@foo\\x2dbar.service.service"]
    assert _unit.show_words("/etc/a.conf /etc/b.conf") == ["/etc/a.conf", "/etc/b.conf"]
    o = _unit.normalize_options({"restart": "on-failure"})
    checks = {c[0]: c for c in _unit.policy_readback(o, "foo\\x2dbar.service", 252)}
    assert checks["OnFailure"][2](shown)
    assert not checks["OnFailure"][2]('"netsvc-revive@foox2dbar.service.service"')


def test_services_of_paths_inverts_dropin_path_and_socket_name():
    paths = [_unit.dropin_path("nginx.service", "50-netsvc-resilience"),
             _unit.dropin_path("redis-server.service", "40-netsvc-cleanup"),
             "/etc/systemd/system/netsvc-np.socket",
             "/etc/systemd/system/memcached.service.d",
             "/etc/systemd/system/netsvc-revive@.service",
             _unit.dropin_path("netsvc-revive@nginx.service.service", "50-x"),
             "/etc/sysctl.d/90-netsvc-resilience.conf",
             "/etc/supervisor/conf.d/app.conf",
             "/etc/systemd/system/nginx.service.d/notes.txt",
             "/etc/systemd/system/deep/x.service.d/y.conf"]
    assert _unit.services_of_paths(paths) == ["memcached.service", "netsvc-np.service", "nginx.service",
                                              "redis-server.service"]
    assert _unit.services_of_paths([_unit.socket_name("a.service")]) == []  # a bare name is not a path
    assert _unit.services_of_paths([]) == []
