# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash-recovery unit logic for netsvc.resilience.service_restart_policy.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.

Pure functions (rendering, validation, parsing) unit tested without a host.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

RESTART_VALUES = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort", "on-watchdog")
KILL_MODES = ("control-group", "mixed", "process", "none")
OOM_POLICIES = ("continue", "stop", "kill")
RESTART_MODES = ("normal", "direct")
REVIVE_TEMPLATE = "netsvc-revive@.service"
SYSTEMD_DIR = "/etc/systemd/system"

# Measured defaults (docs/linux-facts.md, systemd 252 container, SIGKILL under load):
# - RestartSec=0 restarts within 3 ms (46 ms to serving); RestartSec=100ms lands on a 250 ms
#   timer grid (100-350 ms). So the first restart is immediate.
# - With RestartSec=0 the default start limit (5 starts / 10 s) is exhausted in under a
#   second by a crash loop, so the limit is raised to 20 starts / 10 s: a crash storm of
#   10+ kills stays well inside it.
# - A permanent failure hits that limit after ~20 fast starts and the unit fails; the revive
#   unit (OnFailure=) waits revive_delay (30 s), resets it and starts it again: a permanent
#   failure costs a burst every 30 s, a transient one is never fatal.
DEFAULTS = {
    "restart": "on-failure",
    "restart_sec": "0",
    "start_limit_interval": "10s",
    "start_limit_burst": 20,
    "revive": True,
}

_UNIT_CHARS = re.compile(r"^[A-Za-z0-9:_.\\@-]+\Z")
_TIMESPAN = re.compile(
    r"^(infinity|\d+(\.\d+)?(us|usec|ms|msec|s|sec|second|seconds|m|min|minute|minutes|h|hr|hour|hours|d|day|days)?"
    r"( ?\d+(\.\d+)?(us|usec|ms|msec|s|sec|second|seconds|m|min|minute|minutes|h|hr|hour|hours|d|day|days))*)\Z"
)
_UNIT_MULT = {
    "us": 1, "usec": 1, "ms": 1000, "msec": 1000, "": 1000000, "s": 1000000, "sec": 1000000,
    "second": 1000000, "seconds": 1000000, "m": 60000000, "min": 60000000, "minute": 60000000,
    "minutes": 60000000, "h": 3600000000, "hr": 3600000000, "hour": 3600000000,
    "hours": 3600000000, "d": 86400000000, "day": 86400000000, "days": 86400000000,
}
_DIRECTIVE = re.compile(r"^[A-Z][A-Za-z0-9]+\Z")
# directives the escape hatch may not set: they belong to options with their own checks,
# or would replace the vendor's command line.
_RESERVED_DIRECTIVES = frozenset((
    "ExecStart", "Type", "Restart", "RestartSec", "StartLimitIntervalSec", "StartLimitInterval",
    "StartLimitBurst", "RestartSteps", "RestartMaxDelaySec", "RestartMode", "KillMode",
    "OOMPolicy", "ExecStartPre", "ExecStopPost", "OnFailure",
))


class UnitError(Exception):
    """Bad input: the message names the value and the rule."""


def check_unit_name(name):
    """Validate a service unit name and return it with the .service suffix.

    Follows systemd's unit-name rules (characters [A-Za-z0-9:_.\\@-], at most 255 bytes, a
    unit type suffix) and refuses what would be dangerous in a path or an argv: path
    separators, '..', control characters, a leading '-' or '.'.
    """
    if not isinstance(name, str) or not name:
        raise UnitError("unit name %r is empty or not a string" % (name,))
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnitError("unit name %r contains control characters" % (name,))
    if "/" in name or ".." in name:
        raise UnitError("unit name %r must not contain '/' or '..' (it becomes a path)" % (name,))
    if name[0] in "-.":
        raise UnitError("unit name %r must not start with '-' or '.'" % (name,))
    if "." not in name:
        name += ".service"
    if not name.endswith(".service"):
        raise UnitError("unit name %r is not a service: restart policies apply to .service units" % (name,))
    if not _UNIT_CHARS.match(name):
        raise UnitError(
            "unit name %r has characters systemd does not allow in unit names (allowed: "
            "letters, digits, ':', '_', '.', '\\', '@', '-')" % (name,)
        )
    if len(name.encode("utf-8")) > 255:
        raise UnitError("unit name %r is longer than 255 bytes" % (name,))
    prefix = name[: -len(".service")]
    if not prefix or prefix.count("@") > 1 or prefix.startswith("@"):
        raise UnitError("unit name %r is not a valid service name (empty prefix or bad '@' use)" % (name,))
    return name


def service_manager():
    """The host's service manager: 'systemd' when systemd is PID 1 (sd_booted()'s test), else
    PID 1's command name ('supervisord', 'sh', ...). The one detection every module uses."""
    if os.path.isdir("/run/systemd/system"):
        return "systemd"
    try:
        with open("/proc/1/comm") as f:
            return f.read().strip() or "unknown"
    except (IOError, OSError):
        return "unknown"


def resolve_backend(backend, service_mgr=None):
    """A service's backend: 'auto' (or empty) means systemd on a systemd host, else supervisord."""
    if backend in (None, "", "auto"):
        return "systemd" if (service_mgr or service_manager()) == "systemd" else "supervisord"
    return backend


def unit_name(name):
    """The unit name with .service added when it has no suffix (no validation: see check_unit_name)."""
    return name if "." in name else name + ".service"


def socket_name(name):
    """The .socket unit that goes with a service."""
    base = unit_name(name)
    return base[: -len(".service")] + ".socket" if base.endswith(".service") else base + ".socket"


def dropin_path(unit, dropin):
    return os.path.join(SYSTEMD_DIR, unit + ".d", dropin + ".conf")


def services_of_paths(paths):
    """The systemd services that files under SYSTEMD_DIR belong to (a service's drop-in, or the
    socket unit that goes with it), sorted; the collection's own units (netsvc-revive@) and
    anything else are left out. Inverse of dropin_path / socket_name."""
    out = set()
    for path in paths:
        head, name = os.path.split(path)
        parent, dirname = os.path.split(head)
        if head == SYSTEMD_DIR and name.endswith(".socket"):
            out.add(name[: -len(".socket")] + ".service")
        elif parent == SYSTEMD_DIR and dirname.endswith(".service.d") and name.endswith(".conf"):
            out.add(dirname[: -len(".d")])
        elif head == SYSTEMD_DIR and name.endswith(".service.d"):
            out.add(name[: -len(".d")])
    return sorted(u for u in out if not u.startswith("netsvc-revive@"))


def check_dropin_name(name):
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z", name or "") or ".." in name:
        raise UnitError(
            "drop-in name %r must be 1-64 characters of letters, digits, '_', '.', '-' "
            "(no path, no '..')" % (name,)
        )
    return name[:-5] if name.endswith(".conf") else name


def parse_timespan(value, what):
    """Return microseconds for a systemd time span ('0', '100ms', '1min 30s', 5) or None for infinity."""
    if isinstance(value, bool):
        raise UnitError("%s %r is not a time span" % (what, value))
    if isinstance(value, (int, float)):
        if value < 0:
            raise UnitError("%s %r must not be negative" % (what, value))
        return int(value * 1000000)
    text = str(value).strip()
    if not _TIMESPAN.match(text):
        raise UnitError(
            "%s %r is not a systemd time span (e.g. 0, 100ms, 5s, 1min 30s, infinity)" % (what, value)
        )
    if text == "infinity":
        return None
    total = 0
    for num, _frac, unit in re.findall(r"(\d+(\.\d+)?)([a-z]*)", text):
        total += int(float(num) * _UNIT_MULT[unit])
    return total


def format_timespan(value):
    """Canonical text for a time span option value (int seconds or systemd text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("%g" % value) if value else "0"
    return " ".join(str(value).split())


def check_exit_statuses(value, what):
    items = value if isinstance(value, (list, tuple)) else str(value).split()
    out = []
    for item in items:
        text = str(item).strip()
        if re.match(r"^\d{1,3}\Z", text) and int(text) <= 255 or re.match(r"^SIG[A-Z0-9]+\Z", text):
            out.append(text)
        else:
            raise UnitError("%s entry %r must be an exit status 0-255 or a signal name like SIGTERM" % (what, item))
    return " ".join(out)


def check_command(cmd, what):
    """A command line for ExecStartPre=/ExecStopPost=: absolute path, one line, optional prefixes."""
    if not isinstance(cmd, str) or not cmd.strip():
        raise UnitError("%s entry %r must be a non-empty command line" % (what, cmd))
    if "\n" in cmd or "\r" in cmd or "\0" in cmd:
        raise UnitError("%s entry %r must be a single line" % (what, cmd))
    body = cmd.lstrip("-@:+!")
    if not body.startswith("/"):
        raise UnitError("%s entry %r must start with an absolute path (after optional -@:+! prefixes)" % (what, cmd))
    return cmd.strip()


def check_extra(extra, section):
    out = []
    for key in sorted(extra or {}):
        value = extra[key]
        if not _DIRECTIVE.match(str(key)):
            raise UnitError("%s directive name %r is not a systemd directive name" % (section, key))
        if key in _RESERVED_DIRECTIVES:
            raise UnitError("%s directive %s has its own option in this module; use that" % (section, key))
        values = value if isinstance(value, list) else [value]
        for v in values:
            text = "" if v is None else str(v)
            if isinstance(v, bool):
                text = "yes" if v else "no"
            if "\n" in text or "\r" in text or "\0" in text:
                raise UnitError("%s directive %s value %r must be a single line" % (section, key, text))
            out.append((key, text))
    return out


def normalize_options(opts):
    """Fill defaults and validate every option. Returns a new dict. Raises UnitError."""
    o = dict(opts)
    if o.get("apply_defaults", True):
        for key, value in DEFAULTS.items():
            if o.get(key) is None:
                o[key] = value
    if o.get("restart") is not None and o["restart"] not in RESTART_VALUES:
        raise UnitError("restart %r must be one of %s" % (o["restart"], ", ".join(RESTART_VALUES)))
    for key in ("restart_sec", "start_limit_interval", "restart_max_delay", "timeout_stop_sec",
                "watchdog_sec", "revive_delay"):
        if o.get(key) is not None:
            o[key + "_usec"] = parse_timespan(o[key], key)
            o[key] = format_timespan(o[key])
    for key, low in (("start_limit_burst", 1), ("restart_steps", 1), ("fd_store_max", 0)):
        if o.get(key) is not None and (not isinstance(o[key], int) or isinstance(o[key], bool) or o[key] < low):
            raise UnitError("%s %r must be an integer >= %d" % (key, o[key], low))
    if o.get("limit_nofile") is not None:
        text = str(o["limit_nofile"]).strip()
        if not re.match(r"^(infinity|\d+)(:(infinity|\d+))?\Z", text):
            raise UnitError("limit_nofile %r must be N, SOFT:HARD or infinity" % (o["limit_nofile"],))
        o["limit_nofile"] = text
    if o.get("kill_mode") is not None and o["kill_mode"] not in KILL_MODES:
        raise UnitError("kill_mode %r must be one of %s" % (o["kill_mode"], ", ".join(KILL_MODES)))
    if o.get("oom_policy") is not None and o["oom_policy"] not in OOM_POLICIES:
        raise UnitError("oom_policy %r must be one of %s" % (o["oom_policy"], ", ".join(OOM_POLICIES)))
    if o.get("restart_mode") is not None and o["restart_mode"] not in RESTART_MODES:
        raise UnitError("restart_mode %r must be one of %s" % (o["restart_mode"], ", ".join(RESTART_MODES)))
    for key in ("restart_prevent_exit_status", "success_exit_status"):
        if o.get(key):
            o[key] = check_exit_statuses(o[key], key)
    for key in ("exec_start_pre", "exec_stop_post"):
        o[key] = [check_command(c, key) for c in (o.get(key) or [])]
    o["extra_unit"] = check_extra(o.get("extra_unit"), "[Unit]")
    o["extra_service"] = check_extra(o.get("extra_service"), "[Service]")
    return o


def _start_limit(o, version, unit, service):
    """[Service] StartLimitInterval= before 230, [Unit] StartLimitIntervalSec= since."""
    if o.get("start_limit_interval") is None and o.get("start_limit_burst") is None:
        return
    target, name = (unit, "StartLimitIntervalSec") if version >= 230 else (service, "StartLimitInterval")
    if o.get("start_limit_interval") is not None:
        target.append((name, o["start_limit_interval"]))
    if o.get("start_limit_burst") is not None:
        target.append(("StartLimitBurst", str(o["start_limit_burst"])))


def _backoff(o, version, service, warnings):
    """RestartSteps=, RestartMaxDelaySec=, RestartMode= (systemd >= 254)."""
    backoff = o.get("restart_steps") is not None or o.get("restart_max_delay") is not None
    if not backoff and o.get("restart_mode") is None:
        return
    if version < 254:
        warnings.append(
            "systemd %d has no RestartSteps/RestartMaxDelaySec/RestartMode (added in 254): not "
            "rendered; the start limit plus the revive unit (OnFailure=) stand in for back-off, "
            "so a crash loop is slowed but never leaves the unit dead for good" % version
        )
        return
    for key, directive in (("restart_steps", "RestartSteps"), ("restart_max_delay", "RestartMaxDelaySec"),
                           ("restart_mode", "RestartMode")):
        if o.get(key) is not None:
            service.append((directive, str(o[key])))
    if backoff and not o.get("restart_sec_usec"):
        warnings.append(
            "RestartSteps/RestartMaxDelaySec have no effect with RestartSec=0: systemd grows "
            "the delay from RestartSec, so set restart_sec > 0 for back-off"
        )


def _plain_directives(o, version, service, warnings):
    """Directives rendered as given (OOMPolicy= from 243), then the command lists."""
    for key, directive in (("restart_prevent_exit_status", "RestartPreventExitStatus"),
                           ("success_exit_status", "SuccessExitStatus"),
                           ("kill_mode", "KillMode"),
                           ("timeout_stop_sec", "TimeoutStopSec"),
                           ("limit_nofile", "LimitNOFILE"),
                           ("watchdog_sec", "WatchdogSec")):
        if o.get(key):
            service.append((directive, str(o[key])))
    if o.get("oom_policy") is not None:
        if version >= 243:
            service.append(("OOMPolicy", o["oom_policy"]))
        else:
            warnings.append("systemd %d has no OOMPolicy= (added in 243): not rendered" % version)
    if o.get("fd_store_max") is not None:
        service.append(("FileDescriptorStoreMax", str(o["fd_store_max"])))
    service.extend(("ExecStartPre", cmd) for cmd in o.get("exec_start_pre") or [])
    service.extend(("ExecStopPost", cmd) for cmd in o.get("exec_stop_post") or [])


def render_dropin(o, version, header="Ansible managed: netsvc.resilience.service_restart_policy"):
    """Render the drop-in for systemd ``version``. ``o`` comes from normalize_options.

    Returns (text, warnings).
    """
    warnings = []
    unit = []
    service = []
    if o.get("restart") is not None:
        service.append(("Restart", o["restart"]))
    if o.get("restart_sec") is not None:
        service.append(("RestartSec", o["restart_sec"]))
    _start_limit(o, version, unit, service)
    _backoff(o, version, service, warnings)
    if o.get("revive"):
        unit.append(("OnFailure", REVIVE_TEMPLATE.replace("@.", "@%n.")))
    _plain_directives(o, version, service, warnings)
    unit.extend(o.get("extra_unit") or [])
    service.extend(o.get("extra_service") or [])
    warnings.extend(policy_warnings(o))
    lines = ["# %s\n" % header,
             "# Written whole by netsvc.resilience; the vendor unit file is not touched.\n"]
    if unit:
        lines.append("\n[Unit]\n")
        lines.extend("%s=%s\n" % kv for kv in unit)
    if service:
        lines.append("\n[Service]\n")
        lines.extend("%s=%s\n" % kv for kv in service)
    return "".join(lines), warnings


def policy_warnings(o):
    """Warnings grounded in docs/linux-facts.md."""
    out = []
    if o.get("kill_mode") in ("process", "none"):
        out.append(
            "KillMode=%s leaves the service's child processes running after a crash or stop: a "
            "child that inherited the listening socket keeps the port, and the restart fails "
            "with EADDRINUSE" % o["kill_mode"]
        )
    restart_usec = o.get("restart_sec_usec")
    restarts = o.get("restart") not in (None, "no")
    if restarts and restart_usec is not None and restart_usec < 2000000 and o.get("start_limit_burst") is None \
            and o.get("start_limit_interval") is None:
        out.append(
            "RestartSec=%s with systemd's default start limit (5 starts in 10 s): a crash loop "
            "exhausts it in under a second and the unit stays failed for good; set "
            "start_limit_burst/start_limit_interval (the module defaults do)" % o.get("restart_sec")
        )
    if o.get("restart") == "always" and o.get("start_limit_interval_usec") == 0 \
            and o.get("restart_steps") is None and not restart_usec:
        out.append(
            "StartLimitIntervalSec=0 with Restart=always and no back-off: a permanent failure "
            "restarts in a tight loop forever; set restart_sec/restart_steps or keep a start limit"
        )
    return out


def render_revive(delay):
    """The OnFailure= template: after the start limit was hit, wait, reset, start again.

    It decides from systemd's own record only: Result=start-limit-hit (a refused start), else
    PID 1's "Start request repeated too quickly" about that unit, selected by _PID=1 and
    UNIT= (journald sets _PID from the sender; a line the service logs itself has its own
    pid). The unit name reaches sh as an argument, never inside the script text, so an
    escaped name (foo\\x2dbar.service) keeps its backslashes.
    """
    script = ('u=$$1; systemctl show -p Result "$$u" | grep -q =start-limit-hit || '
              'journalctl _PID=1 "UNIT=$$u" -n 5 -o cat --no-pager | grep -q "repeated too quickly" || exit 0; '
              'systemctl reset-failed "$$u"; systemctl --no-block start "$$u"')
    return (
        "# Ansible managed: netsvc.resilience.service_restart_policy\n"
        "# Started by OnFailure= of hardened services. Revives a service only when systemd gave\n"
        "# up because of its start limit, never after a failure that RestartPreventExitStatus= or\n"
        "# a deliberate stop asked for. systemd says so in Result=start-limit-hit when a start is\n"
        "# refused; when an automatic restart hits the limit the unit keeps the crash's Result\n"
        "# (measured: exit-code or signal, systemd 247 and 252), and only PID 1's own journal entry\n"
        "# (_PID=1, UNIT=) says \"Start request repeated too quickly\" - never a line the service logs.\n"
        "[Unit]\n"
        "Description=netsvc.resilience: start %i again after its start limit was hit\n"
        "DefaultDependencies=no\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "ExecStartPre=/bin/sleep " + delay + "\n"
        "ExecStart=/bin/sh -c '" + script + "' netsvc-revive %i\n"
    )


def render_socket(service, ports, backlog, header="Ansible managed: netsvc.resilience.service_restart_policy"):
    lines = [
        "# %s\n" % header,
        "# The listening socket lives in PID 1: it survives every crash of %s, connections\n" % service,
        "# wait in the backlog while it restarts, and there is no rebind (no EADDRINUSE).\n",
        "[Unit]\n",
        "Description=netsvc.resilience listening socket for %s\n" % service,
        "\n[Socket]\n",
    ]
    for port in ports:
        lines.append("ListenStream=%s\n" % port)
    lines.append("Accept=no\n")
    lines.append("Backlog=%d\n" % backlog)
    lines.append("Service=%s\n" % service)
    lines.append("\n[Install]\nWantedBy=sockets.target\n")
    return "".join(lines)


def parse_version(text):
    """'systemd 252 (252.39-1~deb12u1)' -> 252."""
    m = re.search(r"systemd\s+(\d+)", text or "")
    if not m:
        raise UnitError("cannot read the systemd version from %r" % (text,))
    return int(m.group(1))


def show_words(value):
    """The words of a `systemctl show` list value. systemd quotes a word with characters outside
    its safe set and C-escapes its backslashes ("netsvc-revive@foo\\\\x2dbar.service.service"
    for the unit foo\\x2dbar.service): unquoted and unescaped here, as the shell would."""
    import shlex

    try:
        return shlex.split(value or "")
    except ValueError:
        return (value or "").split()


def parse_show(text):
    """Parse `systemctl show` KEY=VALUE output into a dict (first '=' splits)."""
    out = {}
    for line in (text or "").splitlines():
        if "=" in line:
            key, _sep, value = line.partition("=")
            out[key] = value
    return out


def verify_problems(output, dropin_path):
    """Lines of `systemd-analyze verify` output that concern our drop-in.

    systemd-analyze exits 0 on warnings such as "Unknown key name": the output is the truth.
    """
    problems = []
    for line in (output or "").splitlines():
        if dropin_path in line:
            problems.append(line.strip())
    return problems


def check_user_name(user):
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\Z", user or ""):
        raise UnitError("user %r must be a user name of 1-32 letters, digits, '_', '.', '-'" % (user,))
    return user


# ------------------------------------------------------------------------ read-back


def show_usec(value):
    """A time value as `systemctl show` prints it -> microseconds (None: infinity or unreadable).

    '100ms', '5s', '1min 30s', 'infinity'; a bare number is microseconds (systemd 219 prints
    StartLimitInterval= that way, newer ones print '0' for zero).
    """
    text = str(value if value is not None else "").strip()
    if text.isdigit():
        return int(text)
    try:
        return parse_timespan(text, "value")
    except UnitError:
        return None


def _timespan_is(usec):
    """A check for a `systemctl show` time value against ``usec``."""
    def check(value):
        return show_usec(value) == usec
    return check


def policy_readback(o, unit, version):
    """What `systemctl show` must say after our drop-in took effect on systemd ``version``.

    ``o`` comes from normalize_options. Returns [(directive, property, check, expected)] for
    _systemd.effective_mismatches; only what the drop-in sets is checked.
    """
    out = []
    if o.get("restart") is not None:
        out.append(("Restart", "Restart", lambda v, want=o["restart"]: v == want, o["restart"]))
    if o.get("restart_sec") is not None:
        out.append(("RestartSec", "RestartUSec", _timespan_is(o["restart_sec_usec"]), o["restart_sec"]))
    if o.get("start_limit_burst") is not None:
        out.append(("StartLimitBurst", "StartLimitBurst", lambda v, want=str(o["start_limit_burst"]): v == want,
                    str(o["start_limit_burst"])))
    if o.get("start_limit_interval") is not None:
        directive, prop = ("StartLimitIntervalSec", "StartLimitIntervalUSec") if version >= 230 \
            else ("StartLimitInterval", "StartLimitInterval")
        out.append((directive, prop, _timespan_is(o["start_limit_interval_usec"]), o["start_limit_interval"]))
    if o.get("revive"):
        revive = REVIVE_TEMPLATE.replace("@.", "@%s." % unit)
        out.append(("OnFailure", "OnFailure", lambda v, want=revive: want in show_words(v), revive))
    return out
