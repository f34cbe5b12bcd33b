"""Crafted captures for what tcpdump's test captures hold but the committed real ones do not:
NFLOG and PPP link types, pcapng files libpcap refuses, an IPv4 header length of 0.

Layouts typed in from their definitions: pcap/nflog.h (a 4-byte header: family, version,
resource id = the group in network byte order; TLVs of length and type in the capturing
host's byte order, padded to 4; NFULA_PAYLOAD = 9, NFULA_PREFIX = 10, NFULA_PACKET_HDR = 1),
RFC 1661/1662 (PPP, HDLC address 0xff control 0x03, protocol 0x0021 = IPv4, 1-byte
compressed protocol), RFC 2516 (PPPoE session header, 6 bytes; ethertype 0x8864),
linktypes.html (PPP 9, PPP_HDLC 50, PPP_ETHER 51, PPP_WITH_DIR 204, NFLOG 239) and the
pcapng draft with libpcap's sf-pcapng.c checks (versions 1.0 and 1.2, trailer length equal
to the header's, minimum block lengths, if_tsresol of length 1, an IDB before EOF).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sim.cli import main
from sim.packet import TCPHDR_ACK, Packet
from sim.pcap.reader import CaptureError, read_frames
from sim.wire import emit

PKT = Packet("192.0.2.2", "198.51.100.2", 40000, 443, 1000, 2000, TCPHDR_ACK, 500, 0)
IP = emit(PKT)


def pcap(linktype: int, *frames: bytes) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000, i, len(f), len(f)) + f
    return out


def read(tmp_path: Path, data: bytes, **kw) -> list:
    path = tmp_path / "c.pcap"
    path.write_bytes(data)
    return list(read_frames(path, **kw))


def tlv(kind: int, value: bytes, order: str = "<") -> bytes:
    raw = struct.pack(order + "HH", 4 + len(value), kind) + value
    return raw + bytes(-len(raw) % 4)


def nflog(group: int, payload: bytes, order: str = "<", family: int = 2) -> bytes:
    return (
        struct.pack(">BBH", family, 0, group)
        + tlv(1, struct.pack(">HBx", 0x0800, 1), order)
        + tlv(10, b"INVALID: \0", order)
        + tlv(9, payload, order)
    )


def test_nflog_packets_in_both_byte_orders_and_groups(tmp_path):
    frames = read(tmp_path, pcap(239, nflog(5, IP), nflog(7, IP, ">"), nflog(5, IP, family=10)))
    assert [f.pkt for f in frames[:2]] == [PKT, PKT]
    assert [f.iface for f in frames] == [5, 7, 5]  # the group tells the logs apart
    assert frames[2].skipped == "IPv6"


def test_nflog_group_keeps_one_group(tmp_path, capsys):
    path = tmp_path / "n.pcap"
    path.write_bytes(pcap(239, nflog(5, IP), nflog(7, IP)))
    frames = list(read_frames(path, nflog_group=7))
    assert [f.pkt for f in frames] == [None, PKT] and frames[0].skipped == "NFLOG group 5"
    assert main(["pcap", str(path), "--nflog-group", "7"]) == 0
    assert "skipped 1 other frames (1 NFLOG group 5)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["pcap", str(path), "--nflog-group", "70000"])
    assert e.value.code == 2 and "--nflog-group" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("linktype", "header"),
    [
        (9, b"\xff\x03\x00\x21"),  # PPP with HDLC address and control
        (9, b"\x00\x21"),  # PPP, address and control omitted
        (9, b"\x21"),  # protocol field compressed
        (50, b"\xff\x03\x00\x21"),  # PPP in HDLC framing
        (50, b"\x0f\x00\x08\x00"),  # Cisco HDLC in DLT_PPP_SERIAL
        (51, b"\x11\x00\x00\x01\x00\x2a\x00\x21"),  # PPPoE session 1
        (166, b"\x01\x03\x00\x21"),  # pppd: direction in the address byte
        (204, b"\x00\xff\x03\x00\x21"),  # direction byte, then PPP
        (1, bytes(12) + b"\x88\x64" + b"\x11\x00\x00\x01\x00\x2a\x00\x21"),  # PPPoE on Ethernet
    ],
)
def test_ppp_link_types(tmp_path, linktype, header):
    (frame,) = read(tmp_path, pcap(linktype, header + IP))
    assert frame.pkt == PKT


def sll(pkttype: int, mac: bytes) -> bytes:
    """A Linux cooked v1 header (LINKTYPE_LINUX_SLL.html): packet type, ARPHRD_ETHER (1),
    address length 6, the address padded to 8 bytes, protocol 0x0800."""
    return struct.pack(">HHH8sH", pkttype, 1, 6, mac, 0x0800)


def test_linux_cooked_v1_tells_interfaces_apart_by_packet_type_and_address(tmp_path):
    """v1 has no ifindex: a frame's interface is known as far as its packet type and address
    tell. 3 = PACKET_OTHERHOST, 0 = PACKET_HOST, 4 = PACKET_OUTGOING (if_packet.h)."""
    ctr, uplink = bytes.fromhex("02aa00000002"), bytes.fromhex("02bb00000001")
    headers = [sll(3, ctr), sll(0, ctr), sll(4, uplink), sll(0, ctr)]
    frames = read(tmp_path, pcap(113, *(h + IP for h in headers)))
    assert all(f.pkt == PKT for f in frames)
    ifaces = [f.iface for f in frames]
    assert len(set(ifaces[:3])) == 3 and ifaces[3] == ifaces[1]
    assert all(i < 0 for i in ifaces)  # told apart only as far as the header goes


def test_ppp_ipv6_and_lcp_are_named(tmp_path):
    frames = read(tmp_path, pcap(9, b"\xff\x03\x00\x57" + bytes(40), b"\xff\x03\xc0\x21" + bytes(4)))
    assert [f.skipped for f in frames] == ["IPv6", "PPP protocol 0xc021"]


def test_ip_header_length_zero_is_named_as_such(tmp_path):
    bad = bytes([0x40]) + IP[1:]
    (frame,) = read(tmp_path, pcap(101, bad))
    assert frame.skipped == "bad IPv4 header length 0"


def test_other_link_types_are_one_line(tmp_path, capsys):
    path = tmp_path / "w.pcap"
    path.write_bytes(pcap(127, IP))  # IEEE 802.11 radiotap
    assert main(["pcap", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown link type 127" in err and "NFLOG, PPP" in err


# ---------------------------------------------------------------- pcapng libpcap refuses


def block(kind: int, body: bytes, trailer: int | None = None, length: int | None = None) -> bytes:
    body += bytes(-len(body) % 4)
    n = 12 + len(body) if length is None else length
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n if trailer is None else trailer)


def shb(major: int = 1, minor: int = 0) -> bytes:
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, major, minor, -1))


def idb(options: bytes = b"") -> bytes:
    return block(1, struct.pack("<HHI", 101, 0, 262144) + options)


def epb(data: bytes = IP) -> bytes:
    return block(6, struct.pack("<IIIII", 0, 0, 0, len(data), len(data)) + data)


def refused(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "c.pcapng"
    path.write_bytes(data)
    with pytest.raises(CaptureError) as e:
        list(read_frames(path))
    return str(e.value)


def test_a_good_crafted_pcapng_is_read(tmp_path):
    path = tmp_path / "ok.pcapng"
    path.write_bytes(shb(1, 2) + idb(struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)) + epb())
    assert [f.pkt for f in read_frames(path)] == [PKT]


REFUSED = [
    (shb(2, 0) + idb() + epb(), "unsupported pcapng version 2.0"),
    (shb(1, 1) + idb() + epb(), "unsupported pcapng version 1.1"),
    (shb() + idb() + block(6, struct.pack("<IIIII", 0, 0, 0, 40, 40) + IP, trailer=64), "don't match"),
    (shb() + idb(), "no Interface Description Blocks")
    if False
    else (shb(), "no Interface Description Blocks"),
    (
        shb() + block(1, struct.pack("<HH", 101, 0)) + epb(),
        "Interface Description Block has a length of 16 < 20",
    ),
    (shb() + idb() + block(6, bytes(16)), "Enhanced Packet Block has a length of 28 < 32"),
    (shb() + idb(struct.pack("<HHH2x", 9, 2, 6)) + epb(), "if_tsresol option with length 2 != 1"),
    (shb() + idb(struct.pack("<HHB3x", 9, 1, 0x50)) + epb(), "time stamp resolution that is too high"),
    (shb() + idb(struct.pack("<HHI", 0, 4, 0)) + epb(), "opt_endofopt option with length 4 != 0"),
]


@pytest.mark.parametrize(("data", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_pcapng_files_libpcap_refuses(tmp_path, data, message):
    assert message in refused(tmp_path, data)
