"""The quiz on a story: it asks about the story's own mechanism at the packet the story turns
on, about the same packet on a kernel from the other end of the history, and about the story's
fixes; a wrong answer is marked wrong and its feedback carries the story's why. The expected
answers are typed in from the kernel sources (nf_conntrack_core.c's __nf_conntrack_confirm,
nf_ct_resolve_clash(_harder), early_drop; nf_conntrack_proto_tcp.c's tcp_in_window; NAT bound
on a connection's first packet only) and the stories' own steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.test_story_svg import svg_text
from tui.app import main
from tui.quiz import RACE, STALE, TABLE, VERDICTS, Question, Quiz, questions, story_runs
from tui.session import open_session


def story_quiz(name: str, kernel: str) -> list[Question]:
    s = open_session(name, kernel)
    fixed, kernels = story_runs(name, kernel)
    return questions(s, fixed, kernels)


# story, kernel -> (the hook's answer there, the same packet on the other kernel, the fixes asked)
EXPECTED = {
    ("dns-race", "3.10"): (RACE[0], RACE[1], ["single-request-reopen"]),  # 6.18 merges (same NAT)
    ("dns-race", "el7"): (RACE[0], RACE[2], ["single-request-reopen"]),  # different DNAT: reply-only
    ("snat-port-clash", "6.18"): (RACE[0], RACE[0], ["random-fully"]),  # TCP: no allow_clash anywhere
    ("conntrack-table-full", "6.18"): (TABLE[0], TABLE[0], ["bigger-table", "notrack"]),
    ("conntrack-table-full", "4.19"): (TABLE[0], TABLE[1], ["bigger-table", "notrack"]),  # 6.18 evicts
    ("kube-clusterip-invalid", "el7"): ("INVALID", "IGNORE", ["kube-forward-drop", "be-liberal"]),
    ("stale-udp-entry", "6.18"): (STALE[0], STALE[0], ["conntrack-delete"]),
    ("pod-ip-leak", "6.18"): ("INVALID", "INVALID", ["be-liberal"]),  # over the upper bound: INVALID
    ("published-port-invalid", "el7"): ("INVALID", "IGNORE", ["be-liberal", "drop-invalid"]),
    ("mid-stream-pickup", "el7"): ("INVALID", "IGNORE", ["be-liberal"]),
    ("mid-stream-pickup", "6.1"): ("IGNORE", "INVALID", []),  # it succeeds: no fix to ask about
    ("one-sided-wscale", "6.18"): ("INVALID", "INVALID", ["be-liberal"]),  # over the upper bound
}


@pytest.mark.parametrize(("name", "kernel"), sorted(EXPECTED))
def test_story_quiz_asks_the_hook_the_other_kernel_and_the_fixes(name: str, kernel: str) -> None:
    hook, other, fixes = EXPECTED[(name, kernel)]
    qs = story_quiz(name, kernel)
    assert [q.choices[q.answer] for q in qs[:2]] == [hook, other]
    assert "And on kernel" in qs[1].prompt and "press k until kernel" in qs[1].shows
    fix_qs = qs[2:]
    assert [q.choices[q.answer] for q in fix_qs] == fixes
    for q in fix_qs:
        assert len(q.choices) == 4 and "press f until fix" in q.shows
    # asked before it is shown: the question waits one step before the step that answers it
    assert (qs[0].ask.packet, qs[0].ask.step) < (qs[0].reveal.packet, qs[0].reveal.step)
    assert "the why panel at step" in qs[0].shows


@pytest.mark.parametrize(("name", "kernel"), [("dns-race", "el7"), ("conntrack-table-full", "el7")])
def test_a_wrong_answer_is_marked_wrong_with_the_storys_why(name: str, kernel: str) -> None:
    s = open_session(name, kernel)
    qs = questions(s, *story_runs(name, kernel))
    quiz = Quiz(s, qs)
    wrong = (qs[0].answer + 1) % len(qs[0].choices)
    assert quiz.answer(wrong) is False
    for q in qs[1:]:
        assert quiz.answer(q.answer) is True
    assert quiz.score == len(qs) - 1
    ((q, given, why),) = quiz.misses()
    assert given == wrong and why[0].startswith("What happened:")
    assert f"it is **{q.choices[q.answer]}**" in quiz.report()


def test_a_wrong_fix_is_marked_wrong_and_told_why() -> None:
    s = open_session("snat-port-clash", "6.18")
    qs = questions(s, *story_runs("snat-port-clash", "6.18"))
    quiz = Quiz(s, qs)
    fix_q = qs[2]
    wrong = next(k for k, c in enumerate(fix_q.choices) if c == "bigger-table")
    for q in qs:
        quiz.answer(wrong if q is fix_q else q.answer)
    ((q, _given, why),) = quiz.misses()
    assert q is fix_q and "--random-fully" in " ".join(why)
    assert any(w.startswith("bigger-table does not: the story fails: insert_failed") for w in why)


def test_window_questions_define_their_words_first() -> None:
    qs = story_quiz("published-port-invalid", "el7")
    assert qs[0].choices == VERDICTS and qs[0].terms == VERDICTS


def test_quiz_key_marks_a_wrong_answer_on_screen(tmp_path: Path) -> None:
    out = tmp_path / "quiz.svg"
    assert main("dns-race", "el7", None, quiz=True, svg=str(out), keys=["2"]) == 0
    text = " ".join(svg_text(out).split())
    assert f"not {RACE[1]}: it is {RACE[0]}" in text
