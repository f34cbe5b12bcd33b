"""A container packet that conntrack marks INVALID leaves the host's uplink untranslated.

The capture is built here (sim.report.capture writes it as tcpdump would) because the live 6.18
kernel does not make this happen on its own in an upload: a host at 10.21.17.99 MASQUERADEs
172.17.0.2:39700; the container then sends an ACK for data the remote never sent. By the
kernel source (tcp_in_window, bound III "sack <= receiver.td_end": "ACK is over upper bound
... (ACKed data not seen yet)", INVALID on 3.10 and on 6.1) that packet has no conntrack
entry, so nf_nat_inet_fn leaves it alone and Docker's FORWARD rule still forwards it: it
appears on the uplink with the container's own, private source address.
"""

from __future__ import annotations

import json

from sim.cli import main
from sim.packet import Packet, TcpFlag, TcpOptions
from sim.report.capture import write_pcap

HOST, CTR, REMOTE = "10.21.17.99", "172.17.0.2", "36.110.213.207"
S, A, SA = int(TcpFlag.SYN), int(TcpFlag.ACK), int(TcpFlag.SYN | TcpFlag.ACK)
MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")


def test_untranslated_invalid_packet_is_named(tmp_path, capsys):
    opts = TcpOptions(mss=1460, wscale=7, sack_perm=True)
    c, r = 1000, 5000
    pkts = [
        Packet(HOST, REMOTE, 39700, 443, c, 0, S, 64240, 0, opts, 63),
        Packet(REMOTE, HOST, 443, 39700, r, c + 1, SA, 65160, 0, opts, 64),
        Packet(HOST, REMOTE, 39700, 443, c + 1, r + 1, A, 502, 0, ttl=63),
        Packet(HOST, REMOTE, 39700, 443, c + 1, r + 1, A, 502, 1000, ttl=63),
        Packet(REMOTE, HOST, 443, 39700, r + 1, c + 1001, A, 509, 0, ttl=64),
        # frame 6: the container acknowledges 100000 bytes the remote never sent
        Packet(CTR, REMOTE, 39700, 443, c + 1001, r + 100_001, A, 502, 0, ttl=63),
    ]
    path = tmp_path / "uplink.pcap"
    write_pcap(path, [(i * 0.01, p, *MACS) for i, p in enumerate(pkts)])
    assert main(["pcap", str(path), "--kernel", "3.10", "--kernel", "6.1", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    (flagged,) = lines[:-1]
    assert flagged["frame"] == 6 and flagged["untranslated"] is True and flagged["direction"] == "ORIGINAL"
    for kernel in ("3.10", "6.1"):
        v = flagged["verdicts"][kernel]
        assert v["ctstate"] == "INVALID" and v["bound"]["name"] == "III"
    summary = lines[-1]["summary"]
    assert summary["untranslated"] == 1 and len(summary["connections"]) == 1
    assert main(["pcap", str(path), "--kernel", "3.10"]) == 0
    text = capsys.readouterr().out
    assert "frame 6: a packet of the container left untranslated (172.17.0.2:39700 > 36.110.213.207:443" in (
        text
    )
    out = tmp_path / "case.json"
    assert main(["pcap", str(path), "--kernel", "3.10", "--to-case", str(out)]) == 0
    case = json.loads(out.read_text())
    assert [p["from"] for p in case["packets"]] == ["ctr", "remote", "ctr", "ctr", "remote", "ctr"]
    assert case["packets"][5]["src"] == "192.0.2.2:39700" and case["packets"][5]["ack"] == r + 100_001
