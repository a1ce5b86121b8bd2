# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.netsvc.resilience.plugins.module_utils.primitives import _selinux

HTTPD = "system_u:system_r:httpd_t:s0"


def test_mode_is_read_from_selinuxfs(tmp_path):
    assert _selinux.mode(str(tmp_path / "none")) == "disabled"
    (tmp_path / "enforce").write_text("1")
    assert _selinux.mode(str(tmp_path)) == "enforcing"
    (tmp_path / "enforce").write_text("0")
    assert _selinux.mode(str(tmp_path)) == "permissive"


def test_context_type():
    assert _selinux.context_type(HTTPD) == "httpd_t"
    assert _selinux.context_type("system_u:system_r:init_t:s0-s0:c0.c1023") == "init_t"
    assert _selinux.context_type("") == "" and _selinux.context_type(None) == ""


def test_compute_create_writes_the_query_and_reads_the_answer(tmp_path):
    # selinuxfs's create is a transaction file; a plain file shows what is written and read back
    (tmp_path / "class" / "process").mkdir(parents=True)
    (tmp_path / "class" / "process" / "index").write_text("2\n")
    (tmp_path / "create").write_text("")
    # a plain file reads back what was written (from the start: the fd is at its end after the
    # write, so the answer read is empty) - what matters is the query's form
    _selinux.compute_create("system_u:system_r:init_t:s0", "system_u:object_r:httpd_exec_t:s0", "process",
                            str(tmp_path))
    assert (tmp_path / "create").read_text() == "system_u:system_r:init_t:s0 system_u:object_r:httpd_exec_t:s0 2"


def test_denied_ports_needs_the_control_bind_first():
    calls = []

    def probe(label, port):
        calls.append((label, port))
        return {0: "ok", 80: "in use", 8081: "denied", 8008: "ok"}[port]

    label, denied = _selinux.denied_ports("/usr/sbin/nginx", [80, 8008, 8081], probe, lambda prog: HTTPD)
    assert (label, denied) == (HTTPD, [8081])
    assert calls[0] == (HTTPD, 0)
    # this process may not create sockets in that context: nothing can be told, nothing refused
    assert _selinux.denied_ports("/usr/sbin/nginx", [8081], lambda label, port: None,
                                 lambda prog: HTTPD) == (None, [])
    # the control bind itself denied: not the port's doing
    assert _selinux.denied_ports("/usr/sbin/nginx", [8081], lambda label, port: "denied",
                                 lambda prog: HTTPD) == (None, [])

    def no_label(prog):
        raise OSError(61, "no attribute")

    assert _selinux.denied_ports("/usr/sbin/nginx", [8081], probe, no_label) == (None, [])


def test_socket_unit_refusal_names_the_domain_the_port_and_the_fix():
    def denied(program, ports):
        return HTTPD, [p for p in ports if p == 8081]

    def nginx():
        return "/usr/sbin/nginx"

    why = _selinux.socket_unit_refusal("nginx.service", nginx, [80, 8081], True, denied)
    assert "bind port(s) 8081" in why and "(/usr/sbin/nginx) runs in, httpd_t" in why
    assert "semanage port -a -t http_port_t -p tcp PORT" in why and "community.general.seport" in why
    assert "-m instead of -a for a port the policy already types" in why
    # nothing denied, not enforcing, no program or no ports: no refusal
    assert _selinux.socket_unit_refusal("nginx.service", nginx, [80], True, denied) is None
    assert _selinux.socket_unit_refusal("nginx.service", nginx, [8081], False, denied) is None
    assert _selinux.socket_unit_refusal("nginx.service", lambda: None, [8081], True, denied) is None
    assert _selinux.socket_unit_refusal("nginx.service", nginx, [], True, denied) is None
    # the program (a systemctl call) is read only where SELinux enforces
    asked = []
    assert _selinux.socket_unit_refusal("nginx.service", lambda: asked.append(1), [8081], False, denied) is None
    assert asked == []
    # a domain without a known port type: the admin names one
    why = _selinux.socket_unit_refusal("x.service", lambda: "/opt/x", [8081], True,
                                       lambda program, ports: ("system_u:system_r:x_t:s0", ports))
    assert "semanage port -a -t TYPE -p tcp PORT" in why


def test_bind_result_without_selinux_here(tmp_path):
    # no such procattr file: this process cannot create sockets in another context
    assert _selinux.bind_result(HTTPD, 0, socket.AF_INET, str(tmp_path / "sockcreate")) is None
    # a writable stand-in: the socket is created, bound and closed - a free port binds ("ok"),
    # one held by a listener here is "in use"
    attr = tmp_path / "sockcreate"
    attr.write_text("")
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("0.0.0.0", 0))
    held.listen(1)
    try:
        assert _selinux.bind_result(HTTPD, 0, socket.AF_INET, str(attr)) == "ok"
        assert _selinux.bind_result(HTTPD, held.getsockname()[1], socket.AF_INET, str(attr)) == "in use"
    finally:
        held.close()
    assert attr.read_text() == HTTPD  # a plain file keeps what was written; selinuxfs resets on the empty write
