"""A scenario's triggers, run by the world: each fires once, at the point its table says
(sim/scenario/scenario.py's schema; the seed scenario's numbers)."""

from __future__ import annotations

import functools

import pytest

from sim.packet import TCPHDR_ACK
from sim.scenario.scenario import load_scenario, run_scenario
from sim.trace import Step


@functools.cache
def seed(kernel: str = "3.10"):
    sc = load_scenario("seed-incident").with_kernel(kernel)
    return sc, run_scenario(sc)


def test_each_trigger_fires_once():
    """On 6.1 the late ACK is only IGNOREd, so the upload goes on and both fire."""
    sc, r = seed("6.1")
    assert sorted(kind for _t, kind, _pid in r.fired) == sorted(t.kind for t in sc.triggers)


def test_beyond_window_stays_quiet_once_the_remote_forgot_the_connection():
    """On 3.10 the host's RST tears the remote's connection down before the upload reaches
    beyond-window's mark (the seed scenario's ``rst = "any"`` middlebox)."""
    _sc, r = seed("3.10")
    assert r.remote.torn_down_at is not None
    assert [kind for _t, kind, _pid in r.fired] == ["late-ack"]


def test_late_ack_holds_one_bare_ack_on_the_remote_uplink():
    """The held ACK leaves remote eth0 and reaches the host after the link delay plus ``hold``."""
    sc, r = seed()
    (trigger,) = [t for t in sc.triggers if t.kind == "late-ack"]
    (pid,) = [pid for _t, kind, pid in r.fired if kind == "late-ack"]
    events = r.world.trace.for_packet(pid)
    xmit = next(e for e in events if e.step is Step.XMIT and (e.ns, e.dev) == ("remote", "eth0"))
    recv = next(e for e in events if e.step is Step.RECV and (e.ns, e.dev) == ("host", "eth0"))
    assert (xmit.before.flags, xmit.before.payload_len) == (TCPHDR_ACK, 0)
    assert recv.t - xmit.t == pytest.approx(sc.topology.link_delay + trigger.hold)


def test_beyond_window_sends_past_the_remotes_snd_nxt():
    """The segment starts ``offset`` past what the remote had sent, with 100 bytes."""
    sc, r = seed("6.1")
    (trigger,) = [t for t in sc.triggers if t.kind == "beyond-window"]
    (pid,) = [pid for _t, kind, pid in r.fired if kind == "beyond-window"]
    send = next(e for e in r.world.trace.for_packet(pid) if e.step is Step.SEND)
    assert (send.ns, send.before.payload_len) == ("remote", 100)
    # the remote's last segment before it: the trigger's seq is offset past that one's end
    sent = [
        e.before
        for e in r.world.trace.events
        if e.step is Step.SEND and e.ns == "remote" and e.pid < pid and e.before.payload_len == 0
    ]
    assert send.before.seq == (sent[-1].seq + trigger.offset) % 2**32
