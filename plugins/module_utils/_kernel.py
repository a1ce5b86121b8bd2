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

from ansible_collections.netsvc.resilience.plugins.module_utils import _constants as C
from ansible_collections.netsvc.resilience.plugins.module_utils import _sysctl as S
from ansible_collections.netsvc.resilience.plugins.module_utils import _validate as V
from ansible_collections.netsvc.resilience.plugins.module_utils._files import atomic_write, read_text

SPEC = dict(
    settings=dict(type="dict", default={}),
    profile=dict(type="str", default="none", choices=sorted(S.PROFILES)),
    reserved_ports=dict(type="list", elements="raw", default=[]),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    purge=dict(type="bool", default=False),
    path=dict(type="path", default=C.SYSCTL_FILE),
    apply=dict(type="str", default="both", choices=["both", "persist", "live"]),
    on_conflict=dict(type="str", default="warn", choices=["warn", "fail"]),
    allow_unknown=dict(type="bool", default=False),
    live_readonly=dict(type="str", default="fail", choices=["fail", "skip"]),
    header=dict(type="str", default="Ansible managed: netsvc.resilience.sysctl_tcp"),
)


def read_state(p, persist):
    """(the file's text or None, the live values of every key the call may touch)."""
    current_text = read_text(p["path"]) if persist else None
    keys = {S.normalize_key(str(k)) for k in p["settings"]}
    keys.update(S.PROFILES[p["profile"]])
    keys.update(k for k, _v, _n in S.parse_conf(current_text or ""))
    keys.update([S.RESERVED_PORTS_KEY, "net.ipv4.tcp_timestamps", "net.ipv4.tcp_max_tw_buckets"])
    return current_text, S.read_live(sorted(k for k in keys if S.KEY_NAME_RE.match(k)))


def boot_overrides(module, p, values, warnings):
    """Files that would replace our values at boot: a warning each, or a failure (on_conflict=fail)."""
    path = p["path"]
    overridden = S.find_overrides(path, values, S.read_config_files(path))
    for key, where in sorted(overridden.items()):
        msg = "%s = %s in %s would be overridden at boot by %s" % (
            key, values[key], path, ", ".join("%s (%s)" % (w["file"], w["value"]) for w in where))
        if p["on_conflict"] == "fail":
            module.fail_json(msg=msg + "; nothing was written (on_conflict=fail)", overridden_by=overridden, file=path)
        warnings.append(msg)
    return overridden


def live_writes(module, p, live, targets, warnings):
    """The live values to write, or none when /proc/sys is read-only and that is allowed.
    Returns (to_write, skipped)."""
    to_write = S.live_changes(live, targets)
    unwritable = [k for k in sorted(to_write) if not os.access(S.key_to_proc_path(k), os.W_OK)]
    if not unwritable:
        return to_write, False
    if p["live_readonly"] == "skip" or p["apply"] == "persist":
        warnings.append("live apply skipped: /proc/sys is read-only here (%s); the values are persisted in %s and "
                        "apply at the next boot" % (", ".join(unwritable), p["path"]))
        return {}, True
    module.fail_json(msg="cannot write %s: /proc/sys is read-only on this host (an unprivileged container?). Nothing "
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


def _put_back(module, path, old_text):
    try:
        if old_text is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            atomic_write(module, path, old_text)
    except (IOError, OSError):
        pass


def apply_changes(module, path, old_text, new_text, file_changed, to_write, live):
    """The file first (atomic), then the live values; any failure puts both back as they were."""
    if file_changed:
        try:
            if new_text is None:
                os.unlink(path)
            else:
                atomic_write(module, path, new_text)
        except (IOError, OSError) as e:
            module.fail_json(msg="writing %s failed: %s; the file and the live values are as they were" % (path, e))
    written = []
    key = None
    try:
        for key in sorted(to_write):
            S.write_live(key, to_write[key])
            written.append(key)
    except (IOError, OSError) as e:
        for done in written:  # put back what we changed before failing
            try:
                S.write_live(done, live[done])
            except (IOError, OSError):
                pass
        if file_changed:
            _put_back(module, path, old_text)
        module.fail_json(msg="writing live value %s = %s failed: %s; live values and %s restored"
                             % (key, to_write[key], e, path))


def run(module):
    """sysctl_tcp: every key checked, the file and the live values planned, then written."""
    p = module.params
    path = p["path"]
    try:
        # systemd-sysctl reads only *.conf files directly in its directories
        V.abs_path(path, "path", under=S.SYSCTL_DIRS, suffix=".conf")
        V.single_line(p["header"], "header", 200)
        persist = p["apply"] in ("both", "persist")
        current_text, live = read_state(p, persist)
        plan = S.plan(p, live, current_text)
    except (V.InputError, S.SysctlError) as e:
        module.fail_json(msg=str(e))
    values, warnings = plan["values"], plan["warnings"]
    new_text = None
    if values or plan["previous"] or plan["added"]:
        new_text = S.render_conf(values, plan["previous"], plan["added"], p["header"])
    file_changed = persist and new_text != current_text
    overridden = boot_overrides(module, p, values, warnings) if persist and values else {}
    targets = plan["live_targets"] if p["apply"] in ("both", "live") else {}
    to_write, live_skipped = live_writes(module, p, live, targets, warnings)
    live_before = {k: live.get(k) for k in sorted(set(values) | set(targets))}
    live_after = dict(live_before, **to_write)
    changed = bool(file_changed or to_write)
    if changed and not module.check_mode:
        apply_changes(module, path, current_text, new_text, file_changed, to_write, live)
        live_after.update(S.read_live(sorted(to_write)))
    return dict(changed=changed, file=path, persisted=values, live_before=live_before, live_after=live_after,
                live_skipped=live_skipped, overridden_by=overridden, warning_messages=warnings,
                netns=S.netns_info(), diff=diff(path, current_text, new_text, file_changed, live, to_write))
