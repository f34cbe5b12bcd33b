"""The capture reader against tshark on captures the real kernel's TCP made and tcpdump,
dumpcap's editcap/mergecap and text2pcap wrote (tests/pcap/data/README.md says how).

The oracle is tshark's own decoding of the same files (frame numbers, times, addresses,
ports, raw seq/ack, flags, raw window, TCP payload length from the IPv4 total length, TTL):
every field of every frame must match. Without tshark the comparison is skipped; the
typed-in facts below (from ``tcpdump -nr`` of the same files) still run.
"""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from sim.packet import IpProto, Packet
from sim.pcap.datagram import datagram_of
from sim.pcap.reader import read_frames

DATA = Path(__file__).parent / "data"
CAPTURES = sorted(p.name for p in DATA.iterdir() if p.suffix in (".pcap", ".pcapng"))
FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.len",
    "ip.ttl",
    "tcp.hdr_len",
    "udp.srcport",
    "udp.dstport",
    "icmp.type",
    "icmp.code",
]


def tshark_rows(path: Path) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=,", "-E", "occurrence=f"]
    for f in " ".join(FIELDS).split():
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split(",") for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", CAPTURES)
def test_every_frame_matches_tshark(name):
    path = DATA / name
    rows = tshark_rows(path)
    frames = list(read_frames(path))
    assert len(frames) == len(rows)
    decoded = 0
    for fr, row in zip(frames, rows, strict=True):
        number, epoch, src, dst, sport, dport, seq, ack, flags, win, length, ttl, hdr_len, *dgram = row
        assert fr.number == int(number)
        assert fr.ts_ns == int(Decimal(epoch) * 1_000_000_000)
        p = fr.pkt
        if p is None and (d := datagram_of(fr.skipped)) is not None:
            decoded += 1
            _check_datagram(d, src, dst, ttl, dgram)
            continue
        if p is None:
            # frames without IPv4 (ARP: tshark shows no address either), and frames whose TCP
            # header the snaplen cut (tshark still shows what it can)
            assert not src or fr.skipped == "TCP header cut by the snaplen", fr
            continue
        decoded += 1
        assert (p.src, p.dst, p.sport, p.dport) == (src, dst, int(sport), int(dport))
        assert (p.seq, p.ack, p.flags) == (int(seq), int(ack), int(flags, 16))
        assert (p.window, p.payload_len, p.ttl) == (int(win), int(length), int(ttl))
        assert p.tcp_header_len == int(hdr_len) or p.options.wire_length() != int(hdr_len) - 20
    assert decoded > 0


def _check_datagram(d: Packet, src: str, dst: str, ttl: str, fields: list[str]) -> None:
    """A UDP datagram's ports, an ICMP message's type and code -- or, for an ICMP error, the
    ports of the UDP datagram it quotes (tshark's first occurrence is the quoted one)."""
    udp_sport, udp_dport, icmp_type, icmp_code = fields
    assert (d.src, d.dst, d.ttl) == (src, dst, int(ttl))
    if d.proto is IpProto.UDP:
        assert (d.sport, d.dport) == (int(udp_sport), int(udp_dport))
        return
    assert (d.icmp_type, d.icmp_code) == (int(icmp_type), int(icmp_code))
    if d.inner is not None and d.inner.proto is IpProto.UDP:
        assert (d.inner.sport, d.inner.dport) == (int(udp_sport), int(udp_dport))


def test_typed_in_facts():
    """From ``tcpdump -nr``: the first SYN of clean-host.pcap, its options, and the link types."""
    first = next(iter(read_frames(DATA / "clean-host.pcap")))
    p = first.pkt
    assert p is not None
    assert (p.src, p.sport, p.dst, p.dport) == ("198.51.100.1", 40000, "198.51.100.2", 443)
    assert p.flags == 0x02 and p.window == 65280
    assert (p.options.mss, p.options.sack_perm, p.options.wscale) == (1360, True, 10)
    sll2 = next(iter(read_frames(DATA / "sll2-ctr.pcap"))).pkt
    assert sll2 is not None and (sll2.src, sll2.sport) == ("192.0.2.2", 40000) and sll2.flags == 0x02


def test_the_same_capture_in_four_formats_decodes_the_same():
    """pcap, pcapng (editcap -F pcapng), merged pcapng with two link types (mergecap)."""
    plain = [(f.ts_ns, f.pkt) for f in read_frames(DATA / "clean-host.pcap")]
    ng = [(f.ts_ns, f.pkt) for f in read_frames(DATA / "clean-host.pcapng")]
    merged = [(f.ts_ns, f.pkt) for f in read_frames(DATA / "merged.pcapng")]
    assert plain == ng
    assert plain == merged[: len(plain)] or plain == merged[-len(plain) :]


def test_nanosecond_timestamps_keep_their_digits():
    micro = [f.ts_ns for f in read_frames(DATA / "lossdup-host.pcap")]
    nano = [f.ts_ns for f in read_frames(DATA / "lossdup-host-ns.pcap")]
    assert micro == nano and all(t % 1000 == 0 for t in micro)


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
def test_pcapng_with_nanosecond_resolution(tmp_path):
    """editcap keeps the nanosecond pcap's resolution in the pcapng (if_tsresol 9)."""
    out = tmp_path / "ns.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(DATA / "lossdup-host-ns.pcap"), str(out)], check=True)
    ns = [(f.ts_ns, f.pkt) for f in read_frames(DATA / "lossdup-host-ns.pcap")]
    assert [(f.ts_ns, f.pkt) for f in read_frames(out)] == ns


def test_big_endian_pcap(tmp_path):
    """A pcap written on a big-endian machine: the same file with every header field swapped."""
    import struct

    raw = (DATA / "clean-host.pcap").read_bytes()
    swapped = bytearray(struct.pack(">IHHiIII", *struct.unpack_from("<IHHiIII", raw)))
    off = 24
    while off < len(raw):
        secs, frac, caplen, wirelen = struct.unpack_from("<IIII", raw, off)
        swapped += struct.pack(">IIII", secs, frac, caplen, wirelen) + raw[off + 16 : off + 16 + caplen]
        off += 16 + caplen
    path = tmp_path / "be.pcap"
    path.write_bytes(bytes(swapped))
    assert [(f.ts_ns, f.pkt) for f in read_frames(path)] == [
        (f.ts_ns, f.pkt) for f in read_frames(DATA / "clean-host.pcap")
    ]


def test_a_capture_streams_in_chunks(monkeypatch):
    """Records straddle the reader's chunk boundary: a tiny chunk changes nothing."""
    from sim.pcap import reader

    whole = [(f.number, f.ts_ns, f.pkt) for f in read_frames(DATA / "late-host.pcap")]
    monkeypatch.setattr(reader, "CHUNK", 97)
    assert [(f.number, f.ts_ns, f.pkt) for f in read_frames(DATA / "late-host.pcap")] == whole
    ng = [(f.ts_ns, f.pkt) for f in read_frames(DATA / "merged.pcapng")]
    monkeypatch.setattr(reader, "CHUNK", 1 << 20)
    assert ng == [(f.ts_ns, f.pkt) for f in read_frames(DATA / "merged.pcapng")]
