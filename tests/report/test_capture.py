"""sim.report.capture against tcpdump 4.99.3's own expected outputs, print-tcp.c, tcpdump and tshark.

Expected lines come from the tcpdump-group/tcpdump repository at tag tcpdump-4.99.3:
``tests/*.out`` files (the outputs its test suite checks, run without ``-v``; the leading
``-#`` packet number is dropped) and print-tcp.c's ``tcp_print()``. The man page's "TCP
Packets" rlogin example is not used: it predates the 4.x format (``seq 768512:768512`` on a
SYN, no ``length``). When the real tools are installed the last tests compare whole files
with ``tcpdump -n -r`` and ``tshark -r`` (CI: apt packages ``tcpdump`` and ``tshark``).
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from sim import wire
from sim.packet import Packet, TcpFlag, TcpOptions, icmp_packet, udp_packet
from sim.pcap.reader import read_frames
from sim.report.capture import PcapWriter, SeqTable, tcpdump_line, ts_print, write_pcap

F, S, R, P, A, U = TcpFlag.FIN, TcpFlag.SYN, TcpFlag.RST, TcpFlag.PSH, TcpFlag.ACK, TcpFlag.URG
MAC_A, MAC_B = "02:42:ac:11:00:02", "02:42:ac:11:00:01"


def hms(h: int, m: int, s: float) -> float:
    """Seconds since midnight, the virtual time that prints as HH:MM:SS with base 0."""
    return h * 3600 + m * 60 + s


# ---------------------------------------------------------------- tests/dns_tcp.out

# tests/dns_tcp.out (tcpdump -n -r tests/dns_tcp.pcap): one whole TCP connection.
CLIENT, SERVER = ("192.168.1.11", 33779), ("209.87.249.18", 53)
C_ISN, S_ISN = 603899916, 2043824403
NO_OPTS = TcpOptions()


def dns_seg(
    to_server: bool, flags: int, seq: int, ack: int, win: int, length: int = 0, options: TcpOptions = NO_OPTS
) -> Packet:
    (src, sport), (dst, dport) = (CLIENT, SERVER) if to_server else (SERVER, CLIENT)
    return Packet(src, dst, sport, dport, seq, ack, int(flags), win, length, options)


DNS_TCP = [
    (
        hms(9, 21, 3.720289),
        dns_seg(True, S, C_ISN, 0, 64240, options=TcpOptions(1460, 7, True, (), (2044906138, 0))),
        "09:21:03.720289 IP 192.168.1.11.33779 > 209.87.249.18.53: Flags [S], seq 603899916, win 64240, "
        "options [mss 1460,sackOK,TS val 2044906138 ecr 0,nop,wscale 7], length 0",
    ),
    (
        hms(9, 21, 3.846908),
        dns_seg(False, S | A, S_ISN, C_ISN + 1, 64240, options=TcpOptions(mss=1460)),
        "09:21:03.846908 IP 209.87.249.18.53 > 192.168.1.11.33779: Flags [S.], seq 2043824403, "
        "ack 603899917, win 64240, options [mss 1460], length 0",
    ),
    (
        hms(9, 21, 3.847060),
        dns_seg(True, A, C_ISN + 1, S_ISN + 1, 64240),
        "09:21:03.847060 IP 192.168.1.11.33779 > 209.87.249.18.53: Flags [.], ack 1, win 64240, length 0",
    ),
    (
        hms(9, 21, 3.847323),
        dns_seg(True, P | A, C_ISN + 1, S_ISN + 1, 64240, 58),
        # tcpdump goes on with the DNS query it decodes: " 17177+ [1au] A? www.tcpdump.org. (56)"
        "09:21:03.847323 IP 192.168.1.11.33779 > 209.87.249.18.53: Flags [P.], seq 1:59, ack 1, "
        "win 64240, length 58",
    ),
    (
        hms(9, 21, 3.847457),
        dns_seg(False, A, S_ISN + 1, C_ISN + 59, 64240),
        "09:21:03.847457 IP 209.87.249.18.53 > 192.168.1.11.33779: Flags [.], ack 59, win 64240, length 0",
    ),
    (
        hms(9, 21, 3.973180),
        dns_seg(False, P | A, S_ISN + 1, C_ISN + 59, 64240, 226),
        # ... " 17177*- 2/2/5 A 192.139.46.66, A 198.199.88.104 (224)"
        "09:21:03.973180 IP 209.87.249.18.53 > 192.168.1.11.33779: Flags [P.], seq 1:227, ack 59, "
        "win 64240, length 226",
    ),
    (
        hms(9, 21, 3.973220),
        dns_seg(True, A, C_ISN + 59, S_ISN + 227, 64014),
        "09:21:03.973220 IP 192.168.1.11.33779 > 209.87.249.18.53: Flags [.], ack 227, win 64014, length 0",
    ),
    (
        hms(9, 21, 3.974844),
        dns_seg(True, F | A, C_ISN + 59, S_ISN + 227, 64014),
        "09:21:03.974844 IP 192.168.1.11.33779 > 209.87.249.18.53: Flags [F.], seq 59, ack 227, "
        "win 64014, length 0",
    ),
    (
        hms(9, 21, 3.975246),
        dns_seg(False, A, S_ISN + 227, C_ISN + 60, 64239),
        "09:21:03.975246 IP 209.87.249.18.53 > 192.168.1.11.33779: Flags [.], ack 60, win 64239, length 0",
    ),
    (
        hms(9, 21, 4.101184),
        dns_seg(False, F | P | A, S_ISN + 227, C_ISN + 60, 64239),
        "09:21:04.101184 IP 209.87.249.18.53 > 192.168.1.11.33779: Flags [FP.], seq 227, ack 60, "
        "win 64239, length 0",
    ),
    (
        hms(9, 21, 4.101256),
        dns_seg(True, A, C_ISN + 60, S_ISN + 228, 64014),
        "09:21:04.101256 IP 192.168.1.11.33779 > 209.87.249.18.53: Flags [.], ack 228, win 64014, length 0",
    ),
]


def test_dns_tcp_out_with_relative_numbers() -> None:
    table: SeqTable = {}
    got = [tcpdump_line(pkt, t, table) for t, pkt, _ in DNS_TCP]
    assert got == [line for _, _, line in DNS_TCP]


def test_absolute_numbers_like_dash_S() -> None:
    # -S skips tcp_seq_hash4: every seq/ack is the header's value.
    t, pkt, _ = DNS_TCP[6]
    assert tcpdump_line(pkt, t, absolute=True) == (
        "09:21:03.973220 IP 192.168.1.11.33779 > 209.87.249.18.53: Flags [.], ack 2043824630, "
        "win 64014, length 0"
    )
    t, pkt, _ = DNS_TCP[3]
    assert tcpdump_line(pkt, t, {}, absolute=True).endswith(
        "Flags [P.], seq 603899917:603899975, ack 2043824404, win 64240, length 58"
    )


def test_first_ack_of_a_flow_prints_absolute_and_seeds_the_table() -> None:
    # tcp_print(): a flow not yet in tcp_seq_hash4 is recorded and printed as is; a SYN
    # (no ACK) never touches the table.
    table: SeqTable = {}
    t, syn, _ = DNS_TCP[0]
    tcpdump_line(syn, t, table)
    assert table == {}
    t, ack, _ = DNS_TCP[2]
    assert ", ack 2043824404, " in tcpdump_line(ack, t, table)
    assert ", ack 1, " in tcpdump_line(ack, t, table)
    # relative_to=None is a fresh table every call: always the first packet
    assert ", ack 2043824404, " in tcpdump_line(ack, t)
    assert ", ack 2043824404, " in tcpdump_line(ack, t)


def test_sequence_numbers_wrap_mod_2_32() -> None:
    table: SeqTable = {}
    syn_ack = Packet("10.0.0.2", "10.0.0.1", 443, 40000, 2**32 - 1, 2**32 - 10, int(S | A), 100)
    data = Packet("10.0.0.2", "10.0.0.1", 443, 40000, 0, 2**32 - 10, int(P | A), 100, 10)
    tcpdump_line(syn_ack, 0, table)
    assert ", seq 1:11, ack 1, win 100, length 10" in tcpdump_line(data, 0, table)


# ---------------------------------------------------------------- other .out files and print-tcp.c


def test_bare_rst_of13_ericsson_out() -> None:
    # tests/of13_ericsson.out, packet 26: a RST without ACK keeps its absolute seq.
    rst = Packet("127.0.0.1", "127.0.0.1", 56440, 6633, 2428319660, 0, int(R), 0)
    assert tcpdump_line(rst, hms(7, 6, 11.997117), {}) == (
        "07:06:11.997117 IP 127.0.0.1.56440 > 127.0.0.1.6633: Flags [R], seq 2428319660, win 0, length 0"
    )


def test_rst_ack_bgp_4byte_asdot_out() -> None:
    # tests/bgp-4byte-asdot.out line 72 is run with -v; without it the ", cksum 0xb265
    # (correct)" after the flags is not printed. The RST+ACK is the flow's first ACK seen.
    rst = Packet("1.0.3.1", "1.0.3.2", 179, 43415, 0, 4276964400, int(R | A), 0)
    assert tcpdump_line(rst, 0, {}).endswith(
        "IP 1.0.3.1.179 > 1.0.3.2.43415: Flags [R.], seq 0, ack 4276964400, win 0, length 0"
    )


def test_linux_syn_from_test_wire() -> None:
    # The SYN captured from Linux 6.18 in tests/unit/test_wire.py; options in
    # tcp_options_write() order, named as tcp_option_values[] names them.
    pkt = wire.parse(
        bytes.fromhex(
            "4500003c0e3140004006a887c0000202c00002019c4001bb4b4c7d9600000000"
            "a002faf0560c0000020405b40402080a5978b2a5000000000103030a"
        )
    )
    assert tcpdump_line(pkt, 12.5, base=hms(12, 0, 0)) == (
        "12:00:12.500000 IP 192.0.2.2.40000 > 192.0.2.1.443: Flags [S], seq 1263304086, win 64240, "
        "options [mss 1460,sackOK,TS val 1501082277 ecr 0,nop,wscale 10], length 0"
    )


@pytest.mark.parametrize(
    ("flags", "letters"),
    [
        (0, "none"),  # bittok2str_nosep's "unknown" text
        (int(F | S | R | P | A | U | TcpFlag.ECE | TcpFlag.CWR), "FSRP.UEW"),  # tcp_flag_values[] order
        (int(S | TcpFlag.ECE | TcpFlag.CWR), "SEW"),  # an ECN-setup SYN (RFC 3168)
        (int(F | S), "FS"),
    ],
)
def test_flag_letters_follow_tcp_flag_values(flags: int, letters: str) -> None:
    pkt = Packet("10.0.0.1", "10.0.0.2", 1, 2, 7, 0, flags, 5)
    assert f"Flags [{letters}]" in tcpdump_line(pkt, 0, absolute=True)


def test_urg_prints_the_zero_urgent_pointer() -> None:
    # tcp_print(): ", urg %u" when URG is set; a Packet's urgent pointer is 0 on the wire.
    pkt = Packet("10.0.0.1", "10.0.0.2", 40000, 443, 5, 9, int(U | A), 5)
    assert tcpdump_line(pkt, 0, absolute=True).endswith("Flags [.U], ack 9, win 5, urg 0, length 0")


def test_sack_edges_are_relative_to_the_peer_isn() -> None:
    # tcp_print(): "sack N " then "{s:e}" per block, edges minus thack (thseq if rev).
    table: SeqTable = {}
    tcpdump_line(Packet("10.0.0.2", "10.0.0.1", 443, 40000, 5000, 1001, int(S | A), 100), 0, table)
    # the client SACKs the server's data: edges in the server's sequence space (ISN 5000)
    sack = TcpOptions(ts=(7, 8), sack=((5000 + 2600, 5000 + 3900), (5000 + 1300, 5000 + 2000)))
    from_client = Packet("10.0.0.1", "10.0.0.2", 40000, 443, 1001, 5001, int(A), 100, options=sack)
    assert tcpdump_line(from_client, 0, table).endswith(
        "Flags [.], ack 1, win 100, options [nop,nop,TS val 7 ecr 8,nop,nop,sack 2 {2600:3900}{1300:2000}], "
        "length 0"
    )


def test_payload_printer_text_for_known_ports() -> None:
    # http_print() on a payload without a request or status line prints only ": HTTP".
    pkt = Packet("172.17.0.2", "10.0.0.9", 49802, 8080, 1, 1, int(P | A), 229, 100)
    assert tcpdump_line(pkt, 0, absolute=True).endswith("length 100: HTTP")
    # the first port in tcp_print()'s dispatch wins: SMTP (25) is tested before HTTP (80)
    smtp = Packet("10.0.0.1", "10.0.0.2", 25, 80, 1, 1, int(P | A), 229, 1)
    assert tcpdump_line(smtp, 0, absolute=True).endswith("length 1: SMTP")
    # no payload, no printer
    ack = Packet("10.0.0.1", "10.0.0.2", 40000, 8080, 1, 1, int(A), 229)
    assert tcpdump_line(ack, 0, absolute=True).endswith("length 0")


def test_ts_print_time_of_day() -> None:
    assert ts_print(0.000123) == "00:00:00.000123"
    assert ts_print(1.5, base=hms(23, 59, 59)) == "00:00:00.500000"  # 24 h wrap, as gmtime does
    with pytest.raises(ValueError, match="before the Unix epoch"):
        ts_print(-1.0)


# ---------------------------------------------------------------- pcap files


def _records() -> list[tuple[float, Packet, str, str]]:
    out = []
    for t, pkt, _ in DNS_TCP:
        to_server = pkt.src == CLIENT[0]
        out.append((t, pkt, MAC_A if to_server else MAC_B, MAC_B if to_server else MAC_A))
    return out


def read_back(path: Path, base: float = 0.0) -> list[tuple[float, Packet | None]]:
    """(seconds since ``base``, packet) for each frame, by nflab's one capture reader."""
    return [((f.ts_ns - round(base * 1e9)) / 1e9, f.pkt) for f in read_frames(path)]


def test_round_trip_write_read(tmp_path: Path) -> None:
    path = tmp_path / "dns.pcap"
    base = 1_700_000_000.0
    write_pcap(path, _records(), base=base)
    raw = path.read_bytes()
    # pcap_file_header: magic, v2.4, thiszone 0, sigfigs 0, snaplen 262144, LINKTYPE_ETHERNET
    assert struct.unpack_from("<IHHiIII", raw) == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    back = read_back(path, base=base)
    assert [p for _, p in back] == [r[1] for r in _records()]
    assert [round(t * 1e6) for t, _ in back] == [round(r[0] * 1e6) for r in _records()]


def test_reads_big_endian_files(tmp_path: Path) -> None:
    # pcap_check_header() accepts the magic byte-swapped: the writer's native order was other.
    little = tmp_path / "le.pcap"
    write_pcap(little, _records()[:2])
    raw = little.read_bytes()
    big = bytearray(struct.pack(">IHHiIII", *struct.unpack_from("<IHHiIII", raw)))
    off = 24
    while off < len(raw):
        hdr = struct.unpack_from("<IIII", raw, off)
        big += struct.pack(">IIII", *hdr) + raw[off + 16 : off + 16 + hdr[2]]
        off += 16 + hdr[2]
    (tmp_path / "be.pcap").write_bytes(bytes(big))
    assert list(read_frames(tmp_path / "be.pcap")) == list(read_frames(little))


def test_reads_nanosecond_files(tmp_path: Path) -> None:
    # NSEC_TCPDUMP_MAGIC: the record's fraction counts nanoseconds (pcap_check_header()).
    micro = tmp_path / "us.pcap"
    write_pcap(micro, _records()[:3])
    raw = bytearray(micro.read_bytes())
    struct.pack_into("<I", raw, 0, 0xA1B23C4D)
    off = 24
    while off < len(raw):
        secs, usec, caplen, wirelen = struct.unpack_from("<IIII", raw, off)
        struct.pack_into("<IIII", raw, off, secs, usec * 1000, caplen, wirelen)
        off += 16 + caplen
    (tmp_path / "ns.pcap").write_bytes(bytes(raw))
    assert list(read_frames(tmp_path / "ns.pcap")) == list(read_frames(micro))


def test_writer_is_a_context_manager(tmp_path: Path) -> None:
    t, pkt, _ = DNS_TCP[0]
    with PcapWriter(tmp_path / "one.pcap") as w:
        w.write(t, pkt, MAC_A, MAC_B)
    [(t_back, pkt_back)] = read_back(tmp_path / "one.pcap")
    assert (round(t_back * 1e6), pkt_back) == (round(t * 1e6), pkt)


# ---------------------------------------------------------------- the real tools


def _mixed_flows(seed: int) -> list[tuple[float, Packet, str, str]]:
    """Handshake-free segments over a few flows: all flag bits, options, SACK, equal ports."""
    rng = random.Random(seed)
    out: list[tuple[float, Packet, str, str]] = []
    t = 0.0
    for _ in range(400):
        src, dst = rng.sample(["10.0.0.1", "10.0.0.2", "172.17.0.2"], 2)
        sport, dport = rng.choice([(40000, 443), (443, 40000), (5000, 5000), (49802, 8080)])
        opts = TcpOptions(
            mss=rng.choice([None, 1460]),
            wscale=rng.choice([None, 7]),
            sack_perm=rng.random() < 0.3,
            sack=tuple((rng.randrange(2**32), rng.randrange(2**32)) for _ in range(rng.choice([0, 1, 2]))),
            ts=rng.choice([None, (rng.randrange(2**32), rng.randrange(2**32))]),
        )
        pkt = Packet(
            src,
            dst,
            sport,
            dport,
            rng.randrange(2**32),
            rng.randrange(2**32),
            rng.randrange(256),
            rng.randrange(65536),
            rng.choice([0, 1, 1300]),
            opts,
        )
        t += rng.random()
        out.append((t, pkt, MAC_A, MAC_B))
    return out


TCPDUMP = shutil.which("tcpdump")
TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump not installed (apt package tcpdump)")
@pytest.mark.parametrize("absolute", [False, True])
def test_lines_equal_tcpdump_reading_the_pcap(tmp_path: Path, absolute: bool) -> None:
    assert TCPDUMP is not None
    base = 1_600_000_000.0
    records = _records() + [(t + 40000, p, s, d) for t, p, s, d in _mixed_flows(1)]
    write_pcap(tmp_path / "x.pcap", records, base=base)
    cmd = [TCPDUMP, "-n", *(["-S"] if absolute else []), "-r", str(tmp_path / "x.pcap")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={"TZ": "UTC"}).stdout
    table: SeqTable = {}
    ours = [tcpdump_line(p, t, table, absolute=absolute, base=base) for t, p, _, _ in records]
    theirs = out.splitlines()
    assert len(theirs) == len(ours)
    for i, (mine, real) in enumerate(zip(ours, theirs, strict=True)):
        # the only text not modelled: tcpdump's DNS decode of the two port-53 data segments
        assert real.startswith(mine + " ") if i in (3, 5) else real == mine


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (apt package tshark)")
def test_tshark_reads_what_was_written(tmp_path: Path) -> None:
    assert TSHARK is not None
    records = _records() + _mixed_flows(2)
    path = tmp_path / "x.pcap"
    write_pcap(path, records)
    cmd = [TSHARK, "-r", str(path), "-T", "fields"]
    for field in ("tcp.srcport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw"):
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    # tcp.flags is printed in hex ("0x0018"); its width differs between Wireshark versions
    got = [(int(sport), int(flags, 16), int(seq), int(ack)) for sport, flags, seq, ack in rows]
    assert got == [(p.sport, p.flags, p.seq, p.ack) for _, p, _, _ in records]


# -- UDP and ICMP: the lines tcpdump 4.99 (`tcpdump -n -r`) printed on this machine for a pcap
# the model wrote (sim.wire.emit's UDP and ICMP bytes; timestamps cut).
def _v2_lines() -> list[tuple[Packet, str]]:
    r, h = "198.51.100.2", "198.51.100.1"
    quoted_udp, quoted_tcp = udp_packet(h, 45124, r, 9), Packet(h, r, 40100, 443, 1)
    return [
        (
            udp_packet("192.0.2.2", 45123, r, 5000, 33),
            "IP 192.0.2.2.45123 > 198.51.100.2.5000: UDP, length 33",
        ),
        (udp_packet("192.0.2.2", 45123, r, 53, 33), "IP 192.0.2.2.45123 > 198.51.100.2.53: 0 [0q] (33)"),
        (
            udp_packet(h, 40000, r, 53, 8),
            "IP 198.51.100.1.40000 > 198.51.100.2.53: domain [length 8 < 12] (invalid)",
        ),
        (
            udp_packet(h, 40000, r, 123, 48),
            "IP 198.51.100.1.40000 > 198.51.100.2.123: NTPv0, unspecified, length 48",
        ),
        (
            icmp_packet("192.0.2.2", r, 8, 0, 7, 1, 56),
            "IP 192.0.2.2 > 198.51.100.2: ICMP echo request, id 7, seq 1, length 64",
        ),
        (
            icmp_packet(r, "192.0.2.2", 0, 0, 7, 1, 56),
            "IP 198.51.100.2 > 192.0.2.2: ICMP echo reply, id 7, seq 1, length 64",
        ),
        (
            icmp_packet(r, h, 3, 3, inner=quoted_udp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP 198.51.100.2 udp port 9 unreachable, length 36",
        ),
        (
            icmp_packet(r, h, 3, 3, inner=quoted_tcp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP 198.51.100.2 tcp port 443 unreachable, length 36",
        ),
        (
            icmp_packet(r, h, 3, 2, inner=quoted_tcp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP 198.51.100.2 protocol 6 unreachable, length 36",
        ),
        (
            icmp_packet(r, h, 3, 1, inner=quoted_udp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP host 198.51.100.2 unreachable, length 36",
        ),
        (
            icmp_packet(r, h, 3, 4, inner=quoted_tcp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP 198.51.100.2 unreachable - need to frag, length 36",
        ),
        (
            icmp_packet(r, h, 3, 13, inner=quoted_tcp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP host 198.51.100.2 unreachable"
            " - admin prohibited filter, length 36",
        ),
        (
            icmp_packet(r, h, 11, 0, inner=quoted_tcp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP time exceeded in-transit, length 36",
        ),
        (
            icmp_packet(r, h, 12, 1, inner=quoted_udp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP parameter problem - code 1, length 36",
        ),
        (
            icmp_packet(r, h, 5, 1, inner=quoted_udp),
            "IP 198.51.100.2 > 198.51.100.1: ICMP redirect 198.51.100.2 to host 0.0.0.0, length 36",
        ),
        (
            icmp_packet("192.0.2.2", r, 13, 0, 9, 0, 12),
            "IP 192.0.2.2 > 198.51.100.2: ICMP time stamp query id 9 seq 0, length 20",
        ),
        (icmp_packet(r, h, 30, 0, 5, 6), "IP 198.51.100.2 > 198.51.100.1: ICMP type-#30, length 8"),
    ]


def test_udp_and_icmp_lines_as_tcpdump_prints_them():
    for pkt, line in _v2_lines():
        assert tcpdump_line(pkt, 0.0) == "00:00:00.000000 " + line


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_tcpdump_reads_the_udp_and_icmp_the_model_writes(tmp_path):
    """The bytes sim.wire.emit writes for UDP and ICMP: tcpdump decodes each as the model
    prints it (and reports no bad length or truncation)."""
    path = tmp_path / "v2.pcap"
    write_pcap(path, [(0.0, p, "02:00:00:00:00:01", "02:00:00:00:00:02") for p, _ in _v2_lines()])
    out = subprocess.run(
        ["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert [line.split(" ", 1)[1] for line in out.splitlines()] == [line for _, line in _v2_lines()]
