# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input checks shared by every module: each names the value and the rule.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host). Modules call these before any side
effect (no write, no kill, no reload), so bad input never acts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _failure

_SHELLISH = " \t\n\r'\"\\$`;%&|<>*?()[]{}#~!"
_RANGE = re.compile(r"^(\d{1,5})-(\d{1,5})\Z")


MIN_PYTHON = (3, 6)


def python_problem(version_info, executable):
    """Why this interpreter cannot run the collection's modules, with the fix; None when it can."""
    if tuple(version_info[:2]) >= MIN_PYTHON:
        return None
    return ("Python %s (%s) is too old for netsvc.resilience: its modules need Python >= 3.6 on the managed host. "
            "Install Python 3 (EL7: yum install python3, in the base repositories since 7.7; EL8: use "
            "/usr/libexec/platform-python) and set ansible_python_interpreter to it"
            % (".".join(str(x) for x in version_info[:3]), executable or "unknown interpreter"))


def require_python(module):
    """Fail cleanly, naming the interpreter and the fix, before any Python 3 code runs.

    _module.execute calls this first for every module: this file and every module_utils file
    import under 2.7.
    """
    import sys

    problem = python_problem(sys.version_info, sys.executable)
    if problem:
        raise _failure.Failure(problem, python_version="%d.%d.%d" % tuple(sys.version_info[:3]),
                               python_executable=sys.executable)


class InputError(ValueError):
    """Bad input: the message names the option, the value and the rule."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def port(value, what):
    """An integer TCP port 1-65535 (a digit string is accepted, anything else refused)."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 5:
        value = int(value)
    if not _is_int(value) or not 1 <= value <= 65535:
        raise InputError("%s %r is not a TCP port: use an integer 1-65535" % (what, value))
    return value


def port_entry(value, what):
    """A port, or a range 'LOW-HIGH' (1 <= LOW <= HIGH <= 65535) -> int or (low, high)."""
    if isinstance(value, str):
        m = _RANGE.match(value.strip())
        if m:
            low, high = int(m.group(1)), int(m.group(2))
            if 1 <= low <= high <= 65535:
                return (low, high)
            raise InputError("%s range %r must have 1 <= LOW <= HIGH <= 65535" % (what, value))
    return port(value, what)


def ports(values, what, ranges=True):
    """A list of ports (and ranges when ``ranges``), each checked; returns the checked list."""
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise InputError("%s %r must be a list of ports" % (what, values))
    return [port_entry(v, what) if ranges else port(v, what) for v in values]


def number(value, what, low, high, unit=""):
    """A number within [low, high] (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InputError("%s %r is not a number" % (what, value))
    if not low <= value <= high:
        raise InputError("%s %r must be between %s and %s%s" % (what, value, low, high, unit))
    return value


def single_line(value, what, max_len=4096):
    """Text without line breaks or NUL (it goes into a one-line config entry)."""
    if not isinstance(value, str):
        raise InputError("%s %r must be a string" % (what, value))
    if any(c in value for c in "\n\r\0"):
        raise InputError("%s %r must be a single line (no newline, carriage return or NUL)" % (what, value))
    if len(value) > max_len:
        raise InputError("%s is %d characters long; at most %d" % (what, len(value), max_len))
    return value


# Directories a tool must never remove or take as its own state directory: the file system's
# own (FHS) and their usual second level.
SYSTEM_DIRS = frozenset(("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media", "/mnt", "/opt",
                         "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/usr/bin",
                         "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/local", "/usr/local/lib",
                         "/usr/local/libexec", "/usr/sbin", "/usr/share", "/var/cache", "/var/lib", "/var/log",
                         "/var/opt", "/var/run", "/var/spool", "/var/tmp", "/run/lock", "/etc/systemd",
                         "/etc/systemd/system", "/etc/sysctl.d"))


def state_dir(value, what):
    """A directory of the collection's own state: an absolute path that is not a system directory
    (it is removed by a rollback once empty)."""
    abs_path(value, what)
    if value in SYSTEM_DIRS:
        raise InputError("%s %r is a system directory: give the collection a directory of its own (the default is "
                         "/var/lib/netsvc-resilience)" % (what, value))
    return value


def abs_path(value, what, under=None, suffix=None, plain=False):
    """A normalized absolute path (no '..', no '//', no control characters).

    ``under``: directories it must be directly in; ``suffix``: required ending; ``plain``: no
    spaces, quotes, '%' or shell characters either (the path goes into a unit's command line).
    """
    if not isinstance(value, str) or not value:
        raise InputError("%s %r must be an absolute path" % (what, value))
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError("%s %r must not contain control characters" % (what, value))
    if not os.path.isabs(value) or os.path.normpath(value) != value or value.startswith("//"):
        raise InputError("%s %r must be a normalized absolute path (no '..', '.', '//' or trailing '/')"
                         % (what, value))
    if plain and any(c in value for c in _SHELLISH):
        raise InputError("%s %r must not contain spaces, quotes, '%%' or shell characters (it becomes part of a "
                         "command line)" % (what, value))
    if under and os.path.dirname(value) not in under:
        raise InputError("%s %r must be a file directly in one of %s" % (what, value, ", ".join(under)))
    if suffix and not value.endswith(suffix):
        raise InputError("%s %r must end with %s" % (what, value, suffix))
    return value


def validated(module, label, given, spec, base=None):
    """``given`` (over ``base``'s values) checked against ``spec``: an unknown key of ``given``
    or an invalid value fails the module, the message starting with ``label``. The parameters."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        allowed = ", ".join(sorted(spec))
        raise _failure.Failure("%s: unknown option(s) %s; allowed: %s" % (label, ", ".join(unknown), allowed))
    merged = dict(base or {})
    merged.update(given)
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # here: this file imports under 2.7

    checked = ArgumentSpecValidator(spec).validate(merged)
    if checked.error_messages:
        raise _failure.Failure("%s: %s" % (label, "; ".join(checked.error_messages)))
    return checked.validated_parameters
