# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Undo everything the host's ledger lists (netsvc.resilience.undo).

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).

The ledger (_files) records every file the collection created or edited (with the original
of an edited one), every directory it created and the live sysctl values before it first set
them. Rollback reads it, not the inventory: a service dropped from netsvc_services, or a host
whose inventory no longer describes anything, is rolled back all the same. Socket units of
``socket_activation: preload`` services are stopped first and their services started on their
own again once the files are gone; supervisord rereads what changed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil

from ansible_collections.netsvc.resilience.plugins.module_utils import (
    _constants,
    _files,
    _preload,
    _service_restart_policy,
    _supervisor,
    _sysctl,
    _systemd,
    _unit,
    _validate,
)

SPEC = dict(
    state_dir=dict(type="path", default=_constants.STATE_DIR),
    switch_timeout=dict(type="float", default=75),
)


def preload_sockets(paths, read=_files.read_text):
    """[(socket unit path, service, [ports])] of the ledger's files that are preload socket units."""
    out = []
    for path in sorted(paths):
        text = read(path) or ""
        if not path.endswith(".socket") or _preload.HEADER not in text:
            continue
        service, ports = None, set()
        for line in text.splitlines():
            key, _sep, value = line.partition("=")
            if key == "Service":
                service = value.strip()
            elif key == "ListenStream":
                tail = value.strip().rsplit(":", 1)[-1]
                if tail.isdigit():
                    ports.add(int(tail))
        if service:
            out.append((path, service, sorted(ports)))
    return out


def plan(module, led):
    """The FileSet putting back every file of the ledger: created ones removed, edited ones
    restored byte for byte with their mode and owner."""
    files = _files.FileSet(module)
    for path, entry in sorted(led["files"].items()):
        if entry["created"]:
            files.want(path, None)
        elif entry.get("original"):
            original = _files.read_bytes(entry["original"])
            if original is not None:
                files.want(path, original, entry.get("mode") or 0o644)
    return files


def restore_sysctl(module, led):
    """Live sysctl values back to what they were before the collection first set them, where
    they still hold what it set (a value changed since is someone else's)."""
    out = {}
    for key, before in sorted(led["sysctl"].items()):
        if before is None or not _sysctl.KEY_NAME_RE.match(key):
            continue
        now = _sysctl.read_live([key]).get(key)
        if now is not None and now != before:
            if not module.check_mode:
                try:
                    _sysctl.write_live(key, before)
                except (IOError, OSError) as e:
                    module.warn("could not put back %s = %s: %s" % (key, before, e))
                    continue
            out[key] = {"before": now, "after": before}
    return out


def remove_dirs(module, dirs):
    """Directories the collection created, deepest first, when they are empty."""
    gone = []
    for d in sorted(dirs, key=len, reverse=True):
        if os.path.isdir(d) and not os.listdir(d):
            if not module.check_mode:
                os.rmdir(d)
            gone.append(d)
    return gone


def run(module):
    """undo: every file, directory and live value of the ledger put back; the state gone.
    Returns (result, None)."""
    p = module.params
    try:
        _validate.abs_path(p["state_dir"], "state_dir")
        _validate.number(p["switch_timeout"], "switch_timeout", 1, 600, " seconds")
    except _validate.InputError as e:
        module.fail_json(msg=str(e))
    led = _files.load_ledger()
    files = plan(module, led)
    sockets = preload_sockets([path for path in led["files"] if path in files.paths])
    units = any(path.startswith(_systemd.DropinTransaction.unit_dirs) for path in files.paths)
    supervisor = [path for path in files.paths if not path.startswith(_systemd.DropinTransaction.unit_dirs)
                  and path.endswith((".conf", ".ini")) and "supervisor" in path]
    # programs whose command still runs through the hook: cleaned and restarted on their own
    hooked = {}
    for path in supervisor:
        hooked.update(_supervisor.hooked_programs(_files.read_text(path) or ""))
    result = dict(changed=files.changed or bool(led["sysctl"]) or bool(led["dirs"]), files=files.paths,
                  diff=files.diff(), preload_services=[s for _p, s, _ports in sockets], sysctl={}, dirs=[])
    if module.check_mode:
        result["sysctl"] = restore_sysctl(module, led)
        return result, None
    systemd = _systemd.Systemd(module) if units else None
    for _path, service, _ports in sockets:  # stop them before their files go
        _unit.run(module, [systemd.systemctl, "stop", service], check=False)
        _unit.run(module, [systemd.systemctl, "disable", "--now", _unit.socket_name(service)], check=False)
    try:
        files.apply()
    except (IOError, OSError) as e:
        files.rollback()
        module.fail_json(msg="putting back %s failed: %s; every file is as it was" % (", ".join(files.paths), e))
    if systemd is not None:
        rc, msg = systemd.reload()
        if rc != 0:
            module.warn("systemctl daemon-reload after the rollback failed: %s" % msg)
    if supervisor:
        ctl = module.get_bin_path("supervisorctl")
        if ctl:
            _unit.run(module, [ctl, "reread"], check=False)
            restored = [(path, _files.read_text(path) or "") for path in supervisor]
            for name, targets in sorted(hooked.items()):
                _service_restart_policy.restart_unhooked(module, ctl, _supervisor.group_of(restored, name), name,
                                                         targets, p["switch_timeout"])
            _unit.run(module, [ctl, "update"], check=False)
    for _path, service, ports in sockets:
        try:
            _preload.restart_on_its_own(module, systemd, service, ports, p["switch_timeout"])
        except _unit.UnitError as e:
            module.warn("socket activation removed, but %s" % e)
    result["sysctl"] = restore_sysctl(module, led)
    result["dirs"] = remove_dirs(module, led["dirs"])
    for state in (p["state_dir"], _constants.STATE_DIR, os.path.dirname(_constants.HOOK_STATUS_DIR)):
        if os.path.isdir(state):
            shutil.rmtree(state)
    return result, None
