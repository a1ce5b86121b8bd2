# -*- coding: utf-8 -*-
# Copyright: netsvc.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TCP socket inspection and destruction over sock_diag netlink (stdlib only).

PRIVATE to the netsvc.resilience collection: not a public API, may change at any time.

Used two ways:
- by the socket_cleanup module (imported as module_utils);
- as the restart hook on architectures without a native build (src/netsvc-sockclean.c
  is the hook on x86_64 and aarch64): installed as a script, with the native hook's command
  line ``netsvc-sockclean [--unit NAME] [--user UID:GID] PORT|LOW-HIGH... [-- COMMAND...]``,
  the same journal line and the same status file. It must therefore import nothing but the
  standard library, and run on Python 3.6+.

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
TCPDIAG_GETSOCK = 18  # the legacy inet_diag request: both families in one table walk
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
    def __init__(self, msg, err=None, stage=""):
        Exception.__init__(self, msg)
        self.errno = err
        self.stage = stage  # "socket" when the netlink socket itself was refused


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


def encode_legacy_request(seq, states, bytecode=b""):
    """A legacy inet_diag_req dump (TCPDIAG_GETSOCK). The kernel answers it for BOTH families
    in one walk of its TCP hash table (inet_diag_dump_compat: "sdiag_family = AF_UNSPEC"); the
    walk visits every bucket, ~2 ms on a host with 262144 of them, so one walk instead of one
    per family halves a dump's cost. Layout: family, src_len, dst_len, ext, the 48-byte sockid,
    states, dbs."""
    body = struct.pack("=BBBB", socket.AF_INET, 0, 0, 0) + b"\0" * 48 + struct.pack("=II", states, 0)
    if bytecode:
        attr_len = 4 + len(bytecode)
        body += struct.pack("=HH", attr_len, INET_DIAG_REQ_BYTECODE) + bytecode
        body += b"\0" * ((4 - attr_len % 4) % 4)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


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
    _expires, _rq, wq, uid, inode = _MSG_TAIL.unpack_from(data, offset)
    return {
        "family": family, "state": STATE_NAMES.get(state, str(state)), "sport": sport, "dport": dport,
        "src": addr_text(family, src), "dst": addr_text(family, dst), "uid": uid, "inode": inode,
        "id": (sport, dport, src, dst, ifindex, (c0, c1)), "wqueue": wq,
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


def held(s):
    """Does a live process still hold this socket? A FIN_WAIT_1/2, CLOSING or LAST_ACK socket can
    belong to a process that called shutdown(SHUT_WR) (a child that survived the crash, another
    program on the port): it has an inode. An orphan has none (idiag_inode 0), nor has TIME_WAIT."""
    return s["state"] in ORPHAN_STATES and s["state"] != "time-wait" and s.get("inode", 0) != 0


def select(socks, ports, states, local_addr=None, targets=None):
    """Python-side filter (always applied, whatever the kernel filtered): LOCAL port, and
    the local address where ``local_addr`` or a target (parse_target) names one. A socket in
    an orphan state that a live process still holds (held()) is never selected."""
    out = []
    for s in socks:
        if s["state"] not in states or held(s):
            continue
        if not any(low <= s["sport"] <= high for low, high in ports):
            continue
        if local_addr and s["src"] != local_addr and s["src"] != "::ffff:" + local_addr:
            continue
        if targets is not None and not any(target_matches(t, s) for t in targets):
            continue
        out.append(s)
    return out


# A sent FIN takes one sequence number: in these states the send queue counts it.
_FIN_SENT = ("fin-wait-1", "closing", "last-ack")


def unsent(s):
    """Bytes a socket still has to deliver: idiag_wqueue (write_seq - snd_una) without the
    FIN's sequence number. 0 for TIME_WAIT and FIN_WAIT_2 (timewait sockets hold no data)."""
    if s["state"] in TIMEWAIT_KIND:
        return 0
    wq = s.get("wqueue", 0)
    if s["state"] in _FIN_SENT:
        return max(wq - 1, 0)
    return wq


def parse_target(arg):
    """What the hook is told a service listens on -> a target dict, or None when malformed.

    'PORT' or 'LOW-HIGH': every address of both families; 'A.B.C.D:PORT' or '[V6]:PORT' (ranges
    allowed): that address of that family, where 0.0.0.0 and [::] mean every address of it.
    """
    text = str(arg)
    family, address, ports = 0, None, text
    if text.startswith("["):
        addr, sep, rest = text[1:].partition("]:")
        if not sep:
            return None
        family, address, ports = socket.AF_INET6, addr, rest
    elif ":" in text:
        address, _sep, ports = text.rpartition(":")
        family = socket.AF_INET
    rng = parse_port_arg(ports)
    if rng is None:
        return None
    raw = None
    if family:
        try:
            raw = socket.inet_pton(family, address)
        except (OSError, ValueError, socket.error):
            return None
    return {"family": family, "any": not family or not any(bytearray(raw)), "addr": raw, "range": rng,
            "text": text}


def target_matches(t, s):
    low, high = t["range"]
    if not low <= s["sport"] <= high or (t["family"] and t["family"] != s["family"]):
        return False
    if t["any"]:
        return True
    return socket.inet_pton(s["family"], s["src"]) == t["addr"]


def count_states(socks):
    counts = {}
    for s in socks:
        counts[s["state"]] = counts.get(s["state"], 0) + 1
    return counts


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
            raise DiagError("cannot open a sock_diag netlink socket: %s" % err, getattr(err, "errno", None), "socket")
        self.sock.bind((0, 0))
        # Acks without a copy of each request (Linux >= 4.3), and room for a batch of them.
        for level, opt, value in ((SOL_NETLINK, NETLINK_CAP_ACK, 1), (socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)):
            try:
                self.sock.setsockopt(level, opt, value)
            except OSError:
                pass
        self.seq = 0
        self.legacy_refused = False

    def close(self):
        self.sock.close()

    def _recv(self):
        return self.sock.recv(1 << 20)

    def dump(self, states, ports=None, families=(socket.AF_INET, socket.AF_INET6)):
        """All TCP sockets in ``states`` (mask) whose local port is in ``ports``: one legacy
        request for both families (one table walk), or one request per family where the
        kernel refuses it."""
        bytecode = port_filter(ports) if ports else b""
        wanted = set(families)
        if not self.legacy_refused:
            self.seq += 1
            try:
                return [s for s in self._replies(encode_legacy_request(self.seq, states, bytecode), TCPDIAG_GETSOCK)
                        if s["family"] in wanted]
            except DiagError:
                self.legacy_refused = True
        out = []
        for family in families:
            self.seq += 1
            out.extend(self._replies(encode_request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, self.seq,
                                                    family, states, bytecode=bytecode), SOCK_DIAG_BY_FAMILY))
        return out

    def _replies(self, request, reply_type):
        """Send one dump request; its decoded sockets (DiagError on an error reply)."""
        self.sock.send(request)
        out = []
        while True:
            for msg_type, seq, payload in parse_messages(self._recv()):
                if seq != self.seq:
                    continue
                if msg_type == NLMSG_DONE:
                    return out
                if msg_type == NLMSG_ERROR:
                    code = error_code(payload)
                    if code:
                        raise DiagError("sock_diag dump failed: %s" % os.strerror(code), code)
                    return out
                if msg_type == reply_type and len(payload) >= MSG_LEN:
                    out.append(decode_diag_msg(payload))

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
    """Map socket inodes to [{"pid", "command", "fd"}] by scanning /proc/*/fd (only when
    needed); ``fd`` is the first descriptor of that process holding the socket."""
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
            if target not in want:
                continue
            mine = [o for o in owners[want[target]] if o["pid"] == int(pid)]
            if mine:  # the same socket under another descriptor: keep the lowest
                mine[0]["fd"] = min(mine[0]["fd"], int(fd))
                continue
            try:
                with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except (IOError, OSError):
                cmd = ""
            owners[want[target]].append({"pid": int(pid), "command": cmd, "fd": int(fd)})
    return owners


LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}
WILDCARD = ("0.0.0.0", "::")


def accept_probe(listener, timeout=2.0, step=0.01, check=None):
    """Connect to ``listener`` ({port, address, family} as listeners() gives; a wildcard through
    loopback) and wait until some process accepts that connection: a connection still in the
    backlog has no inode, accept() gives it one; a server that answers and closes at once has
    taken it too (the client sees data or the end, or the server's side is no longer
    established). Sends nothing. Returns (taken: True once some process accepted it, None when
    the listener cannot be reached here - no loopback of its family; the processes holding the
    accepted socket, read before the probe closes it, or None when it is closed already; an
    error text or None). ``check(pid)``, when given, is called for each of those processes while
    the connection is still open (a fork-per-connection server's child exits once the probe
    closes it: what is read of it must be read before)."""
    import select as _select
    import time

    family = listener["family"]
    address = LOOPBACK.get(family, "127.0.0.1") if listener["address"] in WILDCARD else listener["address"]
    tries = [(family, address)]
    if family == socket.AF_INET6 and listener["address"] == "::":
        tries.append((socket.AF_INET, "127.0.0.1"))  # a host without ::1 reaches a dual-stack [::] this way
    client = diag = None
    try:
        for family, address in tries:
            client = socket.socket(family, socket.SOCK_STREAM)
            client.settimeout(timeout)
            # closed with a reset: no TIME_WAIT is left on either side (one on the service's port
            # would block the rebind of a server without SO_REUSEADDR for 60 s)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            try:
                client.connect((address, listener["port"]))
                break
            except (OSError, socket.error) as e:
                client.close()
                client = None
                if getattr(e, "errno", None) in (errno.EADDRNOTAVAIL, errno.ENETUNREACH, errno.EAFNOSUPPORT):
                    continue  # no loopback of that family here: this listener cannot be probed
                return False, None, "connect to %s port %d: %s" % (address, listener["port"], e)
        if client is None:
            return None, None, None
        family = listener["family"]
        here = client.getsockname()
        diag = SockDiag()
        mask = state_mask(("established", "close-wait", "syn-recv") + ORPHAN_STATES)
        deadline = time.monotonic() + timeout
        unowned = False  # accepted, but no process held it when /proc was read
        while True:
            for s in _dump(diag, mask, [(listener["port"], listener["port"])], (family,)):
                if s["sport"] != listener["port"] or s["dport"] != here[1] or \
                        s["dst"] not in (here[0], "::ffff:" + here[0]):
                    continue
                if s["inode"]:
                    owners = listener_owners([s["inode"]])[s["inode"]]
                    if owners:
                        for o in owners if check else ():
                            check(o["pid"])
                        return True, owners, None
                    # a server that answers and closes at once may have closed it between the
                    # dump and the read of /proc: look again - it is closed now, or truly unowned
                    unowned = True
                elif s["state"] not in ("established", "syn-recv"):
                    return True, None, None  # accepted, answered and closed already
            if _select.select([client], [], [], 0)[0]:
                return True, None, None  # data or the end: someone accepted it
            if time.monotonic() >= deadline:
                return (True, [], None) if unowned else (False, None, None)
            time.sleep(step)
    finally:
        if client is not None:
            client.close()
        if diag is not None:
            diag.close()


def _dump(diag, mask, ports, families):
    """The kernel filters on the ports; one that refuses our bytecode gets it done here only."""
    try:
        return diag.dump(mask, ports, families)
    except DiagError as e:
        if e.errno != errno.EINVAL:
            raise
        return diag.dump(mask, None, families)


def _tally(result, targets, outcome, still):
    """Per destroyed socket: destroyed, refused (by errno and kind), or acknowledged but
    kept (orphans on some kernels) - and so whether each state is supported here."""
    kept = {}
    for i, code in outcome.items():
        state = targets[i]["state"]
        if code == 0 and targets[i]["id"][:4] in still:
            kept[state] = kept.get(state, 0) + 1
            result["supported"][state] = False
        elif code == 0 or code == errno.ENOENT:  # ENOENT: it expired meanwhile
            result["destroyed"] += 1 if code == 0 else 0
            result["supported"].setdefault(state, True)
        else:
            name = errno_name(code)
            result["refused"][name] = result["refused"].get(name, 0) + 1
            kind = refusal_kind(code, state)
            result["refusals"][kind] = result["refusals"].get(kind, 0) + 1
            if kind == "other" and "other_errno" not in result:
                result["other_errno"] = name
            if code in (errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL):
                result["supported"][state] = False
    result["kept"] = kept


def cleanup(ports, states=ORPHAN_STATES, mode="kill", local_addr=None, families=(socket.AF_INET, socket.AF_INET6),
            targets=None, drain=0.0):
    """Count, and in kill mode destroy, sockets on the LOCAL ``ports`` in ``states``.

    ``targets`` (parse_target's) narrows to the service's own local addresses. A socket that
    still holds data (unsent()) is given up to ``drain`` seconds to deliver it before it is
    destroyed; the rest go at once.
    Returns a dict: before/after counts per state, destroyed, refused per errno name,
    supported per state (True/False/None=unknown), listeners, delivered (sockets that
    delivered their data while we waited), drain_ms, unsent_sockets and unsent_bytes
    (destroyed with data left after the drain).
    """
    for name in states:
        if name == "listen":
            raise DiagError("LISTEN sockets are never cleaned: a live listener is a port conflict, not leftover state")
    mask = state_mask(states) | (1 << STATES["listen"])
    diag = SockDiag()
    try:
        found = _dump(diag, mask, ports, families)
        listeners = select(found, ports, ("listen",), local_addr, targets)
        found = select(found, ports, states, local_addr, targets)
        result = {
            "before": count_states(found), "destroyed": 0, "refused": {}, "refusals": {}, "supported": {},
            "listeners": [{"port": s["sport"], "address": s["src"], "inode": s["inode"], "family": s["family"]}
                          for s in listeners],
            "delivered": 0, "drain_ms": 0, "unsent_sockets": 0, "unsent_bytes": 0,
        }
        if mode == "kill" and found:
            destroyed, outcome = _drain_and_destroy(diag, found, drain, result,
                                                    lambda: select(_dump(diag, mask, ports, families), ports, states,
                                                                   local_addr, targets))
            after = select(_dump(diag, mask, ports, families), ports, states, local_addr, targets)
            _tally(result, destroyed, outcome, {s["id"][:4] for s in after})
            result["after"] = count_states(after)
        else:
            result["after"] = dict(result["before"])
        return result
    finally:
        diag.close()


def _drain_and_destroy(diag, found, drain, result, look, step=0.01):
    """Destroy at once what holds nothing to deliver; look again every ``step`` s for up to
    ``drain`` s while some still hold data, destroying each as it empties; then destroy the
    rest, counting their unsent bytes. Returns (the sockets destroyed, {index: errno})."""
    import time

    destroyed, outcome = [], {}

    def kill(batch):
        for i, code in diag.destroy(batch).items():
            outcome[len(destroyed) + i] = code
        destroyed.extend(batch)

    waiting = [s for s in found if unsent(s)]
    kill([s for s in found if not unsent(s)])
    t0 = time.monotonic()
    while waiting and time.monotonic() - t0 < drain:
        time.sleep(step)
        now = {s["id"][:4]: s for s in look()}
        ready, still = [], []
        for s in waiting:
            cur = now.get(s["id"][:4])
            if cur is None or not unsent(cur):
                result["delivered"] += 1
                if cur is not None:
                    ready.append(cur)
            else:
                still.append(cur)
        kill(ready)
        waiting = still
    if result["delivered"] or waiting:
        result["drain_ms"] = int((time.monotonic() - t0) * 1000)
    result["unsent_sockets"] = len(waiting)
    result["unsent_bytes"] = sum(unsent(s) for s in waiting)
    kill(waiting)
    return destroyed, outcome


def listeners(ports):
    """The LISTEN sockets on ``ports``: [{port, address, inode, family}] (one dump; raises DiagError)."""
    return cleanup([(x, x) for x in ports], states=(), mode="report")["listeners"]


def listening_ports(ports):
    """Ports of ``ports`` that have a LISTEN socket (one dump; raises DiagError)."""
    return sorted({x["port"] for x in listeners(ports)})


def _leave_behind(listener, port, kind, timeout):
    """Make one socket of ours in the state a crash leaves on the server side; returns the
    client socket (closed already for TIME_WAIT)."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(timeout)
    client.connect(("127.0.0.1", port))
    server, _addr = listener.accept()
    if kind == "orphan":  # unsent data and a FIN queued behind a full window: FIN_WAIT_1
        server.setblocking(False)
        try:
            while True:
                server.send(b"x" * 65536)
        except (OSError, socket.error):
            pass
        server.close()
    else:  # the server closes first: its socket ends in TIME_WAIT
        server.close()
        client.recv(1)
        client.close()
    return client


def _try_destroy(port, state, timeout):
    """Wait for our socket in ``state`` on ``port``, destroy it, look again.
    Returns (True gone | False refused or kept | None unknown, error text or None)."""
    import time

    deadline = time.time() + timeout
    mine = []
    diag = SockDiag()
    try:
        while not mine and time.time() < deadline:
            mine = [s for s in diag.dump(state_mask((state,)), [(port, port)], (socket.AF_INET,))
                    if s["sport"] == port and s["state"] == state]
            if not mine:
                time.sleep(0.005)
        if not mine:
            return None, None
        code = diag.destroy(mine[:1]).get(0)
        again = [s for s in diag.dump(state_mask((state,)), [(port, port)], (socket.AF_INET,))
                 if s["id"][:4] == mine[0]["id"][:4]]
    finally:
        diag.close()
    if code == 0 and not again:
        return True, None
    if code == 0:
        return False, "acknowledged but kept"
    return (False if code == errno.EOPNOTSUPP else None), errno_name(code)


def probe_destroy(timeout=1.0):
    """Can this kernel, for this process, destroy what a crashed server leaves behind?

    A real try on loopback sockets of our own (never anyone else's): an orphaned FIN_WAIT_1
    socket (the server wrote until the client's window was full, then closed), then a
    server-side TIME_WAIT socket. Each is destroyed and then looked for again: on Linux 5.10
    the kernel acknowledges SOCK_DESTROY of an orphan yet keeps it. Returns {"orphan": b,
    "timewait": b, "errors": {kind: text}}, each b True (gone), False (refused with
    EOPNOTSUPP, or acknowledged and kept) or None (unknown: no privilege, no netlink, or the
    socket never reached its state in time).
    """
    out = {"orphan": None, "timewait": None, "errors": {}}
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conns = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        for kind, state in (("orphan", "fin-wait-1"), ("timewait", "time-wait")):
            conns.append(_leave_behind(listener, port, kind, timeout))
            out[kind], error = _try_destroy(port, state, timeout)
            if error:
                out["errors"][kind] = error
    except (DiagError, OSError, socket.error) as e:
        out["errors"]["probe"] = errno_name(e.errno) if getattr(e, "errno", None) else str(e)
    finally:
        for c in conns + [listener]:
            try:
                c.close()
            except (OSError, socket.error):
                pass
    return out


# ------------------------------------------------------------------ why sockets are left


def errno_name(code):
    # Linux's ENOTSUP and EOPNOTSUPP are one number; the kernel means the latter
    if code == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"
    return errno.errorcode.get(code, "errno %d" % code)


def refusal_kind(code, state):
    """Classify one refused SOCK_DESTROY (the same table as src/netsvc-sockclean.c)."""
    if code in (errno.EPERM, errno.EACCES):
        return "no_cap"
    if code == errno.EOPNOTSUPP:
        return "unsupported_timewait" if state in TIMEWAIT_KIND else "unsupported_full"
    return "other"


def kernel_version(release):
    """'5.10.0-26-amd64' -> (5, 10); (0, 0) when unreadable."""
    parts = []
    for chunk in (release or "").split(".")[:2]:
        digits = ""
        for c in chunk:
            if not c.isdigit():
                break
            digits += c
        parts.append(int(digits or 0))
    while len(parts) < 2:
        parts.append(0)
    return tuple(parts)


def explain(result, release, uid, left):
    """The true cause of sockets left after a cleanup, from the errno of each refusal.

    ``result`` is cleanup()'s dict (its ``refusals`` counts per kind). The text is exactly what
    the native hook prints, so the journal reads the same on every architecture.
    """
    kinds = result.get("refusals") or {}
    causes = []
    if kinds.get("no_cap"):
        causes.append("no CAP_NET_ADMIN (uid %d: the unit's User= or CapabilityBoundingSet= drops it)" % uid)
    if kinds.get("unsupported_full") or (kinds.get("unsupported_timewait") and kernel_version(release) >= (6, 0)):
        causes.append("kernel without SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY)")
    elif kinds.get("unsupported_timewait"):
        causes.append("TIME_WAIT not destroyable on Linux %s (needs >= 6.0)" % release)
    kept = result.get("kept") or {}
    if kept:
        causes.append("the kernel acknowledged SOCK_DESTROY but kept %d orphaned socket(s) (%s) on Linux %s"
                      % (sum(kept.values()), state_summary(kept), release))
    if kinds.get("other"):
        causes.append("SOCK_DESTROY failed with %s" % result.get("other_errno", "an unknown errno"))
    if left > 0 and not causes:
        causes.append("new sockets appeared while cleaning")
    return "; ".join(causes)


def inspect_error(exc):
    """Cause text when sockets could not even be listed (netlink socket or dump refused)."""
    name = errno_name(exc.errno) if getattr(exc, "errno", None) else str(exc)
    if getattr(exc, "stage", "") == "socket":
        return "netlink refused (socket(AF_NETLINK): %s)" % name
    return "sock_diag dump refused (%s)" % name


def state_summary(counts):
    """{'time-wait': 2, 'fin-wait-1': 1} -> 'fin-wait-1 1, time-wait 2' (kernel state order)."""
    return ", ".join("%s %d" % (name, counts[name]) for name in sorted(counts, key=lambda n: STATES.get(n, 0))
                     if counts[name])


def hook_line(label, result, cause, error=False, not_written=""):
    """The hook's one journal line (identical to the native hook's). ``label``: the targets
    as given on its command line, comma-separated."""
    head = "netsvc-sockclean: ports %s" % label
    if error:
        text = "%s: cannot inspect sockets: %s" % (head, cause)
    else:
        left = sum(result["after"].values())
        states = state_summary(result["before"])
        text = "%s: found %d, destroyed %d, left %d%s" % (
            head, sum(result["before"].values()), result["destroyed"], left, (" (%s)" % states) if states else "")
        if result.get("delivered"):
            text += "; delivered %d in %d ms" % (result["delivered"], result["drain_ms"])
        if result.get("unsent_sockets"):
            text += "; destroyed %d with %d bytes unsent after %d ms" % (
                result["unsent_sockets"], result["unsent_bytes"], result["drain_ms"])
        if left > 0:
            text += "; cause: %s" % cause
    if not_written:
        text += "; status not written: %s" % not_written
    return text


def hook_result(result, error=False):
    """error | left (sockets still block the port) | lost (sockets destroyed with data unsent) | ok."""
    if error:
        return "error"
    if sum(result["after"].values()) > 0:
        return "left"
    return "lost" if result.get("unsent_sockets") else "ok"


def invocation_id(environ):
    """systemd's id of this start of the unit ($INVOCATION_ID: 32 hex digits), or ''."""
    value = environ.get("INVOCATION_ID", "")
    return value if len(value) == 32 and all(c in "0123456789abcdef" for c in value) else ""


def status_text(unit, when, label, result, cause, uid, release, error=False, invocation=""):
    """The hook's status file (read by host_check and the audit). ``invocation``: systemd's id
    of the start the hook ran for, so that a reader tells it from an earlier start's record."""
    r = result if not error else {"before": {}, "after": {}, "destroyed": 0}
    outcome = hook_result(r, error)
    lines = [("version", "2"), ("unit", unit), ("time", "%d" % when), ("ports", label),
             ("result", outcome), ("found", "%d" % sum(r["before"].values())), ("destroyed", "%d" % r["destroyed"]),
             ("left", "%d" % sum(r["after"].values())), ("states", state_summary(r["before"])),
             ("delivered", "%d" % r.get("delivered", 0)), ("drain_ms", "%d" % r.get("drain_ms", 0)),
             ("unsent_sockets", "%d" % r.get("unsent_sockets", 0)), ("unsent_bytes", "%d" % r.get("unsent_bytes", 0)),
             ("cause", cause if outcome in ("error", "left") else ""), ("uid", "%d" % uid), ("kernel", release),
             ("invocation", invocation)]
    return "".join("%s=%s\n" % kv for kv in lines)


def parse_hook_line(line, when=None):
    """One journal line of the hook (hook_line's format) -> the status file's fields; {} if not one.

    The journal is where a sandboxed hook that may not write /run still reports (ProtectSystem=strict).
    """
    _head, sep, rest = (line or "").partition("netsvc-sockclean: ports ")
    if not sep:
        return {}
    ports, _sep, rest = rest.partition(": ")
    out = {"ports": ports, "time": int(when) if when is not None else 0}
    if rest.startswith("cannot inspect sockets: "):
        out.update(result="error", found=0, destroyed=0, left=0,
                   cause=rest[len("cannot inspect sockets: "):].split("; status not written: ")[0].strip())
        return out
    try:
        found = int(rest.split("found ", 1)[1].split(",", 1)[0])
        destroyed = int(rest.split("destroyed ", 1)[1].split(",", 1)[0])
        left = int(rest.split("left ", 1)[1].split()[0].rstrip(";"))
        delivered = int(rest.split("; delivered ", 1)[1].split()[0]) if "; delivered " in rest else 0
        unsent_sockets = unsent_bytes = 0
        if " bytes unsent after " in rest:
            tail = rest.split(" bytes unsent after ", 1)[0].rsplit("; destroyed ", 1)[1]
            unsent_sockets, unsent_bytes = int(tail.split()[0]), int(tail.split()[2])
    except (IndexError, ValueError):
        return {}
    cause = rest.split("; cause: ", 1)[1].split("; status not written: ")[0].strip() if "; cause: " in rest else ""
    out.update(result="left" if left else ("lost" if unsent_sockets else "ok"), found=found, destroyed=destroyed,
               left=left, delivered=delivered, unsent_sockets=unsent_sockets, unsent_bytes=unsent_bytes, cause=cause)
    return out


STATUS_INTS = ("version", "time", "found", "destroyed", "left", "uid", "delivered", "drain_ms", "unsent_sockets",
               "unsent_bytes")


def parse_status(text):
    """A status file -> dict (counts as integers); {} for no or unreadable text."""
    out = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = int(value) if key in STATUS_INTS and value.isdigit() else value
    return out


# ------------------------------------------------------------------ the restart hook


HOOK_STATUS_DIR = "/run/netsvc-resilience/hook"
_UNIT_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.\\@-")


def parse_port_arg(arg):
    """'8080' or '9000-9009' -> (low, high); None when it is not a port or range in 1-65535."""
    low, sep, high = arg.partition("-")
    if not low.isdigit() or len(low) > 5 or (sep and (not high.isdigit() or len(high) > 5)):
        return None
    a, b = int(low), int(high) if sep else int(low)
    if not 1 <= a <= b <= 65535:
        return None
    return a, b


DRAIN_DEFAULT_MS = 2000
DRAIN_MAX_MS = 600000


def parse_hook_args(argv):
    """The hook's command line -> dict(targets (parse_target's), ranges (their ports), label,
    bad, unit, user, status_dir, drain_ms, command)."""
    out = {"targets": [], "ranges": [], "bad": [], "unit": None, "user": None, "status_dir": HOOK_STATUS_DIR,
           "drain_ms": DRAIN_DEFAULT_MS, "command": None}
    given = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out["command"] = argv[i + 1:] or None
            break
        if arg in ("--unit", "--user", "--status-dir", "--drain-ms") and i + 1 < len(argv):
            value = argv[i + 1]
            if arg == "--drain-ms":
                if value.isdigit() and int(value) <= DRAIN_MAX_MS:
                    out["drain_ms"] = int(value)
                else:
                    out["bad"].append("--drain-ms " + value)
            else:
                out[arg[2:].replace("-", "_")] = value
            given.extend([arg, value])
            i += 2
            continue
        target = parse_target(arg)
        if target and len(out["targets"]) < 64:
            out["targets"].append(target)
            out["ranges"].append(target["range"])
        else:
            out["bad"].append(arg)
        i += 1
    out["label"] = ",".join(t["text"] for t in out["targets"])
    return out


def parse_user(spec):
    """'UID:GID[:G,G...]' (numeric) -> (uid, gid, [groups]); raises ValueError."""
    parts = spec.replace(",", ":").split(":")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ValueError("bad --user '%s' (want UID:GID[:GID,...])" % spec)
    ids = [int(p) for p in parts]
    return ids[0], ids[1], ids[2:]


def unsafe_dir(path, lstat=os.lstat):
    """Why root must not write into directory ``path``: it or a parent up to / is not a
    directory, is a symlink, is not root's, or is writable by group or others. None if safe."""
    import stat

    if not path.startswith("/"):
        return "%s is not an absolute path" % path
    path = os.path.normpath(path)
    while True:
        try:
            st = lstat(path)
        except OSError:
            return "%s cannot be read" % path
        if not stat.S_ISDIR(st.st_mode):
            return "%s is not a directory" % path
        if st.st_uid != 0:
            return "%s is owned by uid %d" % (path, st.st_uid)
        if st.st_mode & 0o022:
            return "%s is writable by group or others" % path
        if path == "/":
            return None
        path = os.path.dirname(path)


def _write_status(directory, unit, text):
    """Write the status file; '' when written (or no unit to write for), else why not."""
    if not unit or unit[0] == "." or len(unit) > 255 or not set(unit) <= _UNIT_OK:
        return ""
    try:
        if directory == HOOK_STATUS_DIR:
            for d in (os.path.dirname(HOOK_STATUS_DIR), HOOK_STATUS_DIR):
                if not os.path.isdir(d):
                    os.mkdir(d, 0o755)
    except OSError:
        pass
    why = unsafe_dir(directory)
    if why:
        return why
    path = os.path.join(directory, unit + ".status")
    try:
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        return "%s.tmp: %s" % (path, errno_name(e.errno))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)
    except (IOError, OSError) as e:
        return "%s: %s" % (path, errno_name(e.errno))
    return ""


def _hook_main(argv):
    import time

    args = parse_hook_args(argv)
    if args["bad"]:
        sys.stdout.write("netsvc-sockclean: ignoring bad argument(s) %s\n" % " ".join(args["bad"]))
    if args["targets"]:
        release = os.uname()[2]
        uid = os.getuid()
        error = False
        try:
            r = cleanup(args["ranges"], targets=args["targets"], drain=args["drain_ms"] / 1000.0)
            cause = explain(r, release, uid, sum(r["after"].values()))
        except DiagError as e:
            r, error, cause = None, True, inspect_error(e)
        not_written = ""
        if args["unit"]:
            not_written = _write_status(args["status_dir"], args["unit"], status_text(
                args["unit"], time.time(), args["label"], r, cause, uid, release, error, invocation_id(os.environ)))
        sys.stdout.write(hook_line(args["label"], r, cause, error, not_written) + "\n")
    sys.stdout.flush()
    command = args["command"]
    if command:
        if args["user"]:
            try:
                uid, gid, groups = parse_user(args["user"])
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(uid)
            except (ValueError, OSError) as e:
                why = str(e) if isinstance(e, ValueError) else "cannot switch to user %s" % args["user"]
                sys.stderr.write("netsvc-sockclean: not starting %s: %s\n" % (command[0], why))
                return 126
        try:
            os.execvp(command[0], command)  # same PID, same signals: supervisord sees the real program
        except OSError as e:
            sys.stderr.write("netsvc-sockclean: cannot execute %s: %s\n" % (command[0], errno_name(e.errno)))
            return 127
    return 0


if __name__ == "__main__":
    raise SystemExit(_hook_main(sys.argv[1:]))
