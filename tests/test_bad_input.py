"""Bad input of every kind the issue lists: one line naming the file and the place, exit 2.
Valid input written to the replay contract (shared/DESIGN.md) replays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = (ROOT / "sim/scenario/scenarios/seed-incident.toml").read_text()
LATE_ACK = json.loads((ROOT / "sim/scenario/cases/late-ack.json").read_text())


def one_line_exit_2(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def edited(tmp_path: Path, old: str, new: str) -> Path:
    assert old in SEED
    path = tmp_path / "edited.toml"
    path.write_text(SEED.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "place"),
    [
        ("bytes = 2000000", "bytes = -5", "upload.bytes: expected an integer in 1..100000000, got -5"),
        ("bytes = 2000000", "bytes = 1099511627776", "upload.bytes: expected an integer in 1..100000000"),
        ('containers = ["172.17.0.2"]', 'containers = ["banana"]', "topology.containers[0].ip: not an IPv4"),
        ('containers = ["172.17.0.2"]', "containers = []", "topology.containers: expected 1..250"),
        ("link_delay = 0.02", "link_delay = -0.02", "topology.link_delay: expected a number in 0.0..10.0"),
        ("link_delay = 0.02", 'link_delay = "fast"', "topology.link_delay: expected a number, got 'fast'"),
        ("hold = 0.2", "hold = -0.2", "trigger[0].hold: expected a number in 0.0..600.0"),
        ("hold = 0.2", "hold = 0.2\nbogus = 1", "trigger[0]: unknown keys ['bogus']"),
        ("dport = 443", "dport = 443\nbogus = 1", "upload: unknown keys ['bogus']"),
        ("bridge_prefix = 16", "bridge_prefix = 99", "topology.bridge_prefix: expected an integer in 1..30"),
        ("sport = 39700", "sport = 99999", "upload.sport: expected an integer in 1..65535"),
        ('kernel = "el7"', 'kernel = "banana"', "kernel: kernel 'banana': not a profile"),
        ("duration = 1200.0", "duration = -10.0", "duration: expected a number in 0.001..86400.0"),
        ("seed = 7", 'seed = "seven"', "seed: expected an integer, got 'seven'"),
        ('"invalid: "', '"invalid: ', "iptables.host[0]: 'iptables -A INPUT"),
        ("host = [", "host = [5, ", "iptables.host[0]: expected a string, got 5"),
        ('from = "ctr"', 'from = "ctr2"', "upload.from: expected one of ctr, got 'ctr2'"),
    ],
)
def test_scenario_value_errors(tmp_path, capsys, old, new, place):
    path = edited(tmp_path, old, new)
    err = one_line_exit_2(capsys, "run", str(path), "--out", str(tmp_path))
    assert err.startswith(f"nflab: {path}: {place}"), err


STORY = (ROOT / "sim/scenario/scenarios/dns-race.toml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "place"),
    [
        ('answer = ["remote", "remote2"]', "answer = 0", "answer: expected a list, got 0"),
        ('answer = ["remote", "remote2"]', "answer = [1]", "answer: expected a list of strings, got [1]"),
        ('answer = ["remote", "remote2"]', 'sysctl = "x"', "sysctl: expected a table, got 'x'"),
        ('fixes = ["single-request-reopen"]', 'fixes = "drop-invalid"', "fixes: expected a list, got 'drop-"),
        ('kernel = "3.10"', "kernel = 6.10", "kernel: expected a string, got 6.1"),
        ('hosts = {remote2 = "198.51.100.3"}', "hosts = 7", "hosts: expected a table, got 7"),
        ('name = "dns-race"', "name = []", "name: expected a string, got []"),
        ('answer = ["remote", "remote2"]', 'seed = "s"', "seed: expected an integer, got 's'"),
    ],
)
def test_story_value_errors(tmp_path, capsys, old, new, place):
    """A story's top-level keys of the wrong type (``answer = 0`` was a TypeError traceback)."""
    assert old in STORY
    path = tmp_path / "story.toml"
    path.write_text(STORY.replace(old, new, 1))
    err = one_line_exit_2(capsys, "run", str(path), "--out", str(tmp_path))
    assert err.startswith(f"nflab: {path}: {place}"), err


def test_unclosed_quote_names_the_reason(tmp_path, capsys):
    err = one_line_exit_2(capsys, "run", str(edited(tmp_path, '"invalid: "', '"invalid: ')), "--out", "x")
    assert err.rstrip().endswith("No closing quotation")


@pytest.mark.parametrize("command", ["replay", "run", "check 01", "tui", "kernel-check"])
def test_binary_garbage_is_one_line(tmp_path, capsys, command):
    path = tmp_path / "garbage.json"
    path.write_bytes(b'{"a": "\xff\xfe\x00\x81"}')
    assert main([*command.split(), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:1: not UTF-8 text (byte 0xff at offset 7)" in err, err


def case_file(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "case.json"
    path.write_text(json.dumps({**LATE_ACK, **changes}))
    return path


def packet_file(tmp_path: Path, **changes: object) -> Path:
    packets = [dict(p) for p in LATE_ACK["packets"]]
    packets[-1].update(changes)
    return case_file(tmp_path, packets=packets)


@pytest.mark.parametrize(
    ("make", "place"),
    [
        (lambda p: case_file(p, kernel=6.1), 'case.kernel: expected a string like "6.1"'),
        (lambda p: packet_file(p, options={"sack": 5}), "packets[5].options.sack: expected a list"),
        (lambda p: packet_file(p, options=[]), "packets[5].options: expected an object"),
        (lambda p: packet_file(p, len=1461), "packets[5].len: expected an integer in 0..1460"),
        (lambda p: case_file(p, sysctl={"net.netfilter.nf_conntrack_tcp_be_liberal": "yes"}), "sysctl"),
        (lambda p: case_file(p, sysctl={"net.netfilter.nf_conntrack_nope": 1}), "sysctl"),
        (lambda p: case_file(p, iptables={"host": ["-A INPUT -j NOPE"]}), "iptables.host[0]: --jump NOPE"),
        (lambda p: case_file(p, iptables={"host": ["-A INPUT -j 'DROP"]}), "iptables line"),
    ],
)
def test_case_errors_name_the_file_and_field(tmp_path, capsys, make, place):
    path = make(tmp_path)
    err = one_line_exit_2(capsys, "replay", str(path))
    assert err.startswith(f"nflab: {path}: ") and place in err, err


UDP = {"from": "ctr", "proto": "udp", "src": "192.0.2.2:45123", "dst": "198.51.100.2:53", "len": 33}
ECHO = {"from": "ctr", "proto": "icmp", "src": "192.0.2.2", "dst": "198.51.100.2", "type": 8, "id": 7}
UNREACH = {
    "from": "remote",
    "proto": "icmp",
    "src": "198.51.100.2",
    "dst": "198.51.100.1",
    "type": 3,
    "code": 3,
    "inner": {"proto": "udp", "src": "198.51.100.1:45123", "dst": "198.51.100.2:53"},
}


def v2_file(tmp_path: Path, *packets: dict[str, object], **case: object) -> Path:
    path = tmp_path / "v2.json"
    path.write_text(json.dumps({"kernel": "6.18", **case, "packets": list(packets)}))
    return path


@pytest.mark.parametrize(
    ("packets", "case", "place"),
    [
        # a v2 field out of range
        ([{**UDP, "len": 1473}], {}, "packets[0].len: expected an integer in 0..1472, got 1473"),
        ([{**UDP, "dst": "198.51.100.2:65536"}], {}, "packets[0].dst: bad port in '198.51.100.2:65536'"),
        ([{**ECHO, "type": 256}], {}, "packets[0].type: expected an integer in 0..255, got 256"),
        ([{**ECHO, "code": -1}], {}, "packets[0].code: expected an integer in 0..255, got -1"),
        ([{**ECHO, "id": 65536}], {}, "packets[0].id: expected an integer in 0..65535, got 65536"),
        ([{**ECHO, "seq": 70000}], {}, "packets[0].seq: expected an integer in 0..65535, got 70000"),
        ([{**UNREACH, "len": 1445}], {}, "packets[0].len: expected an integer in 0..1444, got 1445"),
        ([{**UDP, "proto": "sctp"}], {}, "packets[0].proto: expected 'tcp', 'udp' or 'icmp', got 'sctp'"),
        ([{**UDP, "flags": "S"}], {}, "packets[0]: unknown keys ['flags'] for proto udp (TCP-only fields"),
        ([{**ECHO, "dst": "198.51.100.2:80"}], {}, "packets[0].dst: expected an address without a port"),
        ([{k: v for k, v in ECHO.items() if k != "type"}], {}, "packets[0].type: an ICMP packet needs"),
        ([{**UNREACH, "id": 3}], {}, "packets[0].id: only echo and the other queries"),
        ([{**UNREACH, "inner": {**UNREACH["inner"], "proto": "icmp"}}], {}, "packets[0].inner.proto"),
        ([{**UNREACH, "inner": {"proto": "udp", "src": "198.51.100.1"}}], {}, "packets[0].inner.src"),
        ([{**ECHO, "inner": UNREACH["inner"]}], {}, "packets[0].inner: only an error"),
        # an ICMP error without inner
        ([{k: v for k, v in UNREACH.items() if k != "inner"}], {}, "ICMP type 3 is an error"),
        # race on the first packet, or not "prev"
        ([{**UDP, "race": "prev"}], {}, "packets[0].race: the first packet has no previous packet"),
        ([UDP, {**UDP, "race": "next"}], {}, "packets[1].race: expected 'prev', got 'next'"),
        # a from naming no host
        ([{**UDP, "from": "ctr2"}], {}, "packets[0].from: expected one of 'ctr', 'remote', got 'ctr2'"),
        ([{**UDP, "from": "ctr3"}], {"hosts": {"ctr2": "192.0.2.3"}}, "'remote', 'ctr2', got 'ctr3'"),
        # hosts out of range
        ([UDP], {"hosts": {"ctr2": "198.51.100.3"}}, "198.51.100.3 is not a host address in docker0's"),
        ([UDP], {"hosts": {"remote2": "192.0.2.9"}}, "192.0.2.9 is not a host address in the up"),
        ([UDP], {"hosts": {"ctr2": "192.0.2.2"}}, "hosts.ctr2: 192.0.2.2 is already another host's address"),
        ([UDP], {"hosts": {"ctr2": "192.0.2.255"}}, "hosts.ctr2: 192.0.2.255 is not a host address"),
        ([UDP], {"hosts": {"web": "192.0.2.3"}}, "hosts.web: a name is ctr or remote followed by"),
        ([UDP], {"hosts": {"ctr": "192.0.2.3"}}, "hosts.ctr: a name is ctr or remote followed by"),
        ([UDP], {"hosts": {"ctr2": 3}}, "hosts.ctr2: expected an address string, got 3"),
        ([UDP], {"hosts": ["ctr2"]}, "hosts must be an object"),
    ],
)
def test_v2_case_errors_name_the_file_and_place(tmp_path, capsys, packets, case, place):
    path = v2_file(tmp_path, *packets, **case)
    err = one_line_exit_2(capsys, "replay", str(path))
    assert err.startswith(f"nflab: {path}: ") and place in err, err


def test_contract_forms_replay(tmp_path, capsys):
    """Every form the contract allows (DESIGN.md "What a case may hold, exactly")."""
    packets = [dict(p) for p in LATE_ACK["packets"]]
    packets[0]["flags"] = "SEC"  # C is CWR: an ECN-setup SYN (RFC 3168 6.1.1)
    packets[0]["_note"] = "keys starting with _ are comments anywhere"
    packets[2].update(len=1448, options={"ts": [1, 2]})  # 1500 - 20 - 20 - 12 with timestamps
    packets[3].update(len=1460)  # no options: 1500 - 20 - 20
    path = case_file(
        tmp_path,
        _comment="anywhere",
        packets=packets,
        iptables={
            "host": [
                "-A INPUT -m conntrack --ctstate INVALID -p tcp --tcp-flags SYN,ACK SYN,ACK",  # counting
                "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP",
            ]
        },
    )
    assert main(["replay", str(path), "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == len(packets)


def test_replay_by_builtin_name_and_wrong_command_hints(capsys):
    assert main(["replay", "late-ack"]) == 0
    capsys.readouterr()
    err = one_line_exit_2(capsys, "run", str(ROOT / "sim/scenario/cases/late-ack.json"))
    assert "this is a crafted-packet case file: use nflab replay" in err
    err = one_line_exit_2(capsys, "replay", str(ROOT / "sim/scenario/scenarios/seed-incident.toml"))
    assert "this is a scenario file: use nflab run" in err


def test_check_names_a_directory(tmp_path, capsys):
    err = one_line_exit_2(capsys, "check", "01", str(tmp_path))
    assert err == f"nflab: {tmp_path}: is a directory\n"


def test_check_02_agrees_with_run_on_an_output_rule_dropping_rsts(tmp_path, capsys):
    """The host's RSTs die in OUTPUT: nobody sees them and the upload completes (as nflab run
    shows), so the checker must not say the host still answers with a RST."""
    path = edited(tmp_path, "host = [", 'host = ["-A OUTPUT -p tcp --tcp-flags RST RST -j DROP", ')
    assert main(["check", "02", str(path)]) == 1
    assert capsys.readouterr().out == (
        "wrong: the upload completes, but the exercise asks for an INPUT rule that DROPs INVALID\n"
    )
    assert main(["run", str(path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "upload complete" in out and "seen by: nobody" in out
