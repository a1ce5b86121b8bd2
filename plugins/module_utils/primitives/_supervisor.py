# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""supervisord's configuration, read as supervisord reads it and edited one key at a time.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). Pure functions over text, unit tested.

How supervisord 4 reads its configuration (supervisor/options.py, UnhosedConfigParser): one
RawConfigParser with ``inline_comment_prefixes=(';', '#')`` and ``strict=False``, so
- a line ``[name]`` opens a section; ``key = value`` or ``key: value`` sets a key (names are
  lower-cased); an indented line continues the value before it; a line starting with ';' or
  '#' is a comment, and so is the rest of a line after whitespace and ';' or '#';
- only the main file's ``[include] files=`` is read: whitespace-separated globs, relative to
  the main file's directory, each expanded and sorted, in order;
- every file goes into the same parser: a ``[program:x]`` section in two files is ONE program,
  the later file's keys winning.
Editing keeps every byte of the file but the lines of the keys that change: comments, order,
blank lines, every other section and every other key of the section stay as they were.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _constants, _unit

# the configuration files supervisord looks for, in its order, when it is not given -c
SEARCH = ("/etc/supervisord.conf", "/etc/supervisor/supervisord.conf")

_HEADER = re.compile(r"^\[(?P<name>[^]]+)\]")
_KEY = re.compile(r"^(?P<key>[^=:\s][^=:]*?)\s*[=:]\s?(?P<value>.*)$")


class SupervisorError(ValueError):
    """A configuration this module will not edit: the message names the file and the reason."""


def strip_inline_comment(value):
    """A value as RawConfigParser keeps it: cut at ';' or '#' preceded by whitespace."""
    m = re.search(r"\s[;#]", value)
    return (value[:m.start()] if m else value).strip()


def parse(text):
    """Lines of ``text`` (keeping line ends) -> [(kind, section, key, line)]: kind is header,
    key, continuation, comment or blank; key is lower-cased (None but for key lines)."""
    out = []
    section = key = None
    for line in text.splitlines(True):
        body = line.rstrip("\r\n")
        stripped = body.strip()
        if not stripped:
            out.append(("blank", section, None, line))
            continue
        if stripped[0] in ";#":
            out.append(("comment", section, None, line))
            continue
        if body[0] in " \t" and key is not None:
            out.append(("continuation", section, key, line))
            continue
        m = _HEADER.match(body)
        if m:
            section, key = m.group("name"), None
            out.append(("header", section, None, line))
            continue
        m = _KEY.match(body)
        if m and section is not None:
            key = m.group("key").strip().lower()
            out.append(("key", section, key, line))
            continue
        out.append(("other", section, None, line))
    return out


def values(text, section):
    """{key: value} of ``section`` in ``text`` (continuations joined with newlines, inline
    comments cut, as RawConfigParser reads them); {} when the file has no such section."""
    out = {}
    current = None
    for kind, sect, key, line in parse(text):
        if sect != section:
            continue
        body = line.rstrip("\r\n")
        if kind == "key":
            current = key
            out[key] = strip_inline_comment(_KEY.match(body).group("value"))
        elif kind == "continuation" and current:
            out[current] = (out[current] + "\n" + strip_inline_comment(body.strip())).strip()
    return out


def has_section(text, section):
    return any(kind == "header" and sect == section for kind, sect, _k, _l in parse(text or ""))


def include_patterns(main_text, main_path, expansions=None):
    """The globs of the main file's ``[include] files=``, made absolute as supervisord does."""
    files = values(main_text, "include").get("files")
    if not files:
        return []
    expansions = dict(expansions or {}, here=os.path.dirname(os.path.abspath(main_path)))
    try:
        files = files % expansions
    except (KeyError, ValueError, TypeError):
        pass
    base = os.path.dirname(os.path.abspath(main_path))
    return [os.path.join(base, pattern) for pattern in files.split()]


def read_order(main_path, read, expand=glob.glob):
    """Every file supervisord reads, in its order: the main file, then each include pattern's
    matches, sorted. ``read(path)`` -> text or None."""
    main_text = read(main_path)
    if main_text is None:
        return []
    out = [main_path]
    for pattern in include_patterns(main_text, main_path):
        out.extend(sorted(expand(pattern)))
    return out


def program_sections(files, name):
    """The files (of ``files``: [(path, text)], in read order) with a [program:NAME] section."""
    section = "program:%s" % name
    return [path for path, text in files if has_section(text, section)]


def effective(files, name):
    """The program's keys as supervisord merges them: later files win. {} when undefined."""
    section = "program:%s" % name
    out = {}
    for _path, text in files:
        out.update(values(text, section))
    return out


def edit(text, section, updates):
    """``text`` with the keys of ``updates`` ({key: value, or None to remove}) set in the last
    ``section`` of the file: an existing key's line (and its continuation lines) is replaced
    in place, a new key goes after the section's last key. Nothing else changes."""
    lines = parse(text)
    updates = {k.lower(): v for k, v in updates.items()}
    out = []
    last_key_at = {}  # index into ``out`` after the section's last key line (or its header)
    done = set()
    skipping = False
    for kind, sect, key, line in lines:
        if skipping and kind == "continuation":
            continue
        skipping = False
        if sect == section and kind == "key" and key in updates:
            skipping = True
            if key in done or updates[key] is None:
                continue  # removed, or a repeated key (the parser keeps the last one)
            out.append("%s=%s\n" % (key, updates[key]))
            done.add(key)
            last_key_at[section] = len(out)
            continue
        out.append(line)
        if sect == section and kind in ("header", "key", "continuation"):
            last_key_at[section] = len(out)
    missing = [k for k, v in updates.items() if v is not None and k not in done]
    if missing:
        if section not in last_key_at:
            raise SupervisorError("no [%s] section to edit" % section)
        at = last_key_at[section]
        if at and not out[at - 1].endswith("\n"):
            out[at - 1] += "\n"
        out[at:at] = ["%s=%s\n" % (k, updates[k]) for k in missing]
    return "".join(out)


def blocks(text, section):
    """[(first, end)] line spans of each ``section`` of ``text``: its header through its last
    key or continuation line (edit() changes nothing outside them)."""
    out = []
    for i, (kind, sect, _key, _line) in enumerate(parse(text)):
        if kind == "header" and sect == section:
            out.append([i, i + 1])
        elif sect == section and kind in ("key", "continuation") and out:
            out[-1][1] = i + 1
    return [tuple(b) for b in out]


def restore(text, original, section):
    """``text`` with every ``section`` block as it is in ``original``, byte for byte (other
    sections, edited or not, stay as they are now). Where the file no longer has the same
    number of blocks, the keys are set back one by one instead."""
    now, then = blocks(text, section), blocks(original, section)
    if len(now) != len(then):
        want, have = values(original, section), values(text, section)
        updates = {k: None for k in have if k not in want}
        updates.update({k: v for k, v in want.items() if have.get(k) != v})
        return edit(text, section, updates) if updates else text
    lines, old = text.splitlines(True), original.splitlines(True)
    for (a, b), (c, d) in reversed(list(zip(now, then))):
        lines[a:b] = old[c:d]
    return "".join(lines)


def wrapped_command(command, hook):
    """The program's own command when ``command`` already runs through ``hook`` (a re-run),
    else ``command``: a wrapped command is never wrapped twice."""
    prefix = hook + " --unit "
    if hook and command.startswith(prefix) and " -- " in command:
        return command.split(" -- ", 1)[1]
    return command


def hook_words(command):
    """What a command run through the hook says: {'targets', 'hold', 'listen', 'preload',
    'restarts', 'user', 'unit', 'command'} - or None for a plain command."""
    words = command.split(" -- ", 1)[0].split() if " -- " in command else []
    if not words or not words[0].endswith("/netsvc-sockclean"):
        return None
    out = dict(targets=[], hold=False, listen=[], preload=None, restarts=None, user=None, unit=None,
               command=command.split(" -- ", 1)[1])
    i = 1
    while i < len(words):
        word = words[i]
        if word in _constants.HOOK_FLAGS:
            out["hold"] = True
        elif word in _constants.HOOK_VALUED and i + 1 < len(words):
            key = word[2:].replace("-", "_")
            if key == "listen":
                out["listen"].append(words[i + 1])
            elif key in out:
                out[key] = words[i + 1]
            i += 1
        else:
            out["targets"].append(word)
        i += 1
    return out


def wrapped_targets(command):
    """What a command run through the hook cleans (its targets), or [] for a plain command."""
    return (hook_words(command) or {"targets": []})["targets"]


def hooked_programs(text):
    """{program: targets} of the sections of ``text`` whose command runs through the hook."""
    out = {}
    for kind, sect, _k, _l in parse(text):
        if kind == "header" and sect.startswith("program:"):
            targets = wrapped_targets(values(text, sect).get("command", ""))
            if targets:
                out[sect.split(":", 1)[1]] = targets
    return out


def group_of(files, name):
    """The [group:x] a program belongs to (supervisorctl's unit of update), or the program."""
    for _path, text in files:
        for kind, sect, _k, _l in parse(text):
            if kind == "header" and sect.startswith("group:"):
                programs = values(text, sect).get("programs", "")
                if name in [p.strip() for p in programs.split(",")]:
                    return sect.split(":", 1)[1]
    return name


def sections(text):
    """The section names of ``text``, in order, each once."""
    out = []
    for kind, sect, _k, _l in parse(text or ""):
        if kind == "header" and sect not in out:
            out.append(sect)
    return out


def _drop_blocks(text, section):
    lines = text.splitlines(True)
    for first, end in reversed(blocks(text, section)):
        del lines[first:end]
    return "".join(lines)


def section_updates(now, ours, original, section):
    """The undo of one program section the collection changed, in ``now`` (any file it lives in
    now): ({key: value to put back, None to remove}, [keys left: no longer what the collection
    wrote - the admin's]). Only keys the collection changed (``ours`` against ``original``)."""
    mine, then, have = values(ours, section), values(original, section), values(now, section)
    updates, kept = {}, []
    for key in sorted(set(mine) | set(then)):
        if mine.get(key) == then.get(key):
            continue  # not a key the collection changed
        if have.get(key) == mine.get(key):
            updates[key] = then.get(key)
        else:
            kept.append(key)
    return updates, kept


def unmerge(now, ours, original):
    """Undo of an edited file that was changed since the collection wrote it: ``now`` with only
    the collection's own keys put back as ``original`` had them, in every program section the
    collection changed (``ours`` is what it wrote). A key whose value is no longer what the
    collection wrote is the admin's: it stays, and is named. A section the collection added is
    removed when every key in it is still its own. Everything else (a program the admin added,
    a comment, an edited key) stays as it is now. Returns (text, [(section, key) kept], [sections
    gone from the file since - moved elsewhere or removed: see moved_sections])."""
    kept, gone = [], []
    for section in sections(ours):
        if not section.startswith("program:"):
            continue
        if not has_section(now, section):
            if has_section(original, section):
                gone.append(section)
            continue
        if not has_section(original, section):
            if values(now, section) == values(ours, section):
                now = _drop_blocks(now, section)
            else:
                kept.append((section, "*"))
            continue
        updates, left = section_updates(now, ours, original, section)
        kept.extend((section, key) for key in left)
        if updates:
            now = edit(now, section, updates)
    return now, kept, gone


# ------------------------------------------------------------------------ programs


def program_name(name):
    """A supervisord program's name: the service name without .service."""
    return name[: -len(".service")] if name.endswith(".service") else name


def supervisor_paths(os_family):
    """(directory, extension) where the OS family's supervisord package includes programs."""
    if os_family in ("RedHat", "Rocky", "AlmaLinux", "CentOS", "Fedora", "OracleLinux", "Amazon"):
        return "/etc/supervisord.d", ".ini"
    return "/etc/supervisor/conf.d", ".conf"


def check_program_name(name):
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z", name or "") or ".." in name:
        raise _unit.UnitError(
            "supervisord program name %r must be letters, digits, '_', '.', '-' (no path, no '..', "
            "no ':' or spaces)" % (name,)
        )
    return name


def supervisor_command(name, command, hook, ports, ids, hold=None):
    """The program's command line, through the cleanup hook when there is one.

    supervisord's ``user=`` would make the hook run without CAP_NET_ADMIN, so with a hook the
    program runs as root up to the hook, which cleans its ports and then drops to ``ids``
    ((uid, gid, [groups]), resolved on the host) before exec'ing the command. ``hold``
    ({'restarts', 'listen': [specs], 'preload': library or None}): the hook stays the server's
    parent (--hold, src/hold.h), restarting it at once and, with specs, holding its sockets.
    """
    if not hook or not ports:
        return command
    argv = [hook, "--unit", name]
    if ids:
        uid, gid, groups = ids
        argv += ["--user", ":".join(str(x) for x in [uid, gid] + list(groups))]
    if hold:
        argv += ["--hold", "--restarts", hold["restarts"]]
        for spec in hold.get("listen") or []:
            argv += ["--listen", spec]
        if hold.get("preload"):
            argv += ["--preload", hold["preload"]]
    return "%s %s -- %s" % (" ".join(argv), " ".join(str(p) for p in ports), command)
