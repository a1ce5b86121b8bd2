# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""File helpers shared by the modules that write configuration.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import hashlib
import json
import os
import re
import stat
import tempfile

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _constants, _sockdiag, _validate

# What the collection wrote on this host (files it created or edited, with the originals of
# those it edited; directories it created): what rollback undoes, whatever the inventory says.
LEDGER = os.path.join(_constants.STATE_DIR, "ledger.json")
ORIGINALS = os.path.join(_constants.STATE_DIR, "originals")


class UnsafePath(ValueError):
    """A path root must not write: the message names it and the reason."""


def _as_root():
    return os.geteuid() == 0


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def unsafe_path(path):
    """Why root must not write the file ``path``, or None.

    What root writes or runs must be root's alone: the file (when it exists) a regular file,
    not a symlink, and every directory up to / owned by root and not writable by group or
    others (a symlinked directory is judged by where it leads, and must be root's itself).
    """
    if not os.path.isabs(path):
        return "%s is not an absolute path" % path
    existing = os.path.dirname(path)
    while existing != "/" and _lstat(existing) is None:
        existing = os.path.dirname(existing)
    why = _sockdiag.unsafe_dir(os.path.realpath(existing))
    if why:
        return why
    step = existing
    while step != "/":
        st = _lstat(step)
        if st is not None and stat.S_ISLNK(st.st_mode) and st.st_uid != 0:
            return "%s is a symlink owned by uid %d" % (step, st.st_uid)
        step = os.path.dirname(step)
    st = _lstat(path)
    if st is None:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "%s is a symlink (the collection never writes through a link)" % path
    if not stat.S_ISREG(st.st_mode):
        return "%s is not a regular file" % path
    return None


def check_path(path, module=None):
    """Refuse, before any write, a path root must not write (as root only: a test's tree is not
    root's). With ``module``, a directory above it that the collection created (its ledger) and
    that is no longer root's alone is corrected first, with a warning (correct_own_dirs)."""
    if not _as_root():
        return
    why = unsafe_path(path)
    if why and module is not None and correct_own_dirs(module, path) and (module.check_mode or not unsafe_path(path)):
        return
    if why:
        raise UnsafePath("refusing to write %s: %s; nothing was written" % (path, why))


def own_dir_problem(path):
    """Why the directory ``path`` is not root's alone (owner, group, group/other write), or None;
    None too for a path that is not a directory (or a symlink: never followed, never corrected)."""
    st = _lstat(path)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return None
    if st.st_uid != 0 or st.st_gid != 0:
        return "owned by %d:%d, not root's" % (st.st_uid, st.st_gid)
    if st.st_mode & 0o022:
        return "writable by group or others (mode %o)" % stat.S_IMODE(st.st_mode)
    return None


def own_dirs_drift(led=None):
    """(directory, why) for each directory the collection created (the ledger's dirs and state
    dirs) that is no longer root's alone; nothing when the ledger itself is not to be trusted
    (its own checks refuse that loudly)."""
    led = load_ledger() if led is None else led
    if ledger_problem(led):
        return []
    out = []
    for d in sorted(set(led["dirs"]) | set(led["state_dirs"])):
        why = own_dir_problem(d)
        if why:
            out.append((d, why))
    return out


def correct_own_dirs(module, path):
    """Directories above ``path`` that the collection created and that drifted from root's alone
    (another owner, group/other write) are put back to root:root without group/other write (in
    check mode only reported), each named in a warning: what root runs or reads is root's, and a
    refusal would leave root running what is in a directory someone else controls. True when one
    was (or would be) corrected."""
    above = set()
    step = os.path.dirname(path)
    while step not in ("/", ""):
        above.add(step)
        step = os.path.dirname(step)
    fixed = False
    for d, why in own_dirs_drift():
        if d not in above:
            continue
        mode = stat.S_IMODE(_lstat(d).st_mode) & ~0o022
        if not module.check_mode:
            os.chown(d, 0, 0)
            os.chmod(d, mode)
        module.warn("%s, a directory the collection created, was %s: %s root:root, mode %o"
                    % (d, why, "would be put back to" if module.check_mode else "put back to", mode))
        fixed = True
    return fixed


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


def make_dirs(directory):
    """Create ``directory`` and its missing parents (root's, 0755); the ones created, top first."""
    missing = []
    while directory != "/" and _lstat(directory) is None:
        missing.append(directory)
        directory = os.path.dirname(directory)
    made = []
    for d in reversed(missing):
        os.mkdir(d, 0o755)
        os.chmod(d, 0o755)
        if _as_root():
            os.chown(d, 0, 0)
        made.append(d)
    return made


def atomic_write(module, path, content, mode=0o644, created=None, owner=None):
    """Write ``content`` (text or bytes) whole: a temp file in the target directory, then
    module.atomic_move (which also gives the file its default SELinux context). The file ends
    up root's (atomic_move keeps an existing file's owner), or ``owner`` ((uid, gid): undo
    putting back a file as it was), with ``mode``.

    A reader never sees a half-written file, and a failure leaves the old file in place and
    no temp file behind. Directories it had to create are appended to ``created``.
    """
    made = make_dirs(os.path.dirname(path))
    if created is not None:
        created.extend(made)
    fd, tmp = tempfile.mkstemp(prefix=".netsvc-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(to_bytes(content))
        os.chmod(tmp, mode)
        module.atomic_move(tmp, path)
        # atomic_move gives a new file the umask's mode and an existing one its old mode and owner
        os.chmod(path, mode)
        if _as_root():
            os.chown(path, *(owner or (0, 0)))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_mode(path):
    """Permission bits of ``path``, or None when it does not exist."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


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


class Write(collections.namedtuple("Write", "path new old mode old_mode old_owner old_times")):
    """One planned write of a FileSet.

    path: the file; new: its bytes, or None to remove it; old: its bytes now (None: absent);
    mode: the mode it gets; old_mode, old_owner ((uid, gid)), old_times ((atime, mtime) ns): what
    it has now, put back by a rollback.
    """

    __slots__ = ()


class FileSet(object):
    """Planned file writes with rollback: every write remembers what was there.

    ``want(path, content, mode, owner)`` plans a write when the content (text or bytes), the
    mode or the owner (root's, or ``owner`` as (uid, gid), for a root run) differs, content None
    removing the file; a path root must not write is refused there (UnsafePath), before anything
    is written. ``apply()`` writes in order; ``rollback()`` puts back what each applied write
    replaced, with its old mode, owner and modification time (systemd compares drop-in mtimes
    with what it loaded, NeedDaemonReload), and removes the directories it created.
    ``record()``, once the change holds, notes it in the host's ledger (what rollback undoes). A
    directory is removed when its last file goes only if the collection created it.
    """

    def __init__(self, module):
        self.module = module
        self.plan = []
        self.wanted = []  # (path, content, mode, owner) as asked: what refresh() plans again
        self.done = []
        self.created = []  # directories apply() created
        self.owners = {}  # path -> (uid, gid) a write gives the file other than root's

    def want(self, path, content, mode=0o644, owner=None):
        """Plan ``path`` to hold ``content`` (None: no file); a second want of a path replaces the first."""
        check_path(path, self.module)
        owner_wanted = tuple(owner) if owner else (0, 0)
        if owner_wanted != (0, 0):
            self.owners[path] = owner_wanted
        self.wanted = [w for w in self.wanted if w[0] != path] + [(path, content, mode, owner_wanted)]
        self.plan = [w for w in self.plan if w.path != path]
        self._plan(path, content, mode, owner_wanted)

    def _plan(self, path, content, mode, owner_wanted):
        new = None if content is None else to_bytes(content)
        old = read_bytes(path)
        st = _lstat(path) if old is not None else None
        old_mode = stat.S_IMODE(st.st_mode) if st else None
        old_owner = (st.st_uid, st.st_gid) if st else None
        wrong_owner = old_owner is not None and old_owner != owner_wanted and _as_root()
        if old != new or (new is not None and (old_mode != mode or wrong_owner)):
            self.plan.append(Write(path, new, old, mode, old_mode, old_owner,
                                   (st.st_atime_ns, st.st_mtime_ns) if st else None))

    def refresh(self):
        """Plan every wanted file again against what is on disk now: a step before the commit
        (preload's re-mirror) changed some of them. Only before apply()."""
        if self.done:
            raise RuntimeError("FileSet.refresh after apply")
        self.plan = []
        for path, content, mode, owner_wanted in self.wanted:
            self._plan(path, content, mode, owner_wanted)

    @property
    def changed(self):
        return bool(self.plan)

    @property
    def paths(self):
        return [w.path for w in self.plan]

    def diff(self):
        out = []
        for w in self.plan:
            before, after = _shown(w.old), _shown(w.new)
            wanted = self.owners.get(w.path, (0, 0))
            if w.new is not None and w.old is not None and (w.old_owner != wanted or w.old_mode != w.mode):
                before += "# mode %o, owner %d:%d\n" % ((w.old_mode or 0,) + tuple(w.old_owner or (0, 0)))
                after += "# mode %o, owner %d:%d\n" % ((w.mode,) + wanted)
            out.append(dict(before_header=w.path, after_header=w.path, before=before, after=after))
        return out

    def _remove(self, path):
        if os.path.exists(path):
            os.unlink(path)
        directory = os.path.dirname(path)
        if (directory in self.created or directory in ledger_dirs()) and os.path.isdir(directory) \
                and not os.listdir(directory):
            os.rmdir(directory)

    def apply(self):
        for w in self.plan:
            if w.new is None:
                self._remove(w.path)
            else:
                atomic_write(self.module, w.path, w.new, w.mode, self.created, self.owners.get(w.path))
            self.done.append(w)

    def rollback(self):
        for w in reversed(self.done):
            try:
                if w.old is None:
                    self._remove(w.path)
                    continue
                atomic_write(self.module, w.path, w.old, w.old_mode or 0o644, self.created)
                if w.old_owner and _as_root():
                    os.chown(w.path, w.old_owner[0], w.old_owner[1])
                if w.old_times:
                    os.utime(w.path, ns=w.old_times)
            except (IOError, OSError):
                pass
        for d in reversed(self.created):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.done, self.created = [], []

    def record(self):
        """Note the applied writes in the host's ledger (call once the change holds)."""
        if self.done or self.created:
            record_writes(self.module, self.done, self.created)


# ------------------------------------------------------------------ the ledger


class LedgerError(ValueError):
    """A ledger root must not act on: the message names the entry or the path and the rule."""


def digest(content):
    """sha256 of ``content`` (text or bytes), as the ledger keeps what the collection wrote."""
    return hashlib.sha256(to_bytes(content)).hexdigest()


def load_ledger(path=None):
    """The host's ledger: {version, files: {path: {created, original, ours, written, mode, uid,
    gid}}, dirs: [...], state_dirs: [...], sysctl: {key: value before}, sysctl_set: {key: value
    the collection set}}. ``written`` is the sha256 of what the collection last wrote, ``ours``
    (edited files) a copy of it: what undo compares the file with now."""
    try:
        data = json.loads(read_text(path or LEDGER) or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict) or data.get("version") != 1:
        data = {}
    return {"version": 1, "files": dict(data.get("files") or {}), "dirs": list(data.get("dirs") or []),
            "state_dirs": list(data.get("state_dirs") or []),
            "sysctl": dict(data.get("sysctl") or {}), "sysctl_set": dict(data.get("sysctl_set") or {})}


# Where the collection writes (what a ledger entry may name): systemd units and drop-ins, sysctl.d
# files, its own hook and library (named after it), supervisord's configuration.
_UNIT_ENTRY = re.compile(r"^/etc/systemd/system/(?:[^/]+\.socket|netsvc-revive@\.service|[^/]+\.service\.d/[^/]+\.conf"
                         r"|[^/]+\.service\.d)$")
_SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
_ORIGINAL_NAME = re.compile(r"^[0-9a-f]{64}(?:\.ours)?$")


def entry_problem(path, is_dir=False):
    """Why ``path`` is not a path the collection writes (a ledger entry), or None."""
    if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path or "\0" in path:
        return "%r is not a normalized absolute path" % (path,)
    if path.startswith(_constants.STATE_DIR + "/") or path == _constants.STATE_DIR:
        return "%s is in the collection's state directory" % path if not is_dir else None
    directory, base = os.path.split(path)
    if _UNIT_ENTRY.match(path):
        return None
    if not is_dir and directory in _SYSCTL_DIRS and base.endswith(".conf"):
        return None
    if "netsvc" in path.lower() and os.path.normpath(directory) not in ("/", "/etc"):
        return None  # the hook, the preload library and their directories (named after the collection)
    if "supervisor" in path and (is_dir or base.endswith((".conf", ".ini"))) and path.startswith("/etc/"):
        return None
    return "%s is not a path the collection writes (systemd units and drop-ins, sysctl.d files, its hook and " \
           "library, supervisord's configuration)" % path


def ledger_problem(led):
    """Why root must not act on the ledger ``led`` (read from LEDGER), naming the entry; None if it
    may. The ledger and its originals must be root's alone (every parent directory too), each
    entry a path the collection writes, each kept copy the one named after its path in ORIGINALS."""
    if _as_root():
        for path in (LEDGER, ORIGINALS):
            st = _lstat(path)
            if st is None:
                continue
            why = unsafe_path(path) if not stat.S_ISDIR(st.st_mode) else _sockdiag.unsafe_dir(path)
            if why is None and st.st_uid != 0:
                why = "%s is owned by uid %d" % (path, st.st_uid)
            if why is None and st.st_mode & 0o022:
                why = "%s is writable by group or others" % path
            if why:
                return "the ledger is not root's alone: %s" % why
    for path, entry in sorted(led["files"].items()):
        why = entry_problem(path)
        if why is None and not isinstance(entry, dict):
            why = "its entry is not a record"
        for key, expected in (("original", original_path(path)), ("ours", ours_path(path))):
            if why is None and entry.get(key) and entry[key] != expected:
                why = "its %s copy %r is not %s" % (key, entry[key], expected)
        if why:
            return "ledger entry %s: %s" % (path, why)
    for path in list(led["dirs"]) + list(led["state_dirs"]):
        why = entry_problem(path, is_dir=True)
        if why is None and path in _validate.SYSTEM_DIRS:
            why = "%s is a system directory" % path
        if why:
            return "ledger directory %s: %s" % (path, why)
    return None


def edited_since(path):
    """Has ``path`` changed since the collection last wrote it (the ledger's digest)? False when
    the ledger does not know what it wrote (a file from before 1.1, or not the collection's)."""
    entry = load_ledger()["files"].get(path)
    if not entry or not entry.get("written"):
        return False
    now = read_bytes(path)
    return now is not None and digest(now) != entry["written"]


def ledger_dirs():
    return set(load_ledger()["dirs"])


def original_path(path):
    return os.path.join(ORIGINALS, hashlib.sha256(to_bytes(path)).hexdigest())


def ours_path(path):
    """Where the ledger keeps a copy of what the collection wrote into a file it edited."""
    return original_path(path) + ".ours"


def _keep_ours(module, path, entry, new):
    """Note what the collection wrote into ``path`` now: its digest, and for an edited file a copy."""
    entry["written"] = digest(new)
    if not entry["created"]:
        atomic_write(module, ours_path(path), new, 0o600)
        entry["ours"] = ours_path(path)


def _write_ledger(module, led):
    made = []
    atomic_write(module, LEDGER, json.dumps(led, sort_keys=True, indent=1) + "\n", 0o600, made)
    if made:  # the state directory the collection created for it: undo may remove it once empty
        led["state_dirs"] = sorted(set(led["state_dirs"]) | set(made))
        atomic_write(module, LEDGER, json.dumps(led, sort_keys=True, indent=1) + "\n", 0o600)


def record_writes(module, writes, created_dirs, sysctl_before=None, sysctl_set=None):
    """Add what was written to the ledger: a file the collection created (rollback removes it)
    or edited (its original bytes, mode and owner are kept, once: rollback restores them), with
    what the collection wrote into it (its digest, and for an edited file a copy: rollback
    leaves a file changed since as it is); a file put back to its original leaves the ledger;
    directories it created; the live sysctl values before it first set them, and the values it
    set. Files of the state directory itself are not listed."""
    led = load_ledger()
    files = led["files"]
    made = []
    for w in writes:
        if w.path.startswith(_constants.STATE_DIR + "/"):
            continue
        entry = files.get(w.path)
        if entry is None and w.new is not None:
            files[w.path] = {"created": w.old is None, "original": None, "mode": w.old_mode,
                             "uid": (w.old_owner or (0, 0))[0], "gid": (w.old_owner or (0, 0))[1]}
            if w.old is not None:
                atomic_write(module, original_path(w.path), w.old, 0o600, made)
                files[w.path]["original"] = original_path(w.path)
            _keep_ours(module, w.path, files[w.path], w.new)
        elif entry is None and w.old is not None:  # removed a file the collection did not write
            atomic_write(module, original_path(w.path), w.old, 0o600, made)
            files[w.path] = {"created": False, "original": original_path(w.path), "mode": w.old_mode,
                             "uid": (w.old_owner or (0, 0))[0], "gid": (w.old_owner or (0, 0))[1],
                             "written": None}
        elif entry is not None and (
                (entry["created"] and w.new is None)
                or (not entry["created"] and w.new is not None and w.new == read_bytes(entry["original"] or ""))):
            for kept in (entry.get("original"), entry.get("ours")):
                if kept and os.path.exists(kept):
                    os.unlink(kept)
            del files[w.path]
        elif entry is not None:  # written again: what the collection wrote now is what undo compares
            if w.new is None:
                entry["written"] = None
                if entry.get("ours") and os.path.exists(entry["ours"]):
                    os.unlink(entry["ours"])
                entry.pop("ours", None)
            else:
                _keep_ours(module, w.path, entry, w.new)
    led["state_dirs"] = sorted(set(led["state_dirs"]) | set(made))
    led["dirs"] = sorted((set(led["dirs"]) | set(created_dirs)) - {d for d in led["dirs"] if not os.path.isdir(d)})
    for key, value in (sysctl_before or {}).items():
        led["sysctl"].setdefault(key, value)
    led["sysctl_set"].update(sysctl_set or {})
    _write_ledger(module, led)


def forget_sysctl(module, keys):
    """Drop live sysctl values from the ledger once they are back to their originals."""
    led = load_ledger()
    if any(k in led["sysctl"] or k in led["sysctl_set"] for k in keys):
        for k in keys:
            led["sysctl"].pop(k, None)
            led["sysctl_set"].pop(k, None)
        _write_ledger(module, led)
