"""Invariants of the docker-bridge world, fuzzed with perturbed conversations."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.kernel.fuzzcase import FIXES, conversation_to_case
from sim.packet import TCPHDR_RST, Packet, parse_flags
from sim.report.sentences import say
from sim.scenario.replay import run_world
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
            (ct,) = [c for c in w.trace.for_packet(e.pid) if c.step is Step.CONNTRACK and c.hook == "OUTPUT"]
            assert not (ct.ct.snat and ct.ct.direction == "reply"), done


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
    assert replies[0] == ("36.110.213.207", 443, "10.21.17.99", 39700)
    assert all(r[3] >= 1024 for r in replies)
