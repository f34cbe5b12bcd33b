"""The built-in case library (sim/cases) and its real-kernel recordings (tests/kernel/observed).

The recordings were made on 6.18 with ``python -m sim.kernel.record --all``; the table below
pins each case's last packet to what KERNEL-NOTES.md and nf_conntrack_proto_tcp.c predict, so
a re-recording on a kernel that behaves differently shows up here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.kernel.check import FIELDS, load_case
from sim.scenario.case import parse_case
from sim.scenario.loader import CASES_DIR, builtin_cases

OBSERVED = Path(__file__).parents[1] / "kernel" / "observed"
NAMES = builtin_cases()


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBSERVED / f"{name}.json").read_text())
    return data


def test_the_library_is_there() -> None:
    assert len(NAMES) >= 24 and "baseline" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_case_is_valid_and_explains_its_numbers(name: str) -> None:
    case = json.loads((CASES_DIR / f"{name}.json").read_text())
    parse_case(case)
    assert case["name"] == name
    assert case["kernel"] == "6.1"
    assert case.get("description")
    assert all(p.get("comment") for p in case["packets"])
    assert load_case(name) == case


@pytest.mark.parametrize("name", NAMES)
def test_recording_exists_and_names_its_case(name: str) -> None:
    rec = recording(name)
    assert rec["case"] == name
    assert rec["kernel_release"]
    assert len(rec["observations"]) == len(load_case(name)["packets"])
    assert all(set(o) == set(FIELDS) for o in rec["observations"])


def test_no_recording_without_a_case() -> None:
    assert sorted(p.stem for p in OBSERVED.glob("*.json")) == NAMES


NATED_TO_CTR = {"src": "198.51.100.2:443", "dst": "192.0.2.2:40000"}
NATED_TO_REMOTE = {"src": "198.51.100.1:40000", "dst": "198.51.100.2:443"}
RAW_TO_REMOTE = {"src": "192.0.2.2:40000", "dst": "198.51.100.2:443"}


def rst(seq: int, ack: int = 0, flags: str = "R") -> dict[str, Any]:
    return {"to": "remote", "flags": flags, "seq": seq, "ack": ack}


# name: (window, reason prefix, tcp_state, fate, delivered_as, emitted) of the last packet
LAST_PACKET: dict[str, tuple[Any, ...]] = {
    "baseline": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "late-ack": (
        "IGNORE",
        "ignored ACK under lower bound 935000",
        "ESTABLISHED",
        "delivered:ctr",
        NATED_TO_CTR,
        [],
    ),
    "seq-under-lower-bound": (
        "IGNORE",
        "SEQ is under lower bound 4935744",
        "ESTABLISHED",
        "delivered:ctr",
        NATED_TO_CTR,
        [],
    ),
    "small-overshoot": (
        "IGNORE",
        "102 bytes more than expected",
        "ESTABLISHED",
        "delivered:ctr",
        NATED_TO_CTR,
        [],
    ),
    "data-beyond-window": (
        "INVALID",
        "SEQ is over upper bound 5064258",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1001001)],
    ),
    "data-beyond-window-drop": (
        "INVALID",
        "SEQ is over upper bound 5064258",
        "ESTABLISHED",
        "dropped:host",
        None,
        [],
    ),
    "data-beyond-window-liberal": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "ack-over-upper-bound": (
        "INVALID",
        "ACK is over upper bound 1001002",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1002001)],
    ),
    "ack-over-upper-bound-drop": (
        "INVALID",
        "ACK is over upper bound 1001002",
        "ESTABLISHED",
        "dropped:host",
        None,
        [],
    ),
    "ack-over-upper-bound-liberal": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "rst-out-of-window": (
        "INVALID",
        "SEQ is over upper bound 5064258",
        "ESTABLISHED",
        "local:host",
        None,
        [],
    ),
    # be_liberal: nf_tcp_log_invalid() accepts any window failure, RSTs included; the RST's seq
    # is not td_maxack, so the state is kept (RFC 5961). The sysctl docs' "only out of window
    # RST segments" exception is not in the code.
    "rst-out-of-window-liberal": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "old-rst-from-ctr": ("INVALID", "invalid rst", "ESTABLISHED", "delivered:remote", RAW_TO_REMOTE, []),
    "old-rst-from-ctr-liberal": (
        "INVALID",
        "invalid rst",
        "ESTABLISHED",
        "delivered:remote",
        RAW_TO_REMOTE,
        [],
    ),
    "old-rst-from-ctr-ignore-invalid-rst": (
        "ACCEPT",
        None,
        "ESTABLISHED",
        "delivered:remote",
        NATED_TO_REMOTE,
        [],
    ),
    "rst-in-window-inexact": ("ACCEPT", None, "ESTABLISHED", "delivered:ctr", NATED_TO_CTR, []),
    "syn-on-established-remote": (
        "INVALID",
        "packet (index 0) in dir 1 invalid, state ESTABLISHED",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(0, 7000001, "RA")],
    ),
    "syn-on-established-ctr": (
        "IGNORE",
        "packet (index 0) in dir 0 ignored, state ESTABLISHED",
        "ESTABLISHED",
        "delivered:remote",
        NATED_TO_REMOTE,
        [],
    ),
    "fin-to-time-wait": ("ACCEPT", None, "TIME_WAIT", "delivered:remote", NATED_TO_REMOTE, []),
    "window-scale-0": (
        "INVALID",
        "SEQ is over upper bound 1065162",
        "ESTABLISHED",
        "delivered:remote",
        RAW_TO_REMOTE,
        [],
    ),
    "window-scale-14": ("ACCEPT", None, "ESTABLISHED", "delivered:remote", NATED_TO_REMOTE, []),
    "sequence-wraparound": (
        "INVALID",
        "ACK is over upper bound 706",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1705)],
    ),
    "sack-right-edge-over-td-end": (
        "INVALID",
        "ACK is over upper bound 1001002",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(1001001)],
    ),
    "no-flags": (
        "INVALID",
        "invalid tcp flag combination",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(0, 5000001, "RA")],
    ),
    "syn-fin": (
        "INVALID",
        "invalid tcp flag combination",
        "ESTABLISHED",
        "local:host",
        None,
        [rst(0, 5000003, "RA")],
    ),
}


def test_every_case_has_an_expectation() -> None:
    assert sorted(LAST_PACKET) == NAMES


@pytest.mark.parametrize("name", sorted(LAST_PACKET))
def test_recording_matches_the_kernel_notes(name: str) -> None:
    window, reason, tcp_state, fate, delivered_as, emitted = LAST_PACKET[name]
    obs = recording(name)["observations"]
    last = obs[-1]
    assert last["ctstate"] == ("INVALID" if window == "INVALID" else "ESTABLISHED")
    assert last["window"] == window
    assert (last["reason"] or "").startswith(reason or "") and (last["reason"] is None) == (reason is None)
    assert (last["tcp_state"], last["fate"], last["delivered_as"], last["emitted"]) == (
        tcp_state,
        fate,
        delivered_as,
        emitted,
    )
    assert all(o["window"] == "ACCEPT" for o in obs[:-1])  # the lead-in is always clean
