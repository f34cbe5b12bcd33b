"""The REJECT target (net/ipv4/netfilter/ipt_REJECT.c) and what it sends
(net/ipv4/netfilter/nf_reject_ipv4.c): the RST, or the ICMP destination unreachable."""

from __future__ import annotations

from dataclasses import dataclass

from sim.include.netfilter import RejectRequest, RejectWith
from sim.netfilter.x_tables import RuleAt, Verdict, XtContext, XtResult
from sim.packet import Packet, rst_reply
from sim.skb import Skb


@dataclass(frozen=True, slots=True)
class RejectTarget:
    """``struct ipt_reject_info``."""

    with_: RejectWith = RejectWith.ICMP_PORT_UNREACHABLE

    def target(self, skb: Skb, ctx: XtContext, at: RuleAt) -> XtResult:
        """``reject_tg()``: NF_DROP, and the answer for the caller to send."""
        pkt = skb.pkt
        reply = nf_reject_tcp_reset(pkt) if self.with_ is RejectWith.TCP_RESET else None
        return XtResult(Verdict.DROP, at.chain, at.rulenum, reject=RejectRequest(self.with_, pkt, reply))


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
