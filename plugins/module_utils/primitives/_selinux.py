# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SELinux, read from the kernel's own files (selinuxfs, /proc/PID/attr): no libselinux.

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.
Python 3.6 compatible (runs on the managed host); imports under 2.7.

A primitive: what the kernel enforces, the domain systemd creates a socket unit's sockets in,
and whether the policy lets that domain bind a port. systemd labels a socket unit's sockets
with the domain the service's program would run in (socket_determine_selinux_label: the
transition from PID 1's domain on the program's file label), so the policy checks a socket
unit's bind() exactly as the service's own - measured on refpolicy: nginx's socket unit on a
port of transproxy_port_t is denied name_bind as httpd_t, from PID 1's sd-listen helper.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import socket

ROOT = "/sys/fs/selinux"

# a port type each common confined domain may bind, for the advice with a refusal
PORT_TYPES = {
    "httpd_t": "http_port_t",
    "haproxy_t": "http_port_t",
    "memcached_t": "memcache_port_t",
    "redis_t": "redis_port_t",
    "squid_t": "http_cache_port_t",
}


def mode(root=ROOT):
    """enforcing, permissive or disabled (no selinuxfs mounted), from the kernel's own files."""
    try:
        with open(os.path.join(root, "enforce")) as f:
            text = f.read().strip()
    except (IOError, OSError):
        return "disabled"
    return "enforcing" if text == "1" else "permissive"


def _clean(raw):
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return raw.rstrip("\0\n ")


def context_type(context):
    """The type of a context (user:role:type:level): httpd_t of system_u:system_r:httpd_t:s0."""
    parts = (context or "").split(":")
    return parts[2] if len(parts) >= 3 else ""


def compute_create(scon, tcon, tclass, root=ROOT):
    """The kernel's security_compute_create: the context a ``scon`` process gives a new
    ``tclass`` object of ``tcon`` (for class process: the domain it runs a program of file
    label ``tcon`` in). Raises OSError where selinuxfs does not answer."""
    with open(os.path.join(root, "class", tclass, "index")) as f:
        index = int(f.read().strip())
    fd = os.open(os.path.join(root, "create"), os.O_RDWR)
    try:
        os.write(fd, ("%s %s %d" % (scon, tcon, index)).encode("ascii"))
        return _clean(os.read(fd, 4096))
    finally:
        os.close(fd)


def file_label(path):
    """The file's security.selinux attribute. Raises OSError (also where os has no getxattr)."""
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        raise OSError(errno.ENOTSUP, "no xattr support")
    return _clean(getxattr(path, "security.selinux"))


def socket_unit_label(program, pid1_attr="/proc/1/attr/current", root=ROOT):
    """The context systemd creates a socket unit's sockets in, for a service whose ExecStart=
    runs ``program``: the transition from PID 1's domain on the program's file label."""
    with open(pid1_attr) as f:
        pid1 = _clean(f.read())
    return compute_create(pid1, file_label(program), "process", root)


def _sockcreate_path():
    return "/proc/thread-self/attr/sockcreate" if os.path.exists("/proc/thread-self") else "/proc/self/attr/sockcreate"


def bind_result(label, port, family=None, path=None):
    """Bind a socket created in ``label`` to ``port`` on the wildcard address, as a socket unit's
    ListenStream=PORT does, and close it: "ok" (free and allowed), "in use" (allowed, held),
    "denied" (EACCES: the policy's name_bind or node_bind; the kernel's audit log records it), or
    None when this process cannot create sockets in another context (its own domain may not)."""
    path = path or _sockcreate_path()
    family = family or (socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET)
    try:
        fd = os.open(path, os.O_WRONLY)
    except (IOError, OSError):
        return None
    try:
        try:
            os.write(fd, label.encode("ascii"))
            sock = socket.socket(family, socket.SOCK_STREAM)
        except (IOError, OSError, socket.error):
            return None
        finally:
            try:
                os.write(fd, b"")  # back to the default for the sockets this process creates
            except (IOError, OSError):
                pass
    finally:
        os.close(fd)
    try:
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", int(port)))
        return "ok"
    except (IOError, OSError, socket.error) as e:
        return {errno.EACCES: "denied", errno.EADDRINUSE: "in use"}.get(e.errno, "error %s" % e.errno)
    finally:
        sock.close()


def denied_ports(program, ports, probe=bind_result, label_of=socket_unit_label):
    """(label, the ports of ``ports`` its socket unit could not bind), or (None, []) when it cannot
    be told: the label not computable, or this process may not create a socket in it. A control
    bind to port 0 (the ephemeral range: no name_bind check) first shows that a denial is the
    port's, not this process's own right to create and bind such sockets."""
    try:
        label = label_of(program)
    except (IOError, OSError, ValueError):
        return None, []
    if not label or probe(label, 0) != "ok":
        return None, []
    return label, [port for port in ports if probe(label, port) == "denied"]


def bind_refusal(service, program, label, ports):
    """The message refusing a socket unit whose ports the policy does not let it bind."""
    domain = context_type(label)
    port_type = PORT_TYPES.get(domain, "TYPE")
    return ("SELinux enforces and does not let %s's socket unit bind port(s) %s: systemd creates a socket unit's "
            "sockets in the domain the service's program (%s) runs in, %s, and the policy does not let %s bind "
            "them (the denial, name_bind, is in the kernel's audit log) - the service could not bind them itself "
            "either. Give each port a type %s may bind (for %s: semanage port -a -t %s -p tcp PORT, or -m instead "
            "of -a for a port the policy already types; or community.general.seport, or the "
            "linux-system-roles selinux role's selinux_ports), then run again"
            % (service, ", ".join(str(p) for p in ports), program, domain, domain, domain, domain, port_type))


def socket_unit_refusal(service, read_program, ports, enforcing=None, denied=denied_ports):
    """Why ``service``'s socket unit could not bind ``ports`` where SELinux enforces, or None: not
    enforcing, no program, or nothing denied. ``read_program()`` gives the service's program
    (from ExecStart=); it is asked only where SELinux enforces, so other hosts pay nothing."""
    if not (mode() == "enforcing" if enforcing is None else enforcing) or not ports:
        return None
    program = read_program()
    if not program:
        return None
    label, refused = denied(program, ports)
    return bind_refusal(service, program, label, refused) if refused else None
