# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the shared ``netsvc_services`` data model (controller side)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

# Defaults of the shared netsvc_services data model: a key a service does not set has this value.
SERVICE_DEFAULTS = {
    "backend": "auto",
    "cleanup": "auto",
    "reserve_ports": True,
    "socket_activation": False,
}


# The keys of a netsvc_services entry (harden_restart's meta/argument_specs.yml documents them;
# a unit test keeps the two the same). Every role reads the list through these filters, so a
# role used alone refuses what harden_restart's argument spec refuses.
SERVICE_KEYS = ("accepts_inherited_fds", "backend", "cleanup", "command", "name", "ports", "reserve_ports", "restart",
                "socket_activation", "user")
_CHOICES = {"backend": ("auto", "systemd", "supervisord"), "cleanup": (True, False, "auto")}


def _services(services):
    """The netsvc_services list, checked: a list of dicts, each with a name, no key the data
    model does not have (a typo such as ``port`` would silently harden without ports), and
    backend and cleanup among their choices."""
    if services is None:
        return []
    if not isinstance(services, (list, tuple)):
        raise AnsibleFilterError("netsvc_services must be a list of services, got %r" % (services,))
    for i, svc in enumerate(services):
        if not isinstance(svc, dict) or not svc.get("name"):
            raise AnsibleFilterError("each netsvc_services entry must be a dict with a name, got %r" % (svc,))
        unknown = sorted(str(k) for k in svc if k not in SERVICE_KEYS)
        if unknown:
            raise AnsibleFilterError("netsvc_services[%d] (%s): unknown key(s) %s; the keys are %s"
                                     % (i, svc["name"], ", ".join(unknown), ", ".join(SERVICE_KEYS)))
        for key, choices in sorted(_CHOICES.items()):
            if key in svc and not any(svc[key] is c or (isinstance(c, str) and svc[key] == c) for c in choices):
                raise AnsibleFilterError("netsvc_services[%d] (%s): %s %r must be one of %s"
                                         % (i, svc["name"], key, svc[key], ", ".join(str(c).lower() for c in choices)))
    return services


def service_ports(services, flag=None):
    out = []
    for svc in _services(services):
        if flag and svc.get(flag, True) is False:
            continue
        for port in svc.get("ports") or []:
            if port not in out:
                out.append(port)
    return sorted(out, key=lambda p: (int(str(p).split("-", 1)[0]), str(p)))


def _matches(value, wanted):
    return value in wanted if isinstance(wanted, (list, tuple)) else value == wanted


def select_services(services, has_ports=None, **where):
    """Services whose effective value (SERVICE_DEFAULTS fill missing keys) matches ``where``.

    A list as a wanted value means any of them, e.g. backend=['auto', 'systemd'].
    """
    out = []
    for svc in _services(services):
        if has_ports is not None and bool(svc.get("ports")) != bool(has_ports):
            continue
        if all(_matches(svc.get(key, SERVICE_DEFAULTS.get(key)), wanted) for key, wanted in where.items()):
            out.append(svc)
    return out


def restart_policies(services, policy=None, hook="", backend="auto"):
    """netsvc_services -> the ``services`` list of service_restart_policy (one call per host).

    Each entry: ``policy`` (role-wide options) overridden by the service's ``restart`` dict,
    plus name, backend, socket activation and its integer ports. A supervisord program gets
    its ``command`` and ``user``, and ``cleanup_hook`` when there is a hook and ``cleanup`` is
    not false: the module then runs the command through the hook.
    """
    out = []
    for svc in _services(services):
        overrides = svc.get("restart") or {}
        if not isinstance(overrides, dict):
            raise AnsibleFilterError("service %s: restart must be a dict of service_restart_policy options, got %r"
                                     % (svc["name"], overrides))
        item = dict(policy or {})
        item.update(overrides)
        ports = [p for p in svc.get("ports") or [] if isinstance(p, int) and not isinstance(p, bool)]
        item.update(name=svc["name"], backend=svc.get("backend", backend),
                    socket_activation=svc.get("socket_activation", False),
                    accepts_inherited_fds=bool(svc.get("accepts_inherited_fds", False)), ports=ports)
        if svc.get("command") is not None:
            item["command"] = svc["command"]
        # a supervisord program's command goes through the hook (its own section may hold the
        # command: none is needed here); a preload socket unit cleans before it binds; a plain
        # systemd service ignores it (its hook is prestart_hook's drop-in)
        if hook and svc.get("cleanup", SERVICE_DEFAULTS["cleanup"]) is not False:
            item["cleanup_hook"] = hook
        if svc.get("user") is not None:
            item["user"] = svc["user"]
        out.append(item)
    return out


def hooked_services(services):
    """The services the pre-start hook is planned for: ports, and no socket activation (a socket
    unit never closes its listening socket, so there is nothing to clean)."""
    return select_services(services, has_ports=True, socket_activation=False)


def reserved_ports(services, kernel=True, given=None):
    """The ports a run keeps out of the ephemeral range (sysctl_tcp's ``reserved_ports``).

    With the kernel concern on: ``given`` (kernel_tuning_reserved_ports) when set, else every
    service's ports but those with ``reserve_ports: false``. With it off (only the hook's part
    of it runs, as prestart_cleanup does on its own): only the ports the hook cleans - hooked
    services whose ``cleanup`` is not false, again without ``reserve_ports: false``.
    """
    if kernel:
        return given if given is not None else service_ports(services, "reserve_ports")
    return service_ports(select_services(hooked_services(services), cleanup=[True, "auto"]), "reserve_ports")


def restart_hook(prestart, cleanup_state="present", cleanup_path=None):
    """The hook a supervisord program's command runs through (service_restart_policy's
    ``cleanup_hook``; "" for none).

    ``prestart`` (crash_recovery_prestart, the hook's options in the same call) decides when it
    is set: "auto" (the hook that call installs) unless its state is absent. Without it, the
    hook prestart_cleanup installs on its own: none when ``cleanup_state`` (prestart_cleanup_state)
    is absent, else ``cleanup_path`` (prestart_cleanup_hook_path) when set, else "auto" (the
    module finds the hook at its default path on the host)."""
    if prestart:
        if not isinstance(prestart, dict):
            raise AnsibleFilterError("crash_recovery_prestart must be a dict of prestart_hook's options, got %r"
                                     % (prestart,))
        return "auto" if (prestart.get("state") or "present") == "present" else ""
    state = cleanup_state or "present"
    if state not in ("present", "absent"):
        raise AnsibleFilterError("prestart_cleanup_state %r must be present or absent" % (cleanup_state,))
    return (cleanup_path or "auto") if state == "present" else ""


def given_options(names, values):
    """{name: value} for each of ``names`` whose value (in ``values``, in the same order) is set -
    not None or "" (what the vars lookup's ``default=''`` gives for an undefined variable): a
    module's options from role variables, an unset one left to the module's default."""
    names, values = list(names), list(values)
    if len(names) != len(values):
        raise AnsibleFilterError("given_options: %d names but %d values" % (len(names), len(values)))
    return {name: value for name, value in zip(names, values) if value is not None and value != ""}


def canaries(hosts, canary, name="netsvc_canary"):
    """The canary batch of ``hosts`` (the play's hosts in order) as ansible-core's ``serial``
    makes it from ``canary``: a count (1, "2") or a percentage ("40%": that share of the hosts,
    rounded down, at least one). Anything else is refused, naming the value and the rule: a
    value read some other way would gate the rollout with no canary at all."""
    hosts = list(hosts)
    text = str(canary).strip() if not isinstance(canary, bool) else ""
    if text.endswith("%") and text[:-1].strip().isdigit():
        pct = int(text[:-1])
        if not 0 < pct <= 100:
            raise AnsibleFilterError("%s %r: a percentage must be 1%%-100%%" % (name, canary))
        return hosts[:int(pct / 100.0 * len(hosts)) or 1]
    if text.isdigit() and int(text) > 0 and not isinstance(canary, float):
        return hosts[:int(text)]
    raise AnsibleFilterError("%s %r is neither a number of hosts (1, 2, ...) nor a percentage of them ('10%%'), "
                             "as serial reads a batch size: the rollout needs its batches" % (name, canary))


class FilterModule(object):
    def filters(self):
        return {"service_ports": service_ports, "select_services": select_services,
                "restart_policies": restart_policies, "given_options": given_options, "canaries": canaries,
                "hooked_services": hooked_services, "reserved_ports": reserved_ports,
                "restart_hook": restart_hook}
