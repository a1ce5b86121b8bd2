# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TCP socket inspection and destruction over sock_diag netlink (stdlib only).

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.

Used two ways:
- by the socket_cleanup module (imported as module_utils);
- as the restart hook, run as a script by systemd's ExecStartPre= or the supervisord
  wrapper: ``python3 -I -S _sockdiag.py --port 8080 [--port ...] [--exec CMD ARGS...]``.
  It must therefore import nothing but the standard library, and run on Python 3.6+.

Why netlink and not `ss -K`: no output parsing, no dependency on the iproute version (EL7's
ss has no -K), the kernel filters by LOCAL port (never the `dst :PORT` mistake), requests
are batched, and every destroy gets its own errno, so "the kernel refused" is seen, not
guessed (`ss -K` exits 0 even then).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import socket
import struct
import sys

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
INET_DIAG_REQ_BYTECODE = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3
IPPROTO_TCP = 6

STATES = {
    "established": 1, "syn-sent": 2, "syn-recv": 3, "fin-wait-1": 4, "fin-wait-2": 5,
    "time-wait": 6, "close": 7, "close-wait": 8, "last-ack": 9, "listen": 10, "closing": 11,
}
STATE_NAMES = {v: k for k, v in STATES.items()}
# What a dead process leaves behind: orphans the kernel keeps until they time out.
ORPHAN_STATES = ("time-wait", "fin-wait-1", "fin-wait-2", "closing", "last-ack")
# These belong to live processes: only with force.
LIVE_STATES = ("established", "close-wait")
# TIME_WAIT (and orphaned FIN_WAIT_2, which the kernel keeps as a timewait socket) can be
# destroyed only since Linux 6.0 (af9784d007d8); full sockets since 4.5.
TIMEWAIT_KIND = ("time-wait", "fin-wait-2")

_NLMSGHDR = struct.Struct("=IHHII")
_REQ = struct.Struct("=BBBBI")          # family, protocol, ext, pad, states
_SOCKID = struct.Struct("!HH16s16s")    # sport, dport, src, dst (network order)
_SOCKID_TAIL = struct.Struct("=III")    # interface, cookie[2] (host order)
_MSG = struct.Struct("=BBBB")           # family, state, timer, retrans
_MSG_TAIL = struct.Struct("=IIIII")     # expires, rqueue, wqueue, uid, inode
# one SOCK_DESTROY request: nlmsghdr + inet_diag_req_v2, ports pre-swapped with htons
_DESTROY = struct.Struct("=IHHIIBBBBIHH16s16sIII")
_ERRCODE = struct.Struct("=i")
MSG_LEN = _MSG.size + _SOCKID.size + _SOCKID_TAIL.size + _MSG_TAIL.size  # 72


class DiagError(Exception):
    def __init__(self, msg, err=None):
        Exception.__init__(self, msg)
        self.errno = err


# ------------------------------------------------------------------ pure: encode/decode


def state_mask(states):
    mask = 0
    for name in states:
        if name not in STATES:
            raise DiagError("unknown TCP state %r: use one of %s" % (name, ", ".join(sorted(STATES))))
        mask |= 1 << STATES[name]
    return mask


def port_filter(ports):
    """Kernel bytecode keeping sockets whose LOCAL port is within the envelope of ``ports``.

    Two ops: S_GE low (yes: next op, no: reject) and S_LE high (yes: end = accept, no:
    reject). A jump to len+4 rejects; the kernel's audit (inet_diag_bc_audit) accepts only
    jumps reachable on the 'yes' chain, so several ranges are filtered as one envelope here
    and exactly in Python (select) afterwards.
    """
    low = min(a for a, _b in ports)
    high = max(b for _a, b in ports)
    return (struct.pack("=BBH", INET_DIAG_BC_S_GE, 8, 20) + struct.pack("=BBH", 0, 0, low)
            + struct.pack("=BBH", INET_DIAG_BC_S_LE, 8, 12) + struct.pack("=BBH", 0, 0, high))


def encode_request(msg_type, flags, seq, family, states, sockid=None, bytecode=b""):
    sport, dport, src, dst, ifindex, cookie = sockid or (0, 0, b"\0" * 16, b"\0" * 16, 0, (0, 0))
    body = _REQ.pack(family, IPPROTO_TCP, 0, 0, states)
    body += _SOCKID.pack(sport, dport, src, dst) + _SOCKID_TAIL.pack(ifindex, cookie[0], cookie[1])
    if bytecode:
        attr_len = 4 + len(bytecode)
        body += struct.pack("=HH", attr_len, INET_DIAG_REQ_BYTECODE) + bytecode
        body += b"\0" * ((4 - attr_len % 4) % 4)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body


def addr_text(family, raw):
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return socket.inet_ntop(socket.AF_INET6, raw)


def decode_diag_msg(data, offset=0):
    """Decode one inet_diag_msg; returns a dict (sockid kept raw for SOCK_DESTROY)."""
    family, state, _timer, _retrans = _MSG.unpack_from(data, offset)
    offset += _MSG.size
    sport, dport, src, dst = _SOCKID.unpack_from(data, offset)
    offset += _SOCKID.size
    ifindex, c0, c1 = _SOCKID_TAIL.unpack_from(data, offset)
    offset += _SOCKID_TAIL.size
    _expires, _rq, _wq, uid, inode = _MSG_TAIL.unpack_from(data, offset)
    return {
        "family": family, "state": STATE_NAMES.get(state, str(state)), "sport": sport, "dport": dport,
        "src": addr_text(family, src), "dst": addr_text(family, dst), "uid": uid, "inode": inode,
        "id": (sport, dport, src, dst, ifindex, (c0, c1)),
    }


def parse_messages(data):
    """Split a netlink buffer into (type, seq, payload) tuples."""
    out = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        out.append((msg_type, seq, data[offset + _NLMSGHDR.size:offset + length]))
        offset += (length + 3) & ~3
    return out


def error_code(payload):
    """errno of an NLMSG_ERROR payload (0 = ACK)."""
    return -struct.unpack_from("=i", payload, 0)[0]


def select(socks, ports, states, local_addr=None):
    """Python-side filter (always applied, whatever the kernel filtered): LOCAL port only."""
    out = []
    for s in socks:
        if s["state"] not in states:
            continue
        if not any(low <= s["sport"] <= high for low, high in ports):
            continue
        if local_addr and s["src"] != local_addr and s["src"] != "::ffff:" + local_addr:
            continue
        out.append(s)
    return out


def count_states(socks):
    counts = {}
    for s in socks:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    return counts


def kernel_supports_timewait_destroy(release):
    """Linux >= 6.0 destroys TIME_WAIT; older only with a backport (then: unknown)."""
    try:
        major, minor = [int(x) for x in release.split(".")[:2]]
    except ValueError:
        return None
    return True if (major, minor) >= (6, 0) else None


def has_cap_net_admin(status_text):
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 12))
    return None


# ------------------------------------------------------------------ netlink I/O


class SockDiag(object):
    def __init__(self):
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        except (OSError, AttributeError) as e:
            err = e
        else:
            err = None
        if err is not None:
            raise DiagError("cannot open a sock_diag netlink socket: %s" % err, getattr(err, "errno", None))
        self.sock.bind((0, 0))
        # Acks without a copy of each request (Linux >= 4.3), and room for a batch of them.
        for level, opt, value in ((SOL_NETLINK, NETLINK_CAP_ACK, 1), (socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)):
            try:
                self.sock.setsockopt(level, opt, value)
            except OSError:
                pass
        self.seq = 0

    def close(self):
        self.sock.close()

    def _recv(self):
        return self.sock.recv(1 << 20)

    def dump(self, states, ports=None, families=(socket.AF_INET, socket.AF_INET6)):
        """All TCP sockets in ``states`` (mask) whose local port is in ``ports``."""
        out = []
        for family in families:
            self.seq += 1
            bytecode = port_filter(ports) if ports else b""
            self.sock.send(encode_request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, self.seq,
                                          family, states, bytecode=bytecode))
            done = False
            while not done:
                for msg_type, seq, payload in parse_messages(self._recv()):
                    if seq != self.seq:
                        continue
                    if msg_type == NLMSG_DONE:
                        done = True
                        break
                    if msg_type == NLMSG_ERROR:
                        code = error_code(payload)
                        if code:
                            raise DiagError("sock_diag dump failed: %s" % os.strerror(code), code)
                        done = True
                        break
                    if msg_type == SOCK_DIAG_BY_FAMILY and len(payload) >= MSG_LEN:
                        out.append(decode_diag_msg(payload))
        return out

    def destroy(self, socks, batch=512):
        """SOCK_DESTROY each socket; returns {index: errno} (0 = destroyed).

        Requests are packed into one send per batch (the kernel handles each netlink message
        of a buffer in turn) and acked one by one: ~1,000 sockets in a few milliseconds.
        """
        results = {}
        pack = _DESTROY.pack
        flags = NLM_F_REQUEST | NLM_F_ACK
        htons = socket.htons
        for start in range(0, len(socks), batch):
            chunk = socks[start:start + batch]
            first = self.seq + 1
            parts = []
            for s in chunk:
                self.seq += 1
                sport, dport, src, dst, ifindex, cookie = s["id"]
                parts.append(pack(_DESTROY.size, SOCK_DESTROY, flags, self.seq, 0,
                                  s["family"], IPPROTO_TCP, 0, 0, 1 << STATES[s["state"]],
                                  htons(sport), htons(dport), src, dst, ifindex, cookie[0], cookie[1]))
            self.sock.send(b"".join(parts))
            pending = len(chunk)
            while pending:
                data = self._recv()
                offset = 0
                while offset + 20 <= len(data):
                    length, msg_type, _f, seq, _p = _NLMSGHDR.unpack_from(data, offset)
                    if length < 16:
                        break
                    if msg_type == NLMSG_ERROR and first <= seq <= self.seq:
                        idx = start + seq - first
                        if idx not in results:
                            results[idx] = -_ERRCODE.unpack_from(data, offset + 16)[0]
                            pending -= 1
                    offset += (length + 3) & ~3
        return results


def listener_owners(inodes, proc="/proc"):
    """Map socket inodes to [{"pid", "command"}] by scanning /proc/*/fd (only when needed)."""
    want = {"socket:[%d]" % i: i for i in inodes}
    owners = {i: [] for i in inodes}
    if not want:
        return owners
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target in want:
                try:
                    with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
                except (IOError, OSError):
                    cmd = ""
                entry = {"pid": int(pid), "command": cmd}
                if entry not in owners[want[target]]:
                    owners[want[target]].append(entry)
    return owners


def cleanup(ports, states=ORPHAN_STATES, mode="kill", local_addr=None, families=(socket.AF_INET, socket.AF_INET6)):
    """Count, and in kill mode destroy, sockets on the LOCAL ``ports`` in ``states``.

    Returns a dict: before/after counts per state, destroyed, refused per errno name,
    supported per state (True/False/None=unknown), listeners, errors.
    """
    for name in states:
        if name == "listen":
            raise DiagError("LISTEN sockets are never cleaned: a live listener is a port conflict, not leftover state")
    mask = state_mask(states) | (1 << STATES["listen"])
    diag = SockDiag()
    try:
        try:
            found = diag.dump(mask, ports, families)
        except DiagError as e:
            if e.errno != errno.EINVAL:
                raise
            found = diag.dump(mask, None, families)  # kernel refused our bytecode: filter here only
        listeners = select(found, ports, ("listen",), local_addr)
        targets = select(found, ports, states, local_addr)
        result = {
            "before": count_states(targets),
            "destroyed": 0,
            "refused": {},
            "supported": {},
            "listeners": [{"port": s["sport"], "address": s["src"], "inode": s["inode"]} for s in listeners],
        }
        if mode == "kill" and targets:
            outcome = diag.destroy(targets)
            for i, code in outcome.items():
                state = targets[i]["state"]
                if code == 0 or code == errno.ENOENT:  # ENOENT: it expired meanwhile
                    result["destroyed"] += 1 if code == 0 else 0
                    result["supported"].setdefault(state, True)
                else:
                    # Linux's ENOTSUP and EOPNOTSUPP are one number; the kernel means the latter
                    name = "EOPNOTSUPP" if code == errno.EOPNOTSUPP else errno.errorcode.get(code, str(code))
                    result["refused"][name] = result["refused"].get(name, 0) + 1
                    if code in (errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL):
                        result["supported"][state] = False
            after = select(diag.dump(mask, ports, families), ports, states, local_addr)
            result["after"] = count_states(after)
        else:
            result["after"] = dict(result["before"])
        return result
    finally:
        diag.close()


# ------------------------------------------------------------------ the restart hook


def listening_ports(ports):
    """Ports of ``ports`` that have a LISTEN socket (one dump; raises DiagError)."""
    listeners = cleanup([(x, x) for x in ports], states=(), mode="report")["listeners"]
    return sorted({x["port"] for x in listeners})


def _hook_main(argv):
    ports = []
    command = None
    i = 0
    tag = "netsvc-sockclean"
    while i < len(argv):
        if argv[i] == "--port" and i + 1 < len(argv):
            low, _sep, high = argv[i + 1].partition("-")
            ports.append((int(low), int(high or low)))
            i += 2
        elif argv[i] == "--tag" and i + 1 < len(argv):
            tag = argv[i + 1]
            i += 2
        elif argv[i] == "--exec":
            command = argv[i + 1:]
            break
        else:
            sys.stderr.write("usage: _sockdiag.py --port P [--port P2] [--tag NAME] [--exec CMD ARGS...]\n")
            return 2
    if ports:
        try:
            r = cleanup(ports)
            before = sum(r["before"].values())
            left = sum(r["after"].values())
            detail = ", ".join("%s %d" % kv for kv in sorted(r["before"].items())) or "none"
            refused = ", ".join("%s %d" % kv for kv in sorted(r["refused"].items()))
            sys.stdout.write("%s: ports %s: found %d (%s), destroyed %d, left %d%s%s\n" % (
                tag, ",".join(str(a) if a == b else "%d-%d" % (a, b) for a, b in ports), before, detail,
                r["destroyed"], left, (", refused " + refused) if refused else "",
                (", listeners %d" % len(r["listeners"])) if r["listeners"] else ""))
        except Exception as e:  # noqa: BLE001 - the hook must never block the start
            sys.stdout.write("%s: cleanup skipped: %s\n" % (tag, e))
        sys.stdout.flush()
    if command:
        os.execvp(command[0], command)  # same PID, same signals: supervisord sees the real program
    return 0


if __name__ == "__main__":
    raise SystemExit(_hook_main(sys.argv[1:]))
