"""``nflab replay`` reads a case one packet at a time (issue 21): memory flat in the number of
packets, output and refusals exactly those of reading the file whole with json.loads.

Flatness is shown by tracemalloc's peak (allocations counted, not timed); equivalence by
comparing :func:`open_case_file` with :func:`load_case_file` (json.loads and the same checks)
on generated and mangled case files, with chunks small enough to cut every token.
"""

from __future__ import annotations

import contextlib
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.bench import upload_case
from sim.cli import main
from sim.scenario import loader
from sim.scenario.case import CaseError, load_case_file, parse_case
from sim.scenario.case_stream import open_case_file
from sim.scenario.replay import replay_case, replay_stream
from sim.scenario.replay_command import replay

CASES = Path(loader.__file__).resolve().parent / "cases"
TWO_CONTAINERS = json.loads((CASES / "design-syn-race-two-containers.json").read_text())
LATE_ACK = json.loads((CASES / "late-ack.json").read_text())


def _peak_replaying(path: Path) -> int:
    """tracemalloc's peak while ``nflab replay PATH --json`` runs, its output thrown away."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        tracemalloc.start()
        try:
            assert replay(str(path), as_json=True) == 0
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_replay_memory_does_not_grow_with_the_packets(tmp_path, monkeypatch):
    """Ten times the packets, about the same peak (measured: 55 KB and 50 KB; reading the case
    whole, as before: 252 KB and 2,185 KB). The file is read 1 KB at a time so that the read
    buffer is full in both."""
    monkeypatch.setattr(loader, "CHUNK", 1024)
    peaks = []
    for n in (200, 2000):
        path = tmp_path / f"upload-{n}.json"
        path.write_text(json.dumps(upload_case(n), indent=1))
        peaks.append(_peak_replaying(path))
    assert peaks[1] < 2 * peaks[0], peaks


def test_the_stream_holds_no_packet_and_reads_them_again(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(upload_case(50)))
    stream = open_case_file(path)
    assert "packets" not in stream.head and stream.count == 50
    assert list(stream.entries()) == upload_case(50)["packets"] == list(stream.entries())


@pytest.mark.parametrize("name", sorted(p.stem for p in CASES.glob("*.json")))
def test_builtin_cases_replay_the_same_streamed(name):
    path = CASES / f"{name}.json"
    assert list(replay_stream(open_case_file(path))) == replay_case(load_case_file(path))


def test_a_toml_case_is_read_whole_and_replays(tmp_path, capsys):
    lines = ['kernel = "6.1"']
    for p in LATE_ACK["packets"]:
        lines.append("[[packets]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in p.items() if not isinstance(v, dict)]
    path = tmp_path / "late-ack.toml"
    path.write_text("\n".join(lines) + "\n")
    stream = open_case_file(path)
    assert stream.count == len(LATE_ACK["packets"])
    assert main(["replay", str(path), "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == stream.count


def test_hosts_after_the_packets_that_name_them(tmp_path):
    """The checking pass meets ``from: ctr2`` before ``hosts``: the case is read whole instead."""
    case = {k: v for k, v in TWO_CONTAINERS.items() if k != "hosts"} | {"hosts": TWO_CONTAINERS["hosts"]}
    path = tmp_path / "late-hosts.json"
    path.write_text(json.dumps(case))
    assert list(replay_stream(open_case_file(path))) == replay_case(TWO_CONTAINERS)


def test_a_case_file_changed_during_the_replay_is_one_line_and_2(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(upload_case(40)))
    stream = open_case_file(path)
    path.write_text(json.dumps(upload_case(20)))  # shorter now
    with pytest.raises(CaseError, match="changed during the replay: 20 packets, not 40"):
        list(replay_stream(stream))
    path.write_text("{")
    with pytest.raises(CaseError, match="changed during the replay"):
        list(replay_stream(stream))


# ---------------------------------------------------------------- the same as json.loads


def _outcome(read: Any, path: Path) -> tuple[str, Any]:
    """What a reader makes of the file: the error's line, or the case as (head, packets)."""
    try:
        got = read(path)
    except CaseError as e:
        return "refused", str(e)
    if isinstance(got, dict):
        return "case", ({k: v for k, v in got.items() if k != "packets"}, got["packets"])
    return "case", (got.head, list(got.entries()))


GOOD: dict[str, list[Any]] = {
    "name": ["x"],
    "kernel": ["6.1", "3.10.0-1160.el7.x86_64"],
    "hosts": [TWO_CONTAINERS["hosts"]],
    "sysctl": [{"net.netfilter.nf_conntrack_tcp_be_liberal": 1}],
    "_comment": [{"packets": [1]}, "a [ b"],
    "packets": [TWO_CONTAINERS["packets"], LATE_ACK["packets"]],
}
BAD: dict[str, list[Any]] = {
    "name": [5],
    "hosts": [{"ctr2": "10.0.0.1"}, []],
    "sysctl": [{"kernel.x": 1}],
    "packets": [[], 5, [{"from": "ctr"}], [LATE_ACK["packets"][0], {"from": "ctr2"}]],
    "upload": [1],
}


@st.composite
def case_texts(draw: st.DrawFn) -> str:
    """A case's JSON text: members in any order (packets among them), some twice, any
    spacing, now and then a bad value, and now and then one character deleted, doubled or
    replaced, or the text cut short."""
    keys = [*draw(st.lists(st.sampled_from(sorted(GOOD)), min_size=1, max_size=6)), "packets"]
    keys = draw(st.permutations(keys))
    indent = draw(st.sampled_from([None, 0, 1, 2]))
    space = draw(st.sampled_from(["", " ", "\n", "\t \r\n"]))
    members = []
    for k in keys:
        bad = k in BAD and draw(st.integers(0, 9)) == 0
        value = draw(st.sampled_from(BAD[k] if bad else GOOD[k]))
        members.append(f"{json.dumps(k)}{space}:{space}{json.dumps(value, indent=indent)}")
    if draw(st.integers(0, 9)) == 0:
        members.append(f'"upload": {draw(st.sampled_from(BAD["upload"]))}')
    text = f"{space}{{{space}{(',' + space).join(members)}{space}}}{space}"
    i = draw(st.integers(0, len(text)))
    edit = draw(st.sampled_from(["none"] * 6 + ["delete", "double", "replace", "cut"]))
    c = draw(st.sampled_from(list('{}[]",:0e-. ntx\\\u00e9')))
    return {
        "none": text,
        "delete": text[:i] + text[i + 1 :],
        "double": text[:i] + text[i : i + 1] * 2 + text[i + 1 :],
        "replace": text[:i] + c + text[i + 1 :],
        "cut": text[:i],
    }[edit]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=case_texts(), chunk=st.integers(1, 40), raw=st.sampled_from([b""] * 4 + [b"\xff", b"\xef\xbb\xbf"])
)
def test_streamed_reading_is_json_loads(tmp_path, monkeypatch, text, chunk, raw):
    """Whatever the file, open_case_file accepts it exactly when load_case_file does, with the
    same case, and refuses it with the same line; every chunk size cuts tokens apart."""
    monkeypatch.setattr(loader, "CHUNK", chunk)
    path = tmp_path / "case.json"
    data = text.encode()
    path.write_bytes(
        raw + data if raw == b"\xef\xbb\xbf" else data[: len(data) // 2] + raw + data[len(data) // 2 :]
    )
    whole = _outcome(load_case_file, path)
    assert _outcome(open_case_file, path) == whole
    if whole[0] == "case":
        streamed = list(open_case_file(path).packets())
        assert streamed == parse_case({**whole[1][0], "packets": whole[1][1]})[3]
