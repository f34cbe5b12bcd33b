"""The seed incident end to end, in both kernel profiles and with every fix.

What must happen comes from the article (shared/seed/README.md) and the kernel source: the
reply segment turns INVALID in host PREROUTING at conntrack's priority (-200) with a failed
bound, NAT (-100) skips it, routing says LOCAL, tcp_v4_rcv finds no socket, and
tcp_v4_send_reset answers with a RST whose seq is the segment's ack (RFC 793: the segment had
ACK set). The RST reaches the remote only; the container keeps retransmitting with doubling
timeouts and gives up. With either fix the upload completes.
"""

from __future__ import annotations

import functools
import itertools

import pytest

from sim.include.netfilter import Hook
from sim.packet import TCPHDR_RST
from sim.pcap.reader import read_frames
from sim.report.timeline import render, write_captures
from sim.scenario.scenario import ScenarioError, load_scenario, parse_scenario, run_scenario
from sim.trace import Step


@functools.cache
def run(kernel: str, fix: str = "none"):
    return run_scenario(load_scenario("seed-incident").with_kernel(kernel).with_fix(fix))


def invalid_packets(r):
    return [
        e
        for e in r.world.trace.events
        if e.step is Step.CONNTRACK
        and e.ns == "host"
        and e.hook is Hook.PRE_ROUTING
        and e.ct.window == "INVALID"
    ]


@pytest.mark.parametrize(
    ("kernel", "bound", "trigger"),
    [("el7", "IV", "late-ack"), ("3.10", "IV", "late-ack"), ("6.1", "I", "beyond-window")],
)
def test_the_incident(kernel, bound, trigger):
    r = run(kernel)
    (ct,) = invalid_packets(r)
    assert ct.priority == -200
    assert ct.ct.check.failed == [bound]
    # the INVALID packet is the one the trigger produced
    fired = {kind: pid for _t, kind, pid in r.fired}
    assert ct.pid == fired[trigger]
    steps = [(e.step, e.hook, e.verdict) for e in r.world.trace.for_packet(ct.pid) if e.ns == "host"]
    assert (Step.NAT, Hook.PRE_ROUTING, "SKIP") in steps
    assert (Step.ROUTE, None, "LOCAL") in steps
    assert (Step.SOCKET, None, "NO_SOCKET") in steps
    (rst_pid,) = r.rsts
    rst = next(e.before for e in r.world.trace.for_packet(rst_pid) if e.step is Step.SEND)
    assert (rst.flags, rst.seq, rst.ack) == (TCPHDR_RST, ct.before.ack, 0)
    assert (rst.src, rst.sport, rst.dst, rst.dport) == ("10.21.17.99", 39700, "36.110.213.207", 443)
    seen = {e.ns for e in r.world.trace.for_packet(rst_pid) if e.step is Step.RECV}
    assert seen == {"remote"}
    assert r.remote.torn_down_at is not None
    assert not r.completed
    assert r.client.aborted_reason == "too many retransmissions"
    assert r.client.retransmissions == 15  # tcp_retries2


def test_the_article_kernel_is_the_default():
    assert load_scenario("seed-incident").kernel == "el7"  # CentOS 7, 3.10.0-1160.el7


def test_container_backs_off_exponentially():
    r = run("3.10")
    sends = [
        e.t
        for e in r.world.trace.events
        if e.step is Step.SEND and e.ns == "ctr" and e.t > r.remote.torn_down_at
    ]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(sends) if b - a > 0.1]
    # RFC 6298: each timeout doubles the RTO, capped at 120 s (TCP_RTO_MAX)
    assert all(b == pytest.approx(min(2 * a, 120.0), rel=0.01) for a, b in itertools.pairwise(gaps))
    assert gaps[-1] == pytest.approx(120.0)


def test_61_ignores_the_late_ack_and_still_translates_it():
    r = run("6.1")
    late = next(pid for _t, kind, pid in r.fired if kind == "late-ack")
    ct = next(e for e in r.world.trace.for_packet(late) if e.step is Step.CONNTRACK and e.ns == "host")
    assert ct.ct.window == "IGNORE"
    assert ct.ct.reason.startswith("ignored ACK under lower bound")
    delivered = [e for e in r.world.trace.for_packet(late) if e.step is Step.DELIVER]
    assert [e.ns for e in delivered] == ["ctr"]
    assert delivered[0].before.dst == "172.17.0.2"


@pytest.mark.parametrize("kernel", ["el7", "3.10", "6.1"])
@pytest.mark.parametrize("fix", ["drop-invalid", "be-liberal"])
def test_each_fix_completes_the_upload(kernel, fix):
    r = run(kernel, fix)
    assert r.completed and r.rsts == []
    windows = {
        e.ct.window
        for e in r.world.trace.events
        if e.step is Step.CONNTRACK and e.ns == "host" and e.hook is Hook.PRE_ROUTING
    }
    assert ("INVALID" in windows) == (fix == "drop-invalid")


def test_same_seed_same_trace():
    a = run_scenario(load_scenario("seed-incident"))
    b = run_scenario(load_scenario("seed-incident"))
    assert [(e.t, e.pid, e.step, e.ns, e.verdict) for e in a.world.trace.events] == [
        (e.t, e.pid, e.step, e.ns, e.verdict) for e in b.world.trace.events
    ]


def test_captures_show_the_rst_only_on_the_host_uplink(tmp_path):
    (host, h_pkts, h_rst), (ctr, c_pkts, c_rst) = write_captures(run("3.10"), tmp_path)
    assert (h_rst, c_rst) == (1, 0)
    host_frames, ctr_frames = list(read_frames(host)), list(read_frames(ctr))
    assert len(host_frames) == h_pkts and len(ctr_frames) == c_pkts
    assert sum(1 for f in host_frames if f.pkt is not None and f.pkt.flags & TCPHDR_RST) == 1


def test_timeline_tells_the_story():
    text = render(run("3.10"))
    assert "conntrack says INVALID" in text
    assert "bound IV" in text and "FAIL" in text
    assert "nf_nat_inet_fn returns NF_ACCEPT untranslated" in text
    assert "the container never sees it" in text
    assert "upload FAILED" in text


def test_bad_scenarios_get_one_line_errors(tmp_path):
    with pytest.raises(ScenarioError, match=r"x.toml: missing \[upload\]"):
        parse_scenario({}, "x.toml")
    with pytest.raises(ScenarioError, match=r"x.toml: trigger\[0\].kind"):
        parse_scenario({"upload": {}, "trigger": [{"kind": "nope"}]}, "x.toml")
    with pytest.raises(ScenarioError, match=r"x.toml: upload.bytes: expected an integer"):
        parse_scenario({"upload": {"bytes": "lots"}}, "x.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ScenarioError, match=r"bad\.toml"):
        load_scenario(str(bad))
    with pytest.raises(ScenarioError, match=r"built-in scenarios: .*dns-race.*seed-incident"):
        load_scenario("no-such-scenario")
