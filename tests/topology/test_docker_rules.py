"""Docker 27.x's default-bridge ruleset, loaded and exercised."""

from __future__ import annotations

from sim.include.netfilter import Hook, NatKind, TableName
from sim.netfilter.iptables.restore import iptables_restore
from sim.netfilter.iptables.save import save_table
from sim.netfilter.x_tables import Verdict
from sim.netfilter.xtables import Ruleset, ipt_do_table
from sim.packet import Packet, TcpFlag
from sim.skb import Skb
from sim.topology.docker_rules import PublishedPort, docker_ruleset
from tests.netfilter.test_xtables import Ctx

# A real 27.x-era host's `iptables-save` (hassio dump, 2024, iptables v1.8.9 nf_tables, default bridge part).
REAL_FILTER = """\
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
"""
REAL_NAT = """\
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
"""


def load(**kw: object) -> Ruleset:
    rs = Ruleset()
    iptables_restore(rs, docker_ruleset(**kw))  # type: ignore[arg-type]
    return rs


def rules_of(rs: Ruleset, table: TableName) -> str:
    return "".join(
        line + "\n"
        for line in save_table(rs.tables[table], counters=False).splitlines()
        if line.startswith("-A")
    )


def test_default_bridge_matches_a_real_dump() -> None:
    rs = load()
    assert rules_of(rs, TableName.FILTER) == REAL_FILTER
    assert rules_of(rs, TableName.NAT) == REAL_NAT
    assert ":FORWARD DROP [0:0]" in save_table(rs.tables[TableName.FILTER])


def test_published_port_rules_and_custom_bridge() -> None:
    rs = load(bridge="br0", subnet="10.9.0.0/24", ports=(PublishedPort(4357, "10.9.0.6", 80),))
    nat = rules_of(rs, TableName.NAT)
    assert "-A POSTROUTING -s 10.9.0.6/32 -d 10.9.0.6/32 -p tcp -m tcp --dport 80 -j MASQUERADE\n" in nat
    assert "-A DOCKER ! -i br0 -p tcp -m tcp --dport 4357 -j DNAT --to-destination 10.9.0.6:80\n" in nat
    assert "-A DOCKER -d 10.9.0.6/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -j ACCEPT\n" in rules_of(
        rs, TableName.FILTER
    )


def test_invalid_packet_from_container_is_still_forwarded() -> None:
    # DESIGN.md: Docker's `-i docker0 ! -o docker0 -j ACCEPT` accepts the INVALID (no ct) packet.
    rs = load()
    pkt = Packet("172.17.0.2", "36.110.213.207", 39700, 443, flags=TcpFlag.ACK)
    res = ipt_do_table(
        rs.tables[TableName.FILTER], Hook.FORWARD, Skb(pkt, indev="docker0", outdev="eth0"), Ctx()
    )
    assert (res.verdict, res.chain, res.rulenum) == (Verdict.ACCEPT, "FORWARD", 5)


def test_inbound_published_port_gets_dnat_request_and_masquerade_outbound() -> None:
    rs = load(ports=(PublishedPort(8080, "172.17.0.2", 80),))
    nat = rs.tables[TableName.NAT]
    inbound = Skb(Packet("1.1.1.1", "10.21.17.99", 5000, 8080, flags=TcpFlag.SYN), indev="eth0")
    res = ipt_do_table(nat, Hook.PRE_ROUTING, inbound, Ctx())
    assert res.nat is not None and res.nat.kind is NatKind.DNAT and res.chain == "DOCKER"
    outbound = Skb(Packet("172.17.0.2", "36.110.213.207", 39700, 443, flags=TcpFlag.SYN), outdev="eth0")
    res = ipt_do_table(nat, Hook.POST_ROUTING, outbound, Ctx())
    assert res.nat is not None and res.nat.kind is NatKind.MASQUERADE
