"""The REJECT target (net/ipv4/netfilter/ipt_REJECT.c) and what it sends
(net/ipv4/netfilter/nf_reject_ipv4.c): the RST, or the ICMP destination unreachable."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from sim.packet import Packet, rst_reply


class RejectWith(IntEnum):
    """``enum ipt_reject_with`` (include/uapi/linux/netfilter_ipv4/ipt_REJECT.h)."""

    ICMP_NET_UNREACHABLE = 0
    ICMP_HOST_UNREACHABLE = 1
    ICMP_PROT_UNREACHABLE = 2
    ICMP_PORT_UNREACHABLE = 3
    ICMP_NET_PROHIBITED = 5
    ICMP_HOST_PROHIBITED = 6
    TCP_RESET = 7
    ICMP_ADMIN_PROHIBITED = 8


@dataclass(frozen=True, slots=True)
class RejectRequest:
    """What ``reject_tg()`` (ipt_REJECT.c) sends. ``reply`` is the RST for tcp-reset (None when
    ``nf_send_reset()`` sends nothing); ICMP errors are left to the caller, which gets ``offending``."""

    with_: RejectWith
    offending: Packet
    reply: Packet | None


@dataclass(frozen=True, slots=True)
class RejectTarget:
    with_: RejectWith = RejectWith.ICMP_PORT_UNREACHABLE


# reject_tg(): the ICMP_DEST_UNREACH code each --reject-with sends
ICMP_CODE = {
    RejectWith.ICMP_NET_UNREACHABLE: 0,  # ICMP_NET_UNREACH
    RejectWith.ICMP_HOST_UNREACHABLE: 1,  # ICMP_HOST_UNREACH
    RejectWith.ICMP_PROT_UNREACHABLE: 2,  # ICMP_PROT_UNREACH
    RejectWith.ICMP_PORT_UNREACHABLE: 3,  # ICMP_PORT_UNREACH
    RejectWith.ICMP_NET_PROHIBITED: 9,  # ICMP_NET_ANO
    RejectWith.ICMP_HOST_PROHIBITED: 10,  # ICMP_HOST_ANO
    RejectWith.ICMP_ADMIN_PROHIBITED: 13,  # ICMP_PKT_FILTERED
}


def nf_send_unreach_ok(oth: Packet) -> bool:
    """``nf_send_unreach()`` goes on to ``icmp_send()`` unless the packet's checksum is bad
    (``nf_reject_verify_csum()``: TCP and UDP are checked)."""
    return not oth.bad_checksum


def nf_reject_tcp_reset(oth: Packet) -> Packet | None:
    """The RST ``nf_send_reset()`` builds, or None.

    ``nf_reject_ip_tcphdr_get()``: no reply to a RST or to a segment with a bad checksum.
    ``nf_reject_ip_tcphdr_put()`` and ``nf_reject_iphdr_put()`` build the RFC 793 reset
    (:func:`sim.packet.rst_reply`: IP ID 0, the default TTL 64 from the route's hop limit).
    """
    if oth.rst or oth.bad_checksum:
        return None
    return rst_reply(oth)
