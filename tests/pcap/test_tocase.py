"""``--to-case`` on real captures with 1500-byte MTU segments and offload super-packets.

``data/offload-host.pcap`` (data/README.md): 400,000 bytes uploaded with the veths'
offloads on, MTU 1500; the SYN-ACK announces MSS 1460 and both sides use timestamps (12
option bytes), so the wire carried 1448-byte segments (``tcpdump -nr``: frame 4 has length
7240 = 5 x 1448, frame 21 65160 = 45 x 1448, frame 12 14856 = 10 x 1448 + 376).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from sim.cli import main
from sim.packet import TCPHDR_ACK, TCPHDR_CWR, TCPHDR_FIN, TCPHDR_PSH, Packet, TcpOptions

DATA = Path(__file__).parent / "data"


def test_super_packets_become_the_segments_the_wire_carried(tmp_path, capsys):
    out = tmp_path / "off.json"
    assert main(["pcap", str(DATA / "offload-host.pcap"), "--to-case", str(out)]) == 0
    err = capsys.readouterr().err
    assert "13 offload super-packet(s) split" in err and "4 (7240 bytes: 5)" in err
    case = json.loads(out.read_text())
    data = [p for p in case["packets"] if p["from"] == "ctr" and p["len"]]
    assert sum(p["len"] for p in data) == 400_000
    assert max(p["len"] for p in data) == 1448
    for a, b in itertools.pairwise(data):
        assert b["seq"] == (a["seq"] + a["len"]) & 0xFFFFFFFF  # in order: the upload had no loss
    assert "split into the" in case["description"]


def test_gso_segments_keeps_fin_psh_on_the_last_and_cwr_on_the_first():
    from sim.pcap.tocase import gso_segments

    flags = TCPHDR_ACK | TCPHDR_PSH | TCPHDR_FIN | TCPHDR_CWR
    p = Packet("192.0.2.2", "198.51.100.2", 1, 2, 0xFFFFFF00, 7, flags, 100, 3000, TcpOptions(ts=(1, 2)))
    segs = gso_segments(p, 1460)
    assert [s.payload_len for s in segs] == [1448, 1448, 104]
    assert [s.seq for s in segs] == [
        0xFFFFFF00,
        (0xFFFFFF00 + 1448) & 0xFFFFFFFF,
        (0xFFFFFF00 + 2896) & 0xFFFFFFFF,
    ]
    assert [s.flags for s in segs] == [
        TCPHDR_ACK | TCPHDR_CWR,
        TCPHDR_ACK,
        TCPHDR_ACK | TCPHDR_PSH | TCPHDR_FIN,
    ]
    assert {(s.ack, s.window, s.options) for s in segs} == {(7, 100, TcpOptions(ts=(1, 2)))}


def test_an_mss_1460_segment_without_options_is_kept_whole():
    from sim.pcap.tocase import gso_segments

    p = Packet("192.0.2.2", "198.51.100.2", 1, 2, 0, 0, TCPHDR_ACK, 100, 1460)
    assert gso_segments(p, 1460) == [p]


def test_to_case_errors_come_before_the_analysis_and_name_the_place(tmp_path, capsys):
    late = str(DATA / "late-host.pcap")
    for argv, words in (
        ([late, "--to-case", str(tmp_path / "no" / "x.json")], "--to-case"),
        ([late, "--to-case", str(tmp_path)], "is a directory"),
        ([late, "--flow", "#1"], "--flow chooses the connection for --to-case"),
        ([late, "--to-case", str(tmp_path / "x.json"), "--flow", "nonsense"], "--flow nonsense"),
        ([late, late], "the same capture"),
    ):
        assert main(["pcap", *argv]) == 2
        io = capsys.readouterr()
        assert io.out == ""  # nothing analysed
        assert words in io.err and len(io.err.strip().splitlines()) == 1
