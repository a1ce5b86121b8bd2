# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd on the managed host: one drop-in transaction and the effective-state read-back.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).

Every module that writes unit files goes through DropinTransaction: all files are written,
``systemd-analyze verify`` checks them (its exit code is 0 on warnings, so its output is
read), any objection or a failed ``daemon-reload`` puts every file back, and there is one
reload. Then ``effective_mismatches`` compares what systemd really uses (``systemctl show``)
with what was asked, and names the file that wins when a foreign drop-in overrides ours.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _command, _failure, _unit
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives._files import read_text


class Systemd(object):
    """systemctl and systemd-analyze of this host, run with argv lists in the C locale."""

    def __init__(self, module):
        self.module = module
        self._systemctl = None
        self._version = None

    @property
    def systemctl(self):
        """Looked up when first needed: a supervisord-only host has none."""
        if self._systemctl is None:
            self._systemctl = self.module.get_bin_path("systemctl", required=True)
        return self._systemctl

    @property
    def version(self):
        if self._version is None:
            self._version = _unit.parse_version(_command.run(self.module, [self.systemctl, "--version"])[1])
        return self._version

    def show(self, units, props):
        """{unit: {prop: value}} in one call."""
        if not units:
            return {}
        argv = [self.systemctl, "show"] + list(units)
        for prop in props:
            argv += ["-p", prop]
        blocks = parse_show_many(_command.run(self.module, argv)[1])
        if len(blocks) != len(units):
            raise _failure.Failure("systemctl show returned %d blocks for %d units" % (len(blocks), len(units)))
        return dict(zip(units, blocks))

    def verify_output(self, fragments):
        analyze = self.module.get_bin_path("systemd-analyze")
        if not analyze or not fragments:
            return ""
        _rc, out, err = _command.run(self.module, [analyze, "verify"] + list(fragments), check=False)
        return out + "\n" + err

    def reload(self):
        rc, out, err = _command.run(self.module, [self.systemctl, "daemon-reload"], check=False)
        return rc, (err or out).strip()


def parse_show_many(text):
    """`systemctl show A B -p ...` output: one KEY=VALUE block per unit, blank-line separated."""
    blocks, cur = [], {}
    for line in (text or "").splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
                cur = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            cur[key] = value
    if cur:
        blocks.append(cur)
    return blocks


class DropinTransaction(object):
    """Plan, write, verify, roll back, one reload - for every module that writes units.

    ``add(fileset, unit, fragment)`` registers planned files (a _files.FileSet) and, when the
    unit exists, its fragment path for ``systemd-analyze verify``. ``commit()`` does the rest
    or fails with every file as it was.
    """

    # a change under one of these needs a daemon-reload; the hook itself does not
    unit_dirs = ("/etc/systemd/", "/run/systemd/", "/usr/lib/systemd/", "/lib/systemd/")

    def __init__(self, module, systemd):
        self.module = module
        self.systemd = systemd
        self.entries = []  # (fileset, unit, fragment)
        self.stopped = []  # units stopped for the change: started again when the commit fails
        self.checks = []  # (check, undo) of other readers of the files (supervisorctl reread)
        self.checked = []  # the undo of each check that ran: after a rollback they read the files again

    def add(self, fileset, unit=None, fragment=None):
        self.entries.append((fileset, unit, fragment))

    def add_check(self, check, undo):
        """Another program that reads the files checks them once written, after systemd's verify:
        ``check()`` returns None or why it rejects them (the commit then fails with every file
        restored); ``undo()`` makes it read the restored files after a failure."""
        self.checks.append((check, undo))

    def restart_on_failure(self, units):
        """``units`` were stopped before the commit: a failed commit starts them again, in order,
        once their files are back (the host is left as it was, serving)."""
        self.stopped.extend(u for u in units if u not in self.stopped)

    def fail(self, msg):
        """Fail the task, the units stopped for the change started again (files are the caller's)."""
        for unit in self.stopped:
            _command.run(self.module, [self.systemd.systemctl, "start", unit], check=False)
        raise _failure.Failure(msg)

    @property
    def changed(self):
        return any(f.changed for f, _u, _fr in self.entries)

    @property
    def paths(self):
        return [p for f, _u, _fr in self.entries for p in f.paths]

    def rollback(self):
        """Every file put back, and read again by each checker that read the written ones."""
        for f, _u, _fr in reversed(self.entries):
            f.rollback()
        for undo in self.checked:
            undo()

    def commit(self, verify=True):
        """Write, verify, reload once; any failure restores every file and fails the task."""
        if not self.changed:
            return False
        try:
            for f, _u, _fr in self.entries:
                f.apply()
        except (IOError, OSError) as e:
            self.rollback()
            self.fail("writing %s failed: %s; every file was restored as it was" % (", ".join(self.paths), e))
        if verify:
            problems = self.verify_problems()
            if problems:
                self.rollback()
                self.fail("systemd-analyze verify rejected %s; every file was restored as it was: %s"
                          % (", ".join(sorted({u for u, _m in problems})), "; ".join(m for _u, m in problems)))
        for check, undo in self.checks:
            self.checked.append(undo)
            problem = check()
            if problem:
                self.rollback()
                self.fail("%s; every file was restored as it was" % problem)
        if any(p.startswith(self.unit_dirs) for p in self.paths):  # else no reload (the hook itself)
            rc, msg = self.systemd.reload()
            if rc != 0:
                self.rollback()
                self.systemd.reload()
                self.fail("systemctl daemon-reload failed (rc=%d): %s; every file was restored as it was" % (rc, msg))
        for f, _u, _fr in self.entries:
            f.record()  # the host's ledger: what rollback undoes
        return True

    def verify_problems(self):
        """[(unit, line)] of `systemd-analyze verify` lines about a file this transaction wrote."""
        checked = [(f, u, fr) for f, u, fr in self.entries if fr and f.changed and u]
        output = self.systemd.verify_output(sorted({fr for _f, _u, fr in checked}))
        problems = []
        for f, unit, _fr in checked:
            for path in f.paths:
                problems.extend((unit, line) for line in _unit.verify_problems(output, path))
        return problems


# ------------------------------------------------------------------ effective state


def unit_files(show):
    """The unit's files in the order systemd applies them: fragment, then DropInPaths."""
    files = [show["FragmentPath"]] if show.get("FragmentPath") else []
    return files + _unit.show_words(show.get("DropInPaths"))


def assignments(directive, paths, read=read_text):
    """[(path, value)] of every ``directive=`` line in ``paths``, in order."""
    out = []
    for path in paths:
        for raw in (read(path) or "").splitlines():
            line = raw.strip()
            if line.startswith(("#", ";")) or "=" not in line:
                continue
            key, _sep, value = line.partition("=")
            if key.strip() == directive:
                out.append((path, value.strip()))
    return out


def who_wins(directive, show, ours, read=read_text):
    """Why ``directive`` is not what our file ``ours`` says: the file that wins, in words."""
    files = unit_files(show)
    if show.get("NeedDaemonReload") == "yes":
        return "systemd has not loaded the unit files on disk (NeedDaemonReload=yes): run systemctl daemon-reload"
    if ours not in files:
        return "%s is not loaded by systemd (not in DropInPaths; daemon-reload pending?)" % ours
    later = [(p, v) for p, v in assignments(directive, files, read) if files.index(p) > files.index(ours)]
    if later:
        path, value = later[-1]
        return "%s sets %s=%s and is applied after %s (DropInPaths order)" % (path, directive, value, ours)
    return "no file after %s sets %s; systemd reports another value" % (ours, directive)


def effective_mismatches(unit, wanted, show, ours, read=read_text):
    """Compare what systemd uses with what was asked.

    ``wanted``: [(directive, property, check, expected_text)] where check(value) says whether
    the ``systemctl show`` value is right; every property must exist on this systemd version
    (``systemctl show`` omits an empty list such as ExecStartPre=, so absent means empty).
    Returns one sentence per difference, naming the directive, both values and the file that wins.
    """
    out = []
    for directive, prop, check, expected in wanted:
        value = show.get(prop, "")
        if check(value):
            continue
        out.append("%s: %s is %r, asked %s: %s" % (unit, prop, value, expected, who_wins(directive, show, ours, read)))
    return out


def dropins_mentioning(marker, ours=()):
    """The drop-ins other than ``ours`` that mention ``marker``."""
    return [f for f in glob.glob(os.path.join(_unit.SYSTEMD_DIR, "*.service.d", "*.conf"))
            if f not in ours and marker in (read_text(f) or "")]
