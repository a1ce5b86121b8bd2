# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names and paths the collection writes, in one place.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host); imported by modules and filters alike.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SYSTEMD_DIR = "/etc/systemd/system"
REVIVE_TEMPLATE = "netsvc-revive@.service"

# drop-in names (without .conf): the cleanup hook's sorts before the restart policy's
CLEANUP_DROPIN = "40-netsvc-cleanup"
POLICY_DROPIN = "50-netsvc-resilience"

SYSCTL_FILE = "/etc/sysctl.d/90-netsvc-resilience.conf"
STATE_DIR = "/var/lib/netsvc-resilience"
APPLIED_STATE_FILE = STATE_DIR + "/applied-state.json"
# one rollout at a time per host: a lease taken by the pre-flight, released by the post-check
RUN_LOCK = "/run/netsvc-resilience/run.lock"

# the restart hook: where it goes per OS family, its name, and where it reports each run
HOOK_DIRS = {
    "Debian": "/usr/lib/netsvc-resilience",
    "RedHat": "/usr/libexec/netsvc-resilience",
}
HOOK_DIR_FALLBACK = "/usr/local/libexec/netsvc-resilience"
HOOK_NAME = "netsvc-sockclean"
# the preload library (socket_activation: preload), next to the hook
PRELOAD_LIBRARY = "libnetsvc-preload.so"
HOOK_STATUS_DIR = "/run/netsvc-resilience/hook"
# the hook's options that take a value, and its flags (src/netsvc-sockclean.c, src/hold.h):
# what the readers of a hook command line skip to find its targets
HOOK_VALUED = ("--unit", "--user", "--status-dir", "--drain-ms", "--listen", "--preload", "--restarts")
HOOK_FLAGS = ("--hold",)

# systemd accepts the "+" (full privileges) ExecStartPre= prefix since version 231
PLUS_PREFIX_SINCE = 231
# The oldest systemd where a '+' ExecStartPre= was measured to run inside the service's own
# network namespace (PrivateNetwork=, NetworkNamespacePath=): 247 (Debian 11 VM), 252, 257.
# Older ones are not measured: a unit with its own namespace gets no hook there, rather than
# one that might clean the host's namespace for the service's port.
NETNS_HOOK_MEASURED_SINCE = 247
