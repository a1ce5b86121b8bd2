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
version_added: 1.0.0
description:
  - One call does the whole cleanup concern for a host. It installs the hook and writes for
    each systemd service a drop-in C(/etc/systemd/system/<unit>.d/<dropin_name>.conf) with
    C(ExecStartPre=+-HOOK --unit %n --drain-ms MS ADDRESS:PORT...). The hook cleans before
    every start, restarts included, and reports each run in
    C(/run/netsvc-resilience/hook/<unit>.status).
  - It cleans only the service's own addresses and ports - what the running service's
    listeners bind, read here (C(0.0.0.0:80), C([::]:80) or C(127.0.0.1:9000); a wildcard
    listener means every address of its family). A second server on the same port at another
    address keeps every socket. A service that does not listen when this runs gets its bare
    ports (every address), and RV(cleanup) says so; the next run, once it listens, narrows them
    (the pre-flight reports the difference as drift).
  - Only sockets with nothing left to deliver go at once - C(TIME_WAIT), C(FIN_WAIT_2), and any
    orphan whose send queue holds no data. A C(FIN_WAIT_1), C(CLOSING) or C(LAST_ACK) socket
    still holds part of a response the old instance wrote (the kernel keeps sending after
    C(close())) - it gets up to O(drain_timeout) to deliver it, and only then is destroyed. The
    status file and the journal line count those apart
    (C(destroyed 1 with 812000 bytes unsent after 2000 ms)).
  - The hook and everything written here is root's and not writable by group or others, with
    every directory above it; a path that breaks this is refused before anything is written, and
    a file whose owner or mode drifted is corrected (a change).
  - The hook is a small static program (no libc, so it runs on every glibc and kernel the
    collection supports) for x86_64 and aarch64, built from C(src/netsvc-sockclean.c) of this
    collection; on other architectures its Python twin (standard library only) is installed
    instead. Both log the same line, and when sockets are left they say why, from the errno
    the kernel gave (no CAP_NET_ADMIN, netlink refused, no SOCK_DESTROY, TIME_WAIT not
    destroyable before Linux 6.0).
  - "C(ExecStartPre=) runs inside the unit's sandbox (C(User=), C(CapabilityBoundingSet=),
    C(RestrictAddressFamilies=), C(ExecPaths=)...), where SOCK_DESTROY is impossible. So by
    default (O(privilege=auto)) the hook runs with full privileges: systemd's C(+) prefix
    from systemd 231, only for that one command. systemd 219 (EL7) has no C(+): there a unit
    whose sandbox would block the hook gets C(PermissionsStartOnly=yes), which also lifts
    C(User=), capabilities and seccomp filters from the unit's other non-main commands
    (C(ExecStartPre=), C(ExecStartPost=), C(ExecReload=), C(ExecStop=)); a warning says so."
  - Files are written atomically and only when their content or mode differs. The drop-ins are
    checked with C(systemd-analyze verify); if systemd objects, or C(daemon-reload) fails,
    every file this call wrote is put back as it was. C(daemon-reload) runs once.
  - Afterwards the C(ExecStartPre=) lines systemd will really run are read back
    (C(systemctl show)). When a foreign drop-in removes or overrides the hook, the call fails
    (or warns, O(effective_mismatch=warn)), naming the file that wins.
  - An action plugin of the same name sends the hook from the collection to the host, so the
    module works on its own from any playbook.
  - supervisord programs have no C(ExecStartPre=). Their command goes through the hook
    instead (C(HOOK --unit NAME PORT... -- COMMAND)), which the C(crash_recovery) role
    writes; here they only need the hook installed.
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
      - Where the hook goes (mode 0755). A normalized absolute path without spaces, quotes,
        C(%) or shell characters.
      - Default C(<dir>/netsvc-sockclean), where <dir> is C(/usr/libexec/netsvc-resilience) on
        EL, C(/usr/lib/netsvc-resilience) on Debian/Ubuntu, else C(/usr/local/libexec/netsvc-resilience).
    type: path
  services:
    description:
      - systemd services whose starts run the hook, in the C(netsvc_services) data model; keys
        other than these are ignored, so the list can be passed as is.
      - C(name) (required) - systemd unit (C(.service) is added when there is no suffix). It
        must exist (with O(state=present)).
      - C(backend) - C(auto) (the default - systemd when it is the service manager), C(systemd)
        or C(supervisord). A supervisord program gets no drop-in.
      - C(ports) - TCP ports the hook cleans before the service starts (integers 1-65535). A
        service without ports gets no drop-in.
      - C(cleanup) - C(auto) (the default), C(true) or C(false). C(true) always installs the
        hook; C(false) removes the service's drop-in. C(auto) reads the running service's
        listening sockets on its ports; when every one has C(SO_REUSEADDR), the server rebinds
        over its own leftovers anyway (accepted sockets inherit the flag), so the unit gets no
        hook and each restart saves the cost of a pre-start command (5-14 ms). The flag is read
        from the live socket (C(pidfd_getfd), Linux >= 5.6, root); where it cannot be read
        (older kernel, the service not running, a listener of another process) the hook is
        installed, and RV(cleanup) says why.
    type: list
    elements: dict
    default: []
  dropin_name:
    description: Name of the drop-in (without C(.conf)), separate from the restart policy's.
    type: str
    default: 40-netsvc-cleanup
  privilege:
    description:
      - How the hook gets the privileges SOCK_DESTROY needs inside the unit's sandbox.
      - C(auto) - C(prefix) on systemd >= 231; on older systemd C(permissions_start_only) for a
        unit whose sandbox would block the hook, else C(none).
      - C(prefix) - C(ExecStartPre=+-...) (fails on systemd < 231).
      - C(permissions_start_only) - C(PermissionsStartOnly=yes) (see the description); refused on
        systemd >= 231, which has C(+) for the hook alone.
      - C(none) - the hook runs inside the sandbox; a sandboxed unit then gets a warning, and
        the hook's status (read by the audit) says why it could not clean.
    type: str
    choices: [auto, prefix, permissions_start_only, none]
    default: auto
  effective_mismatch:
    description: What to do when systemd does not run the hook as written (a foreign drop-in wins).
    type: str
    choices: [fail, warn]
    default: fail
  state:
    description: C(absent) removes the listed services' drop-ins and the hook.
    type: str
    choices: [present, absent]
    default: present
  drain_timeout:
    description:
      - Seconds the hook gives a leftover socket that still holds data (part of a response the
        old instance wrote) to deliver it before destroying it. The restart waits that long at
        most, and only while such a socket exists; with nothing in flight it costs nothing.
      - The default, 2 s, delivers a 2 MiB response to a client reading 1.6 MB/s (measured in
        molecule C(prestart_cleanup)); 0 destroys at once, as before 1.0.0. 0 to 600.
    type: float
    default: 2.0
  payload:
    description:
      - Set by the action plugin - the native builds and the Python hook from this collection.
        Do not set it yourself.
    type: dict
"""

EXAMPLES = r"""
- name: Clean ports 8080 and 8443 before every start of myapp, whatever its sandbox
  netsvc.resilience.prestart_hook:
    services:
      - name: myapp.service
        ports: [8080, 8443]

- name: Warn instead of failing when a local drop-in overrides the hook
  netsvc.resilience.prestart_hook:
    services: "{{ netsvc_services }}"
    effective_mismatch: warn
"""

RETURN = r"""
path:
  description: The hook's path.
  returned: always
  type: str
  sample: /usr/libexec/netsvc-resilience/netsvc-sockclean
hook_kind:
  description: C(native-x86_64), C(native-aarch64) or C(python) (empty with O(state=absent)).
  returned: always
  type: str
written:
  description: Files written or removed (in check mode, that would be).
  returned: always
  type: list
  elements: str
dropins:
  description: Drop-in path per service.
  returned: always
  type: dict
privilege:
  description: Per service, how the hook runs - C(prefix), C(permissions_start_only) or C(none).
  returned: always
  type: dict
sandbox:
  description: Per service, what in its sandbox would block a hook run without privileges.
  returned: always
  type: dict
cleanup:
  description:
    - Per systemd service, C(hook) (true when its drop-in runs the hook), C(reason) (for
      C(cleanup=auto), what was read from its listeners), C(cleans) (the addresses and ports
      the hook cleans) and C(whole_ports) (why a port is cleaned on every address, or null).
  returned: always
  type: dict
  sample:
    nginx.service:
      hook: false
      reason: "cleanup: auto, no hook needed: every listener on 80 sets SO_REUSEADDR (read from pid 612)"
      cleans: []
      whole_ports: null
    myapp.service:
      hook: true
      reason: "cleanup: true"
      cleans: ["127.0.0.1:9000"]
      whole_ports: null
effective_mismatches:
  description: Differences between the hook line written and what systemd runs, each naming the file that wins.
  returned: when services were read back
  type: list
  elements: str
warning_messages:
  description: Warnings of this run (each also raised as an Ansible warning).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _prestart_hook
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _module


def main():
    _module.execute(AnsibleModule(argument_spec=_prestart_hook.SPEC, required_if=[("state", "present", ("payload",))],
                                  supports_check_mode=True), _prestart_hook.run)


if __name__ == "__main__":
    main()
