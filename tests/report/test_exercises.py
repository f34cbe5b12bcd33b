"""The exercise checker (sim.report.exercises): each accepts its solution and the typical wrong
answers are refused with a one-line reason."""

import argparse
import copy
import json
import re
from pathlib import Path

import pytest

from sim.report.exercises import EXERCISES, ExerciseError, RuleShape, check, find_exercise, main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "exercises"
CASES = Path(__file__).resolve().parents[2] / "sim" / "scenario" / "cases"
# the answer keys live with the instructor's notes, outside the site and the package
SOLUTIONS = Path(__file__).resolve().parents[2] / "instructor" / "solutions"
BE_LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal"


def solution(name: str) -> Path:
    return next(SOLUTIONS.glob(f"{name}.solution.*"))


def write_case(tmp_path: Path, case: dict) -> Path:
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(case))
    return path


def with_last(name: str, **changes) -> dict:
    """The exercise's solution case with its last packet changed."""
    case = json.loads(solution(name).read_text())
    case["packets"][-1].update(changes)
    return case


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_every_exercise_has_task_starter_and_solution(ex):
    assert (DOCS / f"{ex.name}.md").is_file()
    assert (DOCS / f"{ex.name}.starter{ex.suffix}").is_file()
    assert (SOLUTIONS / f"{ex.name}.solution{ex.suffix}").is_file()
    assert not (DOCS / f"{ex.name}.solution{ex.suffix}").exists()


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_checker_accepts_the_solution(ex):
    assert check(ex.name, SOLUTIONS / f"{ex.name}.solution{ex.suffix}") == (True, "right")


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_checker_refuses_the_untouched_starter(ex):
    ok, message = check(ex.name, DOCS / f"{ex.name}.starter{ex.suffix}")
    assert not ok and message.startswith("wrong: ") and "\n" not in message


# --- 01: ACK over the upper bound on 6.1, with the host's RST


def test_01_refuses_the_late_ack(tmp_path):
    ok, message = check("01", CASES / "late-ack.json")
    assert not ok and "IGNORE" in message and "must be INVALID" in message


def test_01_refuses_another_invalid_reason(tmp_path):
    ok, message = check("01", CASES / "data-beyond-window.json")
    assert not ok and "SEQ is over upper bound" in message and "bound III" in message


def test_01_refuses_when_no_rst_is_sent(tmp_path):
    ok, message = check("01", CASES / "ack-over-upper-bound-drop.json")
    assert not ok and "no RST" in message and "dropped:host" in message


def test_01_honours_the_kernel_the_case_names(tmp_path):
    # 3.10's tcp_in_window() logs "ACK is over the upper bound (ACKed data not seen yet)" for
    # bound III, INVALID as on 6.1: the case is judged on its own kernel, as 03's are
    case = json.loads(solution("01-ack-over-upper-bound").read_text())
    case["kernel"] = "3.10"
    assert check("01", write_case(tmp_path, case)) == (True, "right")


def test_01_judges_a_late_ack_on_the_kernel_the_case_names(tmp_path):
    case = json.loads((CASES / "late-ack.json").read_text())
    case["kernel"] = "3.10"  # bound IV: INVALID on 3.10, but not for bound III
    ok, message = check("01", write_case(tmp_path, case))
    assert not ok and 'because "ACK is under the lower bound (possible overly delayed ACK)"' in message


# --- 02: the DROP rule in INPUT (scenario files)


def seed_with(tmp_path: Path, *rules: str, extra: str = "") -> Path:
    text = (DOCS / "02-drop-invalid-in-input.starter.toml").read_text()
    listed = "".join(f"    {json.dumps(r)},\n" for r in rules)
    text = re.sub(r"host = \[(.*?)\]\n", lambda m: f"host = [\n    {m.group(1)},\n{listed}]\n", text, count=1)
    path = tmp_path / "answer.toml"
    path.write_text(text + extra)
    return path


def test_02_refuses_the_rule_in_forward(tmp_path):
    path = seed_with(tmp_path, "iptables -I FORWARD -m conntrack --ctstate INVALID -j DROP")
    ok, message = check("02", path)
    assert not ok and "FORWARD or DOCKER-USER rule never sees" in message and "INPUT" in message


def test_02_gives_docker_user_the_forward_hint(tmp_path):
    path = seed_with(tmp_path, "iptables -I DOCKER-USER -m conntrack --ctstate INVALID -j DROP")
    ok, message = check("02", path)
    assert not ok and "FORWARD or DOCKER-USER rule never sees" in message and "INPUT" in message


def test_02_tells_a_raw_prerouting_answer_that_raw_runs_before_conntrack(tmp_path):
    # raw is registered at NF_IP_PRI_RAW (-300), conntrack at NF_IP_PRI_CONNTRACK (-200)
    # (include/uapi/linux/netfilter_ipv4.h): in raw nothing has an entry yet
    path = seed_with(tmp_path, "iptables -t raw -A PREROUTING -m conntrack --ctstate INVALID -j DROP")
    ok, message = check("02", path)
    assert not ok and "raw table runs at priority -300, before conntrack" in message


def test_02_accepts_the_rule_in_mangle_input(tmp_path):
    # mangle INPUT is NF_IP_PRI_MANGLE (-150) at LOCAL_IN, after conntrack (-200): it sees the
    # INVALID reply and drops it before tcp_v4_rcv(), as filter INPUT (0) does
    path = seed_with(tmp_path, "iptables -t mangle -A INPUT -m conntrack --ctstate INVALID -j DROP")
    assert check("02", path) == (True, "right")


def test_02_blames_a_reject_rule_not_the_stack_for_the_rst(tmp_path):
    # REJECT --reject-with tcp-reset (nf_send_reset) builds the RST; tcp_v4_rcv() never runs
    rule = "iptables -A INPUT -p tcp -m conntrack --ctstate INVALID -j REJECT --reject-with tcp-reset"
    ok, message = check("02", seed_with(tmp_path, rule))
    assert not ok and "REJECT rule answers the INVALID reply with its own RST" in message
    assert "host's stack still answers" not in message


def test_02_refuses_dropping_everything_to_the_host(tmp_path):
    ok, message = check("02", seed_with(tmp_path, "iptables -A INPUT -j DROP"))
    assert not ok and "drops every packet to the host" in message


def test_02_refuses_removing_the_triggers(tmp_path):
    text = (DOCS / "02-drop-invalid-in-input.starter.toml").read_text()
    path = tmp_path / "answer.toml"
    path.write_text(text.split("[[trigger]]")[0])
    ok, message = check("02", path)
    assert not ok and "only add a rule" in message


def test_02_refuses_the_other_fix(tmp_path):
    text = (DOCS / "02-drop-invalid-in-input.starter.toml").read_text()
    path = tmp_path / "answer.toml"
    path.write_text(text.replace("[topology]", f'[sysctl]\n"{BE_LIBERAL}" = 1\n\n[topology]', 1))
    ok, message = check("02", path)
    assert not ok and "other fix" in message


def test_rule_shape_reads_table_chain_state_target():
    shape = RuleShape.parse("iptables -t filter -I INPUT 1 -m conntrack --ctstate NEW,INVALID -j DROP")
    assert shape == RuleShape("filter", "INPUT", True, "DROP")
    assert RuleShape.parse("iptables -A FORWARD -j ACCEPT") == RuleShape("filter", "FORWARD", False, "ACCEPT")


# --- 03: bound II alone, IGNORE on 6.1 and INVALID on 3.10


def test_03_refuses_the_late_ack_which_fails_bound_iv(tmp_path):
    ok, message = check("03", CASES / "late-ack.json")
    assert not ok and "fails bounds IV" in message


def test_03_refuses_data_beyond_the_window(tmp_path):
    ok, message = check("03", CASES / "data-beyond-window.json")
    assert not ok and "fails bounds I" in message


def test_03_refuses_be_liberal_which_accepts_it(tmp_path):
    case = json.loads(solution("03-bound-ii-two-kernels").read_text())
    case["sysctl"] = {BE_LIBERAL: 1}
    ok, message = check("03", write_case(tmp_path, case))
    assert not ok and "ACCEPT" in message and "IGNORE" in message


def test_03_runs_the_kernel_the_case_names(tmp_path):
    case = json.loads((CASES / "late-ack.json").read_text())
    case["kernel"] = "6.12"
    ok, message = check("03", write_case(tmp_path, case))
    assert not ok and message.startswith("wrong: on 6.12 ") and "fails bounds IV" in message


@pytest.mark.parametrize(("kernel", "other"), [("5.10", "6.1"), ("6.18", "3.10"), ("3.10", "6.1")])
def test_03_pairs_the_named_kernel_with_one_across_the_6_1_change(tmp_path, kernel, other):
    # the solution fails bound II alone: INVALID before 6.1's "ignore overly delayed tcp
    # packets", IGNORE after; be_liberal makes both ACCEPT, so the first kernel run is named
    case = json.loads(solution("03-bound-ii-two-kernels").read_text())
    assert check("03", write_case(tmp_path, {**case, "kernel": kernel})) == (True, "right")
    case["sysctl"] = {BE_LIBERAL: 1}
    ok, message = check("03", write_case(tmp_path, {**case, "kernel": kernel}))
    assert not ok and message.startswith(f"wrong: on {kernel} ")


# --- 04: the RST be_liberal does not save


def test_04_accepts_an_old_rst_from_the_remote(tmp_path):
    case = json.loads((CASES / "rst-out-of-window.json").read_text())
    case["sysctl"] = {BE_LIBERAL: 1}
    case["packets"][-1]["seq"] = 4999001  # before td_maxack(ctr) 5000001: "invalid rst"
    assert check("04", write_case(tmp_path, case)) == (True, "right")


def test_04_refuses_a_far_out_of_window_rst_which_be_liberal_accepts(tmp_path):
    # the sysctl's documentation ("only out of window RST segments are INVALID") means the
    # "invalid rst" test in tcp_packet(); tcp_in_window() itself accepts this one
    case = json.loads((CASES / "rst-out-of-window.json").read_text())
    case["sysctl"] = {BE_LIBERAL: 1}
    ok, message = check("04", write_case(tmp_path, case))
    assert not ok and "let this RST through: it is ACCEPT" in message


def test_04_refuses_without_be_liberal(tmp_path):
    ok, message = check("04", CASES / "old-rst-from-ctr.json")
    assert not ok and BE_LIBERAL in message


def test_04_does_not_blame_be_liberal_for_an_exact_sequence_rst(tmp_path):
    # seq exactly td_maxack: nf_conntrack_tcp_packet()'s RST checks pass it and tcp_in_window()
    # accepts it with be_liberal 0 too; the sysctl is not why it is ACCEPT
    case = with_last("04-the-rst-be-liberal-does-not-save", seq=2001001)
    ok, message = check("04", write_case(tmp_path, case))
    assert not ok and "with or without be_liberal" in message
    assert "be_liberal let this RST through" not in message


@pytest.mark.parametrize("flags", ["SR", "FR"])
def test_04_refuses_a_rst_that_tcp_error_rejects(tmp_path, flags):
    # tcp_error(): SYN+RST and FIN+RST are not in tcp_valid_flags[] -> INVALID before tracking
    case = with_last("04-the-rst-be-liberal-does-not-save", flags=flags)
    ok, message = check("04", write_case(tmp_path, case))
    assert not ok and '"invalid rst"' in message and "INVALID, but because" in message


def test_04_refuses_a_packet_that_is_no_rst(tmp_path):
    case = json.loads((CASES / "ack-over-upper-bound-liberal.json").read_text())
    ok, message = check("04", write_case(tmp_path, case))
    assert not ok and "no RST flag" in message


# --- names, unreadable input, the subcommand


def test_exercise_names_number_and_slug():
    assert find_exercise("1").name == find_exercise("01").name == "01-ack-over-upper-bound"
    assert find_exercise("ack-over-upper-bound").name == "01-ack-over-upper-bound"
    assert find_exercise("9").name == "09-the-private-address-stays-home"
    with pytest.raises(ExerciseError, match="no exercise '10'"):
        find_exercise("10")


@pytest.mark.parametrize(
    ("exercise", "content"),
    [("01", "{not json"), ("01", '{"packets": 3}'), ("02", "name = "), ("99", "{}")],
)
def test_unreadable_input_is_exit_2_one_line(tmp_path, capsys, exercise, content):
    path = tmp_path / ("answer.toml" if exercise == "02" else "answer.json")
    path.write_text(content)
    assert main(argparse.Namespace(exercise=exercise, file=str(path))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nflab: ") and "Traceback" not in err


def test_missing_file_is_exit_2(tmp_path, capsys):
    assert main(argparse.Namespace(exercise="01", file=str(tmp_path / "nope.json"))) == 2
    assert "no such file" in capsys.readouterr().err


def test_subcommand_prints_right_or_wrong_and_exits_0_or_1(capsys):
    assert main(argparse.Namespace(exercise="01", file=str(solution("01-ack-over-upper-bound")))) == 0
    assert capsys.readouterr().out == "right\n"
    assert main(argparse.Namespace(exercise="01", file=str(CASES / "late-ack.json"))) == 1
    out = capsys.readouterr().out
    assert out.startswith("wrong: ") and out.count("\n") == 1


def test_solutions_are_independent_copies():
    a = json.loads(solution("01-ack-over-upper-bound").read_text())
    b = copy.deepcopy(a)
    b["packets"][-1]["ack"] = 0
    assert a != b  # with_last never edits the file on disk


# ---------------------------------------------------------------- the story exercises (05-09)


def story_variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """The exercise's solution with one line changed (a typical wrong answer)."""
    text = solution(name).read_text()
    assert old in text
    path = tmp_path / "answer.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("name", "old", "new", "why"),
    [
        # the same NAT for both queries: el7's nf_ct_resolve_clash() merges the loser
        (
            "05-a-race-only-old-kernels-lose",
            'server = "203.0.113.10:53"',
            'server = "198.51.100.2:53"',
            "merged",
        ),
        # --random: on el7 the search starts at secure_port(), the same hash for both SYNs
        (
            "06-masquerade-that-does-not-clash",
            "--random-fully",
            "--random",
            "on el7 a SYN still loses its race",
        ),
        # flow 2 completes its handshake before flow 3: every entry ASSURED, nothing may be evicted
        (
            "07-what-early-drop-may-evict",
            'packet = {from = "ctr", src = "192.0.2.2:40003"',
            'packet = {from = "ctr", src = "192.0.2.2:40002", dst = "198.51.100.2:443", flags = "A", '
            'seq = 2001, ack = 5001, win = 229}\n[[step]]\npacket = {from = "ctr", src = "192.0.2.2:40003"',
            "the table is full and nothing may be evicted",
        ),
        ("08-delete-only-the-stale-entry", '"-D -p udp --dport 5060"', '"-F"', "the DNS entry is gone"),
        (
            "08-delete-only-the-stale-entry",
            '"-D -p udp --dport 5060"',
            '"-D -p udp"',
            "the DNS entry is gone",
        ),
        # exercise 02's rule: INPUT never sees a forwarded packet
        (
            "09-the-private-address-stays-home",
            "-I FORWARD 1 -m conntrack",
            "-A INPUT -m conntrack",
            "an INPUT rule never sees it",
        ),
        (
            "09-the-private-address-stays-home",
            "-I FORWARD 1 -m conntrack --ctstate INVALID -j DROP",
            "-I FORWARD 1 -s 192.0.2.0/24 -j DROP",
            "also stops the handshake",
        ),
    ],
)
def test_story_exercises_refuse_the_typical_wrong_answers(tmp_path, name, old, new, why):
    ok, message = check(name, story_variant(tmp_path, name, old, new))
    assert not ok and message.startswith("wrong: ") and why in message


def test_07_refuses_a_table_that_never_fills(tmp_path):
    path = story_variant(
        tmp_path,
        "07-what-early-drop-may-evict",
        '"net.netfilter.nf_conntrack_max" = 2',
        '"net.netfilter.nf_conntrack_max" = 3',
    )
    assert check("07", path) == (False, "wrong: the table holds 3: more than 3 steps must expect an answer")


@pytest.mark.parametrize(
    "rule",
    [
        "-I DOCKER-USER -m conntrack --ctstate INVALID -j DROP",  # Docker's place for user rules
        "-t mangle -A POSTROUTING -m conntrack --ctstate INVALID -j DROP",  # before nat POSTROUTING
    ],
)
def test_09_accepts_other_places_a_forwarded_packet_crosses(tmp_path, rule):
    path = story_variant(
        tmp_path,
        "09-the-private-address-stays-home",
        "-I FORWARD 1 -m conntrack --ctstate INVALID -j DROP",
        rule,
    )
    assert check("09", path) == (True, "right")


@pytest.mark.parametrize("number", ["05", "06", "07", "09"])
def test_story_starters_are_wrong_as_given(number):
    ex = find_exercise(number)
    ok, message = check(ex.name, DOCS / f"{ex.name}.starter{ex.suffix}")
    assert not ok and message.startswith("wrong: on el7")


def test_08_starter_is_wrong_as_given():
    ok, message = check("08", DOCS / "08-delete-only-the-stale-entry.starter.toml")
    assert (ok, message) == (False, "wrong: add a conntrack step where the starter's comment says")


# the first client datagram, which creates the entry that goes stale
FIRST_DATAGRAM = """[[step]]
packet = {from = "remote", proto = "udp", src = "198.51.100.2:5060", dst = "198.51.100.1:5060", len = 400}
expect = "delivered"
to = "ctr"
say = "the client's datagram to the published port: DNAT to ctr"
"""


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        # the expectation that the datagram reaches ctr2, taken out: nothing left to fail
        ('expect = "delivered"\nto = "ctr2"\n', "", "your story succeeds without its conntrack step"),
        ('to = "ctr2"', 'to = "ctr"', "your story succeeds without its conntrack step"),
        # no first datagram, no entry to go stale
        (FIRST_DATAGRAM, "", "your story succeeds without its conntrack step"),
        # 40 s: the unreplied UDP entry (30 s) expires on its own, the DNS entry with it
        ("delay = 20", "delay = 40", "your story succeeds without its conntrack step"),
        # a step that deletes nothing
        ('"-D -p udp --dport 5060"', '"-L"', "the client's datagrams still go to ctr"),
    ],
)
def test_08_is_the_conntrack_step_that_fixes_it_not_a_changed_story(tmp_path, old, new, why):
    ok, message = check("08", story_variant(tmp_path, "08-delete-only-the-stale-entry", old, new))
    assert not ok and message.startswith("wrong: on el7 ") and why in message


def test_06_keeps_the_expectations_a_rule_must_meet(tmp_path):
    # dropping every forwarded packet: no SYN reaches confirmation, so none clashes; the connect
    # steps expect to connect, so the story fails ...
    both = (
        '"-t nat -I POSTROUTING -s 192.0.2.0/24 -o eth0 -j MASQUERADE --random-fully", "-I FORWARD -j DROP"'
    )
    path = story_variant(
        tmp_path,
        "06-masquerade-that-does-not-clash",
        '"-t nat -I POSTROUTING -s 192.0.2.0/24 -o eth0 -j MASQUERADE --random-fully"',
        both,
    )
    ok, message = check("06", path)
    assert not ok and message.startswith("wrong: on el7 the story fails: ")
    # ... and the same SYNs sent as bare packets, which expect nothing, are not the starter's steps
    text = path.read_text()
    assert text.count("connect = {") == 2
    path.write_text(text.replace("connect = {", 'packet = {flags = "S", '))
    ok, message = check("06", path)
    assert not ok and message.startswith("wrong: keep the starter's steps")


def test_a_case_file_is_not_a_story(tmp_path):
    with pytest.raises(ExerciseError, match="not a story scenario"):
        check("05", DOCS / "02-drop-invalid-in-input.starter.toml")
