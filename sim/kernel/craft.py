"""The tuple a live packet's conntrack entry is looked up by over ctnetlink
(``nf_ct_get_tuple()``, and for an ICMP error ``icmp_error_message()``'s inverted quoted
tuple, net/netfilter/nf_conntrack_proto_icmp.c).

The packets come from the case loader (:func:`sim.scenario.case.parse_case`) and go on the
wire as :func:`sim.wire.emit` writes them (TCP, UDP and ICMP, checksums valid). Its
:class:`~sim.packet.Packet` keeps an ICMP header where conntrack's tuple does (``sport`` the
identifier, ``dport`` ``type << 8 | code``) and an error's quoted packet as ``inner``.
"""

from __future__ import annotations

from sim.packet import IpProto, Packet

CtTuple = tuple[int, str, str, int, int]  # proto, src, dst, then ports or ICMP (id, type)


def ct_tuple(pkt: Packet) -> CtTuple:
    """The tuple of the entry a packet belongs to, as ctnetlink looks it up: protocol,
    addresses, then ports, or for an ICMP query its (id, type); for an ICMP error, the inverse
    of the quoted packet (``nf_ct_invert_tuple()`` in ``icmp_error_message()``)."""
    if pkt.inner is not None:
        i = pkt.inner
        return (int(i.proto), i.dst, i.src, i.dport, i.sport)
    if pkt.proto is IpProto.ICMP:
        return (int(pkt.proto), pkt.src, pkt.dst, pkt.sport, pkt.icmp_type)
    return (int(pkt.proto), pkt.src, pkt.dst, pkt.sport, pkt.dport)
