# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restart hook's plan: how ExecStartPre= runs it inside each unit's sandbox.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). Pure functions, unit tested.

``ExecStartPre=`` runs with the unit's User=, capability bounding set, address families,
seccomp filter and exec paths. SOCK_DESTROY needs CAP_NET_ADMIN and an AF_NETLINK socket,
so a hook run inside e.g. Debian's memcached or redis unit cleans nothing. Hence:
- systemd >= 231: ``ExecStartPre=+-HOOK``: '+' runs that one command with full privileges
  (no User=, no capability, address-family, seccomp or namespace restriction), '-' ignores
  its failure. The service's own commands keep their sandbox.
- systemd < 231 (EL7's 219 has no '+'): ``PermissionsStartOnly=yes``, and only for a unit
  whose sandbox would block the hook. In 219 that skips User=/Group=, the bounding set,
  capabilities, NoNewPrivileges=, RestrictAddressFamilies= and SystemCallFilter= for every
  command but ExecStart= (namespaces such as ProtectSystem= still apply): the least
  invasive way there, but it also lifts them from the unit's other ExecStartPre=,
  ExecStartPost=, ExecReload= and ExecStop= commands, and the module says so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import os

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _constants
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._unit import UnitError

PRIVILEGES = ("auto", "prefix", "permissions_start_only", "none")
# what `systemctl show` tells about a unit's sandbox (all exist on 219 except the newer ones,
# which are then simply absent from the output)
SANDBOX_PROPS = ("User", "DynamicUser", "CapabilityBoundingSet", "RestrictAddressFamilies", "PrivateUsers",
                 "NoExecPaths", "ExecPaths", "PrivateNetwork", "NetworkNamespacePath")
CAP_NET_ADMIN = 12
NATIVE_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def _has_cap_net_admin(value):
    """CapabilityBoundingSet as shown: names (new systemd), a number (219), '' (empty set)."""
    text = (value or "").strip()
    if text.isdigit() or text.startswith("0x"):
        return bool(int(text, 0) & (1 << CAP_NET_ADMIN))
    return "cap_net_admin" in text.lower().split()


def sandbox_blockers(show):
    """Why the hook could not clean when run inside this unit's sandbox (empty: it could)."""
    out = []
    user = show.get("User", "")
    if user not in ("", "root", "0"):
        out.append("User=%s (no CAP_NET_ADMIN)" % user)
    if show.get("DynamicUser") == "yes":
        out.append("DynamicUser=yes (no CAP_NET_ADMIN)")
    if "CapabilityBoundingSet" in show and not _has_cap_net_admin(show["CapabilityBoundingSet"]):
        out.append("CapabilityBoundingSet= without CAP_NET_ADMIN")
    families = (show.get("RestrictAddressFamilies") or "").split()
    if families and families != ["~"]:
        deny = families[0].startswith("~")
        named = [f.lstrip("~") for f in families if f != "~"]
        if (deny and "AF_NETLINK" in named) or (not deny and "AF_NETLINK" not in named):
            out.append("RestrictAddressFamilies=%s (no AF_NETLINK)" % " ".join(families))
    if show.get("PrivateUsers") == "yes":
        out.append("PrivateUsers=yes (capabilities only inside a user namespace)")
    if show.get("NoExecPaths"):
        out.append("NoExecPaths=%s (may forbid executing the hook)" % show["NoExecPaths"])
    return out


def own_netns(show):
    """The unit's own network namespace in words, or None (the host's)."""
    if show.get("PrivateNetwork") == "yes":
        return "PrivateNetwork=yes"
    if show.get("NetworkNamespacePath"):
        return "NetworkNamespacePath=%s" % show["NetworkNamespacePath"]
    return None


def netns_refusal(show, version):
    """Why a unit with its own network namespace gets no hook on this systemd, or None.

    A '+' ExecStartPre= runs inside the service's namespace where that was measured (247,
    252, 257): the hook then cleans the service's own sockets. Below, it is not known, and a
    hook in the host's namespace would clean whatever else uses the port there."""
    netns = own_netns(show)
    if netns and version < _constants.NETNS_HOOK_MEASURED_SINCE:
        return ("%s on systemd %d: where its pre-start commands run is not measured below systemd %d, and the "
                "hook must never clean the host's namespace for the service's port; no hook"
                % (netns, version, _constants.NETNS_HOOK_MEASURED_SINCE))
    return None


def hook_argv(path, unit, targets, drain_ms=None):
    """The hook's command line: what it cleans is ``targets`` (_reuse.hook_targets': the
    service's listen addresses, or bare ports); ``drain_ms``: how long a socket still holding
    data may deliver it before it is destroyed."""
    drain = ["--drain-ms", "%d" % drain_ms] if drain_ms is not None else []
    return [path, "--unit", unit] + drain + [str(t) for t in targets]


def plan_exec(path, unit, targets, version, privilege, blockers, drain_ms=None):
    """How the hook runs for one unit.

    Returns dict(line (ExecStartPre= value), extra_service ({directive: value}), mode
    ('prefix', 'permissions_start_only' or 'none'), warnings). Raises UnitError for a
    privilege this systemd cannot give.
    """
    if privilege not in PRIVILEGES:
        raise UnitError("privilege %r must be one of %s" % (privilege, ", ".join(PRIVILEGES)))
    if privilege == "auto" and version >= _constants.PLUS_PREFIX_SINCE:
        mode = "prefix"
    elif privilege == "auto":
        mode = "permissions_start_only" if blockers else "none"
    elif privilege == "prefix" and version < _constants.PLUS_PREFIX_SINCE:
        raise UnitError("privilege=prefix for %s: systemd %d has no '+' ExecStartPre= prefix (added in %d); use "
                        "privilege=auto or permissions_start_only" % (unit, version, _constants.PLUS_PREFIX_SINCE))
    elif privilege == "permissions_start_only" and version >= _constants.PLUS_PREFIX_SINCE:
        # systemd >= 240 no longer exposes PermissionsStartOnly= (it turns it into '+' on every
        # other non-main command), so what it does could not even be read back
        raise UnitError("privilege=permissions_start_only for %s: systemd %d has the '+' prefix (since %d), which "
                        "gives full privileges to the hook alone; PermissionsStartOnly= would lift the sandbox from "
                        "every ExecStartPre=/ExecStartPost=/ExecReload=/ExecStop= command (and is deprecated from "
                        "240): use privilege=auto or prefix" % (unit, version, _constants.PLUS_PREFIX_SINCE))
    else:
        mode = privilege
    argv = " ".join(hook_argv(path, "%n", targets, drain_ms))
    warnings = []
    extra = {}
    if mode == "prefix":
        line = "+-" + argv
    else:
        line = "-" + argv
        if mode == "permissions_start_only":
            extra["PermissionsStartOnly"] = "yes"
            warnings.append(
                "%s: PermissionsStartOnly=yes so that the cleanup hook runs with full privileges (systemd %d has no "
                "'+' prefix); it also lifts User=, capabilities, RestrictAddressFamilies= and SystemCallFilter= from "
                "the unit's other ExecStartPre=/ExecStartPost=/ExecReload=/ExecStop= commands (ExecStart= keeps them)%s"
                % (unit, version, ": needed because of " + "; ".join(blockers) if blockers else ""))
        elif blockers:
            warnings.append(
                "%s: the cleanup hook runs inside the unit's sandbox (privilege=none) and cannot destroy sockets "
                "there: %s. The audit reports it; use privilege=auto" % (unit, "; ".join(blockers)))
    return {"line": line, "extra_service": extra, "mode": mode, "warnings": warnings}


def expected_readback(path, unit, targets, mode, version, drain_ms=None):
    """[(directive, property, check, expected_text)] for _systemd.effective_mismatches.

    ExecStartPreEx (with the prefixes as flags) exists from systemd 243.
    """
    want_argv = " ".join(hook_argv(path, unit, targets, drain_ms))

    def hook_present(value):
        return ("argv[]=%s ;" % want_argv) in value

    def hook_privileged(value):
        # ExecStartPreEx (systemd >= 243) shows the prefixes as flags
        for entry in value.split("} {"):
            if ("argv[]=%s ;" % want_argv) in entry:
                return "ignore-failure" in entry and (mode != "prefix" or "privileged" in entry)
        return False

    checks = [("ExecStartPre", "ExecStartPre", hook_present, "the hook (%s)" % want_argv)]
    if version >= 243:
        checks.append(("ExecStartPre", "ExecStartPreEx", hook_privileged,
                       "the hook with flags ignore-failure%s" % (" privileged" if mode == "prefix" else "")))
    if mode == "permissions_start_only":
        checks.append(("PermissionsStartOnly", "PermissionsStartOnly", lambda v: v == "yes", "yes"))
    return checks


def hook_dir(os_family):
    return _constants.HOOK_DIRS.get(os_family, _constants.HOOK_DIR_FALLBACK)


def pick_payload(payload, machine, python):
    """What to install as the hook on this host: (content bytes or text, kind).

    ``payload``: {'native': {arch: bytes}, 'python': text} as the action plugin sends it.
    The native build for this machine's architecture, else the Python twin as a script.
    """
    arch = NATIVE_ARCHES.get(machine)
    native = (payload or {}).get("native") or {}
    if arch and native.get(arch):
        return native[arch], "native-" + arch
    source = (payload or {}).get("python")
    if not source:
        raise UnitError("no hook for architecture %s: the payload has neither a native build nor the Python hook"
                        % machine)
    return "#!%s -IS\n%s" % (python, source), "python"


def host_python(executable, exists=os.path.exists):
    """The interpreter for the Python hook: a stable system path before the module's own."""
    for candidate in ("/usr/bin/python3", "/usr/libexec/platform-python"):
        if exists(candidate):
            return candidate
    return executable


def decode_payload(payload):
    """{'native': {arch: base64 text}, 'python': text} -> the same with bytes; raises UnitError."""
    if not isinstance(payload, dict):
        raise UnitError("payload must be the dict the action plugin sends (native builds and the Python hook)")
    native = {}
    for arch, text in (payload.get("native") or {}).items():
        try:
            native[arch] = base64.b64decode(text, validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise UnitError("payload native build for %s is not base64" % arch)
        if not native[arch]:
            raise UnitError("payload native build for %s is empty" % arch)
    return {"native": native, "python": payload.get("python")}
