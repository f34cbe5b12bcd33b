"""ipt_do_table traversal, counters and every match/target (sources cited per test)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sim.include.netfilter import Hook, NatKind, NatRangeFlag, RejectWith, TableName
from sim.include.nf_conntrack import IPS_DST_NAT, IPS_SRC_NAT, CtInfo
from sim.netfilter.iptables.cmd import iptables
from sim.netfilter.reject import nf_reject_tcp_reset
from sim.netfilter.x_tables import RuleAt, Verdict
from sim.netfilter.xtables import CREDITS_PER_JIFFY, Ruleset, ipt_do_table, user2credits
from sim.packet import Packet, TcpFlag
from sim.skb import Skb


@dataclass
class Ctx:
    now: float = 0.0
    local_addrs: frozenset[str] = frozenset({"10.21.17.99"})
    lines: list[tuple[int, str]] = field(default_factory=list)
    mac: str = "08:00:27:a9:c5:8c:52:54:00:12:35:02:08:00"

    def mac_header(self, skb: Skb) -> str:
        return self.mac

    def log(self, level: int, line: str, skb: Skb, at: RuleAt) -> None:
        self.lines.append((level, line))


@dataclass
class FakeConn:
    untracked: bool = False
    status: int = 0


# The seed incident's late ACK (seed README: 36.110.213.207:443 -> 10.21.17.99:39700, LEN=40, WINDOW=187).
ACK = Packet("36.110.213.207", "10.21.17.99", 443, 39700, seq=1, ack=530104, flags=TcpFlag.ACK, window=187)


def skb(pkt: Packet = ACK, indev: str | None = "eth0", outdev: str | None = None, **kw: object) -> Skb:
    return Skb(pkt, indev=indev, outdev=outdev, **kw)  # type: ignore[arg-type]


def run(rs: Ruleset, hook: Hook, s: Skb, ctx: Ctx | None = None, table: str = "filter"):
    return ipt_do_table(rs.table(TableName(table)), hook, s, ctx or Ctx())


def rules(*cmds: str) -> Ruleset:
    rs = Ruleset()
    for c in cmds:
        iptables(rs, c)
    return rs


def test_policy_counts_when_no_rule_matches() -> None:
    rs = rules("-P INPUT DROP", "-A INPUT -s 1.2.3.4 -j ACCEPT")
    res = run(rs, Hook.LOCAL_IN, skb())
    chain = rs.tables[TableName.FILTER].chains["INPUT"]
    assert (res.verdict, res.chain, res.rulenum) == (Verdict.DROP, "INPUT", 0)
    assert (chain.pkts, chain.bytes, chain.rules[0].pkts) == (1, 40, 0)


def test_jump_return_continues_after_the_jumping_rule_and_counts_each_rule() -> None:
    rs = rules("-N X", "-A INPUT -j X", "-A INPUT -j DROP", "-A X -j RETURN", "-A X -j ACCEPT")
    res = run(rs, Hook.LOCAL_IN, skb())
    t = rs.tables[TableName.FILTER]
    assert (res.verdict, res.chain, res.rulenum) == (Verdict.DROP, "INPUT", 2)
    assert [r.pkts for r in t.chains["X"].rules] == [1, 0]
    assert [r.bytes for r in t.chains["INPUT"].rules] == [40, 40]


def test_end_of_user_chain_is_an_implicit_return() -> None:
    rs = rules("-N X", "-A INPUT -j X", "-A INPUT -j DROP")
    assert run(rs, Hook.LOCAL_IN, skb()).rulenum == 2


def test_goto_does_not_push_so_return_goes_to_the_callers_caller() -> None:
    # ip_tables.c: a goto (IPT_F_GOTO) does not push; RETURN pops past it.
    rs = rules(
        "-N A", "-N B", "-A INPUT -j A", "-A INPUT -j DROP", "-A A -g B", "-A A -j ACCEPT", "-A B -j RETURN"
    )
    assert (run(rs, Hook.LOCAL_IN, skb()).verdict, run(rs, Hook.LOCAL_IN, skb()).rulenum) == (Verdict.DROP, 2)


def test_goto_from_builtin_then_end_of_chain_is_the_policy() -> None:
    rs = rules("-P INPUT DROP", "-N B", "-A INPUT -g B", "-A INPUT -j ACCEPT")
    res = run(rs, Hook.LOCAL_IN, skb())
    assert (res.verdict, res.rulenum) == (Verdict.DROP, 0)


def test_return_in_builtin_chain_is_the_policy() -> None:
    rs = rules("-A INPUT -j RETURN", "-A INPUT -j DROP")
    assert run(rs, Hook.LOCAL_IN, skb()).verdict is Verdict.ACCEPT


@pytest.mark.parametrize(
    ("spec", "hit"),
    [
        ("-s 36.110.0.0/16", True),
        ("! -s 36.110.0.0/16", False),
        ("-s 36.111.0.0/16", False),
        ("-d 10.21.17.99", True),
        ("! -d 10.21.17.99/32", False),
        ("-i eth0", True),
        ("-i eth+", True),
        ("-i docker0", False),
        ("! -i eth+", False),
        ("-i +", True),
        ("-p tcp", True),
        ("! -p tcp", False),
        ("-p udp", False),
        ("-p all", True),
        ("-p tcp --sport 443", True),
        ("-p tcp ! --sport 443", False),
        ("-p tcp --dport 39000:40000", True),
        ("-p tcp --dport :39699", False),
        ("-p tcp --dport 39700:", True),
        ("-p tcp --tcp-flags SYN,ACK ACK", True),
        ("-p tcp ! --tcp-flags SYN,ACK ACK", False),
        ("-p tcp --syn", False),
        ("-p tcp ! --syn", True),
        ("-m addrtype --dst-type LOCAL", True),
        ("-m addrtype ! --dst-type LOCAL", False),
        ("-m addrtype --src-type LOCAL", False),
    ],
)
def test_matches_and_negation(spec: str, hit: bool) -> None:
    rs = rules(f"-A INPUT {spec} -j DROP")
    assert (run(rs, Hook.LOCAL_IN, skb()).verdict is Verdict.DROP) is hit


def test_out_interface_with_no_device_does_not_match() -> None:
    rs = rules("-A FORWARD -o eth0 -j DROP")
    assert run(rs, Hook.FORWARD, skb(outdev=None)).verdict is Verdict.ACCEPT


def test_syn_flags_ignore_ece_cwr() -> None:
    # --syn is --tcp-flags FIN,SYN,RST,ACK SYN (libxt_tcp.c tcp_parse '3'); ECE/CWR outside the mask.
    syn = Packet("1.1.1.1", "10.21.17.99", 1, 2, flags=TcpFlag.SYN | TcpFlag.ECE | TcpFlag.CWR)
    rs = rules("-A INPUT -p tcp --syn -j DROP")
    assert run(rs, Hook.LOCAL_IN, skb(syn)).verdict is Verdict.DROP


@pytest.mark.parametrize(
    ("ct", "ctinfo", "state"),
    [
        (None, None, "INVALID"),
        (None, CtInfo.UNTRACKED, "UNTRACKED"),  # kernels >= 4.12: no ct, ctinfo IP_CT_UNTRACKED
        (FakeConn(untracked=True), CtInfo.NEW, "UNTRACKED"),
        (FakeConn(), CtInfo.NEW, "NEW"),
        (FakeConn(), CtInfo.ESTABLISHED, "ESTABLISHED"),
        (FakeConn(), CtInfo.ESTABLISHED_REPLY, "ESTABLISHED"),  # ctinfo % IP_CT_IS_REPLY
        (FakeConn(), CtInfo.RELATED_REPLY, "RELATED"),
        (FakeConn(status=IPS_SRC_NAT), CtInfo.ESTABLISHED, "SNAT"),
        (FakeConn(status=IPS_DST_NAT), CtInfo.ESTABLISHED_REPLY, "DNAT"),
    ],
)
def test_ctstate_from_skb_as_conntrack_mt(ct: object, ctinfo: CtInfo | None, state: str) -> None:
    others = {"INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED", "SNAT", "DNAT"} - {state}
    others.discard("ESTABLISHED" if state in ("SNAT", "DNAT") else "")
    rs = rules(
        f"-A INPUT -m conntrack --ctstate {','.join(sorted(others))} -j ACCEPT",
        f"-A INPUT -m conntrack --ctstate {state} -j DROP",
    )
    s = skb(ct=ct, ctinfo=ctinfo)
    assert run(rs, Hook.LOCAL_IN, s).rulenum == 2
    neg = rules(f"-A INPUT -m conntrack ! --ctstate {state} -j DROP")
    assert run(neg, Hook.LOCAL_IN, s).verdict is Verdict.ACCEPT
    alias = rules(f"-A INPUT -m state --state {state} -j DROP") if state not in ("SNAT", "DNAT") else None
    if alias is not None:
        assert run(alias, Hook.LOCAL_IN, s).verdict is Verdict.DROP


def test_limit_token_bucket_in_kernel_units() -> None:
    # xt_limit.c with HZ=1000: CREDITS_PER_JIFFY = POW2_BELOW32(0xFFFFFFFF/86400000 = 49) = 32.
    assert CREDITS_PER_JIFFY == 32
    assert user2credits(10000) == 32000  # 1/sec: cost = one second of credits
    rs = rules("-A INPUT -m limit --limit 1/sec --limit-burst 2 -j DROP")
    ctx = Ctx()
    seen = []
    for t in (0.0, 0.0, 0.0, 0.5, 0.999, 1.0, 1.0, 10.0, 10.0, 10.0):
        ctx.now = t
        seen.append(run(rs, Hook.LOCAL_IN, skb(), ctx).verdict is Verdict.DROP)
    # burst 2 at t=0, refill one credit per second, cap at burst.
    assert seen == [True, True, False, False, False, True, False, True, True, False]


def test_log_continues_and_prints_nf_log_ip_packet_line() -> None:
    # Field order: nf_log_syslog.c nf_log_dump_packet_common, dump_mac_header, dump_ipv4_packet,
    # nf_log_dump_tcp_header. Expected text typed from DESIGN.md's dmesg example;
    # the kernel's line ends with a space.
    rs = rules('-A INPUT -j LOG --log-prefix "Denied_INVALID " --log-level 7', "-A INPUT -j DROP")
    pkt = Packet(
        "10.0.2.2", "10.0.2.15", 587, 35152, flags=TcpFlag.ACK | TcpFlag.RST, window=65535, ip_id=57698
    )
    ctx = Ctx()
    res = run(rs, Hook.LOCAL_IN, skb(pkt), ctx)
    assert res.rulenum == 2
    assert ctx.lines == [
        (
            7,
            "Denied_INVALID IN=eth0 OUT= MAC=08:00:27:a9:c5:8c:52:54:00:12:35:02:08:00 "
            "SRC=10.0.2.2 DST=10.0.2.15 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=57698 PROTO=TCP "
            "SPT=587 DPT=35152 WINDOW=65535 RES=0x00 ACK RST URGP=0 ",
        )
    ]


def test_log_output_packet_has_no_mac_and_optional_seq() -> None:
    rs = rules("-A OUTPUT -j LOG --log-tcp-sequence")
    ctx = Ctx()
    run(rs, Hook.LOCAL_OUT, skb(indev=None, outdev="eth0", mark=5), ctx)
    assert ctx.lines[0] == (
        4,
        "IN= OUT=eth0 SRC=36.110.213.207 DST=10.21.17.99 LEN=40 TOS=0x00 PREC=0x00 "
        "TTL=64 ID=0 PROTO=TCP SPT=443 DPT=39700 SEQ=1 ACK=530104 WINDOW=187 RES=0x00 "
        "ACK URGP=0 MARK=0x5 ",
    )


def test_reject_tcp_reset_builds_rst_per_nf_reject_ip_tcphdr_put() -> None:
    rs = rules("-A INPUT -p tcp -j REJECT --reject-with tcp-reset")
    res = run(rs, Hook.LOCAL_IN, skb())
    assert res.verdict is Verdict.DROP and res.reject is not None
    assert res.reject.with_ is RejectWith.TCP_RESET
    rst = res.reject.reply
    assert rst is not None
    assert (rst.src, rst.dst, rst.sport, rst.dport) == ("10.21.17.99", "36.110.213.207", 39700, 443)
    assert (rst.seq, rst.ack, rst.flags) == (530104, 0, TcpFlag.RST)  # ACK set: seq = its ack


def test_reset_for_segment_without_ack() -> None:
    syn = Packet(
        "1.1.1.1", "2.2.2.2", 1000, 80, seq=0xFFFFFFFF, flags=TcpFlag.SYN | TcpFlag.FIN, payload_len=10
    )
    rst = nf_reject_tcp_reset(syn)
    assert rst is not None
    assert (rst.seq, rst.ack, rst.flags) == (0, 11, TcpFlag.RST | TcpFlag.ACK)  # seq+syn+fin+len mod 2**32
    assert nf_reject_tcp_reset(Packet("1.1.1.1", "2.2.2.2", 1, 2, flags=TcpFlag.RST)) is None
    assert (
        nf_reject_tcp_reset(Packet("1.1.1.1", "2.2.2.2", 1, 2, flags=TcpFlag.ACK, bad_checksum=True)) is None
    )


def test_reject_default_is_icmp_port_unreachable_without_reply() -> None:
    res = run(rules("-A INPUT -j REJECT"), Hook.LOCAL_IN, skb())
    assert res.reject is not None and res.reject.with_ is RejectWith.ICMP_PORT_UNREACHABLE
    assert res.reject.reply is None and res.reject.offending is ACK


def test_nat_targets_return_requests_without_translating() -> None:
    rs = rules(
        "-t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
        "-t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
        "-t nat -I POSTROUTING -o eth1 -p tcp -j SNAT --to-source 1.2.3.4-1.2.3.5:1000-2000 --random",
    )
    out = Packet("172.17.0.2", "36.110.213.207", 39700, 443)
    res = run(rs, Hook.POST_ROUTING, skb(out, indev=None, outdev="eth0"), table="nat")
    assert res.nat is not None and res.nat.kind is NatKind.MASQUERADE and res.verdict is Verdict.ACCEPT
    res = run(rs, Hook.POST_ROUTING, skb(out, indev=None, outdev="eth1"), table="nat")
    assert res.nat is not None and res.nat.kind is NatKind.SNAT
    r = res.nat.range
    assert (r.min_addr, r.max_addr, r.min_port, r.max_port) == ("1.2.3.4", "1.2.3.5", 1000, 2000)
    assert r.flags == NatRangeFlag.MAP_IPS | NatRangeFlag.PROTO_SPECIFIED | NatRangeFlag.PROTO_RANDOM
    inbound = Packet("1.1.1.1", "10.21.17.99", 5555, 8080)
    res = run(rs, Hook.PRE_ROUTING, skb(inbound), table="nat")
    assert res.nat is not None and (res.nat.kind, res.nat.range.min_addr, res.nat.range.min_port) == (
        NatKind.DNAT,
        "172.17.0.2",
        80,
    )


def test_rule_without_target_counts_and_goes_on() -> None:
    """A rule without -j gets libiptc's fall-through standard target (IPTCC_R_FALLTHROUGH,
    verdict = the next rule's offset): ipt_do_table() counts the packet and moves on."""
    rs = Ruleset()
    iptables(rs, "-A INPUT -p tcp --tcp-flags SYN,ACK SYN,ACK")
    iptables(rs, "-A INPUT -p tcp -j DROP")
    pkt = Packet("203.0.113.9", "10.21.17.99", 443, 39700, 1, 2, int(TcpFlag.SYN | TcpFlag.ACK), 100)
    table = rs.tables[TableName.FILTER]
    res = ipt_do_table(table, Hook.LOCAL_IN, Skb(pkt), Ctx())
    counting, drop = table.chains["INPUT"].rules
    assert (res.verdict, res.rulenum) == (Verdict.DROP, 2)
    assert (counting.pkts, counting.bytes, drop.pkts) == (1, 40, 1)
