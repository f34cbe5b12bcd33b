"""sim.net.ipv4 on the docker-bridge world with passive end hosts.

Expected behaviour from net/ipv4/ip_forward.c (ip_forward(): a packet with TTL <= 1 is not
forwarded; ip_decrease_ttl() takes one off the forwarded copy), net/ipv4/ip_input.c
(ip_rcv_finish() routes; ip_local_deliver() -> LOCAL_IN) and net/ipv4/tcp_ipv4.c
(tcp_v4_rcv(): no socket -> tcp_v4_send_reset(), which never answers a RST; the RST's seq is the
segment's ACK number).
"""

from __future__ import annotations

from sim.packet import Packet, parse_flags
from sim.topology.docker_bridge import DockerBridge, docker_bridge
from sim.trace import Step, Why

CFG = DockerBridge(passive_ends=True)


def _world():
    return docker_bridge(CFG)


def test_a_forwarded_packet_loses_one_ttl():
    w = _world()
    w.inject(
        "ctr",
        "eth0",
        Packet(CFG.containers[0], CFG.remote_ip, 40000, 443, 1, 0, parse_flags("S"), 64240, ttl=64),
    )
    w.run()
    ((_, _, got, _),) = [r for r in w.captures[("remote", "eth0")].records if r[1] == "in"]
    assert got.ttl == 63


def test_ttl_one_is_not_forwarded():
    w = _world()
    pid = w.inject(
        "ctr",
        "eth0",
        Packet(CFG.containers[0], CFG.remote_ip, 40000, 443, 1, 0, parse_flags("S"), 64240, ttl=1),
    )
    w.run()
    (drop,) = [e for e in w.trace.for_packet(pid) if e.step is Step.DROP]
    assert (drop.ns, drop.why) == ("host", Why.TTL_EXCEEDED)
    assert w.captures[("remote", "eth0")].records == []


def test_no_socket_answers_with_a_rst_and_never_a_rst_to_a_rst():
    w = _world()
    ack = Packet(CFG.remote_ip, CFG.host_ip, 443, 5555, 700, 12345, parse_flags("A"), 502)
    pid = w.inject("remote", "eth0", ack)
    w.run()
    (child,) = w.trace.caused_by(pid)
    rst = next(e.before for e in w.trace.for_packet(child) if e.step is Step.SEND)
    assert rst is not None
    assert (rst.src, rst.sport, rst.dst, rst.dport) == (CFG.host_ip, 5555, CFG.remote_ip, 443)
    assert (rst.flags, rst.seq, rst.ack) == (parse_flags("R"), 12345, 0)
    pid = w.inject(
        "remote", "eth0", Packet(CFG.remote_ip, CFG.host_ip, 443, 5556, 700, 0, parse_flags("R"), 0)
    )
    w.run()
    assert w.trace.caused_by(pid) == []
    assert [e.why for e in w.trace.for_packet(pid) if e.step is Step.RST] == [Why.NO_RST_FOR_RST]
