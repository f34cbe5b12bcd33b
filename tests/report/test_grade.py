"""``nflab grade``: a gradebook row per student folder (good, partial, empty, malformed), the
explanation sentences (02, 05-09) judged by their links in causal order, the quiz by the
instructor's key, the two labs graded apart or together."""

import argparse
import csv
import shutil
from pathlib import Path

import pytest

from sim.report.grade import (
    GradeError,
    Lab,
    causal_order,
    explanation,
    grade_student,
    gradebook,
    judge_sentence,
    load_key,
    main,
    missing_concepts,
    report,
)

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "instructor" / "solutions"
STARTERS = ROOT / "docs" / "exercises"
KEY = ROOT / "instructor" / "quiz-key.toml"
GOOD_QUIZ = 'q1 = "b"\nq2 = "c"\nq3 = "d"\nq4 = "a"\nq5 = "d"\nq6 = "a"\nq7 = "B"\n'


@pytest.fixture
def answers(tmp_path: Path) -> Path:
    root = tmp_path / "answers"
    good = root / "good"
    good.mkdir(parents=True)
    for sol in SOLUTIONS.iterdir():  # 01-...solution.json -> 01.json
        shutil.copy(sol, good / f"{sol.name[:2]}{sol.suffix}")
    (good / "quiz.toml").write_text(GOOD_QUIZ)
    partial = root / "partial"
    partial.mkdir()
    shutil.copy(SOLUTIONS / "01-ack-over-upper-bound.solution.json", partial / "01-mine.json")
    shutil.copy(STARTERS / "03-bound-ii-two-kernels.starter.json", partial / "03.json")
    rule_only = (SOLUTIONS / "02-drop-invalid-in-input.solution.toml").read_text()
    rule_only = "\n".join(
        line
        for line in rule_only.split("\n")
        if "# Exercise 02" not in line and "# delivers it LOCAL" not in line
    )
    (partial / "02.toml").write_text(rule_only)
    (partial / "quiz.toml").write_text('q1 = "b"\nq2 = "a"\n')
    (root / "empty").mkdir()
    bad = root / "malformed"
    bad.mkdir()
    (bad / "01.json").write_text("{not json")
    (bad / "02.toml").write_text("name = ")
    (bad / "03.json").write_bytes(b"\xff\xfe\x00")
    (bad / "04.json").write_text('{"packets": 3}')
    (bad / "04-again.json").write_text("{}")
    (bad / "quiz.toml").write_text("q1 = ")
    (root / "stray.txt").write_text("not a student")
    return root


def by_student(rows):
    return {r["student"]: r for r in rows}


def test_the_good_student_gets_every_point(answers):
    rows = by_student(gradebook(answers, load_key(KEY)))
    good = rows["good"]
    assert good == {
        "student": "good",
        "01": 2,
        "02": 2,
        "02-why": 1,
        "03": 2,
        "04": 2,
        "05": 2,
        "05-why": 1,
        "06": 2,
        "06-why": 1,
        "07": 2,
        "07-why": 1,
        "08": 2,
        "08-why": 1,
        "09": 2,
        "09-why": 1,
        "quiz": 7,
        "total": 31,
        "max": 31,
        "notes": "",
    }


def test_a_partial_answer_gets_its_points_and_the_reasons(answers):
    p = by_student(gradebook(answers, load_key(KEY)))["partial"]
    assert (p["01"], p["02"], p["02-why"], p["03"], p["04"], p["quiz"], p["total"]) == (2, 2, 0, 0, 0, 1, 5)
    assert "02-why: no explanation comment" in p["notes"]
    assert "03: wrong: " in p["notes"] and "04: error: no 04*.json file" in p["notes"]
    assert "05: error: no 05*.toml file" in p["notes"] and "09: error: no 09*.toml file" in p["notes"]
    assert "quiz: wrong or missing: q2, q3, q4, q5, q6, q7" in p["notes"]


def test_a_built_in_case_handed_in_as_it_is_passes_with_a_note(tmp_path):
    # the checker judges behaviour; the note tells the instructor it is not the starter's world
    folder = tmp_path / "answers" / "copier"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "sim" / "scenario" / "cases" / "ack-over-upper-bound.json", folder / "01.json")
    row = by_student(gradebook(tmp_path / "answers", None))["copier"]
    assert row["01"] == 2 and "01: note: the packets before the last are not the starter's" in row["notes"]


def test_an_empty_folder_is_a_row_of_zeros(answers):
    e = by_student(gradebook(answers, load_key(KEY)))["empty"]
    assert e["total"] == 0 and e["max"] == 31
    assert "01: error: no 01*.json file" in e["notes"] and "quiz: no quiz.toml" in e["notes"]


def test_malformed_files_give_a_row_with_errors(answers):
    m = by_student(gradebook(answers, load_key(KEY)))["malformed"]
    assert m["total"] == 0
    notes = m["notes"]
    for item in (
        "01: error:",
        "02: error:",
        "03: error:",
        "04: error: 2 files for one answer",
        "quiz: error:",
    ):
        assert item in notes, notes
    assert "Traceback" not in notes


def test_a_file_where_a_folder_should_be_is_a_row_with_an_error(answers):
    s = by_student(gradebook(answers, None))["stray.txt"]
    assert s["total"] == 0 and "not a folder" in s["notes"]


def test_without_a_key_there_is_no_quiz_and_no_sentence_column(answers):
    good = by_student(gradebook(answers, None))["good"]
    assert "quiz" not in good and not any(item.endswith("-why") for item in good)
    assert good["max"] == 18 and good["total"] == 18


def test_the_command_writes_the_csv(answers, tmp_path, capsys):
    out = tmp_path / "gradebook.csv"
    args = argparse.Namespace(dir=str(answers), key=str(KEY), out=str(out), lab="both")
    assert main(args) == 0
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["student"] for r in rows] == ["empty", "good", "malformed", "partial", "stray.txt"]
    assert rows[1]["total"] == "31"
    assert "gradebook: " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("dir_ok", "key_text", "expect"),
    [
        (False, None, "not a folder"),
        (True, "", "expected an [answers] table"),
        (True, "[answers]\n", "[answers]: expected a table of strings"),
        (True, '[answers]\nq1 = "a"\n[why-02]\nx = "("\n', "[why-02]"),
        (True, '[answers]\nq1 = "a"\n[why-10]\nx = "y"\n', "[why-10]: not a table of the key"),
        (True, '[why-05]\nx = 1\n', "[why-05]: expected a table of strings"),
        (True, "q1 =", ""),
    ],
)
def test_bad_dir_or_key_is_exit_2_one_line(answers, tmp_path, capsys, dir_ok, key_text, expect):
    key = None
    if key_text is not None:
        key = tmp_path / "key.toml"
        key.write_text(key_text)
    folder = answers if dir_ok else tmp_path / "nope"
    args = argparse.Namespace(dir=str(folder), key=str(key) if key else None, out=str(tmp_path / "g.csv"), lab="both")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("nflab: ") and err.count("\n") == 1 and expect in err


def test_the_explanation_is_the_comments_the_student_added():
    starter = "# the starter says this\nhost = ['iptables -A INPUT -j LOG']  # and this\n"
    answer = starter + '# my reason: "quoted # not a comment" here\nx = "a # b"  # tail\n'
    assert explanation(answer, starter) == 'my reason: "quoted # not a comment" here tail'


@pytest.mark.parametrize(
    ("sentence", "missing"),
    [
        ("NAT skipped it, so it is addressed to the host itself and routed to INPUT, not FORWARD", []),
        ("INVALID 的包没有条目，NAT 不转换它，目的地址还是宿主机，路由判定为本地，只经过 INPUT", []),
        (
            "Docker's rules are in FORWARD but this one goes in INPUT",
            ["not translated", "addressed to the host"],
        ),
        ("because", ["not translated", "addressed to the host", "routed to INPUT"]),
    ],
)
def test_the_explanation_is_judged_by_its_concepts(sentence, missing):
    assert missing_concepts(sentence, load_key(KEY).why["02"]) == missing


@pytest.mark.parametrize(
    "sentence",
    [
        "NAT skipped it, so it is addressed to the host itself and routed to INPUT, not FORWARD",
        "The INVALID reply has no conntrack entry, so NAT does not translate it back; its destination "
        "stays 10.21.17.99, so the routing decision delivers it locally: INPUT",
        # effect first, each cause after "because"
        "It must be in INPUT because the host routes it locally, because its destination is still the "
        "host's own address, because without an entry NAT never rewrote it",
        "INVALID 的包没有条目，NAT 不转换它，目的地址还是宿主机，路由判定为本地，只经过 INPUT",
        "因为没有条目，NAT 没有转换它，所以目的地址是宿主机，所以路由到本地的 INPUT",
    ],
)
def test_a_sentence_that_chains_the_links_cause_before_effect_earns_the_point(sentence):
    assert judge_sentence(sentence, load_key(KEY).why["02"]) == ""


@pytest.mark.parametrize(
    ("sentence", "why"),
    [
        # the right words, but NAT did translate it: the first link is the opposite
        (
            "NAT translated it to the container, so it is addressed to the host and routed to INPUT",
            "does not say: not translated",
        ),
        # the links backwards: routing decides the address, which decides NAT
        (
            "Because it is routed to INPUT it keeps the host address, so NAT does not translate it",
            "names every link, but addressed to the host as a cause of not translated, not its effect",
        ),
        (
            "因为路由到本地，所以目的地址是宿主机，所以没有条目",
            "names every link, but addressed to the host as a cause of not translated, not its effect",
        ),
        (
            "It is routed to INPUT, so it stays addressed to the host because NAT has no entry for it",
            "names every link, but routed to INPUT as a cause of addressed to the host, not its effect",
        ),
        (
            "Docker's rules are in FORWARD but this one goes in INPUT",
            "does not say: not translated, addressed to the host",
        ),
        ("", "no explanation comment"),
    ],
)
def test_a_bag_of_the_right_words_does_not_earn_the_point(sentence, why):
    assert judge_sentence(sentence, load_key(KEY).why["02"]) == why


def test_causal_order_puts_each_cause_before_its_effect():
    assert causal_order("A because B because C") == ["C", "B", "A"]
    assert causal_order("A, so B; therefore C") == ["A", "B", "C"]
    assert causal_order("because A, so B") == ["A", "B"]
    assert causal_order("因为 A，所以 B") == ["A", "B"]
    assert causal_order("A and B") == ["A and B"]
    assert causal_order("A (B), so C") == ["B", "A", "C"]


def test_the_key_is_read_from_answers():
    key = load_key(KEY)
    assert len(key.answers) == 7 and set(key.answers.values()) <= set("abcd")
    assert list(key.why) == ["02", "05", "06", "07", "08", "09"]
    assert list(key.why["02"]) == ["not translated", "addressed to the host", "routed to INPUT"]
    with pytest.raises(GradeError):
        load_key(ROOT / "nope.toml")
