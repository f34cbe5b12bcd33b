"""sim.wire against RFC 1071, RFC 793/7323 option layouts and a SYN captured from Linux 6.18."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim import wire
from sim.packet import Packet, TcpFlag, TcpOptions

# A SYN sent by connect() on Linux 6.18.44 from 192.0.2.2:40000 to 192.0.2.1:443, captured
# on the peer of a veth with tx checksum offload off (so both checksums are complete).
# Options: mss 1460, sackOK, TS val 1501082277 ecr 0, nop, wscale 10.
LINUX_SYN = bytes.fromhex(
    "4500003c0e3140004006a887c0000202c00002019c4001bb4b4c7d9600000000"
    "a002faf0560c0000020405b40402080a5978b2a5000000000103030a"
)


def test_rfc1071_checksum_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded); checksum = ~ddf2.
    assert wire.inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_ipv4_header_checksum_of_a_known_header() -> None:
    # A commonly quoted IPv4 header whose checksum field is b861.
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert wire.inet_checksum(header) == 0xB861


def test_parse_linux_syn() -> None:
    p = wire.parse(LINUX_SYN)
    assert (p.src, p.sport, p.dst, p.dport) == ("192.0.2.2", 40000, "192.0.2.1", 443)
    assert p.flags == TcpFlag.SYN
    assert p.seq == 0x4B4C7D96 and p.ack == 0
    assert p.window == 64240 and p.payload_len == 0
    assert p.ttl == 64 and p.ip_id == 0x0E31
    assert p.options == TcpOptions(mss=1460, wscale=10, sack_perm=True, ts=(1501082277, 0))
    assert not p.bad_checksum


def test_emit_linux_syn_is_byte_exact() -> None:
    assert wire.emit(wire.parse(LINUX_SYN)) == LINUX_SYN


def test_option_layout_follows_tcp_options_write() -> None:
    # MSS; SACK_PERM shares two words with TIMESTAMP; NOP WSCALE; NOP NOP SACK blocks.
    opts = TcpOptions(mss=1460, wscale=7, sack_perm=True, ts=(1, 2), sack=((10, 20),))
    raw = wire.emit_options(opts)
    assert raw == (
        bytes.fromhex("020405b40402080a")
        + struct.pack("!II", 1, 2)
        + bytes.fromhex("01030307")
        + bytes.fromhex("0101050a")
        + struct.pack("!II", 10, 20)
    )
    assert len(raw) == opts.wire_length()


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        (TcpOptions(ts=(5, 6)), bytes.fromhex("0101080a") + struct.pack("!II", 5, 6)),
        (TcpOptions(sack_perm=True), bytes.fromhex("01010402")),
        (TcpOptions(wscale=14), bytes.fromhex("0103030e")),
        (TcpOptions(), b""),
    ],
)
def test_single_option_layouts(opts: TcpOptions, expected: bytes) -> None:
    assert wire.emit_options(opts) == expected
    assert wire.parse_options(expected) == opts


def test_bad_checksum_round_trips() -> None:
    p = Packet("192.0.2.2", "198.51.100.2", 40000, 443, seq=1, ack=2, flags=TcpFlag.ACK, window=5)
    bad = Packet(
        "192.0.2.2", "198.51.100.2", 40000, 443, seq=1, ack=2, flags=TcpFlag.ACK, window=5, bad_checksum=True
    )
    assert wire.parse(wire.emit(p)) == p
    assert wire.parse(wire.emit(bad)) == bad
    assert wire.emit(p) != wire.emit(bad)


def test_payload_is_counted_and_checksummed() -> None:
    p = Packet("192.0.2.2", "198.51.100.2", 1, 2, flags=TcpFlag.PSH | TcpFlag.ACK, payload_len=1000)
    data = wire.emit(p)
    assert len(data) == p.ip_len == 20 + 20 + 1000
    assert struct.unpack_from("!H", data, 2)[0] == p.ip_len
    assert wire.parse(data) == p


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x45\x00", "shorter than a header"),
        (bytes.fromhex("6500003c") + LINUX_SYN[4:], "IP version 6"),
        (LINUX_SYN[:10] + b"\x00\x00" + LINUX_SYN[12:], "bad IPv4 header checksum"),
        (LINUX_SYN[:30], "bad IPv4 lengths"),
    ],
)
def test_parse_errors_are_one_line(data: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message) as info:
        wire.parse(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "p",
    [
        Packet("192.0.2.2", "198.51.100.2", 70000, 1),
        Packet("192.0.2.2", "198.51.100.2", 1, 1, seq=1 << 32),
        Packet("192.0.2.2", "198.51.100.2", 1, 1, window=65536),
        Packet("192.0.2.300", "198.51.100.2", 1, 1),
        Packet("192.0.2.2", "198.51.100.2", 1, 1, options=TcpOptions(sack=((1, 2),) * 5)),
    ],
)
def test_emit_refuses_unencodable_packets(p: Packet) -> None:
    with pytest.raises(wire.WireError):
        wire.emit(p)


def test_ethernet_framing() -> None:
    frame = wire.emit_eth("02:00:00:00:00:01", "02:00:00:00:00:02", LINUX_SYN)
    assert frame[:14] == bytes.fromhex("0200000000010200000000020800")
    assert wire.parse_eth(frame) == ("02:00:00:00:00:01", "02:00:00:00:00:02", wire.ETH_P_IP, LINUX_SYN)
    # Minimum-size frames are padded; parse_ip drops the padding by the IP total length.
    padded = wire.parse_eth(frame + bytes(20))[3]
    assert wire.parse(padded) == wire.parse(LINUX_SYN)
    with pytest.raises(wire.WireError):
        wire.mac_to_bytes("02:00:00:00:00")


# ---------------------------------------------------------------- round trip property

u32 = st.integers(0, 2**32 - 1)
doc_ips = st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.1", "203.0.113.255"])


@st.composite
def tcp_options(draw: st.DrawFn) -> TcpOptions:
    opts = TcpOptions(
        mss=draw(st.none() | st.integers(0, 0xFFFF)),
        wscale=draw(st.none() | st.integers(0, 255)),
        sack_perm=draw(st.booleans()),
        ts=draw(st.none() | st.tuples(u32, u32)),
    )
    room = (wire.MAX_TCP_OPTION_SPACE - opts.wire_length() - 4) // 8
    n = draw(st.integers(0, max(0, min(room, wire.TCP_MAX_SACK_BLOCKS))))
    blocks = tuple(draw(st.tuples(u32, u32)) for _ in range(n))
    return TcpOptions(opts.mss, opts.wscale, opts.sack_perm, blocks, opts.ts)


packets = st.builds(
    Packet,
    src=doc_ips,
    dst=doc_ips,
    sport=st.integers(0, 0xFFFF),
    dport=st.integers(0, 0xFFFF),
    seq=u32,
    ack=u32,
    flags=st.integers(0, 0xFF),
    window=st.integers(0, 0xFFFF),
    payload_len=st.integers(0, 1500),
    options=tcp_options(),
    ttl=st.integers(0, 255),
    ip_id=st.integers(0, 0xFFFF),
    bad_checksum=st.booleans(),
)


@given(packets)
def test_parse_emit_round_trip(p: Packet) -> None:
    data = wire.emit(p)
    assert len(data) == p.ip_len
    assert wire.parse(data) == p
    assert wire.inet_checksum(data[:20]) == 0
