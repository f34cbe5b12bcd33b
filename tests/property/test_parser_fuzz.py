"""Every parser, fuzzed (issue 10): case files (JSON and TOML), scenario files, iptables lines
and iptables-save text. Each input is either accepted and then runs without an exception, or
refused with one line that names the file and the place, and exit status 2.

The examples per test come from the ``<profile>-parsers`` hypothesis profile (tests/conftest.py):
10,000 under ``ci``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import event, given, reject, settings
from hypothesis import strategies as st

from sim.cli import _replay, _run, main
from sim.netfilter.iptables.parse import RuleError
from sim.netfilter.iptables.restore import iptables_restore
from sim.netfilter.iptables.save import iptables_save, save_table
from sim.netfilter.xtables import CHAIN_HOOK, Ruleset, ipt_do_table
from sim.packet import Packet, parse_flags
from sim.scenario.case import CASE_KEYS, INNER_KEYS, OPTION_KEYS, PACKET_KEYS
from sim.scenario.loader import CASES_DIR, builtin_cases
from sim.scenario.scenario import TOP_KEYS, load_scenario
from sim.skb import Skb

from .inputs import damaged, iptables_lines, iptables_save_texts, mutated, to_toml

PARSERS = settings(settings.get_profile(f"{os.environ.get('HYPOTHESIS_PROFILE', 'dev')}-parsers"))
CASES = {name: json.loads((CASES_DIR / f"{name}.json").read_text()) for name in builtin_cases()}
SCENARIO = {  # the seed incident with a small upload, so that an accepted scenario runs in milliseconds
    "name": "fuzz",
    "kernel": "3.10",
    "seed": 7,
    "duration": 30.0,
    "topology": {
        "containers": ["172.17.0.2"],
        "bridge_ip": "172.17.0.1",
        "bridge_prefix": 16,
        "host_ip": "10.21.17.99",
        "remote_ip": "36.110.213.207",
        "link_delay": 0.02,
    },
    "sysctl": {"net.netfilter.nf_conntrack_tcp_be_liberal": 0},
    "iptables": {"host": ["-A INPUT -m conntrack --ctstate INVALID -j LOG --log-prefix 'invalid: '"]},
    "upload": {"from": "ctr", "sport": 39700, "dport": 443, "bytes": 20000, "timestamps": False},
    "remote": {"rst": "any", "unknown": "drop"},
    "trigger": [
        {"kind": "late-ack", "after_bytes": 5000, "hold": 0.2},
        {"kind": "beyond-window", "after_bytes": 15000, "offset": 1000000},
    ],
}
SCENARIO_KEYS = sorted(TOP_KEYS | {"containers", "bytes", "from", "kind", "hold", "offset", "rst", "_c"})
CASE_FIELD_NAMES = sorted(
    CASE_KEYS
    | set().union(*PACKET_KEYS.values())
    | OPTION_KEYS
    | INNER_KEYS
    | {"host", "ctr_ip", "ctr2", "_c"}
)
MAX_RUN_BYTES = 300_000  # accepted scenarios with bigger uploads are valid but too slow to run here


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def call(fn, *args) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = fn(*args)
    return status, out.getvalue(), err.getvalue()


def only_notes(err: str) -> bool:
    """An accepted file may print nothing on stderr but resolve_kernel()'s one-line note on how
    a release string was resolved."""
    note = re.compile(r"nflab: kernel .*: (profile|newer than every profile|a RHEL/CentOS 7 build).*")
    return all(note.fullmatch(line) for line in err.splitlines())


def assert_refused_in_one_line(status: int, err: str, path: Path) -> None:
    assert status == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    head = f"nflab: {path}:"
    assert err.startswith(head) and err[len(head) :].strip(), err  # the file, then the place


def case_documents(suffixes: tuple[str, ...]) -> st.SearchStrategy[tuple[str, bytes]]:
    def encode(doc: object, suffix: str) -> str:
        if suffix == ".toml" and isinstance(doc, dict):
            return to_toml(doc)
        return json.dumps(doc)

    docs = st.sampled_from(sorted(CASES)).flatmap(lambda name: mutated(CASES[name], CASE_FIELD_NAMES))
    return st.tuples(st.sampled_from(suffixes), docs).flatmap(
        lambda sd: st.tuples(st.just(sd[0]), damaged(encode(sd[1], sd[0])))
    )


def check_case_file(workdir: Path, suffix: str, data: bytes) -> None:
    path = workdir / f"case{suffix}"
    path.write_bytes(data)
    status, out, err = call(_replay, str(path), True)
    event("accepted" if status == 0 else "refused")
    if status == 0:
        assert only_notes(err), err
        assert all(isinstance(json.loads(line), dict) for line in out.splitlines())
    else:
        assert_refused_in_one_line(status, err, path)


@PARSERS
@given(case_documents((".json",)))
def test_case_json_is_replayed_or_refused_in_one_line(workdir, doc):
    check_case_file(workdir, *doc)


@PARSERS
@given(case_documents((".toml",)))
def test_case_toml_is_replayed_or_refused_in_one_line(workdir, doc):
    check_case_file(workdir, *doc)


@PARSERS
@given(mutated(SCENARIO, SCENARIO_KEYS).flatmap(lambda doc: damaged(to_toml(doc))))
def test_scenario_toml_runs_or_is_refused_in_one_line(workdir, data):
    path = workdir / "scenario.toml"
    path.write_bytes(data)
    try:
        sc = load_scenario(str(path))
    except ValueError:
        sc = None
    if sc is not None and sc.upload_bytes > MAX_RUN_BYTES:
        reject()
    status, out, err = call(_run, str(path), None, "none", str(workdir / "out"), [])
    event("accepted" if status == 0 else "refused")
    if status == 0:
        assert only_notes(err), err and "upload" in out
    else:
        assert_refused_in_one_line(status, err, path)


CTR, REMOTE, HOST = "192.0.2.2:40000", "198.51.100.2:443", "198.51.100.1:40000"
HANDSHAKE = [
    {"from": "ctr", "src": CTR, "dst": REMOTE, "flags": "S", "seq": 1000, "win": 64240},
    {"from": "remote", "src": REMOTE, "dst": HOST, "flags": "SA", "seq": 5000, "ack": 1001, "win": 65160},
    {"from": "ctr", "src": CTR, "dst": REMOTE, "flags": "A", "seq": 1001, "ack": 5001, "win": 502},
    {"from": "remote", "src": REMOTE, "dst": HOST, "flags": "R", "seq": 4000, "ack": 0, "win": 0},
]


@PARSERS
@given(st.lists(iptables_lines, min_size=1, max_size=3))
def test_iptables_lines_in_a_case_run_or_are_refused_in_one_line(workdir, lines):
    path = workdir / "rules.json"
    path.write_text(json.dumps({"iptables": {"host": lines}, "packets": HANDSHAKE}))
    status, out, err = call(_replay, str(path), True)
    event("accepted" if status == 0 else "refused")
    if status == 0:
        assert len(out.splitlines()) == len(HANDSHAKE)
    else:
        assert_refused_in_one_line(status, err, path)


PROBES = [
    Packet("198.51.100.2", "198.51.100.1", 443, 40000, 1, 2, parse_flags(flags), 100, length)
    for flags, length in (("S", 0), ("A", 10), ("R", 0), ("FSRPAUEC", 1460))
]


@PARSERS
@given(iptables_save_texts)
def test_iptables_restore_loads_or_refuses_naming_the_line(text):
    """iptables-save text has no file in nflab (Docker's ruleset is built in): the place is
    the line. Loaded text saves, restores and saves again to the same text, and every chain
    of every table walks packets without an exception."""
    rs = Ruleset()
    try:
        iptables_restore(rs, text)
    except RuleError as e:
        event("refused")
        message = str(e)
        assert "\n" not in message and message.startswith("line "), message
        return
    event("accepted")
    saved = {name: save_table(table) for name, table in rs.tables.items()}
    again = Ruleset()
    iptables_restore(again, iptables_save(rs))  # iptables-save prints the newest table first
    assert {name: save_table(table) for name, table in again.tables.items()} == saved

    class Ctx:
        now = 0.0
        local_addrs = frozenset({"198.51.100.1"})

        def mac_header(self, skb: Skb) -> str:
            return ""

        def log(self, level: int, line: str) -> None:
            pass

    for table in rs.tables.values():
        for name, chain in table.chains.items():
            if chain.builtin:
                for pkt in PROBES:
                    ipt_do_table(table, CHAIN_HOOK[name], Skb(pkt), Ctx())


def _capture(name: str, tmp: Path) -> bytes:
    """A built-in case's packets as ``tcpdump -w`` writes them (pcap, Ethernet)."""
    from sim.report.capture import write_pcap
    from sim.scenario.case import parse_case

    *_, packets = parse_case(CASES[name])
    path = tmp / f"{name}.pcap"
    macs = {
        "ctr": ("02:42:ac:11:00:02", "02:42:00:00:00:01"),
        "remote": ("52:54:00:00:00:02", "52:54:00:00:00:01"),
    }
    records = [
        (0.05 * i, p.pkt, *macs["ctr" if p.side.startswith("ctr") else "remote"])
        for i, p in enumerate(packets)
    ]
    write_pcap(path, records)
    return path.read_bytes()


@st.composite
def captures(draw: st.DrawFn, tmp: Path) -> bytes:
    """A capture of a built-in case: its link type sometimes changed (raw IP, Linux cooked,
    an unknown one), pcapng's magic or a big-endian header sometimes put in, then bytes damaged."""
    data = bytearray(_capture(draw(st.sampled_from(sorted(CASES))), tmp))
    header = draw(st.sampled_from(["keep", "keep", "linktype", "magic"]))
    if header == "linktype":
        data[20:24] = draw(st.sampled_from([0, 12, 101, 113, 276, 228, 9999])).to_bytes(4, "little")
    elif header == "magic":
        data[0:4] = draw(
            st.sampled_from([b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a", b"PK\x03\x04"])
        )
    return draw(damaged(data.decode("latin-1"), encoding="latin-1"))


@PARSERS
@given(st.data())
def test_captures_are_analysed_or_refused_in_one_line(workdir, data):
    capture = data.draw(captures(workdir))
    path = workdir / "capture.pcap"
    path.write_bytes(capture)
    status, out, err = call(main, ["pcap", str(path)])
    event("accepted" if status == 0 else "refused")
    if status == 0:
        # a capture cut off in the middle of a frame is analysed up to its last complete frame
        # with one warning naming the file and the frame (as tshark does)
        cut = re.compile(rf"nflab pcap: warning: {re.escape(str(path))}: frame \d+: .+")
        rest = [line for line in err.splitlines() if not cut.fullmatch(line)]
        assert len(err.splitlines()) - len(rest) <= 1 and only_notes("\n".join(rest)), err
        assert out
    else:
        assert status == 2, err
        assert (
            err.count("\n") == 1
            and err.startswith(f"nflab pcap: {path}")
            and err[len(f"nflab pcap: {path}") :].strip()
        ), err
