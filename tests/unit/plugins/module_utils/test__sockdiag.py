# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sock_diag encoding/decoding and the cleanup decisions, without touching any socket."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import errno
import socket
import struct

import pytest

from ansible_collections.netsvc.resilience.plugins.module_utils import _sockdiag as D

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
    msgs = D.parse_messages(CAPTURED)
    assert [(t, seq) for t, seq, _p in msgs] == [(D.SOCK_DIAG_BY_FAMILY, 1), (D.SOCK_DIAG_BY_FAMILY, 1)]
    listen = D.decode_diag_msg(msgs[0][2])
    tw = D.decode_diag_msg(msgs[1][2])
    assert (listen["state"], listen["sport"], listen["src"]) == ("listen", 7900, "127.0.0.1")
    assert listen["inode"] == 251898
    assert (tw["state"], tw["sport"], tw["dport"], tw["dst"]) == ("time-wait", 7900, 43934, "127.0.0.1")
    assert tw["inode"] == 0  # timewait sockets have no inode
    assert tw["id"][5] == (0x4ac9, 0)  # the cookie SOCK_DESTROY must echo


def test_destroy_request_echoes_the_socket_id():
    tw = D.decode_diag_msg(D.parse_messages(CAPTURED)[1][2])
    sport, dport, src, dst, ifindex, cookie = tw["id"]
    req = D._DESTROY.pack(D._DESTROY.size, D.SOCK_DESTROY, D.NLM_F_REQUEST | D.NLM_F_ACK, 7, 0, tw["family"],
                          D.IPPROTO_TCP, 0, 0, 1 << 6, socket.htons(sport), socket.htons(dport), src, dst,
                          ifindex, cookie[0], cookie[1])
    generic = D.encode_request(D.SOCK_DESTROY, D.NLM_F_REQUEST | D.NLM_F_ACK, 7, tw["family"], 1 << 6, sockid=tw["id"])
    assert req == generic
    assert len(req) == 16 + 56


def test_port_filter_bytecode_is_an_envelope_with_valid_jumps():
    bc = D.port_filter([(8080, 8080), (9000, 9010)])
    ops = [struct.unpack_from("=BBH", bc, off) for off in range(0, len(bc), 4)]
    assert ops == [(D.INET_DIAG_BC_S_GE, 8, 20), (0, 0, 8080), (D.INET_DIAG_BC_S_LE, 8, 12), (0, 0, 9010)]


def test_state_mask_and_listen_refused():
    assert D.state_mask(["time-wait"]) == 1 << 6
    assert D.state_mask(D.ORPHAN_STATES) == (1 << 6) | (1 << 4) | (1 << 5) | (1 << 11) | (1 << 9)
    with pytest.raises(D.DiagError):
        D.state_mask(["bogus"])


SOCKS = [
    {"state": "time-wait", "sport": 8080, "src": "127.0.0.1"},
    {"state": "time-wait", "sport": 8081, "src": "127.0.0.1"},   # other port
    {"state": "time-wait", "sport": 40000, "src": "127.0.0.1"},  # dport 8080 would match `dst :8080`
    {"state": "listen", "sport": 8080, "src": "0.0.0.0"},
    {"state": "established", "sport": 8080, "src": "10.0.0.5"},
    {"state": "fin-wait-2", "sport": 8080, "src": "::ffff:10.0.0.5"},
]


def test_select_matches_local_port_and_state_only():
    got = D.select(SOCKS, [(8080, 8080)], D.ORPHAN_STATES)
    assert [(s["state"], s["sport"]) for s in got] == [("time-wait", 8080), ("fin-wait-2", 8080)]
    assert D.select(SOCKS, [(8080, 8080)], D.ORPHAN_STATES, local_addr="10.0.0.5") == [SOCKS[5]]
    assert D.count_states(got) == {"time-wait": 1, "fin-wait-2": 1}


@pytest.mark.parametrize("release,expected", [("6.18.44-fc", True), ("6.0.0", True), ("5.14.0-427.el9", None),
                                              ("4.18.0-553.el8", None), ("3.10.0-1160.el7", None), ("x", None)])
def test_timewait_destroy_by_kernel(release, expected):
    assert D.kernel_supports_timewait_destroy(release) is expected


def test_cap_net_admin_from_status():
    assert D.has_cap_net_admin("Name:\tx\nCapEff:\t000001ffffffffff\n") is True
    assert D.has_cap_net_admin("CapEff:\t0000000000000000\n") is False
    assert D.has_cap_net_admin("Name: x\n") is None


class FakeDiag(object):
    """A kernel with sockets on 8080; refuses TIME_WAIT destroy like Linux < 6.0 (SIMULATED:
    the test machine's kernel can destroy TIME_WAIT, so the refusal is faked here)."""

    refuse = {"time-wait": errno.EOPNOTSUPP}

    def __init__(self):
        self.socks = [dict(s, family=socket.AF_INET, id=(s["sport"], 0, b"", b"", 0, (i, 0)), inode=i + 1)
                      for i, s in enumerate(SOCKS)]
        FakeDiag.instance = self

    def dump(self, mask, ports, families):
        return [s for s in self.socks if mask & (1 << D.STATES[s["state"]])]

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
    monkeypatch.setattr(D, "SockDiag", FakeDiag)
    r = D.cleanup([(8080, 8080)])
    assert r["before"] == {"time-wait": 1, "fin-wait-2": 1}
    assert r["destroyed"] == 1
    assert r["refused"] == {"EOPNOTSUPP": 1}
    assert r["supported"] == {"time-wait": False, "fin-wait-2": True}
    assert r["after"] == {"time-wait": 1}  # counted again: the truth
    assert [x["port"] for x in r["listeners"]] == [8080]
    states = [s["state"] for s in FakeDiag.instance.socks]
    assert "listen" in states and "established" in states  # never touched


def test_report_mode_destroys_nothing(monkeypatch):
    monkeypatch.setattr(D, "SockDiag", FakeDiag)
    r = D.cleanup([(8080, 8080)], mode="report")
    assert r["destroyed"] == 0
    assert r["after"] == r["before"] == {"time-wait": 1, "fin-wait-2": 1}
    assert len(FakeDiag.instance.socks) == len(SOCKS)


def test_no_sockets_is_a_no_change_path(monkeypatch):
    monkeypatch.setattr(D, "SockDiag", FakeDiag)
    r = D.cleanup([(9999, 9999)])
    assert r["before"] == {} and r["destroyed"] == 0 and r["after"] == {} and r["listeners"] == []


def test_listen_state_can_never_be_cleaned():
    with pytest.raises(D.DiagError) as err:
        D.cleanup([(8080, 8080)], states=("listen",))
    assert "port conflict" in str(err.value)


def test_listener_owners_from_proc(tmp_path):
    fd = tmp_path / "42" / "fd"
    fd.mkdir(parents=True)
    (fd / "3").symlink_to("socket:[777]")
    (fd / "4").symlink_to("/dev/null")
    (tmp_path / "42" / "cmdline").write_bytes(b"python3\0/usr/local/bin/netsvc-echo\0007070\0")
    (tmp_path / "self").mkdir()
    assert D.listener_owners({777, 778}, str(tmp_path)) == {
        777: [{"pid": 42, "command": "python3 /usr/local/bin/netsvc-echo 7070"}], 778: []}
