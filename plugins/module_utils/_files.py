# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File helpers shared by the modules that write configuration.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import stat
import tempfile


def read_text(path):
    """The file's text, or None when it does not exist or cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def read_bytes(path):
    """The file's bytes, or None when it does not exist or cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except (IOError, OSError):
        return None


def to_bytes(content):
    return content.encode("utf-8") if not isinstance(content, bytes) else content


def atomic_write(module, path, content, mode=0o644):
    """Write ``content`` (text or bytes) whole: a temp file in the target directory, then
    module.atomic_move (which also gives the file its default SELinux context).

    A reader never sees a half-written file, and a failure leaves the old file in place and
    no temp file behind.
    """
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix=".netsvc-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(to_bytes(content))
        os.chmod(tmp, mode)
        module.atomic_move(tmp, path)
        # atomic_move gives a new file the umask's mode and an existing one its old mode
        os.chmod(path, mode)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_mode(path):
    """Permission bits of ``path``, or None when it does not exist."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def file_times(path):
    """(atime, mtime) of ``path`` in nanoseconds, or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_atime_ns, st.st_mtime_ns)


def _shown(content):
    """Text for a diff: the text itself, or a line describing binary content."""
    if not content:
        return ""
    try:
        text = content.decode("utf-8")
        if "\0" not in text:
            return text
    except UnicodeDecodeError:
        pass
    return "<binary file, %d bytes, sha256 %s>\n" % (len(content), hashlib.sha256(content).hexdigest())


class FileSet(object):
    """Planned file writes with rollback: every write remembers what was there.

    ``want(path, content, mode)`` plans a write when the content (text or bytes) or the mode
    differs (content None: remove the file, and its ``*.d`` directory when that is left
    empty). ``apply()`` writes in order; ``rollback()`` puts back what each applied write
    replaced, with its old mode and modification time: systemd compares drop-in mtimes with
    what it loaded (NeedDaemonReload), so a file restored with a new mtime would leave the
    unit "changed on disk" although its content is what systemd runs.
    """

    def __init__(self, module):
        self.module = module
        self.plan = []  # (path, new bytes or None, old bytes or None, mode, old_mode, old (atime, mtime) ns)
        self.done = []

    def want(self, path, content, mode=0o644):
        new = None if content is None else to_bytes(content)
        old = read_bytes(path)
        old_mode = file_mode(path) if old is not None else None
        if old != new or (new is not None and old_mode != mode):
            self.plan.append((path, new, old, mode, old_mode, file_times(path) if old is not None else None))

    @property
    def changed(self):
        return bool(self.plan)

    @property
    def paths(self):
        return [entry[0] for entry in self.plan]

    def diff(self):
        return [dict(before_header=p, after_header=p, before=_shown(o), after=_shown(n))
                for p, n, o, _m, _om, _t in self.plan]

    def _write(self, path, text, mode):
        if text is None:
            if os.path.exists(path):
                os.unlink(path)
            d = os.path.dirname(path)
            if d.endswith(".d") and os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
            return
        atomic_write(self.module, path, text, mode)

    def apply(self):
        for path, new, old, mode, old_mode, old_times in self.plan:
            self._write(path, new, mode)
            self.done.append((path, old, old_mode or 0o644, old_times))

    def rollback(self):
        for path, old, old_mode, old_times in reversed(self.done):
            try:
                self._write(path, old, old_mode)
                if old is not None and old_times:
                    os.utime(path, ns=old_times)
            except (IOError, OSError):
                pass
        self.done = []
