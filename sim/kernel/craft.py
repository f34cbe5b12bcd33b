"""Replay-contract v2 packets as the live harness sends them: UDP (RFC 768), ICMP (RFC 792)
and TCP datagrams, built byte by byte for the end hosts' AF_PACKET sockets.

The contract (``DESIGN.md``, "Contract, version 2") adds extra end hosts (``hosts``), a
``proto`` per packet (``tcp`` default, ``udp``, ``icmp``), ICMP ``type``/``code``/``id``/``seq``
and, for errors, the ``inner`` packet they quote, and ``race: "prev"``. :func:`parse_live_case`
validates a v1 or v2 case for the kernel side and turns it into :class:`LiveCase`; TCP packets
go through the v1 loader's :func:`sim.scenario.case.packet_from_case` unchanged.

What the kernel sees of an ICMP error is what ``icmp_error_message()``
(net/netfilter/nf_conntrack_proto_icmp.c) reads: the quoted IPv4 header and the first 8 bytes
of its transport header (ports for TCP and UDP), from which it finds the entry the error is
RELATED to.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, replace
from typing import Any

from sim import wire
from sim.packet import IP_HEADER_LEN, IPPROTO_TCP, Packet
from sim.scenario.case import (
    DEFAULT_DELAY_S,
    IPV4_PACKET_LIMIT,
    MAX_DELAY_S,
    CaseError,
    Topology,
    check_documentation_address,
    check_sysctl,
    iptables_argv,
    packet_from_case,
    strip_comments,
)

IPPROTO_UDP = 17
UDP_HEADER_LEN = 8  # struct udphdr
ICMP_HEADER_LEN = 8  # struct icmphdr: type, code, checksum, then id/seq or unused
# include/uapi/linux/icmp.h
ICMP_ECHOREPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
ICMP_ERRORS = (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)  # the contract's error types
INNER_L4_BYTES = 8  # RFC 792: the original datagram's header and its first 64 bits

CASE_KEYS = {"name", "kernel", "sysctl", "iptables", "topology", "packets", "description", "hosts"}
V2_PACKET_KEYS = {"proto", "race"}
UDP_KEYS = {"from", "proto", "src", "dst", "len", "delay", "comment", "race"}
ICMP_KEYS = {
    "from",
    "proto",
    "src",
    "dst",
    "type",
    "code",
    "id",
    "seq",
    "len",
    "inner",
    "delay",
    "comment",
    "race",
}
INNER_KEYS = {"proto", "src", "dst"}


class Proto(enum.Enum):
    """The contract's ``proto`` values, with their IP protocol numbers."""

    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"

    @property
    def number(self) -> int:
        return {Proto.TCP: IPPROTO_TCP, Proto.UDP: IPPROTO_UDP, Proto.ICMP: wire.IPPROTO_ICMP}[self]


@dataclass(frozen=True, slots=True)
class Inner:
    """The packet an ICMP error quotes (``inner``): its protocol and both endpoints."""

    proto: Proto
    src: str
    sport: int
    dst: str
    dport: int


@dataclass(frozen=True, slots=True)
class LivePacket:
    """One packet of a case, ready to be sent from ``side``.

    ``tcp`` holds the segment for TCP; UDP and ICMP use the address, port and ICMP fields.
    """

    side: str
    proto: Proto
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    length: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    icmp_id: int = 0
    icmp_seq: int = 0
    inner: Inner | None = None
    tcp: Packet | None = None
    delay: float = DEFAULT_DELAY_S
    race: bool = False

    def datagram(self, ip_id: int) -> bytes:
        """The IPv4 datagram with this IP ID (valid checksums everywhere)."""
        if self.tcp is not None:
            return wire.emit(replace(self.tcp, ip_id=ip_id))
        if self.proto is Proto.UDP:
            body = udp_segment(self.src, self.dst, self.sport, self.dport, bytes(self.length))
        else:
            body = self.icmp_message()
        return ipv4(self.src, self.dst, self.proto.number, ip_id, body)

    def icmp_message(self) -> bytes:
        if self.inner is None:
            rest = struct.pack("!HH", self.icmp_id, self.icmp_seq)
            data = bytes(self.length)
        else:
            rest = bytes(4)  # unused (destination unreachable, time exceeded)
            data = quoted(self.inner)
        msg = bytearray(struct.pack("!BBH", self.icmp_type, self.icmp_code, 0) + rest + data)
        struct.pack_into("!H", msg, 2, wire.inet_checksum(bytes(msg)))
        return bytes(msg)

    def ct_tuple(self) -> tuple[int, str, str, int, int]:
        """The tuple conntrack looks this packet up by (``nf_ct_get_tuple()``): protocol,
        addresses, then ports, or for ICMP echo (id, type); for an ICMP error, the inverse of
        the quoted packet, which is the tuple of the entry the error is RELATED to."""
        if self.inner is not None:
            i = self.inner
            return (i.proto.number, i.dst, i.src, i.dport, i.sport)
        if self.proto is Proto.ICMP:
            return (self.proto.number, self.src, self.dst, self.icmp_id, self.icmp_type)
        return (self.proto.number, self.src, self.dst, self.sport, self.dport)


def ipv4(src: str, dst: str, proto: int, ip_id: int, body: bytes, ttl: int = 64) -> bytes:
    """An IPv4 header (no options, DF set) in front of ``body``."""
    hdr = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            IP_HEADER_LEN + len(body),
            ip_id,
            wire.IP_DF,
            ttl,
            proto,
            0,
            wire.ip_to_bytes(src),
            wire.ip_to_bytes(dst),
        )
    )
    struct.pack_into("!H", hdr, 10, wire.inet_checksum(bytes(hdr)))
    return bytes(hdr) + body


def udp_segment(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header and payload with the RFC 768 checksum over the pseudo-header
    (0 is sent as 0xFFFF, since 0 means "no checksum")."""
    length = UDP_HEADER_LEN + len(payload)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + payload
    pseudo = sum(struct.unpack("!4H", wire.ip_to_bytes(src) + wire.ip_to_bytes(dst))) + IPPROTO_UDP + length
    csum = wire.inet_checksum(seg, pseudo) or 0xFFFF
    return seg[:6] + struct.pack("!H", csum) + seg[8:]


def quoted(inner: Inner) -> bytes:
    """What an ICMP error carries of the offending datagram: its IP header and 8 bytes."""
    if inner.proto is Proto.UDP:
        l4 = struct.pack("!HHHH", inner.sport, inner.dport, UDP_HEADER_LEN, 0)
    else:  # TCP: ports and the sequence number
        l4 = struct.pack("!HHI", inner.sport, inner.dport, 0)
    return ipv4(inner.src, inner.dst, inner.proto.number, 0, l4)


# ---------------------------------------------------------------- case files


@dataclass(frozen=True, slots=True)
class LiveCase:
    """A validated case: the topology, extra hosts (name -> address), host sysctls, host
    iptables lines and the packets."""

    topology: Topology
    hosts: dict[str, str]
    sysctls: dict[str, Any]
    lines: list[str]
    packets: list[LivePacket]

    def host_ip(self, name: str) -> str:
        t = self.topology
        return {"ctr": t.ctr_ip, "remote": t.remote_ip, **self.hosts}[name]


def _int(d: dict[str, Any], key: str, what: str, default: int, hi: int) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise CaseError(f"{what}.{key}: expected an integer in 0..{hi}, got {v!r}")
    return v


def _endpoint(text: object, what: str) -> tuple[str, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise CaseError(f"{what}: expected 'ip:port', got {text!r}")
    addr, port = text.split(":")
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 0xFFFF:
        raise CaseError(f"{what}: bad port in {text!r}")
    return check_documentation_address(addr, what), int(port)


def _address(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise CaseError(f"{what}: expected an address, got {text!r}")
    return check_documentation_address(text, what)


def parse_hosts(raw: object, topology: Topology) -> dict[str, str]:
    """``hosts``: names ``ctr…`` in the bridge's /24, ``remote…`` in the uplink's /24."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CaseError('case.hosts: expected an object like {"ctr2": "192.0.2.3"}')
    taken = {topology.ctr_ip, topology.bridge_ip, topology.host_ip, topology.remote_ip}
    out: dict[str, str] = {}
    for name, addr in raw.items():
        what = f"hosts.{name}"
        if not (isinstance(name, str) and name.isascii() and name.isalnum() and name.islower()):
            raise CaseError(f"{what}: a host name is lowercase letters and digits")
        if name in ("ctr", "remote") or not name.startswith(("ctr", "remote")):
            raise CaseError(f"{what}: extra host names start with 'ctr' or 'remote' (and are not those)")
        ip = _address(addr, what)
        net = topology.ctr_net if name.startswith("ctr") else topology.uplink_net
        if not wire.ip_to_bytes(ip)[:3] == net.network_address.packed[:3]:
            raise CaseError(f"{what}: {ip} is not in {net}")
        if ip in taken:
            raise CaseError(f"{what}: {ip} is already used")
        taken.add(ip)
        out[name] = ip
    return out


def _delay(d: dict[str, Any], what: str) -> float:
    delay = d.get("delay", DEFAULT_DELAY_S)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_S:
        raise CaseError(f"{what}.delay: expected seconds in 0..{MAX_DELAY_S:.0f}, got {delay!r}")
    return float(delay)


def _race(d: dict[str, Any], what: str, index: int) -> bool:
    race = d.get("race")
    if race is None:
        return False
    if race != "prev":
        raise CaseError(f'{what}.race: the only value is "prev", got {race!r}')
    if index == 0:
        raise CaseError(f"{what}.race: the first packet has no previous packet to race")
    return True


def _inner(raw: object, what: str) -> Inner:
    if not isinstance(raw, dict):
        raise CaseError(f'{what}: an ICMP error needs inner {{"proto", "src", "dst"}}')
    unknown = set(raw) - INNER_KEYS
    if unknown:
        raise CaseError(f"{what}: unknown keys {sorted(unknown)}")
    proto = raw.get("proto")
    if proto not in ("tcp", "udp"):
        raise CaseError(f"{what}.proto: expected 'tcp' or 'udp', got {proto!r}")
    src, sport = _endpoint(raw.get("src"), f"{what}.src")
    dst, dport = _endpoint(raw.get("dst"), f"{what}.dst")
    return Inner(Proto(proto), src, sport, dst, dport)


def live_packet(d: object, index: int, sides: set[str]) -> LivePacket:
    """One entry of ``packets`` -> LivePacket; a one-line CaseError names the field."""
    what = f"packets[{index}]"
    if not isinstance(d, dict):
        raise CaseError(f"{what}: must be an object")
    side = d.get("from")
    if side not in sides:
        raise CaseError(f"{what}.from: expected one of {', '.join(sorted(sides))}, got {side!r}")
    proto_text = d.get("proto", "tcp")
    if proto_text not in ("tcp", "udp", "icmp"):
        raise CaseError(f"{what}.proto: expected 'tcp', 'udp' or 'icmp', got {proto_text!r}")
    proto = Proto(proto_text)
    race = _race(d, what, index)
    delay = _delay(d, what)
    if proto is Proto.TCP:
        v1 = {k: v for k, v in d.items() if k not in V2_PACKET_KEYS}
        v1["from"] = "ctr" if side.startswith("ctr") else "remote"
        _side, pkt, _delay_s = packet_from_case(v1, index)
        return LivePacket(
            side, proto, pkt.src, pkt.dst, pkt.sport, pkt.dport, tcp=pkt, delay=delay, race=race
        )
    keys = UDP_KEYS if proto is Proto.UDP else ICMP_KEYS
    unknown = set(d) - keys
    if unknown:
        raise CaseError(f"{what}: unknown keys for a {proto.value} packet {sorted(unknown)}")
    if proto is Proto.UDP:
        src, sport = _endpoint(d.get("src"), f"{what}.src")
        dst, dport = _endpoint(d.get("dst"), f"{what}.dst")
        room = IPV4_PACKET_LIMIT - IP_HEADER_LEN - UDP_HEADER_LEN
        return LivePacket(
            side, proto, src, dst, sport, dport, length=_int(d, "len", what, 0, room), delay=delay, race=race
        )
    src, dst = _address(d.get("src"), f"{what}.src"), _address(d.get("dst"), f"{what}.dst")
    icmp_type = _int(d, "type", what, ICMP_ECHO, 0xFF)
    code = _int(d, "code", what, 0, 0xFF)
    if icmp_type in ICMP_ERRORS:
        if "inner" not in d:
            raise CaseError(f"{what}.inner: an ICMP error (type {icmp_type}) needs the packet it quotes")
        if {"id", "seq", "len"} & set(d):
            raise CaseError(f"{what}: an ICMP error carries inner, not id, seq or len")
        inner = _inner(d["inner"], f"{what}.inner")
        return LivePacket(
            side, proto, src, dst, icmp_type=icmp_type, icmp_code=code, inner=inner, delay=delay, race=race
        )
    if "inner" in d:
        raise CaseError(f"{what}.inner: only ICMP errors (types 3, 11) quote a packet")
    room = IPV4_PACKET_LIMIT - IP_HEADER_LEN - ICMP_HEADER_LEN
    return LivePacket(
        side,
        proto,
        src,
        dst,
        length=_int(d, "len", what, 0, room),
        icmp_type=icmp_type,
        icmp_code=code,
        icmp_id=_int(d, "id", what, 0, 0xFFFF),
        icmp_seq=_int(d, "seq", what, 0, 0xFFFF),
        delay=delay,
        race=race,
    )


def parse_live_case(case: object) -> LiveCase:
    """Validate a v1 or v2 case for the live kernel, before anything runs."""
    if not isinstance(case, dict):
        raise CaseError("a case must be a JSON object")
    case = strip_comments(case)
    assert isinstance(case, dict)
    unknown = set(case) - CASE_KEYS
    if unknown:
        raise CaseError(f"case: unknown keys {sorted(unknown)}")
    topology = Topology.from_dict(case.get("topology"))
    hosts = parse_hosts(case.get("hosts"), topology)
    sysctls = case.get("sysctl") or {}
    if not isinstance(sysctls, dict):
        raise CaseError("case.sysctl must be an object of host sysctls")
    for key, value in sysctls.items():
        check_sysctl(key, value)
    ipt = case.get("iptables") or {}
    if not isinstance(ipt, dict) or set(ipt) - {"host"}:
        raise CaseError('case.iptables must be {"host": [lines]}: rules go in the host namespace only')
    lines = ipt.get("host") or []
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise CaseError("case.iptables.host must be a list of strings")
    for line in lines:
        iptables_argv(line)
    raw = case.get("packets")
    if not isinstance(raw, list) or not raw:
        raise CaseError("case.packets must be a non-empty list")
    sides = {"ctr", "remote", *hosts}
    return LiveCase(topology, hosts, sysctls, lines, [live_packet(p, i, sides) for i, p in enumerate(raw)])
