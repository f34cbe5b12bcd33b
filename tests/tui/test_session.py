"""The session (running sources, indexes, navigation) and the rows (what each step says), without Textual."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.include.netfilter import CtState, Hook
from sim.trace import Step
from tui import rows, session
from tui.rows import Tone
from tui.session import Cursor, Session

CASES = Path(__file__).resolve().parents[2] / "sim" / "scenario" / "cases"


@pytest.fixture(scope="module")
def s310() -> Session:
    return session.open_session("seed-incident", "3.10", "none")


@pytest.fixture(scope="module")
def s61() -> Session:
    return session.open_session("seed-incident", "6.1", "none")


def steps_after(s: Session, c: Cursor) -> list[tuple[Step, str | None]]:
    return [(e.step, e.verdict) for e in s.packet_events(c.packet)[c.step :]]


def test_opens_on_the_late_ack_invalid_with_bound_iv_failed(s310: Session) -> None:
    c = Cursor(*s310.focus)
    e = s310.event(c)
    assert (e.step, e.ns, e.hook, e.priority, e.verdict) == (
        Step.CONNTRACK,
        "host",
        Hook.PRE_ROUTING,
        -200,
        "INVALID",
    )
    w = rows.window_view(e)
    assert w is not None
    assert [b.name for b in w.bounds if not b.passed] == ["IV"]
    after = steps_after(s310, c)
    assert (Step.NAT, "SKIP") in after
    assert (Step.ROUTE, "LOCAL") in after
    assert (Step.SOCKET, "NO_SOCKET") in after
    assert after[-1] == (Step.RST, "RST")


def test_the_rst_is_in_the_host_capture_only(s310: Session) -> None:
    host, ctr = s310.panes
    assert host.rsts == 1 and ctr.rsts == 0
    (rst,) = s310.rst_pids
    assert rst in host.by_pid and rst not in ctr.by_pid
    trigger = s310.pids[s310.focus[0]]
    assert s310.pids_caused[trigger] == [rst]
    assert trigger in host.by_pid and trigger not in ctr.by_pid  # never reaches the container


def test_stepping_back_and_forth_is_symmetric(s310: Session) -> None:
    c = Cursor(*s310.focus)
    walked = [c]
    for _ in range(30):
        walked.append(session.next_step(s310, walked[-1]))
    back = walked[-1]
    for expected in reversed(walked[:-1]):
        back = session.prev_step(s310, back)
        assert back == expected
    assert session.prev_step(s310, Cursor(0, 0)) == Cursor(0, 0)
    assert session.prev_packet(s310, Cursor(0, 3)) == Cursor(0, 0)


def test_next_invalid_visits_every_invalid_then_wraps(s310: Session) -> None:
    c = Cursor(0, 0)
    seen = []
    for _ in range(len(s310.invalid)):
        c, wrapped = session.next_invalid(s310, c)
        assert not wrapped
        seen.append((c.packet, c.step))
        assert session.ct(s310.event(c)).ctstate is CtState.INVALID  # type: ignore[union-attr]
    assert seen == s310.invalid
    c, wrapped = session.next_invalid(s310, c)
    assert wrapped and (c.packet, c.step) == s310.invalid[0]


def test_kernel_61_ignores_the_late_ack_and_the_beyond_window_segment_fails_bound_i(s61: Session) -> None:
    # 6.1 opens on the first INVALID packet at the host: the segment beyond the window, not the
    # late ACK, which it ignores (nf_conntrack_proto_tcp.c, "ignored ACK under lower bound")
    late = s61.event(Cursor(*s61.out_of_window[0]))
    assert late.verdict == "IGNORE" and rows.tone(late.verdict) is Tone.IGNORE
    c = Cursor(*s61.focus)
    inv = s61.event(c)
    assert inv.verdict == "INVALID" and c.packet > s61.out_of_window[0][0]
    assert inv.ns == "host" and inv.hook is Hook.PRE_ROUTING
    w = rows.window_view(inv)
    assert w is not None and [b.name for b in w.bounds if not b.passed] == ["I"]


@pytest.mark.parametrize(("fix", "verdict"), [("drop-invalid", "INVALID"), ("be-liberal", "ACCEPT")])
def test_each_fix_means_no_rst_and_the_story_stays_on_the_late_ack(
    s310: Session, fix: str, verdict: str
) -> None:
    fixed = session.open_session("seed-incident", "3.10", fix)
    assert fixed.panes[0].rsts == 0 and fixed.rst_pids == []
    assert fixed.run is not None and fixed.run.completed
    text = rows.describe_change(s310, fixed, f"fix {fix}")
    assert "no host RST" in text and "runs first diverge at 0.560000s" in text
    # the decisive packet is still the late ACK: INVALID then dropped, or out of window but liberal
    late_ack = s310.pids[s310.focus[0]]
    e = fixed.event(Cursor(*fixed.focus))
    assert e.pid == late_ack and e.verdict == verdict
    d = session.ct(e)
    assert d is not None and d.check is not None and d.check.failed == ["IV"]


def test_identical_runs_do_not_diverge(s310: Session) -> None:
    assert session.diverge(s310, s310).index == -1


def test_explain_names_the_mechanism(s310: Session) -> None:
    c = Cursor(*s310.focus)
    text = " ".join(rows.explain(s310, c))
    assert "bound IV" in text and "-NF_ACCEPT" in text
    words = {
        e.step: " ".join(rows.explain(s310, Cursor(c.packet, k)))
        for k, e in enumerate(s310.packet_events(c.packet))
    }
    assert "no conntrack entry" in words[Step.NAT]
    assert "no_tcp_socket" in words[Step.SOCKET]
    assert "never sees it" in words[Step.RST]


def test_crafted_case_opens_and_switches_kernel() -> None:
    case = str(CASES / "late-ack.json")
    s = session.open_session(case)
    assert s.source.kind == "case" and s.kernel == "6.1" and s.run is None
    assert s.event(Cursor(*s.focus)).verdict == "IGNORE"
    old = session.open_session(case, "3.10")
    assert old.event(Cursor(*old.focus)).verdict == "INVALID"
    assert old.rst_pids  # the host answers the INVALID ACK with a RST
    liberal = session.open_session(case, "3.10", "be-liberal")
    assert liberal.rst_pids == []


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(session.SourceError, match="no-such"):
        session.open_session(str(tmp_path / "no-such.toml"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(session.SourceError):
        session.open_session(str(bad))
    with pytest.raises(session.SourceError, match="kernel"):
        session.open_session("seed-incident", "2.6")


def test_tones_are_one_per_family() -> None:
    assert rows.tone("ACCEPT") is Tone.ACCEPT and rows.tone("TRANSLATED") is Tone.ACCEPT
    assert rows.tone("IGNORE") is Tone.IGNORE
    assert rows.tone("INVALID") is Tone.INVALID and rows.tone("SKIP") is Tone.INVALID
    assert rows.tone("DROP") is Tone.DROP and rows.tone("NO_SOCKET") is Tone.DROP
    assert rows.tone(None) is Tone.INFO and rows.tone("XMIT") is Tone.INFO


def test_the_core_never_imports_the_tui() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sim.scenario.scenario, sim.scenario.replay, sim.report.timeline; "
        "print(any(m.startswith(('tui', 'textual')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _steps(s: Session, pid: int) -> dict[Step, list[int]]:
    out: dict[Step, list[int]] = {}
    for k, e in enumerate(s.packet_events(s.pos[pid])):
        out.setdefault(e.step, []).append(k)
    return out


def test_the_late_ack_in_words_first(s310: Session) -> None:
    c = Cursor(*s310.focus)
    words = rows.explain(s310, c)
    # limit 1391914337 - packet 1391384029 = 530308; receiver.td_end 1392045409 - limit = 131072,
    # MAXACKWINDOW(remote) = max(td_maxwin 1024 << 7, 66000) (nf_conntrack_proto_tcp.c)
    assert words[0] == (
        "Out of window: this ACK acknowledges data 530,308 bytes older than the oldest ACK conntrack "
        "still accepts (at most 131,072 bytes back) (bound IV)."
    )
    assert "-NF_ACCEPT" in words[1]
    assert (
        words[2] == 'The kernel logs: "nf_ct_tcp: ACK is under the lower bound (possible overly delayed ACK)"'
    )
    # the uplink held it: sent 0.340 s, seen at the host 0.560 s, link delay 20 ms (seed-incident.toml)
    recv = Cursor(c.packet, c.step - 1)
    assert s310.event(recv).step is Step.RECV
    assert rows.explain(s310, recv)[0].startswith(
        "Sent at 0.340 s, it arrives at 0.560 s: 220 ms on the uplink where packets take 20 ms. "
        "The link held it back 200 ms"
    )


def test_the_hosts_own_rst_is_invalid_for_a_stated_reason(s310: Session) -> None:
    (rst,) = s310.rst_pids
    assert rows.direction(s310, rst) == (3, 5)  # from the host's stack out to the remote
    ct = _steps(s310, rst)[Step.CONNTRACK][0]
    words = " ".join(rows.explain(s310, Cursor(s310.pos[rst], ct)))
    assert "a RST cannot open a new connection" in words and "no log line" in words
    assert "host's own RST" in words


def test_delivery_names_the_socket_by_its_addresses(s310: Session) -> None:
    why = [session.says(e) for e in s310.packet_events(0) if e.step in (Step.SOCKET, Step.DELIVER)]
    assert why == [
        "the socket listening on 36.110.213.207:443 takes the segment",
        "to the socket listening on 36.110.213.207:443",
    ]
    assert not any("object at 0x" in session.says(e) for e in s310.events)
    # after the SYN the remote's segments are its connection's, as ss lists it: ESTAB, local
    # 36.110.213.207:443, peer the host's uplink address and MASQUERADE's port (seed-incident.toml)
    (rst,) = s310.rst_pids
    at_remote = [session.says(e) for e in s310.packet_events(s310.pos[rst]) if e.step is Step.DELIVER]
    assert at_remote == ["to the socket 36.110.213.207:443 <-> 10.21.17.99:39700"]
    told = {session.says(e) for e in s310.events if e.step is Step.DELIVER and e.ns == "remote"}
    assert told == {"to the socket listening on 36.110.213.207:443", *at_remote}


def test_drop_invalid_shows_the_rule_and_the_log_rule() -> None:
    s = session.open_session("seed-incident", "3.10", "drop-invalid")
    late = s.pids[s.focus[0]]
    steps = _steps(s, late)
    log = rows.explain(s, Cursor(s.focus[0], steps[Step.LOG][0]))
    assert log[:2] == [
        "INPUT rule 1 logs the packet and lets the chain go on:",
        "  iptables -A INPUT -m conntrack --ctstate INVALID -m limit --limit 1/sec -j LOG "
        '--log-prefix "invalid: " --log-level 7',
    ]
    drop = rows.explain(s, Cursor(s.focus[0], steps[Step.TABLE][0]))
    assert drop[:2] == [
        "INPUT rule 2 decided DROP:",
        "  iptables -A INPUT -m conntrack --ctstate INVALID -j DROP",
    ]


def test_be_liberal_says_it_overrides_the_failed_bound() -> None:
    s = session.open_session("seed-incident", "3.10", "be-liberal")
    words = rows.explain(s, Cursor(*s.focus))
    # the verdict's reason first, so ACCEPT never stands next to "Out of window" alone
    assert words[0].startswith("be_liberal overrides the failed bound")
    assert words[1].startswith("Out of window:") and "(bound IV)" in words[1]


def test_play_follows_the_late_ack_to_its_rst_and_stops(s310: Session) -> None:
    c: Cursor | None = Cursor(*s310.focus)
    seen = []
    while c is not None:
        seen.append(s310.pids[c.packet])
        c = session.play_next(s310, c)
    (rst,) = s310.rst_pids
    assert seen[0] == s310.pids[s310.focus[0]] and seen[-1] == rst
    assert set(seen) == {seen[0], rst}


@pytest.mark.parametrize("kernel", ["3.10", "6.1"])
def test_down_never_moves_a_capture_panes_clock_back(kernel: str, s310: Session, s61: Session) -> None:
    """↓ through every packet: the line each capture pane marks for it is never earlier than the
    one it marked before. The uplink delays the remote's packets 20 ms, so in send order a
    container segment sent after a remote ACK reaches the host before it; and the late ACK, sent
    at 0.340 s and held 200 ms on the uplink, belongs where the host saw it, at 0.560 s."""
    s = s310 if kernel == "3.10" else s61
    c, seen = Cursor(0, 0), [Cursor(0, 0)]
    while (c := session.next_packet(s, c)) != seen[-1]:
        seen.append(c)
    assert len(seen) == len(s.pids)
    for pane in s.panes:
        times = [
            pane.lines[pane.by_pid[s.pids[c.packet]][0]].t for c in seen if s.pids[c.packet] in pane.by_pid
        ]
        assert len(times) > 1000
        assert times == sorted(times), pane.title
    late = s.pids[s.focus[0]] if kernel == "3.10" else next(iter(s.late))
    at = s.pos[late]
    host = s.panes[0]
    assert host.lines[host.by_pid[late][0]].t == pytest.approx(0.560)
    assert (
        host.lines[host.by_pid[s.pids[at - 1]][-1]].t <= 0.560 <= host.lines[host.by_pid[s.pids[at + 1]][0]].t
    )


def test_kernels_are_the_profiles_in_order() -> None:
    from sim.api import KERNELS
    from sim.netfilter.profiles import PROFILES

    assert tuple(PROFILES) == KERNELS
    assert session.cycle(KERNELS, KERNELS[-1]) == KERNELS[0]


def test_quiz_on_the_seed_incident(s310: Session) -> None:
    from tui.quiz import CAPTURES, ENDS, ROUTES, Quiz, questions

    qs = questions(s310)
    # no question about the handshake: every one is about the late ACK (3.10: the only packet
    # out of window at the host) or the RST it causes
    assert {s310.pids[q.ask.packet] for q in qs} <= {561, 1232}
    # the late ACK: INVALID (bound IV), not translated, routed LOCAL, ends in the host's own stack,
    # answered with a RST whose seq (the late ACK's ack) is not the remote's RCV.NXT, so an
    # RFC 5961 remote would not reset; only the host's uplink capture shows the RST
    assert [q.choices[q.answer] for q in qs] == [
        "INVALID",
        "no",
        ROUTES[1],
        ENDS[2],
        "yes",
        "no: it drops it, or answers with a challenge ACK",
        CAPTURES[0],
    ]
    assert qs[0].terms == ("ACCEPT", "IGNORE", "INVALID")  # defined before it is asked
    assert qs[0].shows == "step 4 (host/eth0 PREROUTING -200 conntrack)"
    assert all((q.ask.packet, q.ask.step) <= (q.reveal.packet, q.reveal.step) for q in qs)
    quiz = Quiz(s310, qs)
    for q in qs:
        quiz.answer(q.answer if q is not qs[0] else 0)  # one miss: ACCEPT for the late ACK
    assert quiz.score == len(qs) - 1
    ((q, given, why),) = quiz.misses()
    assert q.choices[given] == "ACCEPT" and "530,308 bytes older" in why[0]
    assert "it is **INVALID** (step 4" in quiz.report()


def test_quiz_asks_what_each_fix_would_change(s310: Session) -> None:
    from tui.quiz import ENDS, Quiz, questions

    fixed = {f: session.open_session("seed-incident", "3.10", f) for f in ("drop-invalid", "be-liberal")}
    qs = questions(s310, fixed)
    fix_qs = [q for q in qs if q.other is not None]
    # drop-invalid: INPUT's rule drops the INVALID late ACK; be-liberal: the tracker accepts it,
    # NAT translates it and it reaches the container
    assert [(q.prompt.split(" (")[0], q.choices[q.answer]) for q in fix_qs] == [
        ("With the fix drop-invalid", ENDS[3]),
        ("With the fix be-liberal", ENDS[0]),
    ]
    quiz = Quiz(s310, qs)
    for q in qs:
        quiz.answer(q.answer if q is not fix_qs[0] else 2)
    ((_q, _given, why),) = quiz.misses()
    assert any("DROP" in line for line in why)  # the why comes from the fix's own run


def test_quiz_on_a_case_file_asks_about_every_crafted_packet() -> None:
    from tui.quiz import questions

    s = session.open_session(str(CASES / "late-ack.json"))
    crafted = {s.pids[k] for k, pid in enumerate(s.pids) if s.events[s.steps[pid][0]].cause is None}
    assert {s.pids[q.ask.packet] for q in questions(s)} == crafted


def test_a_real_capture_opens_as_a_case() -> None:
    # late-host.pcap: a real 6.18 upload with late ACKs (tests/pcap/data/README.md); what
    # the kernels' own tracker said about it is in judged.json: frames 175, 276, 330 are INVALID
    # "ACK is under the lower bound (possible overly delayed ACK)" on 3.10.99 and el7, IGNOREd on 6.18
    capture = str(Path(__file__).resolve().parents[1] / "pcap" / "data" / "late-host.pcap")
    old = session.open_session(capture, "3.10")
    assert old.source.kind == "capture" and old.outcome.startswith("430 captured packets replayed")
    reasons = [session.ct(old.event(Cursor(*c))).reason for c in old.arriving]  # type: ignore[union-attr]
    assert reasons == ["ACK is under the lower bound (possible overly delayed ACK)"] * 3
    assert len(old.rst_pids) == 3 and old.focus == old.arriving[0]
    new = session.open_session(capture, "6.1")
    assert [new.event(Cursor(*c)).verdict for c in new.out_of_window] == ["IGNORE"] * 3
    assert new.arriving == [] and new.rst_pids == []


def test_a_binary_file_that_is_no_capture_is_one_line(tmp_path: Path) -> None:
    blob = tmp_path / "blob.toml"
    blob.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(session.SourceError, match=r"blob\.toml:1: not UTF-8 text \(byte 0xff at offset 0\)"):
        session.classify(str(blob))
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture")
    with pytest.raises(session.SourceError, match=r"bad\.pcap"):
        session.open_session(str(bad))
