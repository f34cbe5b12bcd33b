"""What the live fuzz of contract v2 found (``nflab kernel-check --fuzz 300 --v2 --seed S``,
issue 18), as cases against the live 6.18 kernel's recordings, and the order in which the
harness holds and releases racing packets.

The cases in ``v2-findings/`` come from the fuzz and from the contract's rules on what a race
holds and when an entry is read; their expected values are the live kernel's
(``python -m sim.kernel.record --out tests/kernel/observed-v2-findings
tests/kernel/v2-findings/*.json`` on 6.18.44, every field of contract v2):

- an echo reply racing its held request, alone or three deep in a chain: the request is not
  confirmed yet, so the reply is INVALID (``nf_conntrack_icmp_packet()``: a reply cannot
  create an entry) and, read before the request's release, has no entry (``ct_status``
  null) -- the model used to read it after the release and say CONFIRMED;
- a port unreachable without an entry is held too (the hold rule matches the IP ID, not
  the entry) and its racer creates the entry it quotes: read after its release, the error's
  ``ct_status`` is that entry's -- the model used not to hold it and said null;
- a racer dropped in FORWARD before its own hold has gone through: the packet held before it
  is confirmed then, so the answer racing the dropped packet is ESTABLISHED;
- an answer on a confirmed entry is held as well;
- MASQUERADE reuses the mapping of an earlier connection from the same source
  (``find_appropriate_src()``, nf_nat_core.c): a second flow from ctr:40000 leaves with the
  port its first flow got, though 40000 is free towards the new destination; and an entry
  held unconfirmed is already in that by-source hash, so the identical SYN racing it takes
  its port without counting ``found`` -- the model used to search afresh.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.kernel import run_case, skip_reason, testbed
from sim.kernel.check import FIELDS, compare, load_case
from sim.scenario.case import parse_case
from sim.scenario.replay import replay_case

HERE = Path(__file__).parent
CASES = sorted((HERE / "v2-findings").glob("*.json"))
REASON = skip_reason()


def recording(case_file: Path) -> dict[str, Any]:
    rec: dict[str, Any] = json.loads((HERE / "observed-v2-findings" / case_file.name).read_text())
    return rec


def test_every_race_case_has_a_live_recording() -> None:
    assert len(CASES) == 7
    for f in CASES:
        rec = recording(f)
        assert rec["case"] == f.stem
        assert rec["kernel_release"].startswith("6.18.")


@pytest.mark.parametrize("case_file", CASES, ids=lambda f: f.stem)
def test_model_matches_the_live_kernel_on_races(case_file: Path) -> None:
    case = load_case(str(case_file))
    diffs = compare(case, replay_case(case), recording(case_file)["observations"], FIELDS)
    assert diffs == [], "\n".join(d.describe() for d in diffs)


def test_echo_reply_racing_its_held_request_finds_no_entry() -> None:
    """Typed in from the recording: the reply is INVALID, counted ``invalid``, no entry."""
    obs = replay_case(load_case(str(HERE / "v2-findings" / "race-echo-reply-request-held-chain.json")))
    reply = obs[3]
    assert (reply["ctstate"], reply["ct_status"], reply["ct_stats"]) == ("INVALID", None, {"invalid": 1})
    assert obs[1]["ct_status"] == ["CONFIRMED", "SRC_NAT", "SRC_NAT_DONE", "DST_NAT_DONE"]


def test_held_error_without_entry_is_read_after_its_release() -> None:
    obs = replay_case(load_case(str(HERE / "v2-findings" / "race-held-error-racer-creates-entry.json")))
    assert obs[0]["ctstate"] == "INVALID"
    assert obs[0]["ct_status"] == ["CONFIRMED", "SRC_NAT_DONE", "DST_NAT_DONE"]


def test_a_second_flow_from_the_same_source_takes_its_first_flows_port() -> None:
    """From the recording: the first flow's port is another than 40000 (ctr2 holds 40000
    towards remote), and the second flow leaves with that same port."""
    obs = replay_case(load_case(str(HERE / "v2-findings" / "snat-reuses-source-mapping.json")))
    first, second = obs[1]["delivered_as"]["src"], obs[2]["delivered_as"]["src"]
    assert first != "198.51.100.1:40000" and second == first
    assert (obs[1]["ct_stats"], obs[2]["ct_stats"]) == ({"found": 1}, {})


# ---------------------------------------------------------------- the harness's order (no kernel)


class ScriptedTestbed:
    """Stands in for :class:`sim.kernel.testbed.Testbed`: logs each call; packets whose
    source port is 9 end before their hold (as a packet dropped in FORWARD does)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def reset(self) -> None:
        pass

    def send(self, side: str, pkt: Any) -> dict[str, Any]:
        self.calls.append(f"send {pkt.sport}")
        return {"sport": pkt.sport}

    def send_held(self, side: str, pkt: Any) -> Any:
        if pkt.dport == 9:
            self.calls.append(f"ended before its hold {pkt.sport}")
            return {"sport": pkt.sport}
        self.calls.append(f"hold {pkt.sport}")
        return testbed._Held(side, pkt, 0, 0, [], [], {})

    def release(self, held: Any) -> dict[str, Any]:
        self.calls.append(f"release {held.sent.sport}")
        return {"sport": held.sent.sport}

    def flush_holds(self) -> None:
        self.calls.append("flush")


def test_a_racer_that_ends_before_its_hold_releases_the_held_packet() -> None:
    """Contract: the racer runs to its end, then the held packet goes on -- also when the
    racer itself was to be held and never got there."""
    case = load_case(str(HERE / "v2-findings" / "race-chain-middle-dropped-before-hold.json"))
    _topology, sysctls, lines, packets = parse_case(case)
    tb = ScriptedTestbed()
    out = testbed._run(tb, sysctls, lines, packets)  # type: ignore[arg-type]
    assert tb.calls == ["hold 40000", "ended before its hold 53", "release 40000", "flush", "send 53"]
    assert [o["sport"] for o in out] == [40000, 53, 53]


def test_a_chain_is_released_last_held_first() -> None:
    case = load_case(str(HERE / "v2-findings" / "race-echo-reply-request-held-chain.json"))
    _topology, sysctls, lines, packets = parse_case(case)
    tb = ScriptedTestbed()
    testbed._run(tb, sysctls, lines, packets)  # type: ignore[arg-type]
    held = [c for c in tb.calls if c.startswith(("hold", "release"))]
    assert held == ["hold 0", "hold 4660", "hold 4661", "release 4661", "release 4660", "release 0"]


# ---------------------------------------------------------------- the real kernel


@pytest.mark.kernel
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
@pytest.mark.parametrize("case_file", CASES, ids=lambda f: f.stem)
def test_the_kernel_still_matches_the_race_recordings(case_file: Path) -> None:
    case = load_case(str(case_file))
    diffs = compare(case, run_case(case), recording(case_file)["observations"], FIELDS)
    assert diffs == [], "\n".join(d.describe() for d in diffs)
