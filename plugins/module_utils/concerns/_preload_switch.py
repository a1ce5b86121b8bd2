# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preload concern (socket_activation: preload of systemd services): the socket unit
mirrored from the live listeners, the library, the move of a running service onto its socket
unit (PreloadsPlan.after_commit: switch), the re-mirror of a drifted one (before the commit:
mirror_again) and the way back to binding on its own (a PreloadPlan of kind "undo").
_service_restart_policy plans each service's units and asks this file for its preload part
(plan, plan_undo, none); the library's own facts and the switch's steps are _preload's.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _command,
    _failure,
    _hook,
    _host_state,
    _plan,
    _preload,
    _probe,
    _reuse,
    _sockdiag,
    _systemd,
    _unit,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import FileSet, read_text


class PreloadPlan(_plan.Plan):
    """What socket_activation: preload does for one service (the preload concern: PreloadsPlan, below).

    kind              "none" (not preloaded), "present" (switch or keep it on its socket unit) or
                      "undo" (state=absent of a preloaded service: it binds on its own again)
    files             the FileSet of its socket unit and the library ("present"), or of the socket
                      unit that goes ("undo"); empty for "none"
    library           the preload library's path on the host ("present" and "undo")
    library_content   the build of the library for this machine ("present")
    extra_unit        [Unit] directives the service's drop-in gets ("present")
    extra_service     [Service] directives the service's drop-in gets (LD_PRELOAD; "present")
    socket_text       the socket unit, mirrored from the live listeners ("present")
    streams           the mirrored ListenStream= addresses ("present")
    bind_v6only       BindIPv6Only= of the mirror, None when no IPv6 wildcard ("present")
    directives        the socket options mirrored as directives (BindToDevice=, Mark=, ...)
    switched          True when PID 1 already holds the sockets, False when the switch is to do
    remirrored        the listeners no longer matched the socket unit: mirrored again
    switch            after the switch: what switch_over measured
    listeners_after   after the switch: who serves the ports
    restarted_after_s after an undo: seconds until the service listened on its own
    plain_dropin      the drop-in without the preload parts, while it binds on its own to be
                      mirrored again (remirrored; "present")
    hook              the cleanup hook the socket unit's pre-start runs, or None ("present")
    backlog           the socket unit's Backlog= ("present")
    """

    __slots__ = ("kind", "files", "library", "library_content", "extra_unit", "extra_service", "socket_text",
                 "streams", "bind_v6only", "directives", "switched", "remirrored", "switch", "listeners_after",
                 "restarted_after_s", "plain_dropin", "hook", "backlog")
    DEFAULTS = dict.fromkeys(name for name in __slots__ if name not in ("kind", "files"))  # always given
    # what the module returns of a "present" plan (and of an "undo" one: the library, the restart)
    REPORTED = ("streams", "bind_v6only", "directives", "switched", "library", "remirrored")
    REPORTED_IF_DONE = ("switch", "listeners_after", "restarted_after_s")

    @property
    def to_switch(self):
        return self.kind == "present" and self.switched is False

    def report(self):
        if self.kind == "none":
            return {}
        out = {k: getattr(self, k) for k in self.REPORTED if self.kind == "present" or k == "library"}
        out.update((k, getattr(self, k)) for k in self.REPORTED_IF_DONE if getattr(self, k) is not None)
        return out


def none(module):
    """The PreloadPlan of a service that is not preloaded."""
    return PreloadPlan(kind="none", files=FileSet(module))


def plan_undo(module, p, paths):
    """A preloaded service leaves preload (state=absent, or another socket_activation): its
    socket unit goes, it binds its ports itself again."""
    library = _host_state.preload_library_path(p["preload_library"])
    undo = PreloadPlan(kind="undo", files=FileSet(module), library=library)
    undo.files.want(paths["socket_path"], None)
    return undo


def plan(module, p, name, paths, was=None):
    """socket_activation: preload for one service: checked, mirrored, rendered - nothing written.
    A switched service whose listeners no longer match its socket unit, or one on our native
    socket unit (``was``: it never bound itself there), is mirrored again at the commit
    (PreloadsPlan.before_commit: it first binds on its own again, so that what it asks for can be
    read); until then its socket unit is planned as it is, and the switch as to do."""
    def in_unit(pid):
        return _probe.in_unit_cgroup(pid, name)

    ports = sorted(set(p["ports"]))
    systemd = _systemd.Systemd(module)
    ours = _preload.HEADER in (read_text(paths["socket_path"]) or "")
    info = _preload.observe(systemd, name, ports, in_unit, _reuse.socket_options, ours)
    remirror = info["remirror"] or ("it is on a native socket unit of ours, whose sockets say nothing of what it "
                                    "binds itself" if was == "native" else None)
    if remirror:
        info.update(switched=False, streams=[], bind_v6only=None, directives=[], unknown_options=[])
    library = _host_state.preload_library_path(p["preload_library"])
    _validate.abs_path(library, "preload_library", plain=True)
    builds = _hook.decode_payload(p["payload"] or {})["native"]
    arch = _hook.NATIVE_ARCHES.get(os.uname()[4])
    if not builds.get(arch):
        raise _unit.UnitError("socket_activation: preload for %s: no build of the preload library for %s (x86_64 and "
                              "aarch64 are shipped); nothing was written" % (name, os.uname()[4]))
    preload_value = _preload.ld_preload(info["environment"], library)
    extra_unit, extra_service = _preload.service_directives(paths["socket_name"], preload_value, p["backlog"])
    merged_unit = dict(p["extra_unit"] or {})
    merged_unit.update(extra_unit)
    merged_service = dict(p["extra_service"] or {})
    merged_service.update(extra_service)
    # known only once the server binds on its own (at the commit): until then, the unit as it is
    socket_text = (read_text(paths["socket_path"]) or "") if remirror else mirror_text(
        name, p["cleanup_hook"], p["backlog"], info)
    files = FileSet(module)
    files.want(paths["socket_path"], socket_text)
    files.want(library, builds[arch])
    return PreloadPlan(kind="present", files=files, library=library, library_content=builds[arch],
                       extra_unit=merged_unit, extra_service=merged_service, socket_text=socket_text,
                       streams=info["streams"], bind_v6only=info["bind_v6only"], directives=info["directives"],
                       switched=info["switched"], remirrored=remirror,
                       plain_dropin=_unit.render_dropin(_unit.normalize_options(p), systemd.version)[0]
                       if remirror else None, hook=p["cleanup_hook"], backlog=p["backlog"]), \
        unknown_options_warnings(name, info)


def mirror_text(name, cleanup_hook, backlog, info):
    """The socket unit mirrored from ``info`` (_preload.observe), its pre-start the hook."""
    # the socket unit's own pre-start: it binds where the server's leftovers may still be
    hook = "-" + " ".join(_hook.hook_argv(cleanup_hook, "%n", info["streams"])) if cleanup_hook else None
    return _preload.render_socket(name, info["streams"], info["bind_v6only"], backlog, hook, info["directives"])


def unknown_options_warnings(name, info):
    if not info["unknown_options"]:
        return []
    return ["%s: the options of %s could not be read (pidfd_getfd needs Linux >= 5.6 and root with "
            "CAP_SYS_PTRACE): its socket unit binds them without BindToDevice=, FreeBind=, Transparent=, "
            "ReusePort= or Mark=; the preload library refuses a bind() whose device, mark or "
            "IP_TRANSPARENT then differ" % (name, ", ".join(info["unknown_options"]))]


def mirror_again(module, systemd, tx, pl, warnings):
    """At the commit, before the files are written: a service whose socket unit no longer
    matches it binds on its own again (unswitch), what it binds is mirrored, and its planned
    files (socket unit, drop-in) are planned again against the host as the unswitch left it."""
    ports = pl.ports

    def in_unit(pid):
        return _probe.in_unit_cgroup(pid, pl.name)

    unswitch(module, systemd, tx, pl)
    try:
        info = _preload.observe(systemd, pl.name, ports, in_unit, _reuse.socket_options, False)
    except _unit.UnitError as e:
        tx.fail("socket_activation: preload for %s: bound on its own again to be mirrored, but %s" % (pl.name, e))
    warnings.extend(unknown_options_warnings(pl.name, info))
    pre = pl.preload
    pre.socket_text = mirror_text(pl.name, pre.hook, pre.backlog, info)
    pre.streams, pre.bind_v6only, pre.directives = info["streams"], info["bind_v6only"], info["directives"]
    pre.files.want(pl.socket_path, pre.socket_text)
    pre.files.refresh()
    pl.files.refresh()


def unswitch(module, systemd, tx, pl):
    """A service binds on its own again: stop it and its socket unit, its drop-in without the
    preload parts, no socket unit, one reload, start it until it listens. On failure its files
    are put back, both started again, and the task fails (with what ``tx`` stopped started)."""
    files = FileSet(module)
    files.want(pl.dropin_path, pl.preload.plain_dropin)
    files.want(pl.socket_path, None)
    _command.run(module, [systemd.systemctl, "stop", pl.name, pl.socket_name], check=False)
    try:
        files.apply()
        if systemd.reload()[0] != 0:
            raise _unit.UnitError("systemctl daemon-reload failed")
        _preload.restart_on_its_own(module, systemd, pl.name, pl.ports, pl.switch_timeout)
    except (_unit.UnitError, IOError, OSError) as e:
        files.rollback()
        systemd.reload()
        _command.run(module, [systemd.systemctl, "start", pl.socket_name, pl.name], check=False)
        tx.fail("socket_activation: preload for %s: mirroring its sockets again needs it to bind on its own, and it "
                "did not (%s); its files were put back" % (pl.name, e))


class PreloadsPlan(_plan.ConcernPlan):
    """socket_activation: preload of the services of a call (plan_units): their socket units and
    the library, the move onto the socket unit, or back to binding on their own (state=absent).
    Staged after the units, whose drop-ins carry its LD_PRELOAD.

    services  the ServicePlans whose preload (a PreloadPlan) is not of kind "none"
    warnings  the call's warnings (a re-mirror at the commit adds to them)
    """

    __slots__ = ("services", "warnings")

    def stage(self, module, tx):
        for pl in self.services:
            tx.add(pl.preload.files, pl.name, pl.show.get("FragmentPath") if pl.present else None)

    @property
    def pending(self):
        return any(pl.preload.to_switch for pl in self.services)

    def before_commit(self, module, systemd, tx):
        """A preloaded service whose socket unit goes stops with it (both start again if the
        commit fails); one whose socket unit no longer matches it is mirrored again (mirror_again:
        the only step of preload's plan that writes before the commit, and only here)."""
        for pl in self.services:
            if pl.preload.kind == "undo":
                tx.restart_on_failure([pl.socket_name, pl.name])
                _command.run(module, [systemd.systemctl, "stop", pl.name], check=False)
                _command.run(module, [systemd.systemctl, "disable", "--now", pl.socket_name], check=False)
        for pl in self.services:
            if pl.preload.kind == "present" and pl.preload.remirrored:
                mirror_again(module, systemd, tx, pl, self.warnings)

    def after_commit(self, module, systemd, tx):
        """Services that lost their socket unit bind on their own again; services to preload move
        onto their socket units (a failure puts ``tx`` back)."""
        for pl in self.services:
            if pl.preload.kind == "undo":
                try:
                    pl.preload.restarted_after_s = _preload.restart_on_its_own(module, systemd, pl.name, pl.ports,
                                                                               pl.switch_timeout)
                except _unit.UnitError as e:
                    raise _failure.Failure("socket activation removed, but %s" % e)
        for pl in self.services:
            if pl.preload.to_switch:
                switch(module, systemd, tx, pl)

    def finish(self, module, systemd):
        """{service: what its preload did} - the units' results carry the same, per service."""
        return {pl.name: pl.preload.report() for pl in self.services}


def switch(module, systemd, tx, pl):
    """Move a running service onto its socket unit; on any failure put everything back."""
    def in_unit(pid):
        return _probe.in_unit_cgroup(pid, pl.name)

    try:
        pl.preload.switch = _preload.switch_over(module, systemd, pl.name, pl.socket_name, pl.switch_timeout)
        ok, listeners = _preload.served_from_socket_unit(pl.ports, in_unit)
        pl.preload.listeners_after = listeners
        if not ok:
            raise _unit.UnitError("after the switch %s does not serve from the sockets PID 1 holds: %s"
                                  % (pl.name, listeners))
    except (_unit.UnitError, _sockdiag.DiagError) as e:
        _command.run(module, [systemd.systemctl, "stop", pl.socket_name, pl.name], check=False)
        tx.rollback()
        systemd.reload()
        try:
            _preload.restart_on_its_own(module, systemd, pl.name, pl.ports, pl.switch_timeout)
        except _unit.UnitError as again:
            e = "%s; and then: %s" % (e, again)
        raise _failure.Failure("socket_activation: preload for %s failed and was rolled back (every file restored, "
                               "the service restarted as before): %s" % (pl.name, e))
