"""``nflab grade``: a gradebook row per student folder (good, partial, empty, malformed), the
explanation sentences (02, 05-09) judged by their links in causal order, the quiz by the
instructor's key, the two labs graded apart or together."""

import argparse
import csv
import shutil
from pathlib import Path

import pytest

from sim.cli import main as cli_main
from sim.report.grade import (
    GradeError,
    Lab,
    causal_order,
    columns,
    explanation,
    grade_student,
    gradebook,
    judge_sentence,
    load_key,
    main,
    max_points,
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
        (True, "[why-05]\nx = 1\n", "[why-05]: expected a table of strings"),
        (True, "q1 =", ""),
    ],
)
def test_bad_dir_or_key_is_exit_2_one_line(answers, tmp_path, capsys, dir_ok, key_text, expect):
    key = None
    if key_text is not None:
        key = tmp_path / "key.toml"
        key.write_text(key_text)
    folder = answers if dir_ok else tmp_path / "nope"
    out = str(tmp_path / "g.csv")
    args = argparse.Namespace(dir=str(folder), key=str(key) if key else None, out=out, lab="both")
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


def test_a_latin_word_against_chinese_ones_is_still_a_word():
    # "的NAT不同": no space around NAT, as Chinese is often written; \b is an ASCII boundary
    sentence = "两个查询的NAT不同，所以el7无法合并落败的条目，所以它被丢弃"
    assert judge_sentence(sentence, load_key(KEY).why["05"]) == ""


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
    assert causal_order("B due to A") == ["A", "B"]
    assert causal_order("A, which leads to B") == ["A", "B"]
    assert causal_order("A results in B; as a result, C") == ["A", "B", "C"]
    assert causal_order("A 导致 B，使得 C") == ["A", "B", "C"]


def test_the_key_is_read_from_answers():
    key = load_key(KEY)
    assert len(key.answers) == 7 and set(key.answers.values()) <= set("abcd")
    assert list(key.why) == ["02", "05", "06", "07", "08", "09"]
    assert list(key.why["02"]) == ["not translated", "addressed to the host", "routed to INPUT"]
    with pytest.raises(GradeError):
        load_key(ROOT / "nope.toml")


# ---------------------------------------------------------------- the second lab (05-09)


def story_answer(number: str, sentence: str, *, base: str = "solution", old: str = "", new: str = "") -> str:
    """A student's file: the solution (its comments removed) or the starter, one line changed
    (a typical wrong answer), and the student's sentence as a comment."""
    if base == "solution":
        path = next(SOLUTIONS.glob(f"{number}-*"))
        text = "\n".join(line for line in path.read_text().split("\n") if not line.startswith("#"))
    else:
        text = next(STARTERS.glob(f"{number}-*.starter.toml")).read_text()
    assert old in text
    text = text.replace(old, new) if old else text
    return f"{text}\n# {sentence}\n" if sentence else text


# per exercise: (a right file and a sentence chaining the links), (a partial answer), (a wrong one)
SECOND_LAB = {
    "05": (
        story_answer(
            "05",
            "Each query is sent to its own endpoint by the Service IP's DNAT rules, so the NAT is not "
            "the same for the loser, so el7 is unable to merge it into the winner's entry, so the "
            "loser is dropped with insert_failed.",
        ),
        # the right file, the links backwards
        story_answer(
            "05", "el7 cannot merge the loser, so the two queries get different endpoints, so it is dropped."
        ),
        # the starter: both queries through MASQUERADE, the same NAT, merged on el7
        story_answer("05", "the query is dropped (insert_failed) because of NAT and merging", base="starter"),
    ),
    "06": (
        story_answer(
            "06",
            "The port search only counts confirmed entries and neither SYN has been confirmed yet, so "
            "MASQUERADE gives both the same port 39000, so they collide at __nf_conntrack_confirm() "
            "and one is dropped.",
        ),
        # --random: on el7 both searches start at secure_port(); the sentence is right
        story_answer(
            "06",
            "Neither SYN is confirmed when the other one is NATed, so both keep port 39000, so the "
            "second to confirm clashes.",
            old="--random-fully",
            new="--random",
        ),
        story_answer("06", "", base="starter"),
    ),
    "07": (
        story_answer(
            "07",
            "Flow 2 never gets its handshake ACK, so conntrack never marks its entry ASSURED, so "
            "early_drop() may evict it and flow 3's SYN finds room.",
        ),
        story_answer("07", "Flow 2's entry is not ASSURED, so early_drop() evicts it."),
        # flow 2 completes its handshake: every entry ASSURED, nothing may be evicted
        story_answer(
            "07",
            "early_drop() evicts flow 2, so its entry is not ASSURED, so its handshake never completed.",
            old='packet = {from = "ctr", src = "192.0.2.2:40003"',
            new='packet = {from = "ctr", src = "192.0.2.2:40002", dst = "198.51.100.2:443", flags = "A", '
            'seq = 2001, ack = 5001, win = 229}\n[[step]]\npacket = {from = "ctr", src = "192.0.2.2:40003"',
        ),
    ),
    "08": (
        story_answer(
            "08",
            "The datagrams from the client match the existing entry, and the nat table is consulted only "
            "for a connection's first packet, so the stored binding still sends them to 192.0.2.2, so "
            "my step deletes the entry of the published port.",
        ),
        # conntrack -F: the DNS entry goes too; the sentence is right
        story_answer(
            "08",
            "The nat table is read only for the first packet of a connection, so the entry keeps its old "
            "DNAT, so I delete it.",
            old='"-D -p udp --dport 5060"',
            new='"-F"',
        ),
        story_answer(
            "08",
            "NAT rules are read again for every datagram, so the new rule should send them to ctr2.",
            base="starter",
        ),
    ),
    "09": (
        story_answer(
            "09",
            "The late FIN is sent to 198.51.100.2, not to the host, so the routing decision forwards it, "
            "so it passes through the FORWARD chain, not INPUT.",
        ),
        # exercise 02's rule, in INPUT; the sentence, in Chinese, is right
        story_answer(
            "09",
            "晚到的 FIN 发往服务器，不是宿主机，所以路由判定转发它，所以它只经过 FORWARD，不经过 INPUT。",
            old="-I FORWARD 1 -m conntrack",
            new="-A INPUT -m conntrack",
        ),
        # a rule that drops the whole connection
        story_answer(
            "09",
            "It is dropped in INPUT because INPUT sees every packet.",
            old="-I FORWARD 1 -m conntrack --ctstate INVALID -j DROP",
            new="-I FORWARD 1 -s 192.0.2.0/24 -j DROP",
        ),
    ),
}


@pytest.fixture(scope="module")
def second_lab(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("answers")
    for i, student in enumerate(("right", "partial", "wrong")):
        (root / student).mkdir()
        for number, answers in SECOND_LAB.items():
            (root / student / f"{number}.toml").write_text(answers[i])
    return by_student(gradebook(root, load_key(KEY), Lab.SECOND))


def test_second_lab_a_right_answer_earns_every_point(second_lab):
    right = second_lab["right"]
    assert [right[n] for n in ("05", "06", "07", "08", "09")] == [2, 2, 2, 2, 2]
    assert [right[f"{n}-why"] for n in ("05", "06", "07", "08", "09")] == [1, 1, 1, 1, 1]
    assert (right["total"], right["max"], right["notes"]) == (15, 15, "")
    assert "quiz" not in right and "01" not in right  # the quiz belongs to the first lab


def test_second_lab_a_partial_answer_earns_the_points_of_what_it_shows(second_lab):
    p = second_lab["partial"]
    points = [(p[n], p[f"{n}-why"]) for n in ("05", "06", "07", "08", "09")]
    assert points == [(2, 0), (0, 1), (2, 0), (0, 1), (0, 1)] and p["total"] == 7
    for note in (
        "05-why: names every link, but not merged as a cause of different NAT, not its effect",
        "06: wrong: on el7 a SYN still loses its race at confirmation (insert_failed)",
        "07-why: does not say: handshake not completed",
        "08: wrong: on el7 the DNS entry is gone at the end",
        "09: wrong: on el7 192.0.2.2:40000 > 198.51.100.2:443 still leaves eth0: an INPUT rule never sees it",
    ):
        assert note in p["notes"], p["notes"]


def test_second_lab_a_wrong_answer_earns_nothing_and_says_why(second_lab):
    w = second_lab["wrong"]
    assert w["total"] == 0
    for note in (
        "05: wrong: on el7 the two packets raced but were merged",
        "05-why: does not say: different NAT, not merged",
        "06-why: no explanation comment",
        "07: wrong: on el7 the table is full and nothing may be evicted",
        "07-why: names every link, but not ASSURED as a cause of handshake not completed, not its effect",
        "08: wrong: add a conntrack step where the starter's comment says",
        "08-why: does not say: rules read at the first packet, old translation kept, deleted",
        "09: wrong: on el7 your rule also stops the handshake",
        "09-why: does not say: addressed to the server, forwarded, crosses FORWARD",
    ):
        assert note in w["notes"], w["notes"]


def test_a_sentence_is_judged_when_the_checker_cannot_run_the_file(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    # a case where a story is due: the checker refuses it, the comment is still a sentence
    (folder / "09.toml").write_text(
        (STARTERS / "02-drop-invalid-in-input.starter.toml").read_text()
        + "\n# The FIN is addressed to the server, so it is forwarded, so it crosses FORWARD.\n"
    )
    row = grade_student(folder, load_key(KEY), Lab.SECOND)
    assert (row.points["09"], row.points["09-why"]) == (0, 1)
    assert any(n.startswith("09: error: ") and "not a story scenario" in n for n in row.notes)


def test_each_lab_has_its_own_columns_and_maximum():
    key = load_key(KEY)
    first = ["student", "01", "02", "02-why", "03", "04", "quiz", "total", "max", "notes"]
    second = ["student", "05", "05-why", "06", "06-why", "07", "07-why", "08", "08-why", "09", "09-why"]
    assert columns(key, Lab.FIRST) == first and max_points(key, Lab.FIRST) == 16
    assert (
        columns(key, Lab.SECOND) == [*second, "total", "max", "notes"] and max_points(key, Lab.SECOND) == 15
    )
    assert columns(None, Lab.SECOND) == ["student", "05", "06", "07", "08", "09", "total", "max", "notes"]
    assert max_points(key, Lab.BOTH) == 31 and max_points(None, Lab.BOTH) == 18


def test_a_key_without_answers_grades_no_quiz_and_a_key_may_leave_a_sentence_out(tmp_path):
    key_path = tmp_path / "k.toml"
    key_path.write_text('[why-09]\n"forwarded" = "forward"\n')
    key = load_key(key_path)
    assert columns(key, Lab.BOTH)[1:-3] == ["01", "02", "03", "04", "05", "06", "07", "08", "09", "09-why"]


def test_the_report_names_what_each_student_lost_and_how_the_class_did(second_lab):
    rows = [second_lab["partial"], second_lab["right"]]
    lines = report(rows, load_key(KEY), Lab.SECOND, "g.csv")
    assert lines[0] == "partial                7/15  short: 05-why, 06, 07-why, 08, 09"
    assert lines[1] == "right                 15/15"
    assert lines[2] == (
        "full points, students per item (of 2): 05 2, 05-why 1, 06 1, 06-why 2, 07 2, 07-why 1, "
        "08 1, 08-why 2, 09 1, 09-why 2"
    )
    assert lines[3] == "gradebook: g.csv (2 students; the notes column says why each point was lost)"


def test_one_students_folder_given_as_dir_is_one_line_exit_2(tmp_path, capsys):
    alice = tmp_path / "alice"
    alice.mkdir()
    (alice / "01.json").write_text("{}")
    (alice / "quiz.toml").write_text('q1 = "b"\n')
    assert cli_main(["grade", str(alice), "--out", str(tmp_path / "g.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no student folders, but answer files (01.json, quiz.toml)" in err
    assert not (tmp_path / "g.csv").exists()


def test_an_unknown_lab_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_main(["grade", str(tmp_path), "--lab", "3"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--lab: invalid choice: '3'" in err


def test_an_output_that_cannot_be_written_is_one_line_exit_2(answers, tmp_path, capsys):
    assert cli_main(["grade", str(answers), "--out", str(tmp_path / "no" / "g.csv")]) == 2
    err = capsys.readouterr().err
    assert err == f"nflab: {tmp_path / 'no' / 'g.csv'}: No such file or directory\n"


def test_a_folder_that_cannot_be_listed_is_a_row_with_an_error(tmp_path, monkeypatch, capsys):
    # as root every folder can be listed: a locked one is simulated where the grader lists it
    (tmp_path / "answers" / "locked").mkdir(parents=True)
    (tmp_path / "answers" / "open").mkdir()
    iterdir = Path.iterdir

    def listing(self):
        if self.name == "locked":
            raise PermissionError(13, "Permission denied")
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", listing)
    out = tmp_path / "g.csv"
    assert cli_main(["grade", str(tmp_path / "answers"), "--lab", "1", "--out", str(out)]) == 0
    locked = next(row for row in csv.DictReader(out.open()) if row["student"] == "locked")
    assert locked["total"] == "0" and "01: error: locked: Permission denied" in locked["notes"]
    assert cli_main(["grade", str(tmp_path / "answers" / "locked"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.endswith("locked: Permission denied\n")


def test_a_sentence_handed_in_word_for_word_by_others_is_noted(tmp_path):
    root = tmp_path / "answers"
    sentences = {
        "ann": "The FIN is addressed to the server, so it is forwarded, so it crosses FORWARD.",
        "ben": "the FIN is addressed to the server,  so it is FORWARDED, so it crosses forward.",
        "cat": "The FIN goes to the server, so the routing decision forwards it, so FORWARD sees it.",
        "dan": "server, so routed, so FORWARD",  # too short to say anything by its sameness
        "eve": "server, so routed, so FORWARD",
    }
    for student, sentence in sentences.items():
        (root / student).mkdir(parents=True)
        (root / student / "09.toml").write_text(story_answer("09", sentence))
    rows = by_student(gradebook(root, load_key(KEY), Lab.SECOND))
    assert all(rows[s]["09-why"] == 1 for s in sentences)  # the points stay: it is a note
    assert "09-why: note: the same sentence as ben" in rows["ann"]["notes"]
    assert "09-why: note: the same sentence as ann" in rows["ben"]["notes"]
    assert all("same sentence" not in rows[s]["notes"] for s in ("cat", "dan", "eve"))
