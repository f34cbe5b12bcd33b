"""docs/contract.md, the reference of the case file: every example on the page is a complete
case that loads and replays, and the page names every key the loader accepts (so a key added
to the loader without documenting it fails here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sim.scenario.case import CASE_KEYS, INNER_KEYS, OPTION_KEYS, PACKET_KEYS, load_case_file
from sim.scenario.replay import replay_case

ROOT = Path(__file__).resolve().parents[2]
PAGES = [p for p in (ROOT / "docs/contract.md", ROOT / "docs/zh/contract.md") if p.exists()]
JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.S | re.M)


def examples() -> list[tuple[str, str]]:
    return [
        (f"{page.relative_to(ROOT)}#{i}", body)
        for page in PAGES
        for i, body in enumerate(JSON_BLOCK.findall(page.read_text(encoding="utf-8")))
    ]


def test_the_page_has_an_example_of_each_protocol_hosts_and_a_race():
    bodies = [json.loads(b) for _, b in examples() if "contract.md#" in _ and "zh" not in _]
    packets = [p for case in bodies for p in case["packets"]]
    assert {p.get("proto", "tcp") for p in packets} == {"tcp", "udp", "icmp"}
    assert any("hosts" in case for case in bodies) and any("race" in p for p in packets)
    assert any("inner" in p for p in packets) and any("options" in p for p in packets)


@pytest.mark.parametrize(("where", "body"), examples(), ids=[w for w, _ in examples()])
def test_every_example_loads_and_replays(tmp_path, where, body):
    path = tmp_path / "case.json"
    path.write_text(body)
    case = load_case_file(path)
    assert len(replay_case(case)) == len(case["packets"]), where


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_page_names_every_key(page):
    text = page.read_text(encoding="utf-8")
    keys = CASE_KEYS | INNER_KEYS | OPTION_KEYS | set().union(*PACKET_KEYS.values())
    missing = sorted(k for k in keys if f"`{k}`" not in text and f'"{k}"' not in text)
    assert missing == []


def test_the_race_example_replays_as_the_live_kernel_recorded_it(tmp_path):
    """The page's echo reply racing its request, against the 6.18 recording of the same
    packets (tests/kernel/observed-v2-findings/race-echo-reply-request-held.json)."""
    from sim.kernel.check import FIELDS, compare

    recording = ROOT / "tests/kernel/observed-v2-findings/race-echo-reply-request-held.json"
    observed = json.loads(recording.read_text())["observations"]
    for where, body in examples():
        case = json.loads(body)
        if case.get("_about", "").startswith("an echo reply racing its own request"):
            assert compare(case, replay_case(case), observed, FIELDS) == [], where
            assert (observed[1]["ctstate"], observed[1]["ct_status"]) == ("INVALID", None)
            break
    else:
        pytest.fail("no race example on the page")
