#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: undo
short_description: Put back everything netsvc.resilience wrote on a host, from the host's own ledger
version_added: 1.0.0
description:
  - Every file the collection writes goes through one writer, which keeps a ledger on the host
    (C(/var/lib/netsvc-resilience/ledger.json)) - the files it created, the files it edited with
    their original bytes, mode and owner, the directories it created, and the live sysctl values
    before it first set them.
  - This module reads that ledger, not the inventory. It removes the files the collection
    created, restores the ones it edited byte for byte with their recorded mode and owner,
    removes the directories it created (when empty), and puts each live sysctl value back where
    it still holds what the collection set. A service dropped from C(netsvc_services) since, or a
    host whose inventory no longer lists anything, is rolled back all the same.
  - It undoes only what the collection did. The ledger keeps what the collection last wrote into
    each file (a digest, and a copy for a file it edited) and the value it set for each live
    sysctl key. A file or value changed since (by an admin, a package) is left as it is and named
    in a warning; in a supervisord file changed since, only the collection's own keys of the
    programs it hardened are put back, so a program added to the file since stays.
  - The ledger must be root's alone (the file, the originals and every parent directory - owner
    root, no group or other write), every entry a path the collection writes (systemd units and
    drop-ins, sysctl.d files, its hook and library, supervisord's configuration) and every kept
    copy the one named after its path; otherwise the whole undo is refused before any change,
    naming the entry.
  - A C(socket_activation=preload) service's socket unit is stopped first; once its files are
    gone the service is started again and binds its ports itself. supervisord rereads the
    configuration files that were put back. systemd reloads once.
  - Last, it removes the collection's own state files (the ledger and its copies, the
    applied-state record, the last crash test, the hook's run reports) and then each state
    directory that is empty and the collection's (C(/var/lib/netsvc-resilience),
    C(/run/netsvc-resilience), or one it created). A C(state_dir) shared with another tool keeps
    that tool's files and stays; a system directory (C(/), C(/etc), C(/var/lib), ...) is refused.
  - The C(netsvc.resilience.rollback) playbook runs this after the roles' own C(state=absent)
    for the services still listed.
author:
  - netsvc.resilience maintainers (@netsvc)
extends_documentation_fragment:
  - netsvc.resilience.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be put back; nothing is written, stopped or started.
  diff_mode:
    support: full
options:
  state_dir:
    description:
      - The role's state directory (C(harden_restart_state_dir)). Its collection files are removed
        at the end, with those of the collection's own C(/var/lib/netsvc-resilience) and
        C(/run/netsvc-resilience); the directory itself only when it is then empty and the
        collection created it. A system directory is refused.
    type: path
    default: /var/lib/netsvc-resilience
  switch_timeout:
    description:
      - Seconds a former C(socket_activation=preload) service may take to listen on its own
        again (its old sockets can hold the port until they expire on old kernels).
    type: float
    default: 75
"""

EXAMPLES = r"""
- name: Put back everything netsvc.resilience wrote on this host
  netsvc.resilience.undo:
"""

RETURN = r"""
files:
  description: Every file removed or restored.
  returned: always
  type: list
  elements: str
preload_services:
  description: Services moved off their socket units (they bind their ports themselves again).
  returned: always
  type: list
  elements: str
sysctl:
  description: Live values put back, each with C(before) and C(after).
  returned: always
  type: dict
dirs:
  description: Directories the collection had created, removed.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsvc.resilience.plugins.module_utils.concerns import _undo
from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _module


def main():
    _module.execute(AnsibleModule(argument_spec=_undo.SPEC, supports_check_mode=True), _undo.run)


if __name__ == "__main__":
    main()
