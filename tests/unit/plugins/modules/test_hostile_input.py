# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input never acts: every module refuses hostile values, naming the value and the rule,
before any command, write, reload or kill (the run_module fixture forbids all of them).

Values: newlines, shell metacharacters, path traversal, option-like names, out-of-range
numbers, wrong types, systemd specifiers.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.netsvc.resilience.plugins.modules import (
    harden,
    host_check,
    prestart_hook,
    restart_probe,
    service_restart_policy,
    socket_cleanup,
    sysctl_tcp,
    undo,
)

PAYLOAD = {"native": {}, "python": "# the Python hook\n"}
SVC = "netsvc-echo.service"


def probe(**kw):
    args = {"name": SVC, "port": 8080, "backend": "systemd"}
    args.update(kw)
    return args


def hc(**kw):
    return kw


def hook(**kw):
    args = {"payload": PAYLOAD, "services": [{"name": SVC, "ports": [8080]}]}
    args.update(kw)
    return args


def policy(**kw):
    args = {"name": SVC, "backend": "systemd"}
    args.update(kw)
    return args


def composed(**kw):
    """harden's options: the policy of one service as its units, and ``kw``."""
    return dict(units=policy(), **kw)


def program(**kw):
    args = {"name": "web", "backend": "supervisord", "command": "/usr/bin/web"}
    args.update(kw)
    return args


# (id, module, args, substrings the message must contain: the value and the rule)
CASES = [
    # restart_probe: nothing is killed for bad input (issue 11: slo_ms -5 killed nginx first)
    ("probe-slo-negative", restart_probe, probe(slo_ms=-5), ["slo_ms -5", "between"]),
    ("probe-slo-zero", restart_probe, probe(slo_ms=0), ["slo_ms 0", "between"]),
    ("probe-port-zero", restart_probe, probe(port=0), ["port 0", "1-65535"]),
    ("probe-port-high", restart_probe, probe(port=70000), ["port 70000", "1-65535"]),
    ("probe-port-word", restart_probe, probe(port="http"), ["port", "int"]),  # argument_spec says it
    ("probe-kills-zero", restart_probe, probe(kills=0), ["kills 0", "between 1 and 100"]),
    ("probe-kills-many", restart_probe, probe(kills=1000), ["kills 1000", "between 1 and 100"]),
    ("probe-timeout-zero", restart_probe, probe(timeout=0), ["timeout 0", "between 1 and 600"]),
    ("probe-timeout-huge", restart_probe, probe(timeout=1e9), ["timeout", "between 1 and 600"]),
    ("probe-remote-host", restart_probe, probe(host="8.8.8.8"), ["8.8.8.8", "loopback"]),
    ("probe-host-shell", restart_probe, probe(host="localhost; rm -rf /"), ["localhost; rm -rf /", "IP address"]),
    ("probe-name-traversal", restart_probe, probe(name="../../etc/passwd"), ["../../etc/passwd", "'/'"]),
    ("probe-name-option", restart_probe, probe(name="-H"), ["'-H'", "must not start with '-'"]),
    ("probe-name-newline", restart_probe, probe(name="a\nb.service"), ["control characters"]),
    ("probe-name-subshell", restart_probe, probe(name="$(reboot).service"), ["$(reboot)", "not allow"]),
    ("probe-connect-timeout", restart_probe, probe(connect_timeout=-1), ["connect_timeout -1", "between"]),
    ("probe-interval-zero", restart_probe, probe(connect_interval_ms=0), ["connect_interval_ms 0", "between"]),
    ("probe-expect-huge", restart_probe, probe(expect="x" * 5000), ["expect", "at most 4096"]),
    ("probe-signal", restart_probe, probe(signal="STOP"), ["signal", "STOP"]),
    ("probe-kill-interval", restart_probe, probe(kills=10, kill_interval_ms=-50), ["kill_interval_ms -50", "between"]),
    # host_check: a port it cannot check is refused, never dropped (issue 11: ports ["http"])
    ("hc-supported-word", host_check, hc(supported={"Debian": "eleven"}), ["supported[Debian]", "'eleven'"]),
    ("hc-supported-zero", host_check, hc(supported={"RedHat": 0}), ["supported[RedHat] 0", "between 1"]),
    ("hc-port-word", host_check, hc(services=[{"name": SVC, "ports": ["http"]}]), ["'http'", "1-65535"]),
    ("hc-port-zero", host_check, hc(services=[{"name": SVC, "ports": [0]}]), ["0", "1-65535"]),
    ("hc-port-bool", host_check, hc(services=[{"name": SVC, "ports": [True]}]), ["True", "1-65535"]),
    ("hc-port-range", host_check, hc(services=[{"name": SVC, "ports": ["9000-8000"]}]), ["9000-8000", "LOW <= HIGH"]),
    ("hc-port-shell", host_check, hc(services=[{"name": SVC, "ports": ["80;reboot"]}]), ["80;reboot", "1-65535"]),
    ("hc-ports-not-list", host_check, hc(services=[{"name": SVC, "ports": "8080"}]), ["'8080'", "list"]),
    ("hc-wait-negative", host_check, hc(wait=-1), ["wait -1", "between 0 and 600"]),
    ("hc-wait-huge", host_check, hc(wait=10000), ["wait 10000", "between 0 and 600"]),
    ("hc-state-relative", host_check, hc(state_file="relative/state.json"), ["relative/state.json", "absolute"]),
    ("hc-state-traversal", host_check, hc(state_file="/var/lib/../../etc/shadow"), ["/etc/shadow", "normalized"]),
    ("hc-hook-dir-newline", host_check, hc(hook_dir="/usr/lib/x\n"), ["control characters"]),
    ("hc-sysctl-traversal", host_check, hc(sysctl_files=["/etc/sysctl.d/../x.conf"]), ["x.conf", "normalized"]),
    ("hc-digest-newline", host_check, hc(inputs_digest="abc\nrm -rf /"), ["inputs_digest", "single line"]),
    ("hc-digest-huge", host_check, hc(inputs_digest="a" * 300), ["inputs_digest", "at most 256"]),
    ("hc-name-traversal", host_check, hc(services=[{"name": "../x", "backend": "systemd"}]), ["'../x'", "'/'"]),
    ("hc-service-not-dict", host_check, hc(services=["web"]), ["services", "dict"]),
    ("hc-lock-no-run-id", host_check, hc(lock="acquire"), ["lock=acquire", "run_id"]),
    ("hc-lock-wait-negative", host_check, hc(lock="acquire", run_id="r1", lock_wait=-1), ["lock_wait -1", "between"]),
    ("hc-lock-lease-short", host_check, hc(lock="acquire", run_id="r1", lock_lease=1), ["lock_lease 1", "between"]),
    ("hc-run-id-newline", host_check, hc(lock="acquire", run_id="r1\nx"), ["run_id", "single line"]),
    ("hc-lock-file-traversal", host_check, hc(lock="acquire", run_id="r1", lock_file="/run/../etc/passwd"),
     ["/etc/passwd", "normalized"]),
    ("hc-backend", host_check, hc(services=[{"name": SVC, "backend": "docker"}]), ["'docker'", "auto, systemd"]),
    # prestart_hook: the path becomes part of ExecStartPre=
    ("hook-path-shell", prestart_hook, hook(path="/usr/lib/x/hook;rm"), ["hook;rm", "shell characters"]),
    ("hook-path-relative", prestart_hook, hook(path="lib/hook"), ["lib/hook", "absolute"]),
    ("hook-path-traversal", prestart_hook, hook(path="/usr/lib/../../bin/sh"), ["/bin/sh", "normalized"]),
    ("hook-path-specifier", prestart_hook, hook(path="/usr/lib/x/%n"), ["%n", "'%'"]),
    ("hook-path-space", prestart_hook, hook(path="/usr/lib/x/a b"), ["a b", "spaces"]),
    ("hook-name-space", prestart_hook, hook(services=[{"name": "a b", "ports": [80], "backend": "systemd"}]),
     ["'a b.service'", "not allow"]),
    ("hook-port-high", prestart_hook, hook(services=[{"name": SVC, "ports": [65536]}]), ["65536", "1-65535"]),
    ("hook-port-shell", prestart_hook, hook(services=[{"name": SVC, "ports": ["80;rm"]}]), ["80;rm", "1-65535"]),
    ("hook-port-negative", prestart_hook, hook(services=[{"name": SVC, "ports": [-1]}]), ["-1", "1-65535"]),
    ("hook-cleanup-word", prestart_hook, hook(services=[{"name": SVC, "ports": [80], "cleanup": "sometimes"}]),
     ["'sometimes'", "true, false or auto"]),
    ("hook-dropin-traversal", prestart_hook, hook(dropin_name="../../passwd"), ["../../passwd", "no path"]),
    ("hook-dropin-option", prestart_hook, hook(dropin_name="-x"), ["'-x'", "letters, digits"]),
    ("hook-privilege", prestart_hook, hook(privilege="root"), ["privilege", "root"]),
    ("hook-payload-base64", prestart_hook, hook(payload={"native": {"x86_64": "!!!", "aarch64": "!!!"}, "python": "x"}),
     ["not base64"]),
    # sysctl_tcp: the file is a sysctl.d file, values and header are single lines
    ("sysctl-path-passwd", sysctl_tcp, {"path": "/etc/passwd"}, ["/etc/passwd", "directly in one of"]),
    ("sysctl-path-traversal", sysctl_tcp, {"path": "/etc/sysctl.d/../passwd.conf"}, ["passwd.conf", "normalized"]),
    ("sysctl-path-suffix", sysctl_tcp, {"path": "/etc/sysctl.d/x.txt"}, ["x.txt", ".conf"]),
    ("sysctl-header-newline", sysctl_tcp, {"header": "x\nnet.ipv4.tcp_tw_recycle=1"}, ["single line"]),
    ("sysctl-recycle", sysctl_tcp, {"settings": {"net.ipv4.tcp_tw_recycle": 1}}, ["tcp_tw_recycle", "4.12"]),
    ("sysctl-kernel-key", sysctl_tcp, {"settings": {"kernel.panic": 1}}, ["kernel.panic"]),
    ("sysctl-value-shell", sysctl_tcp, {"settings": {"net.ipv4.tcp_fin_timeout": "15; reboot"}},
     ["15; reboot", "must be an integer"]),
    ("sysctl-value-newline", sysctl_tcp, {"settings": {"net.ipv4.tcp_fin_timeout": "15\nnet.core.somaxconn=1"}},
     ["15\\nnet.core.somaxconn=1", "must be an integer"]),
    ("sysctl-key-traversal", sysctl_tcp, {"settings": {"../../etc/shadow": 1}}, ["../../etc/shadow"]),
    ("sysctl-reserved-high", sysctl_tcp, {"reserved_ports": [70000]}, ["70000"]),
    ("sysctl-reserved-range", sysctl_tcp, {"reserved_ports": ["1-70000"]}, ["1-70000"]),
    ("sysctl-reserved-word", sysctl_tcp, {"reserved_ports": ["abc"]}, ["abc"]),
    # service_restart_policy: names, time spans, directives and commands that end up in unit files
    ("policy-name-traversal", service_restart_policy, policy(name="../x"), ["'../x'", "'/'"]),
    ("policy-restart-sec-negative", service_restart_policy, policy(restart_sec=-5), ["restart_sec -5", "negative"]),
    ("policy-restart-sec-shell", service_restart_policy, policy(restart_sec="5s; rm -rf /"),
     ["5s; rm -rf /", "time span"]),
    ("policy-burst-zero", service_restart_policy, policy(start_limit_burst=0), ["start_limit_burst 0", ">= 1"]),
    ("policy-extra-key-newline", service_restart_policy, policy(extra_service={"Exec\nStart": "x"}),
     ["Exec\\nStart", "directive name"]),
    ("policy-extra-reserved", service_restart_policy, policy(extra_service={"ExecStart": "/bin/sh"}),
     ["ExecStart", "its own option"]),
    ("policy-extra-value-newline", service_restart_policy,
     policy(extra_service={"Environment": "A=1\nExecStart=/bin/sh"}), ["Environment", "single line"]),
    ("policy-pre-relative", service_restart_policy, policy(exec_start_pre=["rm -rf /"]),
     ["rm -rf /", "absolute path"]),
    ("policy-pre-newline", service_restart_policy, policy(exec_start_pre=["/bin/true\n/bin/false"]),
     ["single line"]),
    ("policy-dropin-traversal", service_restart_policy, policy(dropin_name="../x"), ["'../x'", "no path"]),
    ("policy-command-newline", service_restart_policy, program(command="/usr/bin/web\n[program:evil]"),
     ["single-line command"]),
    ("policy-user-shell", service_restart_policy, program(user="root;x"), ["'root;x'", "user name"]),
    ("policy-supervisor-dir", service_restart_policy, program(supervisor_dir="etc/conf.d"),
     ["etc/conf.d", "absolute"]),
    ("policy-cleanup-hook-space", service_restart_policy, program(cleanup_hook="/x y/hook"), ["/x y/hook", "spaces"]),
    ("policy-revive-shell", service_restart_policy, policy(revive_delay="30s; rm -rf /"),
     ["30s; rm -rf /", "suffix"]),
    ("policy-port-zero", service_restart_policy, policy(ports=[0]), ["ports 0", "1-65535"]),
    ("policy-backlog-zero", service_restart_policy, policy(backlog=0), ["backlog 0", "between"]),
    ("policy-nofile", service_restart_policy, policy(limit_nofile="lots"), ["'lots'", "SOFT:HARD"]),
    ("policy-list-unknown", service_restart_policy, {"services": [{"name": SVC, "restartsec": 0}]},
     ["restartsec", "unknown option"]),
    ("policy-kill-mode", service_restart_policy, policy(kill_mode="kill"), ["kill_mode", "kill"]),
    ("policy-supervisord-preload", service_restart_policy, program(socket_activation="preload", ports=[8080]),
     ["socket_activation=preload for supervisord program web", "needs ports and the cleanup hook"]),
    ("policy-supervisord-native-no-fds", service_restart_policy,
     program(socket_activation="native", ports=[8080], cleanup_hook="/usr/libexec/netsvc-resilience/netsvc-sockclean"),
     ["socket_activation: native for supervisord program web", "accepts_inherited_fds"]),
    ("policy-socket-no-fds", service_restart_policy, policy(socket_activation=True, ports=[8080]),
     ["accepts_inherited_fds"]),
    ("harden-nothing", harden, {}, ["at least one of kernel, prestart and units"]),
    ("harden-units-unknown", harden, {"units": policy(colour="red")}, ["units", "colour", "unknown option"]),
    ("harden-units-hook-relative", harden, {"units": program(cleanup_hook="bin/hook", ports=[80])},
     ["bin/hook", "absolute"]),
    # the deprecated options reach the module only past its action plugin (which hands them to harden)
    ("harden-prestart-past-the-action", service_restart_policy, policy(prestart=hook()),
     ["prestart", "netsvc.resilience.harden"]),
    # harden with prestart (the hook's drop-ins in the same call): checked as prestart_hook
    # checks them, before the policy's files are written
    ("harden-prestart-privilege", harden, composed(prestart=hook(privilege="root")),
     ["prestart", "privilege", "root"]),
    ("harden-prestart-path-shell", harden, composed(prestart=hook(path="/usr/lib/x/hook;rm")),
     ["prestart", "hook;rm", "shell characters"]),
    ("harden-prestart-cleanup-word", harden,
     composed(prestart=hook(services=[{"name": SVC, "ports": [80], "cleanup": "sometimes"}])),
     ["prestart", "sometimes"]),
    ("harden-prestart-port-shell", harden,
     composed(prestart=hook(services=[{"name": SVC, "ports": ["80;rm"]}])), ["prestart", "80;rm", "1-65535"]),
    ("harden-prestart-unknown", harden, composed(prestart=hook(ports=[80])),
     ["prestart", "ports", "unknown option"]),
    ("harden-prestart-no-payload", harden, composed(prestart={"services": []}),
     ["prestart", "payload"]),
    # harden with kernel (sysctl_tcp's settings in the same call): checked and planned as
    # sysctl_tcp does, before any drop-in or sysctl file is written
    ("harden-kernel-path-passwd", harden, composed(kernel={"path": "/etc/passwd"}),
     ["kernel: ", "/etc/passwd", "directly in one of"]),
    ("harden-kernel-recycle", harden, composed(kernel={"settings": {"net.ipv4.tcp_tw_recycle": 1}}),
     ["kernel: ", "tcp_tw_recycle", "4.12"]),
    ("harden-kernel-value-shell", harden,
     composed(kernel={"settings": {"net.ipv4.tcp_fin_timeout": "15; reboot"}}), ["kernel: ", "15; reboot"]),
    ("harden-kernel-reserved-high", harden, composed(kernel={"reserved_ports": [70000]}),
     ["kernel: ", "70000"]),
    ("harden-kernel-unknown", harden, composed(kernel={"ports": [80]}),
     ["kernel", "ports", "unknown option"]),
    ("harden-kernel-profile", harden, composed(kernel={"profile": "fastest"}),
     ["kernel", "profile", "fastest"]),
    # socket_cleanup
    ("clean-port-word", socket_cleanup, {"ports": ["abc"]}, ["abc"]),
    ("clean-ports-empty", socket_cleanup, {"ports": []}, ["empty"]),
    ("clean-listen", socket_cleanup, {"ports": [80], "states": ["listen"]}, ["listen"]),
    ("clean-live-no-force", socket_cleanup, {"ports": [80], "states": ["established"]}, ["established", "force"]),
    ("clean-local-shell", socket_cleanup, {"ports": [80], "local_address": "1.2.3.4; rm"}, ["1.2.3.4; rm", "IP"]),
    # 1.0.0's options: the hook's drain, supervisord's main file and stop signal, undo
    ("hook-drain-negative", prestart_hook, hook(drain_timeout=-1), ["drain_timeout -1", "between 0 and 600"]),
    ("hook-drain-huge", prestart_hook, hook(drain_timeout=3600), ["drain_timeout 3600", "between 0 and 600"]),
    ("hook-drain-word", prestart_hook, hook(drain_timeout="forever"), ["drain_timeout", "float"]),
    ("harden-prestart-drain", harden, composed(prestart=hook(drain_timeout=-5)),
     ["prestart", "drain_timeout -5"]),
    ("policy-supervisor-conf-relative", service_restart_policy, program(supervisor_conf="etc/supervisord.conf"),
     ["etc/supervisord.conf", "absolute"]),
    ("policy-stopsignal-shell", service_restart_policy, program(stopsignal="TERM;rm"), ["stopsignal", "TERM;rm"]),
    ("undo-state-dir-relative", undo, {"state_dir": "var/lib/x"}, ["var/lib/x", "absolute"]),
    ("undo-switch-timeout", undo, {"switch_timeout": 0}, ["switch_timeout 0", "between"]),
]


@pytest.mark.parametrize("module,args,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_before_any_side_effect(run_module, module, args, expected):
    kind, result = run_module(module, args)
    assert kind == "fail", "not refused (%s): %r" % (kind, result)
    msg = result["msg"]
    for text in expected:
        assert text in msg, "%r not in %r" % (text, msg)


def test_there_are_at_least_sixty_cases_across_every_module():
    assert len(CASES) >= 60
    assert {c[1].__name__.rsplit(".", 1)[-1] for c in CASES} == {
        "harden", "host_check", "prestart_hook", "restart_probe", "service_restart_policy", "socket_cleanup",
        "sysctl_tcp", "undo"}
