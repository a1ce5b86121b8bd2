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
import re

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _supervisord_program
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _command,
    _constants,
    _failure,
    _files,
    _preload,
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
        if not path.endswith(".socket"):
            continue  # only a unit can be one (the hook and the library are binaries, not text)
        text = read(path) or ""
        if _preload.HEADER not in text:
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


def changed_since(entry, now):
    """Has the file (``now``: its bytes, None when absent) changed since the collection last wrote
    it? A ledger from before 1.1 did not keep what it wrote: taken as unchanged."""
    if "written" not in entry:
        return False
    if entry["written"] is None:  # the collection removed it
        return now is not None
    return now is None or _files.digest(now) != entry["written"]


def file_decision(path, entry, now, original, ours):
    """What undo does with one ledger file, from three versions: ``original`` (before the
    collection), ``ours`` (what it wrote; None when not kept) and ``now``. Returns (content to
    put back, None to remove, or KEEP to leave it; a warning or None; the program sections of a
    supervisord file that are gone from it since - moved or removed: moved_section)."""
    edited_since = changed_since(entry, now)
    if entry["created"]:
        if now is None:
            return KEEP, None, []
        if edited_since:
            return KEEP, ("%s was changed since the collection wrote it: left as it is (remove it yourself if it is "
                          "no longer wanted)" % path), []
        return None, None, []
    if original is None:
        return KEEP, "%s: the ledger's copy of its original is missing: left as it is" % path, []
    if not edited_since:
        return original, None, []
    if now is not None and ours is not None and "supervisor" in path:
        text, kept, gone = _supervisor.unmerge(_text(now), _text(ours), _text(original))
        note = None
        if kept:
            note = ("%s was changed since the collection wrote it: only its own keys were put back; left as they are "
                    "now: %s" % (path, ", ".join("[%s] %s" % k for k in kept)))
        return _files.to_bytes(text), note, gone
    return KEEP, ("%s was changed since the collection wrote it: left as it is (its original is kept in %s)"
                  % (path, entry.get("original"))), []


def moved_section(path, section, ours, original, ledger_paths, main, read=_files.read_text, expand=None):
    """A program section the collection changed in ``path`` that is no longer there: where
    supervisord reads it now (its main file, then the includes), and that file with only the
    collection's keys put back. Returns (file or None, its new text or None, a warning). Left
    as it is: a section removed since, defined in more than one file, or moved into another file
    of the ledger (undone there as that file's own). ``main``: supervisord's main configuration
    file (_supervisord_program.supervisor_conf). ``read``, ``expand``: for tests."""
    order = _supervisor.read_order(main, read) if expand is None else _supervisor.read_order(main, read, expand)
    texts = [(f, read(f)) for f in order]
    where = [f for f in _supervisor.program_sections([(f, t) for f, t in texts if t is not None],
                                                     section[len("program:"):]) if f != path]
    if not where:
        return None, None, ("[%s] is gone from %s since the collection wrote it (removed, or moved where supervisord "
                            "does not read it): left as it is" % (section, path))
    if len(where) > 1 or where[0] in ledger_paths:
        return None, None, ("[%s] moved from %s to %s since the collection wrote it: left as it is"
                            % (section, path, ", ".join(where)))
    dest = where[0]
    text = dict(texts)[dest]
    updates, left = _supervisor.section_updates(text, ours, original, section)
    note = "[%s] moved from %s to %s since the collection wrote it: its own keys were put back there" % (
        section, path, dest)
    if left:
        note += "; left as they are now: %s" % ", ".join(left)
    return dest, _supervisor.edit(text, section, updates) if updates else None, note


KEEP = object()


def _text(content):
    return content.decode("utf-8", "surrogateescape") if isinstance(content, bytes) else content


def plan(module, led, warnings):
    """The FileSet putting back what the collection did, file by file (file_decision): created
    files removed, edited ones restored byte for byte with their mode and owner - unless changed
    since, then left (or, a supervisord file, only its keys put back) and named in ``warnings``."""
    files = _files.FileSet(module)
    moved = []
    for path, entry in sorted(led["files"].items()):
        now = _files.read_bytes(path)
        original = _files.read_bytes(entry["original"]) if entry.get("original") else None
        ours = _files.read_bytes(entry["ours"]) if entry.get("ours") else None
        content, note, gone = file_decision(path, entry, now, original, ours)
        if note:
            warnings.append(note)
        moved.extend((path, section, _text(ours), _text(original)) for section in gone)
        if content is KEEP or (content is None and now is None):
            continue
        owner = (entry.get("uid") or 0, entry.get("gid") or 0)
        files.want(path, content, entry.get("mode") or 0o644, owner=owner if content is not None else None)
    main = _supervisord_program.supervisor_conf(module, {"supervisor_conf": None},
                                                module.get_bin_path("supervisorctl")) if moved else None
    for path, section, ours, original in moved:  # an admin moved a program section to another file
        dest, text, note = moved_section(path, section, ours, original, led["files"], main)
        warnings.append(note)
        if text is not None:
            st = os.lstat(dest)
            files.want(dest, text, st.st_mode & 0o7777, owner=(st.st_uid, st.st_gid))
    return files


def sysctl_decision(key, before, ours, now):
    """Put a live value back? (value to write or None; a warning or None). Only where it still
    holds what the collection set (``ours``; unknown in a ledger from before 1.1: then where it
    differs from ``before``); a value changed since is someone else's."""
    if before is None or now is None or _sysctl.values_equal(key, now, before):
        return None, None
    if ours is not None and not _sysctl.values_equal(key, now, ours):
        return None, ("%s is %s, not the %s the collection set: changed since, left as it is (it was %s before)"
                      % (key, now, ours, before))
    return before, None


def restore_sysctl(module, led, warnings):
    """Live sysctl values back to what they were before the collection first set them, where
    they still hold what it set (sysctl_decision)."""
    out = {}
    for key, before in sorted(led["sysctl"].items()):
        if not _sysctl.KEY_NAME_RE.match(key):
            continue
        now = _sysctl.read_live([key]).get(key)
        value, note = sysctl_decision(key, before, led["sysctl_set"].get(key), now)
        if note:
            warnings.append(note)
        if value is None:
            continue
        if not module.check_mode:
            try:
                _sysctl.write_live(key, value)
            except (IOError, OSError) as e:
                warnings.append("could not put back %s = %s: %s" % (key, value, e))
                continue
        out[key] = {"before": now, "after": value}
    return out


def remove_dirs(module, dirs):
    """Directories the collection created, deepest first, when they are empty."""
    gone = []
    for d in sorted(dirs, key=len, reverse=True):
        if d not in _validate.SYSTEM_DIRS and os.path.isdir(d) and not os.listdir(d):
            if not module.check_mode:
                os.rmdir(d)
            gone.append(d)
    return gone


# The collection's own files in a state directory, and its own directories (named after it).
STATE_FILES = ("applied-state.json", "applied-state.json.unverified", "last-crash-test.json", "ledger.json", "run.lock",
               "run.lock.guard")
OWN_DIRS = (_constants.STATE_DIR, os.path.dirname(_constants.HOOK_STATUS_DIR))


def remove_state(module, directories, created):
    """The collection's own files in its state directories (STATE_FILES, the originals kept,
    the hook's status files), then each directory that is empty and the collection's: named
    after it (OWN_DIRS) or created by it (``created``, from the ledger). Nothing else: a
    directory shared with another tool keeps that tool's files and stays."""
    gone = []
    for directory in directories:
        if directory in _validate.SYSTEM_DIRS or not os.path.isdir(directory):
            continue
        for sub, names in ((os.path.join(directory, "originals"), None),
                           (os.path.join(directory, "hook"), None), (directory, STATE_FILES)):
            if not os.path.isdir(sub) or os.path.islink(sub):
                continue
            for name in os.listdir(sub):
                path = os.path.join(sub, name)
                own = name in names if names else (sub.endswith("originals") and ORIGINAL_NAME.match(name)) or \
                    (sub.endswith("hook") and directory in OWN_DIRS)
                if own and os.path.isfile(path) and not os.path.islink(path):
                    os.unlink(path)
            if sub != directory and not os.listdir(sub) and (sub.endswith("originals") or directory in OWN_DIRS):
                os.rmdir(sub)
        if not os.listdir(directory) and (directory in OWN_DIRS or directory in created):
            os.rmdir(directory)
            gone.append(directory)
    return gone


ORIGINAL_NAME = re.compile(r"^[0-9a-f]{64}(?:\.ours)?$")


def checked_ledger(module, p):
    """The options checked and the ledger read: refused before anything is touched."""
    try:
        _validate.state_dir(p["state_dir"], "state_dir")
        _validate.number(p["switch_timeout"], "switch_timeout", 1, 600, " seconds")
    except _validate.InputError as e:
        raise _failure.Failure(str(e))
    led = _files.load_ledger()
    problem = _files.ledger_problem(led)
    if problem:
        raise _failure.Failure("refusing to roll back from %s: %s; nothing was changed" % (_files.LEDGER, problem))
    return led


def supervisord_changes(files):
    """The supervisord files the put-back writes, and {program: targets} of the programs whose
    command still runs through the hook there (cleaned and restarted on their own)."""
    supervisor = [path for path in files.paths if not path.startswith(_systemd.DropinTransaction.unit_dirs)
                  and path.endswith((".conf", ".ini")) and "supervisor" in path]
    hooked = {}
    for path in supervisor:
        hooked.update(_supervisor.hooked_programs(_files.read_text(path) or ""))
    return supervisor, hooked


def put_back(module, files, sockets, units):
    """The preloaded services stopped (before their files go), every file put back, one
    reload. Returns the Systemd (None without units) and the reload's warning, if any."""
    systemd = _systemd.Systemd(module) if units else None
    for _path, service, _ports in sockets:
        _command.run(module, [systemd.systemctl, "stop", service], check=False)
        _command.run(module, [systemd.systemctl, "disable", "--now", _unit.socket_name(service)], check=False)
    try:
        files.apply()
    except (IOError, OSError) as e:
        files.rollback()
        raise _failure.Failure("putting back %s failed: %s; every file is as it was" % (", ".join(files.paths), e))
    if systemd is not None:
        rc, msg = systemd.reload()
        if rc != 0:
            return systemd, "systemctl daemon-reload after the rollback failed: %s" % msg
    return systemd, None


def restart_programs(module, supervisor, hooked, timeout):
    """supervisord reads the restored files; a program put back to its own command is cleaned
    and restarted on it (restart_unhooked), then every group updated."""
    ctl = module.get_bin_path("supervisorctl") if supervisor else None
    if not ctl:
        return
    _command.run(module, [ctl, "reread"], check=False)
    restored = [(path, _files.read_text(path) or "") for path in supervisor]
    for name, targets in sorted(hooked.items()):
        _supervisord_program.restart_unhooked(module, ctl, _supervisor.group_of(restored, name), name, targets,
                                              timeout)
    _command.run(module, [ctl, "update"], check=False)


def run(module):
    """undo: every file, directory and live value of the ledger put back; the state gone.
    Returns (result, None)."""
    p = module.params
    led = checked_ledger(module, p)
    warnings = []
    try:
        files = plan(module, led, warnings)
    except _files.UnsafePath as e:
        raise _failure.Failure(str(e))
    sockets = preload_sockets([path for path in led["files"] if path in files.paths])
    units = any(path.startswith(_systemd.DropinTransaction.unit_dirs) for path in files.paths)
    supervisor, hooked = supervisord_changes(files)
    result = dict(changed=files.changed or bool(led["sysctl"]) or bool(led["dirs"]), files=files.paths,
                  diff=files.diff(), preload_services=[s for _p, s, _ports in sockets], sysctl={}, dirs=[],
                  warning_messages=warnings)
    if module.check_mode:
        result["sysctl"] = restore_sysctl(module, led, warnings)
        return result, None
    systemd, failed_reload = put_back(module, files, sockets, units)
    if failed_reload:
        warnings.append(failed_reload)
    restart_programs(module, supervisor, hooked, p["switch_timeout"])
    for _path, service, ports in sockets:
        try:
            _preload.restart_on_its_own(module, systemd, service, ports, p["switch_timeout"])
        except _unit.UnitError as e:
            warnings.append("socket activation removed, but %s" % e)
    result["sysctl"] = restore_sysctl(module, led, warnings)
    result["dirs"] = remove_dirs(module, led["dirs"])
    result["dirs"] += remove_state(module, sorted({p["state_dir"]} | set(OWN_DIRS), key=len, reverse=True),
                                   led["state_dirs"])
    return result, None
