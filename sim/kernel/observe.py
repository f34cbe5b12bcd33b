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
  direction) once the packet and whatever the host emitted because of it have passed;
  null when no entry exists (never confirmed, e.g. dropped in FORWARD, or killed, e.g. by
  a RST answering a SYN).
- ``fate``: the packet captured at an end host (by its IP ID), or logged by the rule at
  input priority 300 (after every iptables table) -> ``local:host``; else ``dropped:host``.
- ``emitted``: every other IPv4 packet captured at an end host during the packet's window.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass
from typing import Any

from sim import wire
from sim.include.nf_conntrack_tcp import STATE_NAMES  # tcp_conntrack_names[]
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
from sim.packet import IPPROTO_TCP, Packet, format_flags

# enum cntl_msg_types (include/uapi/linux/netfilter/nfnetlink_conntrack.h)
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
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
CTA_PROTOINFO_TCP = 1
CTA_PROTOINFO_TCP_STATE = 1


CT_LOG_PREFIX = "nf_ct_proto_6:"  # nf_l4proto_log_invalid(): "nf_ct_proto_%d: %pV "
OBS_PREFIX = "nflab:"
CTSTATES = ("INVALID", "NEW", "ESTABLISHED", "RELATED", "UNTRACKED")

Tuple4 = tuple[str, str, int, int]  # src, dst, sport, dport


@dataclass(frozen=True, slots=True)
class CtEntry:
    """One TCP conntrack entry as ctnetlink reports it."""

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


def parse_ct_entry(payload: bytes) -> CtEntry | None:
    """One IPCTNL_MSG_CT_NEW payload -> CtEntry, or None when it is not TCP."""
    attrs = parse_attrs(payload[NFGENMSG_LEN:])
    orig_attrs = parse_attrs(attrs.get(CTA_TUPLE_ORIG, b""))
    proto = parse_attrs(orig_attrs.get(CTA_TUPLE_PROTO, b""))
    if proto.get(CTA_PROTO_NUM) != bytes((IPPROTO_TCP,)):
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

    def get(self, tup: Tuple4) -> CtEntry | None:
        """The entry with ``tup`` as its original or reply tuple (a hash lookup, unlike a dump)."""
        src, dst, sport, dport = tup
        ip = nla(CTA_IP_V4_SRC, wire.ip_to_bytes(src)) + nla(CTA_IP_V4_DST, wire.ip_to_bytes(dst))
        proto = nla(CTA_PROTO_NUM, bytes((IPPROTO_TCP,)))
        proto += nla(CTA_PROTO_SRC_PORT, struct.pack("!H", sport)) + nla(
            CTA_PROTO_DST_PORT, struct.pack("!H", dport)
        )
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
            return parse_ct_entry(payload)
        return None

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


# ---------------------------------------------------------------- one packet's observation


@dataclass(frozen=True, slots=True)
class Capture:
    """An IPv4 datagram captured at an end host's eth0."""

    at: str  # "ctr" | "remote"
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


def endpoint(addr: str, port: int) -> str:
    return f"{addr}:{port}"


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


def build_observation(
    sent: Packet,
    ctstate: str | None,
    ct_reasons: list[str],
    reached_input: bool,
    captures: list[Capture],
    entry: CtEntry | None,
) -> dict[str, Any]:
    """Combine the raw observations of one packet into the replay JSON object."""
    window: str | None
    if ctstate is None or ctstate == "UNTRACKED":
        window = None
    elif ctstate == "INVALID":
        window = "INVALID"
    elif ct_reasons:
        window = "IGNORE"
    else:
        window = "ACCEPT"
    fate = "local:host" if reached_input else "dropped:host"
    delivered_as: dict[str, str] | None = None
    emitted: list[dict[str, Any]] = []
    for cap in captures:
        try:
            got = wire.parse(cap.datagram)
        except wire.WireError:
            got = None
        if got is not None and delivered_as is None and same_packet(sent, got):
            fate = f"delivered:{cap.at}"
            delivered_as = {"src": endpoint(got.src, got.sport), "dst": endpoint(got.dst, got.dport)}
            continue
        desc = describe_emitted(cap)
        if desc is not None:
            emitted.append(desc)
    return {
        "ctstate": ctstate,
        "window": window,
        "reason": "; ".join(ct_reasons) if ct_reasons else None,
        "tcp_state": entry.tcp_state if entry is not None else None,
        "fate": fate,
        "delivered_as": delivered_as,
        "emitted": emitted,
    }
