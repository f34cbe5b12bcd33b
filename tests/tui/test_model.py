"""The view model without Textual: indexes, navigation, explanations, run comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.trace import Step
from tui import model
from tui.model import Cursor, Session, Tone

CASES = Path(__file__).resolve().parents[2] / "sim" / "scenario" / "cases"


@pytest.fixture(scope="module")
def s310() -> Session:
    return model.open_session("seed-incident", "3.10", "none")


@pytest.fixture(scope="module")
def s61() -> Session:
    return model.open_session("seed-incident", "6.1", "none")


def steps_after(s: Session, c: Cursor) -> list[tuple[Step, str | None]]:
    return [(e.step, e.verdict) for e in s.packet_events(c.packet)[c.step :]]


def test_opens_on_the_late_ack_invalid_with_bound_iv_failed(s310: Session) -> None:
    c = Cursor(*s310.focus)
    e = s310.event(c)
    assert (e.step, e.ns, e.hook, e.priority, e.verdict) == (
        Step.CONNTRACK,
        "host",
        "PREROUTING",
        -200,
        "INVALID",
    )
    w = model.window_view(e)
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
        walked.append(model.next_step(s310, walked[-1]))
    back = walked[-1]
    for expected in reversed(walked[:-1]):
        back = model.prev_step(s310, back)
        assert back == expected
    assert model.prev_step(s310, Cursor(0, 0)) == Cursor(0, 0)
    assert model.prev_packet(s310, Cursor(0, 3)) == Cursor(0, 0)


def test_next_invalid_visits_every_invalid_then_wraps(s310: Session) -> None:
    c = Cursor(0, 0)
    seen = []
    for _ in range(len(s310.invalid)):
        c, wrapped = model.next_invalid(s310, c)
        assert not wrapped
        seen.append((c.packet, c.step))
        assert s310.event(c).ct.ctstate == "INVALID"
    assert seen == s310.invalid
    c, wrapped = model.next_invalid(s310, c)
    assert wrapped and (c.packet, c.step) == s310.invalid[0]


def test_kernel_61_ignores_the_late_ack_and_the_beyond_window_segment_fails_bound_i(s61: Session) -> None:
    e = s61.event(Cursor(*s61.focus))
    assert e.verdict == "IGNORE" and model.tone(e.verdict) is Tone.IGNORE
    c, _ = model.next_invalid(s61, Cursor(*s61.focus))
    inv = s61.event(c)
    assert inv.ns == "host" and inv.hook == "PREROUTING"
    w = model.window_view(inv)
    assert w is not None and [b.name for b in w.bounds if not b.passed] == ["I"]


@pytest.mark.parametrize("fix", ["drop-invalid", "be-liberal"])
def test_each_fix_means_no_rst_and_says_where_the_runs_diverge(s310: Session, fix: str) -> None:
    fixed = model.open_session("seed-incident", "3.10", fix)
    assert fixed.panes[0].rsts == 0 and fixed.rst_pids == []
    assert fixed.run is not None and fixed.run.completed
    text, cur = model.describe_change(s310, fixed, f"fix {fix}")
    assert "no host RST" in text and "runs first diverge at 0.560000s" in text
    assert cur is not None
    late_ack = s310.pids[s310.focus[0]]
    assert fixed.pids[cur.packet] == late_ack


def test_identical_runs_do_not_diverge(s310: Session) -> None:
    assert model.diverge(s310, s310).index == -1


def test_explain_names_the_mechanism(s310: Session) -> None:
    c = Cursor(*s310.focus)
    text = " ".join(model.explain(s310, c))
    assert "bound IV" in text and "-NF_ACCEPT" in text
    words = {
        e.step: " ".join(model.explain(s310, Cursor(c.packet, k)))
        for k, e in enumerate(s310.packet_events(c.packet))
    }
    assert "no conntrack entry" in words[Step.NAT]
    assert "no_tcp_socket" in words[Step.SOCKET]
    assert "never sees it" in words[Step.RST]


def test_crafted_case_opens_and_switches_kernel() -> None:
    case = str(CASES / "late-ack.json")
    s = model.open_session(case)
    assert s.source.kind == "case" and s.kernel == "6.1" and s.run is None
    assert s.event(Cursor(*s.focus)).verdict == "IGNORE"
    old = model.open_session(case, "3.10")
    assert old.event(Cursor(*old.focus)).verdict == "INVALID"
    assert old.rst_pids  # the host answers the INVALID ACK with a RST
    liberal = model.open_session(case, "3.10", "be-liberal")
    assert liberal.rst_pids == []


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(model.SourceError, match="no-such"):
        model.open_session(str(tmp_path / "no-such.toml"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(model.SourceError):
        model.open_session(str(bad))
    with pytest.raises(model.SourceError, match="kernel"):
        model.open_session("seed-incident", "2.6")


def test_tones_are_one_per_family() -> None:
    assert model.tone("ACCEPT") is Tone.ACCEPT and model.tone("TRANSLATED") is Tone.ACCEPT
    assert model.tone("IGNORE") is Tone.IGNORE
    assert model.tone("INVALID") is Tone.INVALID and model.tone("SKIP") is Tone.INVALID
    assert model.tone("DROP") is Tone.DROP and model.tone("NO_SOCKET") is Tone.DROP
    assert model.tone(None) is Tone.INFO and model.tone("XMIT") is Tone.INFO


def test_the_core_never_imports_the_tui() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sim.scenario.scenario, sim.scenario.replay, sim.report.timeline; "
        "print(any(m.startswith(('tui', 'textual')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
