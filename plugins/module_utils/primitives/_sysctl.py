# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sysctl logic for netsvc.resilience.sysctl_tcp.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.

Everything here except the small I/O helpers at the end is a pure function, unit tested
without a host. Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import os
import re

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _validate

# systemd-sysctl's search path, highest priority first. A file name found in an earlier
# directory masks the same name in later ones; all remaining files are applied sorted by
# file name, so for a key set twice the file that sorts LAST wins. /etc/sysctl.conf is
# applied after them (procps `sysctl --system`; Debian and EL link it as 99-sysctl.conf).
SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"

RESERVED_PORTS_KEY = "net.ipv4.ip_local_reserved_ports"
KEY_NAME_RE = re.compile(r"^net\.(ipv4|ipv6|core)(\.[A-Za-z0-9_\-]+)+\Z")
# Anything a value may contain for a key we have no specific rule for: numbers or simple
# words separated by single spaces/tabs. No ;, $, quotes, newlines, backslashes ...
GENERIC_VALUE_RE = re.compile(r"^[A-Za-z0-9_.,:\-]+([ \t][A-Za-z0-9_.,:\-]+)*\Z")

TW_RECYCLE_REASON = (
    "net.ipv4.tcp_tw_recycle was removed in Linux 4.12: it dropped connections from clients "
    "behind NAT (timestamps from different hosts are not monotonic). It cannot be set; "
    "nothing was written"
)
FIN_TIMEOUT_NOTE = (
    "net.ipv4.tcp_fin_timeout only limits how long an orphaned connection stays in "
    "FIN_WAIT_2; it does NOT shorten TIME_WAIT, which is fixed at 60 s in the kernel "
    "(TCP_TIMEWAIT_LEN). To rebind a port with TIME_WAIT sockets use SO_REUSEADDR, socket "
    "activation or netsvc.resilience.socket_cleanup"
)
TW_BUCKETS_NOTE = (
    "net.ipv4.tcp_max_tw_buckets lowered from {old} to {new}: above it the kernel destroys "
    "new TIME_WAIT sockets at once and logs a warning; the kernel documentation says not to "
    "lower it artificially"
)
TW_REUSE_NOTE = (
    "net.ipv4.tcp_tw_reuse={value} has no effect while net.ipv4.tcp_timestamps is 0 (it "
    "needs TCP timestamps); it also never helps a server's bind(), only outgoing connect()"
)

# Per-key syntax rules: (kind, arguments). Keys not listed fall back to GENERIC_VALUE_RE.
BOOL = ("int", 0, 1)
KEY_RULES = {
    "net.ipv4.tcp_fin_timeout": ("int", 1, 3600),
    "net.ipv4.tcp_tw_reuse": ("int", 0, 2),
    "net.ipv4.tcp_timestamps": ("int", 0, 2),
    "net.ipv4.tcp_max_tw_buckets": ("int", 0, 2 ** 31 - 1),
    "net.ipv4.tcp_max_syn_backlog": ("int", 1, 2 ** 31 - 1),
    "net.ipv4.tcp_syncookies": ("int", 0, 2),
    "net.ipv4.tcp_keepalive_time": ("int", 1, 32767),
    "net.ipv4.tcp_keepalive_intvl": ("int", 1, 32767),
    "net.ipv4.tcp_keepalive_probes": ("int", 1, 127),
    "net.ipv4.tcp_syn_retries": ("int", 1, 127),
    "net.ipv4.tcp_synack_retries": ("int", 1, 127),
    "net.ipv4.tcp_orphan_retries": ("int", 0, 127),
    "net.ipv4.tcp_max_orphans": ("int", 0, 2 ** 31 - 1),
    "net.ipv4.tcp_abort_on_overflow": BOOL,
    "net.ipv4.tcp_sack": BOOL,
    "net.ipv4.tcp_window_scaling": BOOL,
    "net.ipv4.tcp_fastopen": ("int", 0, 0x7FF),
    "net.ipv4.ip_nonlocal_bind": BOOL,
    "net.ipv4.ip_forward": BOOL,
    "net.ipv4.ip_local_port_range": ("range", 1, 65535),
    "net.ipv4.tcp_rmem": ("ints", 3, 1, 2 ** 31 - 1),
    "net.ipv4.tcp_wmem": ("ints", 3, 1, 2 ** 31 - 1),
    RESERVED_PORTS_KEY: ("ports",),
    "net.core.somaxconn": ("int", 1, 2 ** 31 - 1),
    "net.core.netdev_max_backlog": ("int", 1, 2 ** 31 - 1),
    "net.core.rmem_max": ("int", 1, 2 ** 31 - 1),
    "net.core.wmem_max": ("int", 1, 2 ** 31 - 1),
    "net.ipv6.bindv6only": BOOL,
    "net.ipv6.ip_nonlocal_bind": BOOL,
}

# Named profiles. fast_restart holds only what the facts support (docs/linux-facts.md):
# - tcp_fin_timeout 15: orphaned FIN_WAIT_2 connections of a killed server go after 15 s
#   instead of 60 s (it does not touch TIME_WAIT; nothing does).
# - somaxconn / tcp_max_syn_backlog 4096: a socket-activated or restarting service can
#   queue connections through a restart instead of refusing them.
# Deliberately absent: tcp_tw_recycle (removed, broke NAT), tcp_tw_reuse (does nothing for
# bind()), lowering tcp_max_tw_buckets (kernel docs say never to).
PROFILES = {
    "none": {},
    "fast_restart": {
        "net.ipv4.tcp_fin_timeout": "15",
        "net.core.somaxconn": "4096",
        "net.ipv4.tcp_max_syn_backlog": "4096",
    },
}

HEADER = (
    "# {managed}\n"
    "# Written whole by netsvc.resilience.sysctl_tcp: local edits are overwritten.\n"
)
STATE_PREVIOUS = "# netsvc:previous "
STATE_ADDED = "# netsvc:reserved-added "


class SysctlError(Exception):
    """Bad input: the message names the key, the value and the rule."""


# --------------------------------------------------------------------------- key names


def normalize_key(key):
    """Return the dotted form of a sysctl key (sysctl also accepts net/ipv4/x)."""
    key = key.strip()
    if "/" in key and (key.find("/") < key.find(".") or "." not in key):
        key = key.replace(".", "\0").replace("/", ".").replace("\0", "/")
    return key


def key_to_proc_path(key, proc_root="/proc/sys"):
    return os.path.join(proc_root, *key.split("."))


def check_key_name(key):
    if not isinstance(key, str) or not KEY_NAME_RE.match(key) or ".." in key:
        raise SysctlError(
            "sysctl key %r is not allowed: sysctl_tcp manages full key names under "
            "net.ipv4.*, net.ipv6.* or net.core.* made of letters, digits, '_' and '-'" % (key,)
        )
    if key == "net.ipv4.tcp_tw_recycle":
        raise SysctlError(TW_RECYCLE_REASON)


# --------------------------------------------------------------------------- port lists


def parse_ports(value):
    """Parse a reserved-ports list ("8080,9000-9010", ints, lists) into sorted merged ranges.

    Returns a list of (low, high) tuples. Raises SysctlError on anything else.
    """
    items = []
    if isinstance(value, (list, tuple)):
        for v in value:
            items.extend(_port_items(v))
    else:
        items.extend(_port_items(value))
    ranges = []
    for item in items:
        try:
            entry = _validate.port_entry(item, "reserved port")  # the one port/range rule
        except _validate.InputError as e:
            raise SysctlError(str(e))
        ranges.append(entry if isinstance(entry, tuple) else (entry, entry))
    return merge_ranges(ranges)


def _port_items(value):
    if isinstance(value, bool):
        raise SysctlError("reserved port %r is not a port (1-65535)" % (value,))
    if isinstance(value, int):
        return [str(value)]
    if not isinstance(value, str):
        raise SysctlError("reserved port %r is not a port (1-65535)" % (value,))
    text = value.strip()
    if not text:
        return []
    if not re.match(r"^[0-9,\- \t]+\Z", text):
        raise SysctlError(
            "reserved ports value %r may hold only digits, ',' and '-' (e.g. '8080,9000-9010')"
            % (value,)
        )
    return [p.strip() for p in text.split(",") if p.strip()]


def merge_ranges(ranges):
    out = []
    for low, high in sorted(ranges):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def subtract_ranges(ranges, remove):
    out = []
    for low, high in ranges:
        pieces = [(low, high)]
        for rlow, rhigh in remove:
            nxt = []
            for plow, phigh in pieces:
                if rhigh < plow or rlow > phigh:
                    nxt.append((plow, phigh))
                    continue
                if plow < rlow:
                    nxt.append((plow, rlow - 1))
                if rhigh < phigh:
                    nxt.append((rhigh + 1, phigh))
            pieces = nxt
        out.extend(pieces)
    return merge_ranges(out)


def format_ports(ranges):
    return ",".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in ranges)


# --------------------------------------------------------------------------- values


def normalize_value(key, value):
    """Validate ``value`` for ``key`` and return its canonical string.

    Raises SysctlError naming the key, the value and the rule.
    """
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (list, tuple)) and key != RESERVED_PORTS_KEY:
        value = " ".join(str(v) for v in value)
    if isinstance(value, int):
        value = str(value)
    if key == RESERVED_PORTS_KEY:
        return format_ports(parse_ports(value))
    if not isinstance(value, str):
        raise SysctlError("%s: value %r is not a string or number" % (key, value))
    text = value.strip()
    rule = KEY_RULES.get(key)
    if rule is None:
        if not GENERIC_VALUE_RE.match(text):
            raise SysctlError(
                "%s: value %r is refused: values may hold only numbers or words "
                "([A-Za-z0-9_.,:-]) separated by single spaces; no newlines, ';', '$', quotes"
                % (key, value)
            )
        return text
    kind = rule[0]
    if kind == "int":
        return str(_int_in(key, value, text, rule[1], rule[2]))
    if kind == "range":
        parts = text.split()
        if len(parts) != 2:
            raise SysctlError(
                "%s: value %r must be two integers 'low high' (%d-%d)" % (key, value, rule[1], rule[2])
            )
        low, high = [_int_in(key, value, p, rule[1], rule[2]) for p in parts]
        if low > high:
            raise SysctlError("%s: value %r must be 'low high' with low <= high" % (key, value))
        return "%d %d" % (low, high)
    if kind == "ints":
        parts = text.split()
        if len(parts) != rule[1]:
            raise SysctlError("%s: value %r must be %d integers separated by spaces" % (key, value, rule[1]))
        nums = [_int_in(key, value, p, rule[2], rule[3]) for p in parts]
        if nums != sorted(nums):
            raise SysctlError("%s: value %r must be 'min default max' in increasing order" % (key, value))
        return " ".join(str(n) for n in nums)
    raise SysctlError("%s: no rule for kind %s" % (key, kind))  # pragma: no cover


def _int_in(key, value, text, low, high):
    if not re.match(r"^-?\d+\Z", text):
        raise SysctlError("%s: value %r must be an integer in %d..%d" % (key, value, low, high))
    num = int(text)
    if not low <= num <= high:
        raise SysctlError("%s: value %r is out of range %d..%d" % (key, value, low, high))
    return num


def values_equal(key, a, b):
    """Compare two values of ``key`` the way the kernel does (whitespace, port sets)."""
    if a is None or b is None:
        return a is b
    if key == RESERVED_PORTS_KEY:
        try:
            return parse_ports(a) == parse_ports(b)
        except SysctlError:
            return False
    return " ".join(str(a).split()) == " ".join(str(b).split())


# --------------------------------------------------------------------------- sysctl.d files


def parse_conf(text):
    """Parse a sysctl.d file: returns a list of (key, value, line_number).

    Keys are normalised to dotted form; a leading '-' (ignore errors) is dropped. Glob keys
    (systemd >= 249) are kept as patterns.
    """
    out = []
    for num, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        key = normalize_key(key.strip().lstrip("-"))
        out.append((key, value.strip(), num))
    return out


def ordered_files(listing, conf_exists=True):
    """Order config files like systemd-sysctl.

    ``listing`` maps a directory (in SYSCTL_DIRS priority order) to the file names in it.
    Returns full paths in application order; /etc/sysctl.conf last unless already linked.
    """
    chosen = {}
    for directory in SYSCTL_DIRS:
        for name in listing.get(directory, ()):
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = os.path.join(directory, name)
    paths = [chosen[name] for name in sorted(chosen)]
    if conf_exists:
        paths.append(SYSCTL_CONF)
    return paths


def find_overrides(own_path, desired, files):
    """Report keys of ``desired`` another file would override at boot.

    ``files`` is an ordered list of (path, text) in application order (see ordered_files),
    which may or may not contain ``own_path``; if it does not, ours is placed where its
    name sorts. Returns {key: [{"file": path, "value": value}]} for files applied after
    ours that set the key (or a glob matching it) to a different value.
    """
    own_name = os.path.basename(own_path)
    after = []
    seen_own = False
    for path, text in files:
        if path == own_path:
            seen_own = True
            after = []
            continue
        # Without our file in the list, ours sorts by name; a same-named file in a
        # lower-priority directory is masked by ours.
        if not seen_own and path != SYSCTL_CONF and os.path.basename(path) <= own_name:
            continue
        after.append((path, text))
    result = {}
    for path, text in after:
        for key, value, _num in parse_conf(text):
            for want_key, want_value in desired.items():
                matches = key == want_key or ("*" in key and fnmatch.fnmatchcase(want_key, key))
                if matches and not values_equal(want_key, value, want_value):
                    result.setdefault(want_key, []).append({"file": path, "value": value})
    return result


def parse_state(text):
    """Read the bookkeeping comments of our own file.

    Returns (previous, added): previous maps key -> live value before we first managed it;
    added is the list of reserved-port ranges this collection added.
    """
    previous = {}
    added = []
    for line in (text or "").splitlines():
        if line.startswith(STATE_PREVIOUS):
            key, _sep, value = line[len(STATE_PREVIOUS):].partition("=")
            previous[key.strip()] = value.strip()
        elif line.startswith(STATE_ADDED):
            try:
                added = parse_ports(line[len(STATE_ADDED):].strip())
            except SysctlError:
                added = []
    return previous, added


def render_conf(values, previous, added, managed="Ansible managed"):
    """Render our sysctl.d file: header, bookkeeping, then one key per line, sorted."""
    lines = [HEADER.format(managed=managed)]
    for key in sorted(previous):
        lines.append("%s%s=%s\n" % (STATE_PREVIOUS, key, previous[key]))
    if added:
        lines.append("%s%s\n" % (STATE_ADDED, format_ports(added)))
    for key in sorted(values):
        lines.append("%s = %s\n" % (key, values[key]))
    return "".join(lines)


# --------------------------------------------------------------------------- planning


def requested_settings(params, state):
    """(user's settings by normalized key, what is asked: profile + user). Raises SysctlError."""
    profile = params.get("profile") or "none"
    if profile not in PROFILES:
        raise SysctlError("profile %r is unknown: choose one of %s" % (profile, ", ".join(sorted(PROFILES))))
    user = {}
    for raw_key, raw_value in (params.get("settings") or {}).items():
        key = normalize_key(str(raw_key))
        check_key_name(key)
        if key == RESERVED_PORTS_KEY:
            raise SysctlError(
                "%s is a shared list: use the reserved_ports option, which merges ports as a set "
                "and keeps other users' entries" % key
            )
        user[key] = raw_value
    requested = dict(PROFILES[profile]) if state == "present" else {}
    requested.update(user)
    return user, requested


def normalized_values(requested, live, state, allow_unknown):
    """Each asked value in the kernel's form; a key this host does not have is refused."""
    normalized = {}
    for key, raw_value in requested.items():
        if state == "present":
            normalized[key] = normalize_value(key, raw_value)
        if live.get(key) is None and not allow_unknown and state == "present":
            raise SysctlError(
                "sysctl key %s does not exist on this host (no /proc/sys/%s): check the name "
                "or set allow_unknown=true to persist it anyway" % (key, key.replace(".", "/"))
            )
    return normalized


def plan_reserved_ports(params, state, live, existing, values, added, restore):
    """The shared reserved-ports list: ours merged in as a set, other users' entries kept.
    Updates ``values`` and ``restore``; returns the ports we added."""
    ports = parse_ports(params.get("reserved_ports") or [])
    if state == "absent" and params.get("purge"):
        ports = merge_ranges(ports + added)
    if not (ports or RESERVED_PORTS_KEY in existing):
        return added
    base_text = live.get(RESERVED_PORTS_KEY)
    if base_text is None:
        base_text = existing.get(RESERVED_PORTS_KEY, "")
    base = parse_ports(base_text or "")
    dropped = []
    if state == "present":
        # ports this file added that are no longer asked for go (a service's port removed);
        # another user's entries stay
        dropped = subtract_ranges(added, ports)
        base = subtract_ranges(base, dropped)
        added = merge_ranges(subtract_ranges(added, dropped) + subtract_ranges(ports, base))
        target = merge_ranges(base + ports)
    else:
        added = subtract_ranges(added, ports)
        target = subtract_ranges(base, ports)
    # The file carries the shared list only while it holds ports we added; entries of
    # other users stay in it (the whole list is written at boot), and are kept live.
    if added:
        values[RESERVED_PORTS_KEY] = format_ports(target)
    else:
        values.pop(RESERVED_PORTS_KEY, None)
    if state == "absent" or dropped:
        restore[RESERVED_PORTS_KEY] = format_ports(target)
    return added


def myth_warnings(user, normalized, values, live):
    """Warnings grounded in docs/linux-facts.md."""
    warnings = []
    if "net.ipv4.tcp_fin_timeout" in user:
        warnings.append(FIN_TIMEOUT_NOTE)
    if "net.ipv4.tcp_max_tw_buckets" in normalized and live.get("net.ipv4.tcp_max_tw_buckets") is not None:
        old = int(str(live["net.ipv4.tcp_max_tw_buckets"]).strip())
        new = int(normalized["net.ipv4.tcp_max_tw_buckets"])
        if new < old:
            warnings.append(TW_BUCKETS_NOTE.format(old=old, new=new))
    reuse = values.get("net.ipv4.tcp_tw_reuse")
    if "net.ipv4.tcp_tw_reuse" in normalized and reuse not in (None, "0"):
        stamps = values.get("net.ipv4.tcp_timestamps", live.get("net.ipv4.tcp_timestamps"))
        if stamps is not None and str(stamps).strip() == "0":
            warnings.append(TW_REUSE_NOTE.format(value=reuse))
    return warnings


def plan(params, live, current_file_text):
    """Compute the desired end state. Pure: ``live`` maps key -> live value (or None when the
    key does not exist on this host); ``current_file_text`` is our file's content or None.

    Returns a dict with: values (our file's keys -> values), live_targets (key -> value to
    write live), previous, added, warnings, restore (key -> value to write live on absent).
    Raises SysctlError before anything can be written.
    """
    state = params.get("state", "present")
    user, requested = requested_settings(params, state)
    normalized = normalized_values(requested, live, state, params.get("allow_unknown", False))
    previous, added = parse_state(current_file_text)
    existing = {key: value for key, value, _num in parse_conf(current_file_text or "")}
    values = dict(existing)
    restore = {}
    if state == "present":
        values.update(normalized)
        for key in normalized:
            if key not in previous and live.get(key) is not None and key not in existing:
                previous[key] = " ".join(str(live[key]).split())
    # absent: the user's keys; with purge every key this file records (reserved ports aside)
    undo = list(user) if state != "present" else []
    if state == "absent" and params.get("purge"):
        undo += [k for k in existing if k != RESERVED_PORTS_KEY]
    kept = []
    for key in undo:
        ours = values.pop(key, None)
        if key in previous:
            before = previous.pop(key)
            # put back only a value that still holds what this file set: one changed since is
            # someone else's (an admin's), and stays
            if ours is None or live.get(key) is None or values_equal(key, live.get(key), ours):
                restore[key] = before
            else:
                kept.append("%s is %s, not the %s this file set: changed since, left as it is (it was %s before)"
                            % (key, live.get(key), ours, before))
    added = plan_reserved_ports(params, state, live, existing, values, added, restore)
    warnings = myth_warnings(user, normalized, values, live) if state == "present" else kept
    live_targets = dict(values)
    live_targets.update(restore)
    # only keys that exist live can be written live
    live_targets = {k: v for k, v in live_targets.items() if live.get(k) is not None}
    return {"values": values, "live_targets": live_targets, "previous": previous, "added": added,
            "restore": restore, "warnings": warnings}


def live_changes(live, targets):
    """Keys whose live value differs from the target (compared the kernel's way)."""
    return {
        k: v for k, v in targets.items() if not values_equal(k, live.get(k), v)
    }


# --------------------------------------------------------------------------- host I/O


def read_live(keys, proc_root="/proc/sys"):
    out = {}
    for key in keys:
        try:
            with open(key_to_proc_path(key, proc_root)) as f:
                out[key] = " ".join(f.read().split())
        except (IOError, OSError):
            out[key] = None
    return out


def write_live(key, value, proc_root="/proc/sys"):
    """Write one live value. Raises OSError/IOError (EROFS, EACCES, EINVAL) to the caller."""
    with open(key_to_proc_path(key, proc_root), "w") as f:
        f.write("%s\n" % value)


def read_config_files(own_path):
    listing = {}
    for directory in SYSCTL_DIRS:
        try:
            listing[directory] = [
                n for n in os.listdir(directory) if os.path.isfile(os.path.join(directory, n))
            ]
        except OSError:
            listing[directory] = []
    paths = ordered_files(listing, os.path.isfile(SYSCTL_CONF))
    files = []
    real_own = os.path.realpath(own_path)
    linked_conf = any(
        os.path.realpath(p) == os.path.realpath(SYSCTL_CONF) for p in paths if p != SYSCTL_CONF
    )
    for path in paths:
        if path == SYSCTL_CONF and linked_conf:
            continue
        try:
            with open(path) as f:
                text = f.read()
        except (IOError, OSError):
            continue
        files.append((own_path if os.path.realpath(path) == real_own else path, text))
    return files


def netns_info():
    """Identify the network namespace: sysctls under net.* apply to it only."""
    info = {"inode": None, "initial": None, "container": None}
    try:
        info["inode"] = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        pass
    container = None
    for marker in ("/run/systemd/container", "/.dockerenv", "/run/.containerenv"):
        if os.path.exists(marker):
            container = marker
            break
    info["container"] = container
    if info["inode"] == 0xEFFFFFF9:  # PROC_NET_INIT_INO on kernels that fix init_net's inode
        info["initial"] = True
    elif container:
        info["initial"] = False
    return info
