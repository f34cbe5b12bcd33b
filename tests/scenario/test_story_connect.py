"""The stories' TCP client step (``connect``) and snat-port-clash told with it: the loser's
client retransmits its SYN when the timer ``tcp_connect()`` armed fires, and connects through
a fresh conntrack entry. Expected values are typed from the kernel source:

- ``TCP_TIMEOUT_INIT`` is ``((unsigned)(1*HZ))``, 1 s, in include/net/tcp.h of every profile's
  tree (3.10.99 to 6.18.y); ``tcp_connect()`` arms the retransmission timer with
  ``icsk_rto``, which ``tcp_init_sock()`` (and el7's ``tcp_connect_init()``, 4.19's and later
  ones through ``tcp_timeout_init()``) set to it; ``tcp_retransmit_timer()`` resends the SYN;
- the case contract's default delay before a packet is 0.05 s (sim/scenario/case.py), so the
  story's first SYN leaves at 0.050 s and its retransmission at 1.050 s;
- 3.10.99 nf_nat_proto_common.c ``nf_nat_l4proto_unique_tuple()``: without ``--to-ports`` a
  port >= 1024 is searched from ``min = 1024`` at ``off = *rover``, the static
  ``tcp_port_rover`` that starts at 0: the first free port is 1024;
- 6.18 nf_conntrack_core.c ``nf_conntrack_tuple_taken()`` counts ``found`` when the proposed
  reply tuple is in the table (``NF_CT_STAT_INC_ATOMIC(net, found)``), so the retransmission's
  ``get_unique_tuple()`` counts it once;
- ``tcp_write_timeout()`` gives up a SYN_SENT socket after ``tcp_syn_retries`` (6)
  retransmissions, i.e. once ``retransmits_timed_out()`` sees ``((2 << 6) - 1) * 1 s`` =
  127 s since the first SYN (3.10.99 tcp_timer.c; 5.x and 6.1 ``tcp_model_timeout()``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.netfilter.profiles import PROFILES
from sim.packet import TCPHDR_SYN, Packet
from sim.scenario.case import parse_case
from sim.scenario.loader import CASES_DIR, InputError
from sim.scenario.moment import Moment
from sim.scenario.scenario import load_any
from sim.scenario.story import Story, StoryRun, parse_story, run_story

TCP_TIMEOUT_INIT_S = 1.0
FIRST_SYN_AT = 0.05
OBSERVED = Path(__file__).parents[1] / "kernel" / "observed"
# tcp_syn_linear_timeouts (4 by default in 6.12.y's and 6.18.y's tcp_sk_init(), absent from
# 6.1.y) keeps later SYN retransmissions 1 s apart; the endpoint model doubles every RTO, so
# only the first retransmission is claimed on those two.
EXPONENTIAL_SYN_BACKOFF = [k for k in PROFILES if k not in ("6.12", "6.18")]


def clash(kernel: str, fix: str = "none") -> StoryRun:
    story = load_any("snat-port-clash")
    assert isinstance(story, Story)
    return run_story(story.with_kernel(kernel).with_fix(fix))


def sent(run: StoryRun, m: Moment) -> Packet:
    assert m.pid is not None
    first = run.world.trace.for_packet(m.pid)[0].before
    assert first is not None
    return first


def syns_from(run: StoryRun, src: str) -> list[Moment]:
    """The SYNs the client at ``src`` (ip:port) sent, in order."""
    out = []
    for m in run.moments:
        if m.pid is None or m.obs is None or " answers: " in m.text:
            continue
        p = sent(run, m)
        if p.flags == TCPHDR_SYN and f"{p.src}:{p.sport}" == src:
            out.append(m)
    return out


@pytest.mark.parametrize("kernel", list(PROFILES))
def test_the_loser_sends_its_syn_again_after_tcp_timeout_init_and_connects(kernel: str) -> None:
    run = clash(kernel)
    first, again = syns_from(run, "192.0.2.2:39000")
    assert first.obs is not None and again.obs is not None
    # __nf_conntrack_confirm(): TCP has no allow_clash, so the loser is dropped on every kernel
    assert first.obs["fate"] == "dropped:host" and first.obs["ct_stats"].get("insert_failed") == 1
    assert run.decisive is first and run.event == "insert_failed"
    # the same SYN, TCP_TIMEOUT_INIT later
    assert first.t == pytest.approx(FIRST_SYN_AT)
    assert again.t == pytest.approx(FIRST_SYN_AT + TCP_TIMEOUT_INIT_S)
    assert sent(run, again).seq == sent(run, first).seq == 100
    # a fresh entry (resolve_normal_ct() finds none: the dropped one was never inserted) and a
    # new port: 39000 is in ctr2's confirmed reply tuple
    assert again.obs["ctstate"] == "NEW" and again.obs["fate"] == "delivered:remote"
    new_src = again.obs["delivered_as"]["src"]
    assert new_src.startswith("198.51.100.1:") and new_src != "198.51.100.1:39000"
    # both connections end up in the table, established
    assert sorted(ct.orig[0] for ct in run.table.entries(run.world.clock.now)) == ["192.0.2.2", "192.0.2.7"]
    assert {ct.state_name() for ct in run.table.entries(run.world.clock.now)} == {"ESTABLISHED"}
    # the connect took one TCP_TIMEOUT_INIT longer: the symptom, told after the decisive drop
    late = [m for m in run.moments if m.pid is None and m.failed]
    assert [m.text for m in late] == ["ctr is connected after 1.000 s (its SYN sent 2 times)"]
    assert "TCP_TIMEOUT_INIT (1 s)" in late[0].failed
    on_time = next(m for m in run.moments if m.text.startswith("ctr2 is connected"))
    assert on_time.text == "ctr2 is connected after 0.000 s" and not on_time.failed


def test_on_3_10_the_retransmission_gets_port_1024_from_the_rover() -> None:
    (_, again) = syns_from(clash("3.10"), "192.0.2.2:39000")
    assert again.obs is not None and again.obs["delivered_as"]["src"] == "198.51.100.1:1024"


def test_on_6_18_the_port_search_counts_found_once() -> None:
    (_, again) = syns_from(clash("6.18"), "192.0.2.2:39000")
    assert again.obs is not None and again.obs["ct_stats"] == {"found": 1}


@pytest.mark.parametrize("kernel", [k for k in PROFILES if k != "3.10"])
def test_random_fully_connects_both_without_a_retransmission(kernel: str) -> None:
    run = clash(kernel, "random-fully")
    assert run.succeeded
    for src in ("192.0.2.2:39000", "192.0.2.7:39000"):
        (only,) = syns_from(run, src)  # no second SYN
        assert only.obs is not None and only.obs["fate"] == "delivered:remote"
    done = [m.text for m in run.moments if " is connected after " in m.text]
    assert done == ["ctr is connected after 0.000 s", "ctr2 is connected after 0.000 s"]


def header(p: Packet) -> tuple[Any, ...]:
    return (p.src, p.sport, p.dst, p.dport, p.flags, p.seq, p.ack, p.window, p.options)


@pytest.mark.parametrize(("fix", "count"), [("none", 5), ("random-fully", 2)])
def test_the_story_cases_are_the_story_s_own_packets(fix: str, count: int) -> None:
    """sim/scenario/cases/story-snat-port-clash*.json send what the story sends, up to where
    the server would answer a port the kernel picks at random (which a case cannot name)."""
    run = clash("6.18", fix)
    name = "story-snat-port-clash" + ("" if fix == "none" else f"-{fix}")
    _topology, _sysctls, _rules, packets = parse_case(json.loads((CASES_DIR / f"{name}.json").read_text()))
    story = [sent(run, m) for m in run.moments if m.pid is not None]
    if fix != "none":  # both SYNs are answered: the case holds the two SYNs
        story = [q for q in story if q.flags == TCPHDR_SYN]
    story = story[:count]
    assert len(story) == count and [header(p.pkt) for p in packets] == [header(q) for q in story]


def test_the_live_kernel_gives_the_retransmission_a_fresh_entry_and_another_port() -> None:
    observed: list[dict[str, Any]] = json.loads((OBSERVED / "story-snat-port-clash.json").read_text())[
        "observations"
    ]
    assert observed[0]["fate"] == "dropped:host"
    assert observed[0]["ct_stats"] == {"insert_failed": 1, "drop": 1}
    retry = observed[4]
    assert (retry["ctstate"], retry["tcp_state"], retry["fate"]) == ("NEW", "SYN_SENT", "delivered:remote")
    assert retry["delivered_as"]["src"] != "198.51.100.1:39000"


def lone_connect(answer: list[str], src: str = "192.0.2.2:40000", seq: int = 7) -> dict[str, Any]:
    return {
        "answer": answer,
        "step": [{"connect": {"from": "ctr", "src": src, "dst": "198.51.100.2:443", "seq": seq}}],
    }


@pytest.mark.parametrize("kernel", EXPONENTIAL_SYN_BACKOFF)
def test_an_unanswered_connect_gives_up_after_tcp_syn_retries(kernel: str) -> None:
    run = run_story(parse_story(lone_connect([]), "x.toml").with_kernel(kernel))
    times = [m.t - FIRST_SYN_AT for m in syns_from(run, "192.0.2.2:40000")]
    assert times == pytest.approx([0, 1, 3, 7, 15, 31, 63])  # the RTO doubled each time
    (gave_up,) = [m for m in run.moments if m.failed]
    assert gave_up.t - FIRST_SYN_AT == pytest.approx(127)
    assert gave_up.failed == "the connect failed (too many retransmissions)"


@settings(max_examples=25, deadline=None)
@given(port=st.integers(1024, 65535), seq=st.integers(0, 2**32 - 1))
def test_an_answered_connect_sends_one_syn_and_connects_at_once(port: int, seq: int) -> None:
    run = run_story(parse_story(lone_connect(["remote"], f"192.0.2.2:{port}", seq), "x.toml"))
    assert run.succeeded
    (syn,) = syns_from(run, f"192.0.2.2:{port}")
    assert sent(run, syn).seq == seq
    acks = [m for m in run.moments if m.text.startswith("ctr's ACK")]
    assert len(acks) == 1 and acks[0].obs is not None and acks[0].obs["tcp_state"] == "ESTABLISHED"
    assert sent(run, acks[0]).ack == 5001  # the answering host's ISN (5000) + 1


@settings(max_examples=15, deadline=None)
@given(port=st.integers(1024, 65535), kernel=st.sampled_from(list(PROFILES)))
def test_two_racing_connects_from_one_port_cost_the_loser_one_timeout(port: int, kernel: str) -> None:
    story = {
        "hosts": {"ctr2": "192.0.2.7"},
        "answer": ["remote"],
        "step": [
            {"connect": {"from": "ctr", "src": f"192.0.2.2:{port}", "dst": "198.51.100.2:443", "seq": 1}},
            {
                "connect": {
                    "from": "ctr2",
                    "src": f"192.0.2.7:{port}",
                    "dst": "198.51.100.2:443",
                    "seq": 2,
                    "race": "prev",
                }
            },
        ],
    }
    run = run_story(parse_story(story, "x.toml").with_kernel(kernel))
    first, again = syns_from(run, f"192.0.2.2:{port}")
    assert first.obs is not None and first.obs["fate"] == "dropped:host"
    assert again.t - first.t == pytest.approx(TCP_TIMEOUT_INIT_S)
    assert len(syns_from(run, f"192.0.2.7:{port}")) == 1


@pytest.mark.parametrize(
    ("connect", "extra", "message"),
    [
        ({"from": "ctr", "src": "192.0.2.2:1"}, {}, r"x.toml: step\[0\].connect: expected \{from = HOST"),
        ({"from": "ctr", "src": "192.0.2.2:1", "dst": "198.51.100.2:443", "win": 5}, {}, "expected"),
        (
            {"from": "ctr", "src": "10.0.0.1:1", "dst": "198.51.100.2:443"},
            {},
            r"x.toml: step\[0\].connect.src: ",
        ),
        (
            {"from": "ctr", "src": "192.0.2.2:1", "dst": "198.51.100.2:443", "race": "prev"},
            {},
            r"step\[0\].connect.race: the first packet has no previous packet",
        ),
        (
            {"from": "nobody", "src": "192.0.2.2:1", "dst": "198.51.100.2:443"},
            {},
            r"step\[0\].connect.from: expected one of",
        ),
        (
            {"from": "ctr", "src": "192.0.2.2:1", "dst": "198.51.100.2:443"},
            {"expect": "answered"},
            r"step\[0\].expect: a connect expects to connect without a retransmission",
        ),
    ],
)
def test_a_bad_connect_step_is_one_line_naming_it(connect: Any, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message) as e:
        parse_story({"step": [{"connect": connect, **extra}]}, "x.toml")
    assert "\n" not in str(e.value)
