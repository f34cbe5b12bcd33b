"""``nflab pcap`` on captures of the seed incident and of the real kernel.

Expected values: the seed incident's frame numbers from ``tcpdump -nr`` of the captures
``nflab run seed-incident --kernel 3.10 --out DIR`` writes (frame 1187 is the remote's late
ACK, ack 1391384029; frame 1188 the host's RST, seq 1391384029, the only RST in the host
capture, none in the container's); the verdicts on the real captures from the kernels' own
code (``data/judged.json``, recorded with /work/shared/ktcp's judges).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main

DATA = Path(__file__).parent / "data"
JUDGED = json.loads((DATA / "judged.json").read_text())
PROFILE_OF_BUILD = {"el7": "3.10", "3.10.99": "3.10", "6.18": "6.1"}


def run_json(capsys, *argv: str) -> tuple[list[dict], dict]:
    assert main(["pcap", *argv, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return lines[:-1], lines[-1]["summary"]


@pytest.fixture(scope="module")
def seed_captures(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed")
    assert main(["run", "seed-incident", "--kernel", "3.10", "--out", str(out)]) == 0
    return out / "host-eth0.pcap", out / "ctr-eth0.pcap"


def test_seed_incident_host_rst_late_ack_and_fix_by_frame(seed_captures, capsys):
    host, ctr = seed_captures
    capsys.readouterr()
    flagged, summary = run_json(capsys, str(host), str(ctr), "--kernel", "3.10")
    by_frame = {f["frame"]: f for f in flagged}
    late = by_frame[1187]
    assert (late["src"], late["flags"], late["ack"]) == ("36.110.213.207:443", "A", 1391384029)
    v = late["verdicts"]["3.10"]
    assert (v["ctstate"], v["window"]) == ("INVALID", "INVALID")
    assert v["reason"] == "ACK is under the lower bound (possible overly delayed ACK)"
    assert v["bound"]["name"] == "IV" and v["bound"]["value"] == 1391384029
    rst = by_frame[1188]
    assert (rst["direction"], rst["flags"], rst["seq"], rst["host_rst_for"]) == (
        "HOST",
        "R",
        1391384029,
        1187,
    )
    (h,) = summary["host_rsts"]
    assert (h["frame"], h["answers"], h["container_saw_invalid"], h["container_saw_rst"]) == (
        1188,
        1187,
        False,
        False,
    )
    assert h["prevented_by_drop_invalid"] is True
    assert h["whatif"]["3.10+be_liberal"] is None  # be_liberal: plain ACCEPT
    assert h["whatif"]["6.1"]["window"] == "IGNORE"  # 6.1 ignores the late ACK: still NATed


def test_seed_incident_text_names_frames_and_fixes(seed_captures, capsys):
    host, ctr = seed_captures
    capsys.readouterr()
    assert main(["pcap", str(host), str(ctr), "--kernel", "3.10"]) == 0
    text = capsys.readouterr().out
    assert "frame 1188: the host itself sent RST seq 1391384029" in text
    assert "it equals the ack of frame 1187" in text
    assert "the container never saw frame 1187's packet" in text
    assert "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP (drops frame 1187" in text
    assert "net.netfilter.nf_conntrack_tcp_be_liberal=1 (frame 1187 would be ACCEPT)" in text
    assert "kernel 6.1 (frame 1187 would be IGNORE" in text


def test_seed_incident_columns_per_kernel(seed_captures, capsys):
    host, _ctr = seed_captures
    capsys.readouterr()
    assert main(["pcap", str(host), "--kernel", "3.10", "--kernel", "6.1"]) == 0
    text = capsys.readouterr().out
    assert "    3.10  INVALID  ACK is under the lower bound" in text
    assert "    6.1   IGNORE   ignored ACK under lower bound" in text
    assert "the kernels disagree on 1 packet(s): frames 1187." in text


@pytest.mark.parametrize("capture", [c for c in JUDGED if c != "_"])
@pytest.mark.parametrize("build", ["el7", "3.10.99", "6.18"])
def test_real_captures_flag_what_the_kernels_own_code_flags(capsys, capture, build):
    judged = JUDGED[capture][build]
    profile = PROFILE_OF_BUILD[build]
    flagged, summary = run_json(capsys, str(DATA / capture), "--kernel", profile)
    assert summary["tcp_packets"] == judged["packets"]
    got = {
        str(f["frame"]): [f["verdicts"][profile][k] for k in ("ctstate", "window", "reason")] for f in flagged
    }
    assert got == judged["flagged"]


def test_late_acks_fail_bound_iv_with_numbers(capsys):
    flagged, _ = run_json(capsys, str(DATA / "late-host.pcap"), "--kernel", "3.10")
    for f in flagged:
        b = f["verdicts"]["3.10"]["bound"]
        assert b["name"] == "IV" and b["value"] == f["ack"] and b["value"] < b["limit"]


def test_a_mid_stream_capture_is_picked_up(tmp_path, capsys):
    """The capture cut after the handshake: nf_conntrack_tcp_loose picks the connection up
    (both directions BE_LIBERAL), so nothing is INVALID."""
    src = (DATA / "late-host.pcap").read_bytes()
    cut = bytearray(src[:24])
    off, n = 24, 0
    while off < len(src):
        caplen = int.from_bytes(src[off + 8 : off + 12], "little")
        if n >= 10:
            cut += src[off : off + 16 + caplen]
        off += 16 + caplen
        n += 1
    path = tmp_path / "cut.pcap"
    path.write_bytes(bytes(cut))
    flagged, summary = run_json(capsys, str(path), "--kernel", "3.10")
    assert summary["connections"][0]["picked_up"] is True
    assert flagged == []


def test_to_case_round_trip(tmp_path, capsys):
    from sim.scenario.case import load_case_file
    from sim.scenario.replay import replay_case

    out = tmp_path / "late.json"
    assert main(["pcap", str(DATA / "late-host.pcap"), "--kernel", "3.10", "--to-case", str(out)]) == 0
    case = load_case_file(out)
    assert case["kernel"] == "3.10" and len(case["packets"]) == JUDGED["late-host.pcap"]["el7"]["packets"]
    obs = replay_case(case)
    invalid = {str(i + 1) for i, o in enumerate(obs) if o["ctstate"] == "INVALID"}
    assert invalid == set(JUDGED["late-host.pcap"]["el7"]["flagged"])


def test_flow_selection_errors(capsys):
    assert main(["pcap", str(DATA / "merged.pcapng"), "--to-case", "/dev/null"]) == 2
    assert "2 connections: choose one with --flow" in capsys.readouterr().err
    assert main(["pcap", str(DATA / "merged.pcapng"), "--to-case", "/dev/null", "--flow", "#7"]) == 2
    assert "no connection #7" in capsys.readouterr().err


def test_capture_case_for_front_ends():
    from sim.pcap.tocase import capture_case

    case = capture_case(str(DATA / "merged.pcapng"), flow="192.0.2.2:40000", kernel="3.10")
    assert case["packets"][0]["flags"] == "S" and case["kernel"] == "3.10"
    assert {p["from"] for p in case["packets"]} == {"ctr", "remote"}


def test_a_host_rst_the_chosen_kernel_does_not_explain(seed_captures, capsys):
    """Read on the newest profile (6.18), the 3.10 host's RST answers a late ACK that 6.18 only
    IGNOREs: the finding says such a host would not answer it and names the kernel that marks
    it INVALID."""
    host, _ctr = seed_captures
    capsys.readouterr()
    flagged, summary = run_json(capsys, str(host))
    assert [f["frame"] for f in flagged] == [1187, 1188]
    assert flagged[0]["verdicts"]["6.18"]["window"] == "IGNORE"
    (h,) = summary["host_rsts"]
    assert (h["frame"], h["answers"], h["prevented_by_drop_invalid"]) == (1188, 1187, False)
    assert h["whatif"]["3.10"]["ctstate"] == "INVALID"
    assert main(["pcap", str(host)]) == 0
    # every profile before 6.1 marks the late ACK INVALID (bound IV; 6e250dcbff1d made it IGNORE)
    expected = "the capture comes from a kernel that marks it INVALID (3.10, el7, 4.19, 5.10, 5.15 does)"
    assert expected in capsys.readouterr().out


def test_tcpdump_any_on_the_host_counts_each_packet_once(capsys):
    """tcpdump -i any on the host shows a forwarded packet on the bridge port, the bridge
    and the uplink. Every packet crosses the uplink exactly once, so the packets conntrack
    saw are as many as the frames on the uplink's ifindex (the one the host's address
    198.51.100.1 leaves from), counted here by the reader from the raw SLL2 headers."""
    from sim.pcap.reader import read_frames

    frames = list(read_frames(DATA / "any-host.pcap"))
    uplink = next(f.iface for f in frames if f.pkt is not None and f.pkt.src == "198.51.100.1")
    on_uplink = sum(1 for f in frames if f.iface == uplink)
    _flagged, summary = run_json(capsys, str(DATA / "any-host.pcap"), "--kernel", "3.10")
    assert summary["tcp_packets"] == on_uplink == JUDGED["any-host.pcap"]["el7"]["packets"]
    assert summary["skipped"] == {"copies of a packet on another interface": len(frames) - on_uplink}
    (conn,) = summary["connections"]
    assert (conn["src"], conn["dst"]) == ("192.0.2.2:40000", "198.51.100.2:443")


@pytest.mark.parametrize(
    ("capture", "ctrb"),
    [("leak-any-sll2.pcap", [4, 3]), ("leak-any-sll.pcap", [4, 2])],
)
def test_tcpdump_any_with_a_port_masquerade_changed(capsys, capture, ctrb):
    """record_any.py's run, ``tcpdump -r``: ctrb's connection 192.0.2.7:40000 left as
    198.51.100.1:40000 (frame 30), so ctr's from the same port left as 198.51.100.1:18710
    (frame 39) and its replies came back to port 18710 (frames 40, 49, 58). Conntrack had one
    entry per connection: ctr's 6 packets (SYN 37, ACK 43, data 46, the late FIN 52, FIN 55,
    ACK 61) and remote's 3 (40, 49, 58); ctrb's 4 (28, 34, 67, 70) and 3 (31, 64, 73), the
    last of them after the v1 capture stopped. In the v1 capture ctrb's packets show twice
    with one header (frames 28 and 29: PACKET_HOST from ctrb's MAC, on its bridge port and on
    the bridge), and are still one packet each."""
    _flagged, summary = run_json(capsys, str(DATA / capture), "--kernel", "6.18")
    conns = [(c["src"], c["dst"], c["packets"], c["final_state"]["6.18"]) for c in summary["connections"]]
    assert [c[:3] for c in conns] == [
        ("192.0.2.7:40000", "198.51.100.2:443", ctrb),
        ("192.0.2.2:40000", "198.51.100.2:443", [6, 3]),
    ]
    assert conns[1][3] == "TIME_WAIT"
