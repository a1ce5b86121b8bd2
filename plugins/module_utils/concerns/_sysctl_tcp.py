# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel concern (netsvc.resilience.sysctl_tcp): plan, check, write, read back.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). The pure parsing, rendering and
comparing lives in _sysctl; this file does the I/O around it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import (
    _constants,
    _failure,
    _files,
    _plan,
    _sysctl,
    _systemd,
    _validate,
)
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import atomic_write, read_text

SPEC = dict(
    settings=dict(type="dict", default={}),
    profile=dict(type="str", default="none", choices=sorted(_sysctl.PROFILES)),
    reserved_ports=dict(type="list", elements="raw", default=[]),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    purge=dict(type="bool", default=False),
    path=dict(type="path", default=_constants.SYSCTL_FILE),
    apply=dict(type="str", default="both", choices=["both", "persist", "live"]),
    on_conflict=dict(type="str", default="warn", choices=["warn", "fail"]),
    allow_unknown=dict(type="bool", default=False),
    live_readonly=dict(type="str", default="fail", choices=["fail", "skip"]),
    header=dict(type="str", default="Ansible managed: netsvc.resilience.sysctl_tcp"),
)


def read_state(p, persist):
    """(the file's text or None, the live values of every key the call may touch)."""
    current_text = read_text(p["path"]) if persist else None
    keys = {_sysctl.normalize_key(str(k)) for k in p["settings"]}
    keys.update(_sysctl.PROFILES[p["profile"]])
    keys.update(k for k, _v, _n in _sysctl.parse_conf(current_text or ""))
    keys.update([_sysctl.RESERVED_PORTS_KEY, "net.ipv4.tcp_timestamps", "net.ipv4.tcp_max_tw_buckets"])
    return current_text, _sysctl.read_live(sorted(k for k in keys if _sysctl.KEY_NAME_RE.match(k)))


def boot_overrides(module, p, values, warnings):
    """Files that would replace our values at boot: a warning each, or a failure (on_conflict=fail)."""
    path = p["path"]
    overridden = _sysctl.find_overrides(path, values, _sysctl.read_config_files(path))
    for key, where in sorted(overridden.items()):
        msg = "%s = %s in %s would be overridden at boot by %s" % (
            key, values[key], path, ", ".join("%s (%s)" % (w["file"], w["value"]) for w in where))
        if p["on_conflict"] == "fail":
            raise _failure.Failure(msg + "; nothing was written (on_conflict=fail)", overridden_by=overridden,
                                   file=path)
        warnings.append(msg)
    return overridden


def live_writes(module, p, live, targets, warnings):
    """The live values to write, or none when /proc/sys is read-only and that is allowed.
    Returns (to_write, skipped)."""
    to_write = _sysctl.live_changes(live, targets)
    unwritable = [k for k in sorted(to_write) if not os.access(_sysctl.key_to_proc_path(k), os.W_OK)]
    if not unwritable:
        return to_write, False
    if p["live_readonly"] == "skip" or p["apply"] == "persist":
        warnings.append("live apply skipped: /proc/sys is read-only here (%s); the values are persisted in %s and "
                        "apply at the next boot" % (", ".join(unwritable), p["path"]))
        return {}, True
    raise _failure.Failure("cannot write %s: /proc/sys is read-only on this host (an unprivileged container?). Nothing "
                           "was written. Set live_readonly=skip to persist only, or allow writes to /proc/sys"
                           % ", ".join("/proc/sys/" + k.replace(".", "/") for k in unwritable), file=p["path"])


def diff(path, current_text, new_text, file_changed, live, to_write):
    out = []
    if file_changed:
        out.append(dict(before_header=path, after_header=path, before=current_text or "", after=new_text or ""))
    if to_write:
        out.append(dict(before_header="live /proc/sys", after_header="live /proc/sys",
                        before="".join("%s = %s\n" % (k, live.get(k)) for k in sorted(to_write)),
                        after="".join("%s = %s\n" % (k, v) for k, v in sorted(to_write.items()))))
    return out


class Change(object):
    """The planned sysctl file and live values as one entry of a _systemd.DropinTransaction
    (shaped like a _files.FileSet): ``apply()`` writes the file (atomic), then each live value,
    and raises on the first failure (naming the key); ``rollback()`` puts back what it wrote.
    sysctl_tcp writes it as harden does, through _plan.compose: in harden's one call (its
    ``kernel`` option) a later drop-in, verify or reload failure puts the kernel settings back
    too."""

    def __init__(self, module, path, old_text, new_text, file_changed, to_write, live):
        self.module, self.path, self.old_text, self.new_text = module, path, old_text, new_text
        st = os.lstat(path) if os.path.lexists(path) else None
        self.old_mode = (st.st_mode & 0o7777) if st else None
        self.old_owner = (st.st_uid, st.st_gid) if st else None
        self.file_changed, self.to_write, self.live = file_changed, to_write, live
        self.file_written = False
        self.written = []

    @property
    def changed(self):
        return bool(self.file_changed or self.to_write)

    @property
    def paths(self):
        """What apply() writes: the file, then /proc/sys/... (named in a failed transaction's message)."""
        return ([self.path] if self.file_changed else []) + [_sysctl.key_to_proc_path(k) for k in sorted(self.to_write)]

    def _write_file(self, text):
        if text is None:
            if os.path.exists(self.path):
                os.unlink(self.path)
        else:
            atomic_write(self.module, self.path, text)

    def apply(self):
        if self.file_changed:
            self._write_file(self.new_text)
            self.file_written = True
        for key in sorted(self.to_write):
            try:
                _sysctl.write_live(key, self.to_write[key])
            except (IOError, OSError) as e:  # the transaction's message names the key
                raise OSError(e.errno, "live value %s = %s: %s" % (key, self.to_write[key], e.strerror or e))
            self.written.append(key)

    def record(self):
        """Note in the host's ledger the file and the live values' originals (once they hold)."""
        if not (self.file_written or self.written):
            return
        old = _files.to_bytes(self.old_text) if self.old_text is not None else None
        writes = [_files.Write(self.path, None if self.new_text is None else _files.to_bytes(self.new_text), old, 0o644,
                               self.old_mode, self.old_owner, None)] if self.file_written else []
        if self.new_text is None:  # the file removed (rollback): the live values are back to their originals
            _files.record_writes(self.module, writes, [])
            _files.forget_sysctl(self.module, self.written)
        else:
            _files.record_writes(self.module, writes, [], {k: self.live.get(k) for k in self.written},
                                 {k: self.to_write[k] for k in self.written})

    def rollback(self):
        for key in reversed(self.written):
            try:
                _sysctl.write_live(key, self.live[key])
            except (IOError, OSError):
                pass
        self.written = []
        if self.file_written:
            try:
                self._write_file(self.old_text)
            except (IOError, OSError):
                pass
            self.file_written = False


class KernelPlan(_plan.ConcernPlan):
    """A sysctl_tcp call, planned (plan): nothing written yet.

    result  the module's result as planned (live_after is read back by finish)
    change  the Change: the sysctl file and the live values to write, and how to put them back
    """

    __slots__ = ("result", "change")
    result_key = "kernel"

    def stage(self, module, tx):
        tx.add(self.change)

    def finish(self, module, systemd):
        return finish(module, self)


def plan(module, p, label=""):
    """sysctl_tcp's parameters ``p`` checked and planned; nothing written. Bad input, a boot-time
    conflict with on_conflict=fail or a read-only /proc/sys fail the module here, their message
    starting with ``label``. The plan: the result without the read-back, and the Change."""
    path = p["path"]
    try:
        # systemd-sysctl reads only *.conf files directly in its directories
        _validate.abs_path(path, "path", under=_sysctl.SYSCTL_DIRS, suffix=".conf")
        _files.check_path(path, module)
        _validate.single_line(p["header"], "header", 200)
        persist = p["apply"] in ("both", "persist")
        current_text, live = read_state(p, persist)
        planned = _sysctl.plan(p, live, current_text)
    except (_validate.InputError, _sysctl.SysctlError, _files.UnsafePath) as e:
        raise _failure.Failure(label + str(e))
    values, warnings = planned["values"], planned["warnings"]
    new_text = None
    if values or planned["previous"] or planned["added"]:
        new_text = _sysctl.render_conf(values, planned["previous"], planned["added"], p["header"])
    file_changed = persist and new_text != current_text
    overridden = boot_overrides(module, p, values, warnings) if persist and values else {}
    targets = planned["live_targets"] if p["apply"] in ("both", "live") else {}
    to_write, live_skipped = live_writes(module, p, live, targets, warnings)
    live_before = {k: live.get(k) for k in sorted(set(values) | set(targets))}
    change = Change(module, path, current_text, new_text, file_changed, to_write, live)
    result = dict(changed=change.changed, file=path, persisted=values, live_before=live_before,
                  live_after=dict(live_before, **to_write), live_skipped=live_skipped, overridden_by=overridden,
                  warning_messages=warnings, netns=_sysctl.netns_info(),
                  diff=diff(path, current_text, new_text, file_changed, live, to_write))
    return KernelPlan(result=result, change=change)


def finish(module, pl):
    """The result: the plan's, with the live values read back when they were written (a new
    dict: the plan stays as planned)."""
    result = dict(pl.result)
    if result["changed"] and not module.check_mode:
        live_after = dict(result["live_after"])
        live_after.update(_sysctl.read_live(sorted(pl.change.to_write)))
        result["live_after"] = live_after
    return result


def run(module):
    """sysctl_tcp: every key checked, the file and the live values planned, then written.
    Returns (result, None)."""
    pl = plan(module, module.params)
    keyed, _units = _plan.results_by_key([pl], _plan.compose(module, _systemd.Systemd(module), [pl]))
    return keyed["kernel"], None
