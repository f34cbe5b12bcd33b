"""What the real kernel did with one crafted packet, in the shape ``nflab replay --json`` prints.

Sources, all inside the host namespace (see :mod:`sim.kernel.testbed` for where they hook):

- ``ctstate``: nft rules at prerouting priority -180, between conntrack (-200,
  ``NF_IP_PRI_CONNTRACK``) and DNAT (-100, ``NF_IP_PRI_NAT_DST``), log the packet with the
  prefix ``nflab:ct:<STATE>``; ``ct state`` matches exactly what xt_conntrack's
  ``--ctstate`` matches (``nft_ct_get_eval`` / ``conntrack_mt``: no entry means INVALID).
- ``window`` and ``reason``: conntrack's own log line (``nf_l4proto_log_invalid()``, text
  ``nf_ct_proto_6: <reason>``), routed to nfnetlink_log. INVALID when the ctstate is
  INVALID; IGNORE when conntrack logged but the packet kept its entry; ACCEPT otherwise;
  null when the packet was not tracked (UNTRACKED, or dropped before conntrack).
- ``tcp_state``: the entry's ``CTA_PROTOINFO_TCP_STATE`` read over ctnetlink
  (net/netfilter/nf_conntrack_netlink.c, a GET by tuple: a hash lookup that finds either
  direction) once the packet and whatever the host emitted because of it have passed (a
  packet held by a race: after its release; its racer: before the release); null when no
  entry exists (never confirmed, e.g. dropped in FORWARD, or killed, e.g. by
  a RST answering a SYN).
- ``fate``: the packet captured at an end host (by its IP ID), or logged by the rule at
  input priority 300 (after every iptables table) -> ``local:host``; else ``dropped:host``.
- ``emitted``: every other IPv4 packet captured at an end host during the packet's window.
- ``proto``: the packet's own (contract v2). ``ct_status``: the entry's ``CTA_STATUS`` bits
  by their ``IPS_*`` names (:func:`status_names`), read with ``tcp_state``; for an ICMP error,
  the entry it is RELATED to. ``ct_stats``: the non-zero changes of ``conntrack -S``
  (IPCTNL_MSG_CT_GET_STATS_CPU, summed over CPUs; ``net->ct.stat`` is per namespace) from
  just before the packet was sent to the end of its window; for a packet held by a race, its
  two phases (arrival to the hold, release to its end) added.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass, replace
from typing import Any

from sim import wire
from sim.include.nf_conntrack_tcp import STATE_NAMES  # tcp_conntrack_names[]
from sim.kernel.craft import CtTuple
from sim.kernel.nflog import (
    NFGENMSG_LEN,
    NFNL_SUBSYS_CTNETLINK,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NetlinkError,
    nfnl_message,
    nla,
    open_netfilter_socket,
    parse_attrs,
    request,
)
from sim.packet import (
    ICMP_ERROR_TYPES,
    ICMP_HEADER_LEN,
    IP_HEADER_LEN,
    IPPROTO_TCP,
    IpProto,
    Packet,
    format_flags,
)

# enum cntl_msg_types (include/uapi/linux/netfilter/nfnetlink_conntrack.h)
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
IPCTNL_MSG_CT_GET_STATS_CPU = 4
# enum ctattr_type / ctattr_tuple / ctattr_ip / ctattr_l4proto / ctattr_protoinfo(_tcp)
CTA_TUPLE_ORIG = 1
CTA_TUPLE_REPLY = 2
CTA_STATUS = 3
CTA_PROTOINFO = 4
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC = 1
CTA_IP_V4_DST = 2
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3
CTA_PROTO_ICMP_ID = 4
CTA_PROTO_ICMP_TYPE = 5
CTA_PROTO_ICMP_CODE = 6
CTA_PROTOINFO_TCP = 1
CTA_PROTOINFO_TCP_STATE = 1


# enum ctattr_stats_cpu -> the names `conntrack -S` prints (ctnetlink_ct_stat_cpu_fill_info();
# SEARCHED, NEW, IGNORE, DELETE and DELETE_LIST are "no longer used" and never sent).
CTA_STATS = {
    2: "found",
    4: "invalid",
    8: "insert",
    9: "insert_failed",
    10: "drop",
    11: "early_drop",
    12: "error",
    13: "search_restart",
    14: "clash_resolve",
    15: "chaintoolong",
}
# enum ip_conntrack_status (include/uapi/linux/netfilter/nf_conntrack_common.h), by bit. Bit 12
# is IPS_UNTRACKED on the per-CPU template, IPS_NAT_CLASH on an entry in the table.
IPS_BITS = (
    "EXPECTED",
    "SEEN_REPLY",
    "ASSURED",
    "CONFIRMED",
    "SRC_NAT",
    "DST_NAT",
    "SEQ_ADJUST",
    "SRC_NAT_DONE",
    "DST_NAT_DONE",
    "DYING",
    "FIXED_TIMEOUT",
    "TEMPLATE",
    "NAT_CLASH",
    "HELPER",
    "OFFLOAD",
    "HW_OFFLOAD",
)


def status_names(status: int) -> list[str]:
    """``ct->status`` as the contract's ``ct_status``: the names of the set bits, lowest first."""
    return [name for bit, name in enumerate(IPS_BITS) if status >> bit & 1]


CT_LOG_PREFIX = "nf_ct_proto_6:"  # nf_l4proto_log_invalid(): "nf_ct_proto_%d: %pV "
OBS_PREFIX = "nflab:"
CTSTATES = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED")

Tuple4 = tuple[str, str, int, int]  # src, dst, sport, dport


@dataclass(frozen=True, slots=True)
class CtEntry:
    """One conntrack entry as ctnetlink reports it (``tcp_state`` only for TCP)."""

    orig: Tuple4
    reply: Tuple4
    tcp_state: str | None
    status: int


def _parse_tuple(raw: bytes) -> Tuple4:
    attrs = parse_attrs(raw)
    ip = parse_attrs(attrs.get(CTA_TUPLE_IP, b""))
    proto = parse_attrs(attrs.get(CTA_TUPLE_PROTO, b""))
    return (
        wire.bytes_to_ip(ip.get(CTA_IP_V4_SRC, bytes(4))),
        wire.bytes_to_ip(ip.get(CTA_IP_V4_DST, bytes(4))),
        struct.unpack("!H", proto.get(CTA_PROTO_SRC_PORT, bytes(2)))[0],
        struct.unpack("!H", proto.get(CTA_PROTO_DST_PORT, bytes(2)))[0],
    )


def parse_ct_entry(payload: bytes, proto_num: int | None = IPPROTO_TCP) -> CtEntry | None:
    """One IPCTNL_MSG_CT_NEW payload -> CtEntry, or None when it is not of ``proto_num``
    (None: any protocol)."""
    attrs = parse_attrs(payload[NFGENMSG_LEN:])
    orig_attrs = parse_attrs(attrs.get(CTA_TUPLE_ORIG, b""))
    proto = parse_attrs(orig_attrs.get(CTA_TUPLE_PROTO, b""))
    if proto_num is not None and proto.get(CTA_PROTO_NUM) != bytes((proto_num,)):
        return None
    state: str | None = None
    tcp = parse_attrs(parse_attrs(attrs.get(CTA_PROTOINFO, b"")).get(CTA_PROTOINFO_TCP, b""))
    if CTA_PROTOINFO_TCP_STATE in tcp:
        idx = tcp[CTA_PROTOINFO_TCP_STATE][0]
        state = STATE_NAMES[idx] if idx < len(STATE_NAMES) else f"STATE_{idx}"
    status = struct.unpack("!I", attrs[CTA_STATUS])[0] if CTA_STATUS in attrs else 0
    return CtEntry(
        _parse_tuple(attrs.get(CTA_TUPLE_ORIG, b"")),
        _parse_tuple(attrs.get(CTA_TUPLE_REPLY, b"")),
        state,
        status,
    )


class Ctnetlink:
    """ctnetlink in the namespace the object was created in: dump and flush the table."""

    def __init__(self) -> None:
        self.sock = open_netfilter_socket()
        self._seq = 0

    def _request(self, msg: int, flags: int, what: str) -> list[tuple[int, bytes]]:
        self._seq += 1
        data = nfnl_message(NFNL_SUBSYS_CTNETLINK, msg, flags, self._seq, socket.AF_INET, 0, b"")
        return request(self.sock, data, self._seq, what)

    def dump(self) -> list[CtEntry]:
        """``conntrack -L`` for IPv4 TCP entries."""
        answers = self._request(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, "ctnetlink dump")
        entries = [parse_ct_entry(payload) for _type, payload in answers]
        return [e for e in entries if e is not None]

    def get(self, tup: Tuple4 | CtTuple) -> CtEntry | None:
        """The entry with ``tup`` as its original or reply tuple (a hash lookup, unlike a dump).

        A 4-tuple is TCP; a 5-tuple starts with the protocol number and, for ICMP, ends with
        the echo id and type (``icmp_nlattr_to_tuple()`` takes id, type and code)."""
        proto_num, src, dst, sport, dport = tup if len(tup) == 5 else (IPPROTO_TCP, *tup)
        ip = nla(CTA_IP_V4_SRC, wire.ip_to_bytes(src)) + nla(CTA_IP_V4_DST, wire.ip_to_bytes(dst))
        proto = nla(CTA_PROTO_NUM, bytes((proto_num,)))
        if proto_num == wire.IPPROTO_ICMP:
            proto += nla(CTA_PROTO_ICMP_ID, struct.pack("!H", sport))
            proto += nla(CTA_PROTO_ICMP_TYPE, bytes((dport,))) + nla(CTA_PROTO_ICMP_CODE, b"\x00")
        else:
            proto += nla(CTA_PROTO_SRC_PORT, struct.pack("!H", sport))
            proto += nla(CTA_PROTO_DST_PORT, struct.pack("!H", dport))
        body = nla(
            CTA_TUPLE_ORIG | NLA_F_NESTED,
            nla(CTA_TUPLE_IP | NLA_F_NESTED, ip) + nla(CTA_TUPLE_PROTO | NLA_F_NESTED, proto),
        )
        self._seq += 1
        data = nfnl_message(
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_GET,
            NLM_F_REQUEST | NLM_F_ACK,
            self._seq,
            socket.AF_INET,
            0,
            body,
        )
        try:
            answers = request(self.sock, data, self._seq, "ctnetlink get")
        except NetlinkError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        for _type, payload in answers:
            return parse_ct_entry(payload, None)
        return None

    def stats(self) -> dict[str, int]:
        """``conntrack -S`` summed over CPUs: IPCTNL_MSG_CT_GET_STATS_CPU dumps
        ``net->ct.stat`` of the socket's own namespace (``ctnetlink_ct_stat_cpu_dump()``)."""
        answers = self._request(IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_REQUEST | NLM_F_DUMP, "ctnetlink stats")
        total = dict.fromkeys(CTA_STATS.values(), 0)
        for _type, payload in answers:
            for attr, raw in parse_attrs(payload[NFGENMSG_LEN:]).items():
                if attr in CTA_STATS:
                    total[CTA_STATS[attr]] += struct.unpack("!I", raw)[0]
        return total

    def flush(self) -> None:
        """``conntrack -F``: IPCTNL_MSG_CT_DELETE without a tuple flushes the table."""
        self._request(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, "ctnetlink flush")

    def close(self) -> None:
        self.sock.close()


def find_entry(entries: list[CtEntry], pkt: Packet) -> CtEntry | None:
    """The entry whose original or reply tuple is the packet's own."""
    key = (pkt.src, pkt.dst, pkt.sport, pkt.dport)
    for e in entries:
        if key in (e.orig, e.reply):
            return e
    return None


def stats_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The non-zero changes of the ``conntrack -S`` counters (the contract's ``ct_stats``)."""
    out = {name: (after[name] - before[name]) & 0xFFFFFFFF for name in after}
    return {name: n if n < 1 << 31 else n - (1 << 32) for name, n in out.items() if n}


def add_stats(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Two ``ct_stats`` deltas together (a held packet's two phases)."""
    out = dict(a)
    for name, n in b.items():
        out[name] = out.get(name, 0) + n
    return {name: n for name, n in out.items() if n}


# ---------------------------------------------------------------- one packet's observation


@dataclass(frozen=True, slots=True)
class Capture:
    """An IPv4 datagram captured at an end host's eth0."""

    at: str  # "ctr" | "remote" | an extra host's name
    datagram: bytes


def same_packet(a: Packet, b: Packet) -> bool:
    """True when ``b`` is ``a`` after forwarding and NAT (IP ID and TCP fields kept)."""
    return (
        a.ip_id == b.ip_id
        and a.seq == b.seq
        and a.ack == b.ack
        and a.flags == b.flags
        and a.payload_len == b.payload_len
    )


def is_sent(sent: Packet, ip_id: int, datagram: bytes) -> bool:
    """True when ``datagram`` is the packet sent with ``ip_id`` (after forwarding and NAT):
    for TCP :func:`same_packet`, otherwise the same IP ID, protocol and total length."""
    try:
        hdr, _body = wire.parse_ip(datagram)
    except wire.WireError:
        return False
    if hdr.proto != sent.proto or hdr.ip_id != ip_id:
        return False
    if sent.proto is IpProto.TCP:
        try:
            return same_packet(replace(sent, ip_id=ip_id), wire.parse(datagram))
        except wire.WireError:
            return False
    return hdr.total_len == len(wire.emit(sent))


def endpoint(addr: str, port: int) -> str:
    return f"{addr}:{port}"


def _ports(body: bytes) -> tuple[int, int]:
    sport, dport = struct.unpack_from("!HH", body) if len(body) >= 4 else (0, 0)
    return sport, dport


def delivered_as(datagram: bytes) -> dict[str, Any]:
    """How a delivered packet looks on arrival: ``src``/``dst`` as ``ip:port`` (TCP, UDP) or
    addresses (ICMP, with the echo ``id``, or for an error the quoted packet's ``inner``
    endpoints, which NAT rewrites too: ``nf_nat_icmp_reply_translation()``)."""
    hdr, body = wire.parse_ip(datagram)
    if hdr.proto != wire.IPPROTO_ICMP:
        sport, dport = _ports(body)
        return {"src": endpoint(hdr.src, sport), "dst": endpoint(hdr.dst, dport)}
    out: dict[str, Any] = {"src": hdr.src, "dst": hdr.dst}
    if len(body) >= ICMP_HEADER_LEN and body[0] in ICMP_ERROR_TYPES:
        quote = body[ICMP_HEADER_LEN:]
        if len(quote) >= IP_HEADER_LEN:  # the quoted header's addresses, then its ports
            ihl = (quote[0] & 0xF) * 4
            src, dst = wire.bytes_to_ip(quote[12:16]), wire.bytes_to_ip(quote[16:20])
            sport, dport = _ports(quote[ihl:])
            out["inner"] = {"src": endpoint(src, sport), "dst": endpoint(dst, dport)}
    elif len(body) >= ICMP_HEADER_LEN:
        out["id"] = struct.unpack_from("!H", body, 4)[0]
    return out


def describe_emitted(cap: Capture) -> dict[str, Any] | None:
    """A host-emitted datagram as the ``emitted`` list shows it (None for non-IP noise)."""
    try:
        hdr, body = wire.parse_ip(cap.datagram)
    except wire.WireError:
        return None
    if hdr.proto == IPPROTO_TCP:
        p = wire.parse(cap.datagram)
        return {
            "to": cap.at,
            "flags": format_flags(p.flags),
            "seq": p.seq,
            "ack": p.ack,
        }
    if hdr.proto == wire.IPPROTO_ICMP and len(body) >= 2:
        return {"to": cap.at, "icmp": [body[0], body[1]]}
    return {"to": cap.at, "proto": hdr.proto}


@dataclass(frozen=True, slots=True)
class Seen:
    """The raw observations of one packet, gathered by the testbed."""

    ctstate: str | None
    reasons: list[str]
    reached_input: bool
    captures: list[Capture]
    entry: CtEntry | None
    stats: dict[str, int]


def build_observation(sent: Packet, ip_id: int, seen: Seen) -> dict[str, Any]:
    """Combine the raw observations of one packet into the replay JSON object."""
    window: str | None
    if seen.ctstate is None or seen.ctstate == "UNTRACKED" or sent.proto is not IpProto.TCP:
        window = None
    elif seen.ctstate == "INVALID":
        window = "INVALID"
    elif seen.reasons:
        window = "IGNORE"
    else:
        window = "ACCEPT"
    fate = "local:host" if seen.reached_input else "dropped:host"
    delivered: dict[str, Any] | None = None
    emitted: list[dict[str, Any]] = []
    for cap in seen.captures:
        if delivered is None and is_sent(sent, ip_id, cap.datagram):
            fate = f"delivered:{cap.at}"
            delivered = delivered_as(cap.datagram)
            continue
        desc = describe_emitted(cap)
        if desc is not None:
            emitted.append(desc)
    entry = seen.entry
    return {
        "proto": sent.proto.name.lower(),
        "ctstate": seen.ctstate,
        "window": window,
        "reason": "; ".join(seen.reasons) if seen.reasons else None,
        "tcp_state": entry.tcp_state if entry is not None else None,
        "ct_status": status_names(entry.status) if entry is not None else None,
        "ct_stats": seen.stats,
        "fate": fate,
        "delivered_as": delivered,
        "emitted": emitted,
    }
