"""sim.netfilter.conntrack.format_entry: a traced entry as ``conntrack -L`` prints it. The expected lines
are the ones docs/03-conntrack.md shows (conntrack-tools' default format: protocol name and
number, seconds left, state, the original tuple, [UNREPLIED] before the reply tuple,
[ASSURED] after it, mark and use)."""

from __future__ import annotations

from sim.include.nf_conntrack import CtEntry
from sim.include.nf_conntrack_tcp import TcpState
from sim.netfilter.conntrack import format_entry as conntrack_line
from sim.scenario.scenario import load_scenario, run_scenario
from sim.trace import Step

CTR, REMOTE, HOST = "172.17.0.2", "36.110.213.207", "10.21.17.99"


def _entry(**kw: object) -> CtEntry:
    base: dict[str, object] = dict(
        original=(CTR, 39700, REMOTE, 443),
        reply=(REMOTE, 443, HOST, 39700),
        state=TcpState.ESTABLISHED,
        expires=1000.0,
        seen_reply=True,
        assured=True,
        mark=0,
    )
    return CtEntry(**(base | kw))  # type: ignore[arg-type]


def test_an_assured_entry_after_snat():
    assert conntrack_line(_entry(), 820.0) == (
        "tcp      6 180 ESTABLISHED src=172.17.0.2 dst=36.110.213.207 sport=39700 dport=443 "
        "src=36.110.213.207 dst=10.21.17.99 sport=443 dport=39700 [ASSURED] mark=0 use=1"
    )


def test_an_unreplied_entry_and_seconds_left_never_negative():
    line = conntrack_line(_entry(state=TcpState.SYN_SENT, seen_reply=False, assured=False), 1000.5)
    assert line == (
        "tcp      6 0 SYN_SENT src=172.17.0.2 dst=36.110.213.207 sport=39700 dport=443 [UNREPLIED] "
        "src=36.110.213.207 dst=10.21.17.99 sport=443 dport=39700 mark=0 use=1"
    )


def test_the_trace_keeps_a_snapshot_not_the_live_entry():
    """Each traced conntrack event holds the entry as it stood then: in the seed run the SYN/ACK
    finds it in SYN_RECV, not yet assured (RFC 793 handshake, nf_conntrack_proto_tcp.c's
    tcp_conntracks), and the last packets find it ESTABLISHED and assured."""
    run = run_scenario(load_scenario("seed-incident"))
    entries = [
        e.ct.entry
        for e in run.world.trace.events
        if e.step is Step.CONNTRACK and e.ns == "host" and e.ct is not None and e.ct.entry is not None
    ]
    first, last = entries[0], entries[-1]
    assert (first.state, first.assured, last.state, last.assured) == (
        TcpState.SYN_RECV,
        False,
        TcpState.ESTABLISHED,
        True,
    )
