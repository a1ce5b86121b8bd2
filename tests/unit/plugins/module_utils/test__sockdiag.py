# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sock_diag encoding/decoding and the cleanup decisions, without touching any socket."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import errno
import os
import socket
import struct
import time

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _sockdiag

# Captured on kernel 6.18 (Debian 12 container): a SOCK_DIAG_BY_FAMILY dump answer for
# 127.0.0.1:7900 with one LISTEN socket and one TIME_WAIT socket (peer port 43934).
CAPTURED = binascii.unhexlify(
    "7c0000001400020001000000b6000000020a00001edc00007f00000100000000000000000000000000000000"
    "00000000000000000000000000000000c84a00000000000000000000000000000a00000000000000fad703000500"
    "08000000000008000f00000000000c001500fe280000000000000600160052000000600000001400020001000000"
    "b6000000020603001edcab9e7f0000010000000000000000000000007f0000010000000000000000000000000000"
    "0000c94a000000000000fce900000000000000000000000000000000000008000f0000000000"
)


def test_decode_captured_dump():
    msgs = _sockdiag.parse_messages(CAPTURED)
    assert [(t, seq) for t, seq, _p in msgs] == [(_sockdiag.SOCK_DIAG_BY_FAMILY, 1), (_sockdiag.SOCK_DIAG_BY_FAMILY, 1)]
    listen = _sockdiag.decode_diag_msg(msgs[0][2])
    tw = _sockdiag.decode_diag_msg(msgs[1][2])
    assert (listen["state"], listen["sport"], listen["src"]) == ("listen", 7900, "127.0.0.1")
    assert listen["inode"] == 251898
    assert (tw["state"], tw["sport"], tw["dport"], tw["dst"]) == ("time-wait", 7900, 43934, "127.0.0.1")
    assert tw["inode"] == 0  # timewait sockets have no inode
    assert tw["id"][5] == (0x4ac9, 0)  # the cookie SOCK_DESTROY must echo


def test_destroy_request_echoes_the_socket_id():
    tw = _sockdiag.decode_diag_msg(_sockdiag.parse_messages(CAPTURED)[1][2])
    sport, dport, src, dst, ifindex, cookie = tw["id"]
    flags = _sockdiag.NLM_F_REQUEST | _sockdiag.NLM_F_ACK
    req = _sockdiag._DESTROY.pack(_sockdiag._DESTROY.size, _sockdiag.SOCK_DESTROY, flags, 7, 0, tw["family"],
                                  _sockdiag.IPPROTO_TCP, 0, 0, 1 << 6, socket.htons(sport), socket.htons(dport),
                                  src, dst, ifindex, cookie[0], cookie[1])
    generic = _sockdiag.encode_request(_sockdiag.SOCK_DESTROY, flags, 7, tw["family"], 1 << 6, sockid=tw["id"])
    assert req == generic
    assert len(req) == 16 + 56


def test_port_filter_bytecode_is_an_envelope_with_valid_jumps():
    bc = _sockdiag.port_filter([(8080, 8080), (9000, 9010)])
    ops = [struct.unpack_from("=BBH", bc, off) for off in range(0, len(bc), 4)]
    assert ops == [(_sockdiag.INET_DIAG_BC_S_GE, 8, 20), (0, 0, 8080),
                   (_sockdiag.INET_DIAG_BC_S_LE, 8, 12), (0, 0, 9010)]


def test_state_mask_and_listen_refused():
    assert _sockdiag.state_mask(["time-wait"]) == 1 << 6
    assert _sockdiag.state_mask(_sockdiag.ORPHAN_STATES) == (1 << 6) | (1 << 4) | (1 << 5) | (1 << 11) | (1 << 9)
    with pytest.raises(_sockdiag.DiagError):
        _sockdiag.state_mask(["bogus"])


SOCKS = [
    {"state": "time-wait", "sport": 8080, "src": "127.0.0.1"},
    {"state": "time-wait", "sport": 8081, "src": "127.0.0.1"},   # other port
    {"state": "time-wait", "sport": 40000, "src": "127.0.0.1"},  # dport 8080 would match `dst :8080`
    {"state": "listen", "sport": 8080, "src": "0.0.0.0"},
    {"state": "established", "sport": 8080, "src": "10.0.0.5"},
    {"state": "fin-wait-2", "sport": 8080, "src": "::ffff:10.0.0.5"},
]


def test_select_matches_local_port_and_state_only():
    got = _sockdiag.select(SOCKS, [(8080, 8080)], _sockdiag.ORPHAN_STATES)
    assert [(s["state"], s["sport"]) for s in got] == [("time-wait", 8080), ("fin-wait-2", 8080)]
    assert _sockdiag.select(SOCKS, [(8080, 8080)], _sockdiag.ORPHAN_STATES, local_addr="10.0.0.5") == [SOCKS[5]]
    assert _sockdiag.count_states(got) == {"time-wait": 1, "fin-wait-2": 1}


def test_cap_net_admin_from_status():
    assert _sockdiag.has_cap_net_admin("Name:\tx\nCapEff:\t000001ffffffffff\n") is True
    assert _sockdiag.has_cap_net_admin("CapEff:\t0000000000000000\n") is False
    assert _sockdiag.has_cap_net_admin("Name: x\n") is None


class FakeDiag(object):
    """A kernel with sockets on 8080; refuses TIME_WAIT destroy like Linux < 6.0 (SIMULATED:
    the test machine's kernel can destroy TIME_WAIT, so the refusal is faked here)."""

    refuse = {"time-wait": errno.EOPNOTSUPP}

    def __init__(self):
        # a socket's 4-tuple is unique: the peer ports differ; an orphan has no inode, a live one has
        self.socks = [dict(s, family=socket.AF_INET, id=(s["sport"], 40000 + i, b"", b"", 0, (i, 0)),
                           inode=0 if s["state"] in _sockdiag.ORPHAN_STATES else i + 1)
                      for i, s in enumerate(SOCKS)]
        FakeDiag.instance = self

    def dump(self, mask, ports, families):
        return [s for s in self.socks if mask & (1 << _sockdiag.STATES[s["state"]])]

    def destroy(self, socks):
        out = {}
        for i, s in enumerate(socks):
            code = self.refuse.get(s["state"], 0)
            if not code:
                self.socks.remove(s)
            out[i] = code
        return out

    def close(self):
        pass


def test_cleanup_on_a_kernel_that_refuses_timewait(monkeypatch):
    monkeypatch.setattr(_sockdiag, "SockDiag", FakeDiag)
    r = _sockdiag.cleanup([(8080, 8080)])
    assert r["before"] == {"time-wait": 1, "fin-wait-2": 1}
    assert r["destroyed"] == 1
    assert r["refused"] == {"EOPNOTSUPP": 1}
    assert r["supported"] == {"time-wait": False, "fin-wait-2": True}
    assert r["after"] == {"time-wait": 1}  # counted again: the truth
    assert [x["port"] for x in r["listeners"]] == [8080]
    states = [s["state"] for s in FakeDiag.instance.socks]
    assert "listen" in states and "established" in states  # never touched


class KeepsOrphans(FakeDiag):
    """Linux 5.10 (measured in the VM): SOCK_DESTROY of an orphan is acknowledged with 0 and the
    socket stays (SIMULATED here, where the kernel destroys it)."""

    refuse = {"time-wait": errno.EOPNOTSUPP}

    def destroy(self, socks):
        return {i: self.refuse.get(s["state"], 0) for i, s in enumerate(socks)}


def test_an_acknowledged_destroy_counts_only_when_the_socket_is_gone(monkeypatch):
    monkeypatch.setattr(_sockdiag, "SockDiag", KeepsOrphans)
    r = _sockdiag.cleanup([(8080, 8080)])
    assert r["destroyed"] == 0
    assert r["kept"] == {"fin-wait-2": 1}
    assert r["supported"] == {"time-wait": False, "fin-wait-2": False}
    assert _sockdiag.explain(r, "5.10.0", 0, 2) == (
        "TIME_WAIT not destroyable on Linux 5.10.0 (needs >= 6.0); the kernel acknowledged SOCK_DESTROY but kept "
        "1 orphaned socket(s) (fin-wait-2 1) on Linux 5.10.0")


def test_report_mode_destroys_nothing(monkeypatch):
    monkeypatch.setattr(_sockdiag, "SockDiag", FakeDiag)
    r = _sockdiag.cleanup([(8080, 8080)], mode="report")
    assert r["destroyed"] == 0
    assert r["after"] == r["before"] == {"time-wait": 1, "fin-wait-2": 1}
    assert len(FakeDiag.instance.socks) == len(SOCKS)


def test_no_sockets_is_a_no_change_path(monkeypatch):
    monkeypatch.setattr(_sockdiag, "SockDiag", FakeDiag)
    r = _sockdiag.cleanup([(9999, 9999)])
    assert r["before"] == {} and r["destroyed"] == 0 and r["after"] == {} and r["listeners"] == []


def test_listen_state_can_never_be_cleaned():
    with pytest.raises(_sockdiag.DiagError) as err:
        _sockdiag.cleanup([(8080, 8080)], states=("listen",))
    assert "port conflict" in str(err.value)


def test_listener_owners_from_proc(tmp_path):
    fd = tmp_path / "42" / "fd"
    fd.mkdir(parents=True)
    (fd / "3").symlink_to("socket:[777]")
    (fd / "4").symlink_to("/dev/null")
    (fd / "12").symlink_to("socket:[777]")  # a dup of the same socket: one entry, the lowest fd
    (tmp_path / "42" / "cmdline").write_bytes(b"python3\0/usr/local/bin/netsvc-echo\0007070\0")
    (tmp_path / "self").mkdir()
    assert _sockdiag.listener_owners({777, 778}, str(tmp_path)) == {
        777: [{"pid": 42, "command": "python3 /usr/local/bin/netsvc-echo 7070", "fd": 3}], 778: []}


# ------------------------------------------------------------------ the hook's words


def _result(before, after, destroyed, refusals=None, other=None):
    r = {"before": before, "after": after, "destroyed": destroyed, "refusals": refusals or {}}
    if other:
        r["other_errno"] = other
    return r


@pytest.mark.parametrize("refusals,release,left,cause", [
    ({"no_cap": 5}, "6.18.4", 5, "no CAP_NET_ADMIN (uid 996: the unit's User= or CapabilityBoundingSet= drops it)"),
    ({"unsupported_timewait": 20}, "5.10.0-26-amd64", 20, "TIME_WAIT not destroyable on Linux 5.10.0-26-amd64 "
                                                          "(needs >= 6.0)"),
    ({"unsupported_timewait": 3}, "6.1.0", 3, "kernel without SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY)"),
    ({"unsupported_full": 1, "unsupported_timewait": 2}, "4.18.0", 3,
     "kernel without SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY)"),
    ({}, "6.18", 2, "new sockets appeared while cleaning"),
    ({}, "6.18", 0, ""),
])
def test_explain_names_the_true_cause(refusals, release, left, cause):
    assert _sockdiag.explain(_result({}, {}, 0, refusals), release, 996, left) == cause


def test_explain_other_errno_and_refusal_kinds():
    explained = _sockdiag.explain(_result({}, {}, 0, {"other": 1}, "EINVAL"), "6.18", 0, 1)
    assert explained == "SOCK_DESTROY failed with EINVAL"
    assert _sockdiag.refusal_kind(errno.EPERM, "time-wait") == "no_cap"
    assert _sockdiag.refusal_kind(errno.EOPNOTSUPP, "fin-wait-2") == "unsupported_timewait"
    assert _sockdiag.refusal_kind(errno.EOPNOTSUPP, "last-ack") == "unsupported_full"
    assert _sockdiag.kernel_version("5.10.0-26-amd64") == (5, 10) and _sockdiag.kernel_version("") == (0, 0)


def test_hook_line_status_and_journal_parse_round_trip():
    r = _result({"time-wait": 18, "fin-wait-1": 2}, {"time-wait": 18}, 2, {"unsupported_timewait": 18})
    cause = _sockdiag.explain(r, "5.10.0", 0, 18)
    line = _sockdiag.hook_line("9000,9100-9102", r, cause)
    assert line == ("netsvc-sockclean: ports 9000,9100-9102: found 20, destroyed 2, left 18 (fin-wait-1 2, "
                    "time-wait 18); cause: TIME_WAIT not destroyable on Linux 5.10.0 (needs >= 6.0)")
    parsed = _sockdiag.parse_hook_line("1795334739.5 host netsvc-sockclean[1]: " + line, 1795334739.5)
    assert parsed == {"ports": "9000,9100-9102", "time": 1795334739, "result": "left", "found": 20,
                      "destroyed": 2, "left": 18, "cause": cause, "delivered": 0, "unsent_sockets": 0,
                      "unsent_bytes": 0}
    status = _sockdiag.parse_status(_sockdiag.status_text("web.service", 1795334739.5, "9000", r, cause, 0, "5.10.0"))
    assert (status["result"], status["found"], status["destroyed"], status["left"], status["uid"]) == \
        ("left", 20, 2, 18, 0)
    assert status["cause"] == cause and status["unit"] == "web.service" and status["time"] == 1795334739
    err = _sockdiag.hook_line("11211", None, "netlink refused (socket(AF_NETLINK): EAFNOSUPPORT)", True)
    assert _sockdiag.parse_hook_line(err)["result"] == "error"
    assert _sockdiag.parse_hook_line("something else") == {}


def test_a_drain_that_ran_out_is_counted_apart_and_is_not_ok():
    r = dict(_result({"fin-wait-1": 3, "time-wait": 2}, {}, 5, {}), delivered=2, drain_ms=500, unsent_sockets=1,
             unsent_bytes=812000)
    line = _sockdiag.hook_line("127.0.0.1:80", r, "")
    assert line == ("netsvc-sockclean: ports 127.0.0.1:80: found 5, destroyed 5, left 0 (fin-wait-1 3, time-wait 2)"
                    "; delivered 2 in 500 ms; destroyed 1 with 812000 bytes unsent after 500 ms")
    parsed = _sockdiag.parse_hook_line(line, 1)
    assert (parsed["result"], parsed["delivered"], parsed["unsent_sockets"], parsed["unsent_bytes"]) == \
        ("lost", 2, 1, 812000)
    status = _sockdiag.parse_status(_sockdiag.status_text("web.service", 1, "127.0.0.1:80", r, "", 0, "6.18"))
    assert (status["result"], status["unsent_bytes"], status["drain_ms"], status["version"]) == ("lost", 812000, 500, 2)


def test_unsent_leaves_out_the_fin_and_timewait_holds_nothing():
    assert _sockdiag.unsent({"state": "time-wait", "wqueue": 0}) == 0
    assert _sockdiag.unsent({"state": "fin-wait-1", "wqueue": 1}) == 0       # only the FIN: everything delivered
    assert _sockdiag.unsent({"state": "fin-wait-1", "wqueue": 4097}) == 4096
    assert _sockdiag.unsent({"state": "last-ack", "wqueue": 0}) == 0


@pytest.mark.parametrize("arg, family, any_addr, rng", [
    ("80", 0, True, (80, 80)),
    ("9000-9002", 0, True, (9000, 9002)),
    ("127.0.0.1:80", socket.AF_INET, False, (80, 80)),
    ("0.0.0.0:80", socket.AF_INET, True, (80, 80)),
    ("[::]:80", socket.AF_INET6, True, (80, 80)),
    ("[::ffff:10.0.0.1]:8080", socket.AF_INET6, False, (8080, 8080)),
    ("[fe80::1]:443", socket.AF_INET6, False, (443, 443)),
])
def test_targets_as_the_native_hook_takes_them(arg, family, any_addr, rng):
    t = _sockdiag.parse_target(arg)
    assert (t["family"], t["any"], t["range"]) == (family, any_addr, rng)


@pytest.mark.parametrize("arg", ["x", "0", "70000", "300.1.1.1:80", "127.0.0.1:", "[::1]80", "[zz::1]:80", ":80",
                                 "1.2.3:80"])
def test_bad_targets_are_refused(arg):
    assert _sockdiag.parse_target(arg) is None


def test_a_target_matches_its_own_address_only():
    local = {"family": socket.AF_INET, "sport": 80, "src": "127.0.0.1"}
    other = dict(local, src="127.0.0.2")
    mapped = {"family": socket.AF_INET6, "sport": 80, "src": "::ffff:127.0.0.1"}
    t = _sockdiag.parse_target("127.0.0.1:80")
    assert _sockdiag.target_matches(t, local)
    assert not _sockdiag.target_matches(t, other) and not _sockdiag.target_matches(t, mapped)
    assert _sockdiag.target_matches(_sockdiag.parse_target("0.0.0.0:80"), other)
    v6_any = _sockdiag.parse_target("[::]:80")
    assert _sockdiag.target_matches(v6_any, mapped) and not _sockdiag.target_matches(v6_any, local)
    assert _sockdiag.target_matches(_sockdiag.parse_target("80"), mapped)
    assert not _sockdiag.target_matches(_sockdiag.parse_target("81"), local)


def test_hook_arguments_like_the_native_hook():
    a = _sockdiag.parse_hook_args(["--unit", "web.service", "--drain-ms", "500", "8080", "x", "0", "70000", "9000-9002",
                                   "9-1", "127.0.0.1:80", "--", "/bin/web", "-p", "8080"])
    assert a["ranges"] == [(8080, 8080), (9000, 9002), (80, 80)] and a["bad"] == ["x", "0", "70000", "9-1"]
    assert a["label"] == "8080,9000-9002,127.0.0.1:80" and a["drain_ms"] == 500
    assert _sockdiag.parse_hook_args(["--drain-ms", "x", "80"])["bad"] == ["--drain-ms x"]
    assert a["unit"] == "web.service" and a["command"] == ["/bin/web", "-p", "8080"]
    assert _sockdiag.parse_user("65534:65534:100,27") == (65534, 65534, [100, 27])
    with pytest.raises(ValueError, match="UID:GID"):
        _sockdiag.parse_user("nobody")


def test_status_dir_matches_the_constants():
    # _sockdiag runs standalone as the hook and cannot import _constants: the one copy is checked here
    from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _constants
    assert _sockdiag.HOOK_STATUS_DIR == _constants.HOOK_STATUS_DIR


def _timewait_sockets(port, count):
    """``count`` server-side TIME_WAIT sockets on loopback ``port`` (the server closes first)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    for _i in range(count):
        c = socket.create_connection(("127.0.0.1", port))
        s, _a = srv.accept()
        s.close()
        c.recv(1)
        c.close()
    srv.close()


def _quiet_port(offset):
    """A loopback port with no socket on it, below the ephemeral range: a port inside that range
    can be any other connection's source port, and its TIME_WAIT would be counted too."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    port = max(low, 2048) - 1000 - offset
    _sockdiag.cleanup([(port, port)])  # TIME_WAIT left by an earlier run of this test
    assert not _sockdiag.cleanup([(port, port)], mode="count")["after"], "port %d is busy" % port
    return port


NATIVE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "files", "native", "x86_64",
                      "netsvc-sockclean")


@pytest.mark.skipif(os.geteuid() != 0 or os.uname()[4] != "x86_64" or not os.path.exists(NATIVE),
                    reason="needs root (CAP_NET_ADMIN) on x86_64")
def test_native_hook_and_python_twin_print_and_record_the_same(tmp_path):
    import shutil
    import subprocess
    import sys

    native = str(tmp_path / "netsvc-sockclean")
    shutil.copy(NATIVE, native)
    os.chmod(native, 0o755)
    twin = [sys.executable, "-I", "-S", _sockdiag.__file__.replace(".pyc", ".py")]
    outputs = []
    for argv in ([native], twin):
        port = _quiet_port(len(outputs))
        # systemd's id of this start is recorded; a malformed one is not
        for invocation, recorded in (("0123456789ABCDEF0123456789abcdef", ""), ("abc", ""),
                                     ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef")):
            _timewait_sockets(port, 20)
            env = dict(os.environ, INVOCATION_ID=invocation)
            args = ["--unit", "t.service", "--status-dir", str(tmp_path), str(port), "bad"]
            out = subprocess.check_output(argv + args, universal_newlines=True, env=env)
            status = _sockdiag.parse_status((tmp_path / "t.service.status").read_text())
            assert status["invocation"] == recorded
        kept = {k: v for k, v in status.items() if k not in ("time", "ports")}
        outputs.append((out.replace(str(port), "PORT"), kept))
    assert outputs[0] == outputs[1]
    assert "found 20, destroyed 20, left 0 (time-wait 20)" in outputs[0][0]
    assert outputs[0][0].startswith("netsvc-sockclean: ignoring bad argument(s) bad\n")


def _runnable(tmp_path):
    """The shipped native hook as an executable copy (files/native keeps it 0644)."""
    import shutil

    path = str(tmp_path / "bin-netsvc-sockclean")
    shutil.copy(NATIVE, path)
    os.chmod(path, 0o755)
    return path


def _leftovers(address, port, count):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((address, port))
    srv.listen(128)
    for _i in range(count):
        c = socket.create_connection((address, port))
        s, _a = srv.accept()
        s.close()
        c.recv(1)
        c.close()
    srv.close()


def _in_flight(port, reader_rate=None):
    """An orphaned server socket still holding ~2.8 MB for a client reading at ``reader_rate``
    bytes/s (None: never): (the client, a thread counting what it got)."""
    import threading
    import time

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536 if reader_rate else 4096)
    client.connect(("127.0.0.1", port))
    conn, _a = srv.accept()
    conn.setblocking(False)
    sent = 0
    try:
        while sent < (2 << 20):
            sent += conn.send(b"x" * 65536)
    except OSError:
        pass
    conn.close()
    srv.close()
    got = [0]

    def read():
        client.settimeout(10)
        try:
            while True:
                data = client.recv(16384)
                if not data:
                    break
                got[0] += len(data)
                time.sleep(len(data) / float(reader_rate))
        except OSError:
            pass

    t = threading.Thread(target=read)
    if reader_rate:
        t.start()
    return client, t, got, sent


@pytest.mark.skipif(os.geteuid() != 0 or os.uname()[4] != "x86_64" or not os.path.exists(NATIVE),
                    reason="needs root (CAP_NET_ADMIN) on x86_64")
@pytest.mark.parametrize("which", ["native", "twin"])
def test_the_hook_cleans_only_its_own_address_and_delivers_what_is_in_flight(tmp_path, which):
    import subprocess
    import sys

    twin = [sys.executable, "-I", "-S", _sockdiag.__file__.replace(".pyc", ".py")]
    argv = [_runnable(tmp_path)] if which == "native" else twin
    port = _quiet_port(7 if which == "native" else 8)
    _leftovers("127.0.0.1", port, 3)
    _leftovers("127.0.0.2", port, 2)      # another server on the same port, another address
    out = subprocess.check_output(argv + ["--status-dir", str(tmp_path), "--unit", "a.service",
                                          "127.0.0.1:%d" % port], universal_newlines=True)
    assert "found 3, destroyed 3, left 0 (time-wait 3)" in out
    theirs = _sockdiag.cleanup([(port, port)], mode="count")["after"]
    assert theirs == {"time-wait": 2}, theirs
    _sockdiag.cleanup([(port, port)])
    # a response still being delivered (~1.6 MB/s reader): waited for, not a byte lost
    client, reader, got, sent = _in_flight(port, 1600000)
    out = subprocess.check_output(argv + ["--status-dir", str(tmp_path), "--unit", "a.service", "--drain-ms", "5000",
                                          str(port)], universal_newlines=True)
    reader.join(10)
    client.close()
    assert got[0] == sent and "delivered 1 in" in out and "unsent" not in out, (out, got, sent)
    assert _sockdiag.parse_status((tmp_path / "a.service.status").read_text())["result"] == "ok"
    # a client that never reads: destroyed after the drain bound, counted apart
    client, _t, _g, _s = _in_flight(port)
    out = subprocess.check_output(argv + ["--status-dir", str(tmp_path), "--unit", "a.service", "--drain-ms", "200",
                                          str(port)], universal_newlines=True)
    client.close()
    status = _sockdiag.parse_status((tmp_path / "a.service.status").read_text())
    assert status["result"] == "lost" and status["unsent_sockets"] == 1 and status["unsent_bytes"] > 0, out
    assert "bytes unsent after" in out


@pytest.mark.skipif(os.geteuid() != 0 or os.uname()[4] != "x86_64" or not os.path.exists(NATIVE),
                    reason="needs root on x86_64")
@pytest.mark.parametrize("which", ["native", "twin"])
def test_the_status_file_goes_only_into_a_root_only_directory_never_through_a_link(tmp_path, which):
    import subprocess
    import sys

    twin = [sys.executable, "-I", "-S", _sockdiag.__file__.replace(".pyc", ".py")]
    argv = [_runnable(tmp_path)] if which == "native" else twin
    port = _quiet_port(9)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(str(theirs), 65534, 65534)
    out = subprocess.check_output(argv + ["--status-dir", str(theirs), "--unit", "a.service", str(port)],
                                  universal_newlines=True)
    assert "status not written: %s is owned by uid 65534" % theirs in out and not os.listdir(str(theirs))
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(str(victim), str(tmp_path / "a.service.status.tmp"))
    out = subprocess.check_output(argv + ["--status-dir", str(tmp_path), "--unit", "a.service", str(port)],
                                  universal_newlines=True)
    assert "status not written" in out and "ELOOP" in out and victim.read_text() == "keep"


def test_legacy_request_layout_one_request_for_both_families():
    bc = _sockdiag.port_filter([(7000, 7001)])
    req = _sockdiag.encode_legacy_request(9, _sockdiag.state_mask(["time-wait"]), bc)
    length, msg_type, flags, seq, _pid = struct.unpack_from("=IHHII", req, 0)
    dump = _sockdiag.NLM_F_REQUEST | _sockdiag.NLM_F_DUMP
    assert (length, msg_type, flags, seq) == (len(req), _sockdiag.TCPDIAG_GETSOCK, dump, 9)
    assert req[16] == socket.AF_INET and struct.unpack_from("=II", req, 16 + 52) == (1 << 6, 0)
    assert struct.unpack_from("=HH", req, 16 + 60) == (4 + len(bc), _sockdiag.INET_DIAG_REQ_BYTECODE)


class ReplayDiag(_sockdiag.SockDiag):
    """SockDiag over canned replies: the legacy request refused or answered."""

    def __init__(self, legacy_error):
        self.seq = 0
        self.legacy_refused = False
        self.sent = []
        self.legacy_error = legacy_error
        outer = self

        class Sock(object):
            def send(self, data):
                outer.sent.append(struct.unpack_from("=H", data, 4)[0])

        self.sock = Sock()

    def _recv(self):
        msg_type = self.sent[-1]
        if msg_type == _sockdiag.TCPDIAG_GETSOCK and self.legacy_error:
            return struct.pack("=IHHIIi", 20, _sockdiag.NLMSG_ERROR, 0, self.seq, 0, -22)
        # one captured socket (AF_INET TIME_WAIT) in the reply type of the request, then DONE
        payload = _sockdiag.parse_messages(CAPTURED)[1][2]
        msg = struct.pack("=IHHII", 16 + len(payload), msg_type, 2, self.seq, 0) + payload
        return msg + struct.pack("=IHHIIi", 20, _sockdiag.NLMSG_DONE, 2, self.seq, 0, 0)


def test_dump_uses_one_legacy_request_else_one_per_family():
    legacy = ReplayDiag(legacy_error=False)
    assert [s["state"] for s in legacy.dump(_sockdiag.state_mask(["time-wait"]))] == ["time-wait"]
    assert legacy.sent == [_sockdiag.TCPDIAG_GETSOCK]
    assert legacy.dump(_sockdiag.state_mask(["time-wait"]), families=(socket.AF_INET6,)) == []  # filtered by family
    refused = ReplayDiag(legacy_error=True)
    assert len(refused.dump(_sockdiag.state_mask(["time-wait"]))) == 2  # the canned socket once per family request
    assert refused.sent == [_sockdiag.TCPDIAG_GETSOCK, _sockdiag.SOCK_DIAG_BY_FAMILY, _sockdiag.SOCK_DIAG_BY_FAMILY]
    refused.dump(_sockdiag.state_mask(["time-wait"]))
    assert refused.sent[3:] == [_sockdiag.SOCK_DIAG_BY_FAMILY, _sockdiag.SOCK_DIAG_BY_FAMILY]  # not asked again


def _half_closed(port):
    """A live server connection that called shutdown(SHUT_WR) (FIN_WAIT_2, held by this process,
    an inode) and an orphan next to it (the server closed it: FIN_WAIT_2, no inode), on
    loopback ``port``: (server end, client end) of the live one."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    live_client = socket.create_connection(("127.0.0.1", port))
    live, _a = srv.accept()
    orphan_client = socket.create_connection(("127.0.0.1", port))
    orphan, _a = srv.accept()
    live.shutdown(socket.SHUT_WR)
    orphan.close()
    srv.close()
    assert live_client.recv(1) == b"" and orphan_client.recv(1) == b""  # both FINs arrived
    return live, live_client, orphan_client


def test_select_leaves_a_socket_a_live_process_holds():
    socks = [{"state": "fin-wait-2", "sport": 80, "src": "127.0.0.1", "inode": 77},
             {"state": "fin-wait-2", "sport": 80, "src": "127.0.0.1", "inode": 0},
             {"state": "last-ack", "sport": 80, "src": "127.0.0.1", "inode": 5},
             {"state": "time-wait", "sport": 80, "src": "127.0.0.1", "inode": 0}]
    assert [s["inode"] for s in _sockdiag.select(socks, [(80, 80)], _sockdiag.ORPHAN_STATES)] == [0, 0]
    assert [_sockdiag.held(s) for s in socks] == [True, False, True, False]


@pytest.mark.skipif(os.geteuid() != 0 or os.uname()[4] != "x86_64" or not os.path.exists(NATIVE),
                    reason="needs root (CAP_NET_ADMIN) on x86_64")
@pytest.mark.parametrize("which", ["native", "twin", "module"])
def test_a_live_half_closed_connection_survives_the_hook(tmp_path, which):
    import subprocess
    import sys

    port = _quiet_port(11 + ["native", "twin", "module"].index(which))
    live, live_client, orphan_client = _half_closed(port)
    try:
        if which == "module":
            r = _sockdiag.cleanup([(port, port)])
            assert r["destroyed"] == 1, r
        else:
            argv = [_runnable(tmp_path)] if which == "native" else [sys.executable, "-I", "-S",
                                                                    _sockdiag.__file__.replace(".pyc", ".py")]
            out = subprocess.check_output(argv + ["--status-dir", str(tmp_path), "--unit", "h.service", str(port)],
                                          universal_newlines=True)
            assert "found 1, destroyed 1, left 0" in out, out
        # the live one still works: the client's data reaches the server that half-closed
        live_client.sendall(b"still here")
        live.settimeout(5)
        assert live.recv(64) == b"still here"
        # the held one is no leftover: not counted, and still there
        assert _sockdiag.cleanup([(port, port)], mode="count")["after"] == {}
        assert live.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == _sockdiag.STATES["fin-wait-2"]
    finally:
        for s in (live, live_client, orphan_client):
            s.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="sock_diag reads every socket's inode as root")
def test_accept_probe_tells_a_queued_connection_from_an_accepted_one():
    import threading

    port = _quiet_port(14)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)
    srv.settimeout(10)  # a test that goes wrong fails, it does not hang
    listener = {"port": port, "address": "0.0.0.0", "family": socket.AF_INET}
    try:
        # nobody accepts (a socket unit whose service is down): the connection only waits
        assert _sockdiag.accept_probe(listener, timeout=0.3) == (False, None, None)
        srv.accept()[0].close()  # the probe's own connection, still queued, taken away
        accepted = []
        t = threading.Thread(target=lambda: accepted.append(srv.accept()[0]))
        t.start()
        checked = []

        def check(pid):  # what a fork-per-connection server's child is must be read while it lives
            try:
                accepted[0].recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                open_now = False  # the probe's end or a reset: closed already
            except BlockingIOError:
                open_now = True
            except OSError:
                open_now = False
            checked.append((pid, open_now))

        # (the thread has accepted once the probe sees an owner; join it to read its socket)
        taken, owners, error = _sockdiag.accept_probe(listener, timeout=2.0,
                                                      check=lambda pid: (t.join(5), check(pid)))
        t.join(5)
        assert error is None and taken and [o["pid"] for o in owners] == [os.getpid()]
        assert checked == [(os.getpid(), True)]  # asked while the probe's connection was still open
        accepted[0].close()
        # a server that answers and closes at once (HTTP/1.0-like): taken, though no inode is left

        def answer_and_close():
            srv.accept()[0].close()

        t = threading.Thread(target=answer_and_close)
        t.start()
        taken, owners, error = _sockdiag.accept_probe(listener, timeout=2.0)
        t.join(5)
        assert (taken, error) == (True, None)
    finally:
        srv.close()
    assert _sockdiag.accept_probe(listener, timeout=0.3)[2].startswith("connect to 127.0.0.1 port %d" % port)


@pytest.mark.skipif(os.geteuid() != 0, reason="sock_diag reads every socket's inode as root")
def test_accept_probe_looks_again_when_the_server_closed_before_proc_was_read(monkeypatch):
    """The race CI met: the dump shows the accepted socket's inode, the server closes it before
    /proc is read, so no owner is found - that is "answered and closed", not "nobody's"."""
    import threading

    port = _quiet_port(16)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    srv.settimeout(10)
    listener = {"port": port, "address": "127.0.0.1", "family": socket.AF_INET}
    held, release = [], threading.Event()

    def accept_then_close():
        held.append(srv.accept()[0])
        release.wait(5)
        held[0].close()

    def owners_gone(inodes):  # /proc read after the close: nobody holds it
        release.set()
        return {i: [] for i in inodes}

    monkeypatch.setattr(_sockdiag, "listener_owners", owners_gone)
    try:
        t = threading.Thread(target=accept_then_close)
        t.start()
        assert _sockdiag.accept_probe(listener, timeout=3.0) == (True, None, None)
        t.join(5)
        # held by nobody it can see until the deadline: taken, with no owner (the caller names it)
        release.clear()
        held[:] = []
        monkeypatch.setattr(_sockdiag, "listener_owners", lambda inodes: {i: [] for i in inodes})
        t = threading.Thread(target=accept_then_close)
        t.start()
        assert _sockdiag.accept_probe(listener, timeout=0.3) == (True, [], None)
        release.set()
        t.join(5)
    finally:
        srv.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="sock_diag reads every socket's inode as root")
def test_the_accept_probe_leaves_no_time_wait_on_the_service_port():
    import threading

    port = _quiet_port(15)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    srv.settimeout(10)

    def answer_and_close():  # the server closes first, as the echo server and HTTP/1.0 do
        conn = srv.accept()[0]
        conn.sendall(b"ok\n")
        conn.close()

    t = threading.Thread(target=answer_and_close)
    t.start()
    try:
        assert _sockdiag.accept_probe({"port": port, "address": "127.0.0.1", "family": socket.AF_INET})[0]
        t.join(5)
        time.sleep(0.05)
        assert _sockdiag.cleanup([(port, port)], mode="count")["after"] == {}
    finally:
        srv.close()
