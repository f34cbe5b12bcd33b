"""``nflab kernel-check`` (sim.kernel.check): comparison, minimal case files, exit codes, fuzzing.

Most tests stub both sides (no root needed): the "kernel" returns stored recordings and the
"model" returns the same or a doctored copy. The last two run the real kernel.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sim.kernel import check, skip_reason
from sim.kernel.check import Difference, compare, load_case, minimal_case, write_minimal_case
from sim.scenario.case import parse_case
from sim.scenario.loader import builtin_cases

OBSERVED = Path(__file__).parent / "observed"
REASON = skip_reason()


def recorded(name: str) -> list[dict[str, Any]]:
    obs: list[dict[str, Any]] = json.loads((OBSERVED / f"{name}.json").read_text())["observations"]
    return obs


def run_main(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="nflab")
    check.add_subcommand(parser.add_subparsers(dest="command"))
    return check.main(parser.parse_args(["kernel-check", *argv]))


class RecordedKernel:
    """Stands in for KernelRunner: answers every case with its stored recording."""

    def __enter__(self) -> RecordedKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run(self, case: dict[str, Any]) -> list[dict[str, Any]]:
        return recorded(case["name"])


@pytest.fixture
def stub_sides(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Both sides from the recordings; set ``sides["doctor"]`` to alter what the model says."""
    sides: dict[str, Any] = {"doctor": lambda case, obs: obs}

    def replay(case: dict[str, Any]) -> list[dict[str, Any]]:
        return list(sides["doctor"](case, copy.deepcopy(recorded(case["name"]))))

    monkeypatch.setattr(check, "KernelRunner", RecordedKernel)
    monkeypatch.setattr(check, "model_replay", lambda: replay)
    monkeypatch.setattr(check, "skip_reason", lambda: None)
    return sides


# ---------------------------------------------------------------- compare


def test_identical_observations_agree() -> None:
    obs = recorded("late-ack")
    assert compare(load_case("late-ack"), copy.deepcopy(obs), obs) == []


def test_a_differing_field_is_reported_with_both_values() -> None:
    kernel = recorded("late-ack")
    model = copy.deepcopy(kernel)
    model[5]["window"] = "INVALID"
    diffs = compare(load_case("late-ack"), model, kernel)
    assert diffs == [Difference("late-ack", 5, "window", "INVALID", "IGNORE")]
    assert diffs[0].describe() == 'late-ack packet 5 window: model "INVALID", kernel "IGNORE"'


def test_an_extra_emitted_packet_is_one_difference_on_the_list() -> None:
    kernel = recorded("ack-over-upper-bound")
    model = copy.deepcopy(kernel)
    model[5]["emitted"].append({"to": "ctr", "flags": "R", "seq": 5000001, "ack": 0})
    (diff,) = compare(load_case("ack-over-upper-bound"), model, kernel)
    assert (diff.packet, diff.field) == (5, "emitted")
    assert len(diff.model) == 2 and len(diff.kernel) == 1


def test_a_missing_observation_is_reported() -> None:
    kernel = recorded("baseline")
    (diff,) = compare(load_case("baseline"), kernel[:-1], kernel)
    assert (diff.packet, diff.field, diff.model) == (4, "observation", None)


# ---------------------------------------------------------------- minimal files


def test_minimal_case_stops_after_the_first_disagreeing_packet() -> None:
    case = load_case("fin-to-time-wait")
    diffs = [
        Difference(case["name"], 7, "tcp_state", "CLOSE", "LAST_ACK"),
        Difference(case["name"], 6, "tcp_state", "FIN_WAIT", "CLOSE_WAIT"),
    ]
    small = minimal_case(case, diffs)
    assert small["packets"] == case["packets"][:7]
    assert "packet 6 tcp_state" in small["description"] and "packet 7" not in small["description"]
    assert small["description"].startswith(case["description"])
    parse_case(small)


def test_minimal_case_keeps_the_packets_racing_the_first_disagreeing_one() -> None:
    case = load_case("udp-dns-race")  # packet 1 races packet 0, packet 2 does not race
    small = minimal_case(case, [Difference(case["name"], 0, "ct_stats", {}, {"clash_resolve": 1})])
    assert small["packets"] == case["packets"][:2]
    parse_case(small)


def test_a_model_exception_keeps_the_whole_case(tmp_path: Path) -> None:
    case = load_case("data-beyond-window-drop")
    diffs = [Difference(case["name"], None, "exception", "KeyError: 'x'", None)]
    path = write_minimal_case(case, diffs, tmp_path / "out")
    written = json.loads(path.read_text())
    assert path.name == "data-beyond-window-drop.json"
    assert written["packets"] == case["packets"] and written["iptables"] == case["iptables"]
    parse_case(written)


# ---------------------------------------------------------------- main and exit codes


def test_full_agreement_exits_0(stub_sides: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    assert run_main("late-ack", "baseline", "--out", str(tmp_path / "out")) == 0
    out, err = capsys.readouterr()
    assert out == "11 packets, 11 agree\n"
    assert "[1/2] late-ack" in err and "[2/2] baseline" in err
    assert not (tmp_path / "out").exists()


def test_a_disagreement_exits_1_and_writes_a_replayable_case(
    stub_sides: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    def doctor(case: dict[str, Any], obs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if case["name"] == "late-ack":
            obs[5].update(window="INVALID", fate="local:host", delivered_as=None)
        return obs

    stub_sides["doctor"] = doctor
    out_dir = tmp_path / "out"
    assert run_main("--all", "--out", str(out_dir)) == 1
    out = capsys.readouterr().out.splitlines()
    total = sum(len(recorded(n)) for n in builtin_cases())
    assert out[-1] == f"{total} packets, {total - 1} agree"
    assert 'late-ack packet 5 window: model "INVALID", kernel "IGNORE"' in out
    assert [p.name for p in out_dir.iterdir()] == ["late-ack.json"]
    parse_case(json.loads((out_dir / "late-ack.json").read_text()))


def test_json_report(stub_sides: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    stub_sides["doctor"] = lambda case, obs: obs[:-1]
    assert run_main("syn-fin", "--json", "--out", str(tmp_path)) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["packets"], report["agree"]) == (6, 5)
    assert report["by"] == {"tcp": [5, 6], "ct_stats": [5, 6]}  # a missing observation counts
    (entry,) = report["cases"]
    assert entry["differences"][0]["field"] == "observation"
    assert entry["file"] == str(tmp_path / "syn-fin.json")


def test_counts_per_protocol_race_and_ct_stats(
    stub_sides: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    """udp-dns-race: three UDP packets, the first two racing; only the held one's ct_stats
    is doctored, so UDP, race and ct_stats each lose that one packet."""

    def doctor(case: dict[str, Any], obs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        obs[0]["ct_stats"] = {"insert_failed": 1}
        return obs

    stub_sides["doctor"] = doctor
    assert run_main("udp-dns-race", "--json", "--out", str(tmp_path)) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["by"] == {"udp": [2, 3], "race": [1, 2], "ct_stats": [2, 3]}


def test_cannot_run_exits_2_with_the_skip_reason(
    stub_sides: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(check, "skip_reason", lambda: "kernel harness needs root")
    assert run_main("baseline") == 2
    assert capsys.readouterr().err == "nflab kernel-check: kernel harness needs root\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "name cases or case files"),
        (("no-such-case",), "no-such-case: no such file or built-in case"),
        (("missing.json",), "missing.json: No such file"),
        (("--fuzz", "-1"), "--fuzz must be >= 0"),
    ],
)
def test_bad_input_exits_2_in_one_line(
    stub_sides: dict[str, Any], argv: tuple[str, ...], message: str, capsys: Any
) -> None:
    assert run_main(*argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ---------------------------------------------------------------- fuzzing


def flag_kernel(case: dict[str, Any]) -> list[dict[str, Any]]:
    """A stand-in kernel whose observation only echoes each packet's flags."""
    return [{"ctstate": p["flags"], "emitted": []} for p in case["packets"]]


def test_fuzz_shrinks_a_disagreement_to_a_minimal_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    class FlagKernel(RecordedKernel):
        def run(self, case: dict[str, Any]) -> list[dict[str, Any]]:
            return flag_kernel(case)

    def model(case: dict[str, Any]) -> list[dict[str, Any]]:  # wrong about every RST
        obs = flag_kernel(case)
        for o in obs:
            if "R" in o["ctstate"]:
                o["emitted"] = [{"to": "remote", "flags": "R", "seq": 0, "ack": 0}]
        return obs

    monkeypatch.setattr(check, "KernelRunner", FlagKernel)
    monkeypatch.setattr(check, "model_replay", lambda: model)
    monkeypatch.setattr(check, "skip_reason", lambda: None)
    written = []
    for _ in range(2):
        assert run_main("--fuzz", "200", "--seed", "3", "--out", str(tmp_path)) == 1
        captured = capsys.readouterr()
        assert "shrinking" in captured.err
        assert captured.out.splitlines()[-2].startswith("agree per group: tcp ")  # --fuzz only
        written.append((tmp_path / "fuzz-seed3.json").read_text())
    assert written[0] == written[1]  # same seed, same minimal case
    case = json.loads(written[0])
    parse_case(case)
    assert "R" in case["packets"][-1]["flags"]
    assert not any("R" in p["flags"] for p in case["packets"][:-1])
    assert len(case["packets"]) <= 4 and "sysctl" not in case and "iptables" not in case


# ---------------------------------------------------------------- the real kernel

kernel = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.mark.kernel
@kernel
def test_the_kernel_still_matches_every_recording(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(check, "model_replay", lambda: lambda case: recorded(case["name"]))
    assert run_main("--all", "--out", str(tmp_path)) == 0


@pytest.mark.kernel
@kernel
def test_fuzzed_cases_replay_identically_on_the_kernel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    """Shrinking needs a deterministic judge: a second run of each case must agree with the first."""
    runner = check.KernelRunner()
    monkeypatch.setattr(check, "KernelRunner", lambda: runner)
    monkeypatch.setattr(check, "model_replay", lambda: runner.run)
    assert run_main("--fuzz", "30", "--seed", "1", "--out", str(tmp_path)) == 0
    assert "agree" in capsys.readouterr().out
