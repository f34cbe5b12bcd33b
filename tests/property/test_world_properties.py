"""Invariants of the docker-bridge world, fuzzed with perturbed conversations: every packet
has exactly one fate, NAT reply tuples are unique, the same seed gives the same trace."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.include.netfilter import Hook
from sim.include.nf_conntrack import CtDir
from sim.packet import TCPHDR_RST, Packet, parse_flags
from sim.report.sentences import say
from sim.scenario.case import parse_case
from sim.scenario.fuzzcase import FIXES, conversation_to_case
from sim.scenario.replay import build_world, run_world
from sim.scenario.scenario import load_scenario, run_scenario
from sim.testing.strategies import perturbed_conversations
from sim.topology.docker_bridge import DockerBridge, docker_bridge
from sim.trace import Step

TERMINAL = (Step.DELIVER, Step.DROP)


def _fates(w, pid):
    events = w.trace.for_packet(pid)
    return [e for e in events if e.step in TERMINAL or (e.step is Step.SOCKET and e.ns == "host")]


@settings(max_examples=100)
@given(perturbed_conversations(max_segment=1400), st.sampled_from(FIXES))
def test_every_packet_has_exactly_one_fate(case, fix):
    conv, done = case
    w, _ = run_world(conversation_to_case(conv.segments, name="p", fix=fix))
    sent = [e.pid for e in w.trace.events if e.step is Step.SEND]
    for pid in sent:
        assert len(_fates(w, pid)) == 1, (done, pid, [say(e) for e in w.trace.for_packet(pid)])


@settings(max_examples=100)
@given(perturbed_conversations(max_segment=1400))
def test_drop_invalid_means_no_host_rst_for_a_tracked_connection(case):
    conv, done = case
    w, _ = run_world(conversation_to_case(conv.segments, name="p", fix="drop-invalid"))
    for e in w.trace.events:
        if e.step is Step.SEND and e.cause is not None and e.before.flags & TCPHDR_RST:
            # The RST's own trip through the host's OUTPUT conntrack says which entry, if any,
            # it belongs to at that moment. On the reply side of the container's masqueraded
            # connection it would tear the upload down. (A remote ACK for a connection nobody
            # has is picked up mid-stream as NEW, not INVALID, and the host still answers it
            # with a RST -- the kernel does the same; that is not the container's connection.)
            mine = w.trace.for_packet(e.pid)
            (ct,) = [c for c in mine if c.step is Step.CONNTRACK and c.hook is Hook.LOCAL_OUT]
            assert not (ct.ct.snat and ct.ct.direction is CtDir.REPLY), done


def test_nat_reply_tuples_stay_unique_when_containers_share_a_port():
    w = docker_bridge(DockerBridge(containers=("172.17.0.2", "172.17.0.3", "172.17.0.4"), passive_ends=True))
    for name in ("ctr", "ctr2", "ctr3"):
        src = w.namespaces[name].devices["eth0"].addr
        w.send(name, Packet(src, "36.110.213.207", 39700, 443, 1, 0, parse_flags("S"), 29200))
    w.run()
    table = w.namespaces["host"].conntrack
    replies = [ct.tuples[1] for ct in table]
    assert len(replies) == 3 and len(set(replies)) == 3
    # the first keeps its port (MASQUERADE keeps a free port); the others get new ones
    assert replies[0] == ("36.110.213.207", 443, "10.21.17.99", 39700, 6)  # IPPROTO_TCP
    assert all(r[3] >= 1024 for r in replies)


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from([39700, 39701, 1024]), st.sampled_from([443, 80])),
        min_size=1,
        max_size=12,
    )
)
def test_nat_reply_tuples_are_unique(connections):
    """nf_nat_core.c get_unique_tuple(): MASQUERADE never gives two connections the same reply
    tuple, whatever ports the containers pick (conntrack could not tell their replies apart)."""
    w = docker_bridge(
        DockerBridge(containers=("172.17.0.2", "172.17.0.3", "172.17.0.4", "172.17.0.5"), passive_ends=True)
    )
    names = ["ctr", "ctr2", "ctr3", "ctr4"]
    for i, (ctr, sport, dport) in enumerate(connections):
        src = w.namespaces[names[ctr]].devices["eth0"].addr
        w.send(names[ctr], Packet(src, "36.110.213.207", sport, dport, 1000 * i, 0, parse_flags("S"), 29200))
    w.run()
    entries = list(w.namespaces["host"].conntrack)
    replies = [ct.tuples[1] for ct in entries]
    assert len(set(replies)) == len(replies) == len({(c, s, d) for c, s, d in connections})


def _canonical(w):
    """The trace as comparable values: the typed events and the sentences they read as."""
    return [(e, say(e)) for e in w.trace.events]


impairments = st.fixed_dictionaries(
    {
        "loss": st.sampled_from([0.0, 0.1, 0.5]),
        "duplicate": st.sampled_from([0.0, 0.2]),
        "jitter": st.sampled_from([0.0, 0.01]),
        "reorder": st.sampled_from([0.0, 0.3]),
        "delay": st.sampled_from([0.0, 0.005]),
    }
)


@settings(max_examples=50)
@given(perturbed_conversations(max_segment=1400), st.integers(0, 2**32), impairments)
def test_same_seed_gives_the_same_trace(case, seed, link):
    """Every random choice (ISNs, NAT ports, loss, duplication, jitter, reordering) comes from
    the world's seeded RNGs, so a rerun with the same seed repeats every event."""
    conv, _ = case
    topology, _, _, packets = parse_case(conversation_to_case(conv.segments, name="p"))
    traces = []
    for _ in range(2):
        w = build_world(topology, "6.1", seed)
        for ns in w.namespaces.values():
            for dev in ns.devices.values():
                for name, value in link.items():
                    setattr(dev, name, value)
        for side, pkt, delay, _ in packets:
            w.run(until=w.clock.now + delay)
            w.inject(side, "eth0", pkt)
        w.run()
        traces.append(_canonical(w))
    assert traces[0] == traces[1]


@settings(max_examples=10)
@given(st.integers(0, 2**32))
def test_same_seed_gives_the_same_scenario_trace(seed):
    sc = replace(load_scenario("seed-incident"), seed=seed, upload_bytes=60_000, triggers=[])
    first, second = run_scenario(sc), run_scenario(sc)
    assert _canonical(first.world) == _canonical(second.world)
    assert first.client.bytes_acked == second.client.bytes_acked
