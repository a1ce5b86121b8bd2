#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: prestart_hook
short_description: Install the pre-start socket cleanup hook and run it before every start of each service
version_added: 0.1.0
description:
  - One call does the whole cleanup concern for a host. It installs the hook script and its
    netlink fallback, then writes for each systemd service a drop-in
    C(/etc/systemd/system/<unit>.d/<dropin_name>.conf) with C(ExecStartPre=-HOOK PORT...).
    The hook cleans the service's ports before every start, restarts included.
  - Files are written atomically and only when their content or mode differs. Each drop-in
    is checked with C(systemd-analyze verify); if systemd objects, every file this call
    wrote is put back as it was. C(daemon-reload) runs once, and only when a drop-in changed.
  - The role C(netsvc.resilience.prestart_cleanup) passes the hook's text from the
    collection (O(hook_content), O(fallback_content)); the module ships no copy of its own.
  - supervisord programs have no C(ExecStartPre=). Their command goes through the hook
    instead (C(HOOK PORT... -- COMMAND)), which the C(crash_recovery) role writes; here they
    only need the hook installed.
author:
  - netsvc.resilience maintainers (@netsvc)
extends_documentation_fragment:
  - netsvc.resilience.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  path:
    description:
      - Where the hook script goes. The fallback goes next to it as C(netsvc_sockdiag.py).
      - Default C(<dir>/netsvc-sockclean), where <dir> is C(/usr/libexec/netsvc-resilience) on
        EL, C(/usr/lib/netsvc-resilience) on Debian/Ubuntu, else C(/usr/local/libexec/netsvc-resilience).
    type: path
  hook_content:
    description: Text of the hook script (mode 0755). Required with O(state=present).
    type: str
  fallback_content:
    description: Text of the hook's Python netlink fallback (mode 0644). Required with O(state=present).
    type: str
  services:
    description:
      - systemd services whose starts run the hook, in the C(netsvc_services) data model; keys
        other than these are ignored, so the list can be passed as is.
      - C(name) (required) - systemd unit (C(.service) is added when there is no suffix).
      - C(backend) - C(auto) (the default - systemd when it is the service manager), C(systemd)
        or C(supervisord). A supervisord program gets no drop-in.
      - C(ports) - TCP ports the hook cleans before the service starts (1-65535). Entries
        that are not integers (port ranges) are ignored; a service left without ports gets
        no drop-in.
    type: list
    elements: dict
    default: []
  dropin_name:
    description: Name of the drop-in (without C(.conf)), separate from the restart policy's.
    type: str
    default: 40-netsvc-cleanup
  state:
    description: C(absent) removes the listed services' drop-ins and the hook directory's two files.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Clean ports 8080 and 8443 before every start of myapp
  netsvc.resilience.prestart_hook:
    hook_content: "{{ lookup('ansible.builtin.file', 'netsvc-sockclean', rstrip=false) }}"
    fallback_content: "{{ lookup('ansible.builtin.file', 'netsvc_sockdiag.py', rstrip=false) }}"
    services:
      - name: myapp.service
        ports: [8080, 8443]
"""

RETURN = r"""
path:
  description: The hook script's path.
  returned: always
  type: str
  sample: /usr/libexec/netsvc-resilience/netsvc-sockclean
written:
  description: Files written or removed (in check mode, that would be).
  returned: always
  type: list
  elements: str
dropins:
  description: Drop-in path per service.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.netsvc.resilience.plugins.module_utils import _hostcheck as H
from ansible_collections.netsvc.resilience.plugins.module_utils import _unit as U
from ansible_collections.netsvc.resilience.plugins.module_utils._files import FileSet

HEADER = "Ansible managed: netsvc.resilience.prestart_hook"


def default_path():
    return os.path.join(H.hook_dir(H.read_os_release()["os_family"]), "netsvc-sockclean")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            hook_content=dict(type="str"),
            fallback_content=dict(type="str"),
            services=dict(type="list", elements="dict", default=[]),
            dropin_name=dict(type="str", default="40-netsvc-cleanup"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        required_if=[("state", "present", ("hook_content", "fallback_content"))],
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"] or default_path()
    if not os.path.isabs(path) or any(c in path for c in " \t\n'\"\\$`;"):
        module.fail_json(msg="path %r must be an absolute path without spaces, quotes or shell characters "
                             "(it becomes part of ExecStartPre=)" % path)
    try:
        dropin = U.check_dropin_name(p["dropin_name"])
        plans = []
        service_mgr = "systemd" if os.path.isdir("/run/systemd/system") else "other"
        for svc in H.check_services(p["services"], service_mgr):
            if svc["backend"] != "systemd":
                continue  # a supervisord program: its command goes through the hook instead
            name = U.unit_name(svc["name"])  # validated by check_services
            ports = sorted(set(svc["ports"]))
            if not ports:
                continue
            cmd = "-%s %s" % (path, " ".join(str(x) for x in ports))
            opts = U.normalize_options({"apply_defaults": False, "exec_start_pre": [cmd]})
            plans.append((name, U.dropin_path(name, dropin), opts))
    except (U.UnitError, ValueError) as e:
        module.fail_json(msg=to_native(e))

    files = FileSet(module)
    fallback = os.path.join(os.path.dirname(path), "netsvc_sockdiag.py")
    present = p["state"] == "present"
    if present:
        files.want(path, p["hook_content"], 0o755)
        files.want(fallback, p["fallback_content"], 0o644)
    for _name, dropin_path, opts in plans:
        # only ExecStartPre= is rendered, the same on every systemd version
        files.want(dropin_path, U.render_dropin(opts, 0, header=HEADER)[0] if present else None)
    if not present:
        files.want(path, None)
        files.want(fallback, None)
    dropins_changed = [x for x in files.paths if x.startswith(U.SYSTEMD_DIR + "/")]
    result = dict(changed=files.changed, path=path, written=files.paths,
                  dropins={name: dpath for name, dpath, _o in plans}, diff=files.diff())
    if module.check_mode or not files.changed:
        module.exit_json(**result)

    try:
        files.apply()
    except (IOError, OSError) as e:
        files.rollback()
        module.fail_json(msg="writing %s failed: %s; every file is as it was" % (", ".join(files.paths), to_native(e)))
    hook_dir = os.path.dirname(path)
    if present and os.path.isdir(hook_dir):
        os.chmod(hook_dir, 0o755)
    if not present and os.path.isdir(hook_dir) and not os.listdir(hook_dir):
        os.rmdir(hook_dir)
    if dropins_changed:
        systemctl = module.get_bin_path("systemctl", required=True)
        analyze = module.get_bin_path("systemd-analyze")
        if present and analyze:
            changed_units = [name for name, dpath, _o in plans if dpath in dropins_changed]
            argv = [systemctl, "show", "-p", "FragmentPath"] + changed_units
            fragments = [b.get("FragmentPath") for b in H.parse_show_many(U.run(module, argv, check=False)[1])]
            fragments = [f for f in fragments if f]
            out = err = ""
            if fragments:
                _rc, out, err = U.run(module, [analyze, "verify"] + fragments, check=False)
            problems = []
            for dpath in dropins_changed:
                problems += U.verify_problems(out + "\n" + err, dpath)
            if problems:
                files.rollback()
                module.fail_json(msg="systemd-analyze verify rejected the cleanup drop-in; every file is as it "
                                     "was: %s" % "; ".join(problems))
        U.run(module, [systemctl, "daemon-reload"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
