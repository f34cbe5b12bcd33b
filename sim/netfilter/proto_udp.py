"""UDP connection tracking (net/netfilter/nf_conntrack_proto_udp.c), per kernel version.

A UDP "connection" is its tuple. ``udp_error()`` refuses a datagram whose header is short,
whose length field does not fit the packet ("truncated/malformed packet") or whose checksum
is wrong ("bad checksum", checked in PRE_ROUTING only and only when the checksum is not 0 and
``nf_conntrack_checksum`` is on): conntrack counts it invalid and attaches no entry.

``nf_conntrack_udp_packet()`` only refreshes the timeout and sets ASSURED. How changed by
version (each profile read from its tree's own file):

- 3.10, el7, 4.19: ``udp_timeouts[] = {30*HZ, 180*HZ}``. Once the entry has seen a reply
  (``IPS_SEEN_REPLY``, which ``nf_conntrack_in()`` sets *after* this function ran for the
  reply itself), every packet refreshes the stream timeout and sets ASSURED; before, the
  unreplied one.
- 5.10 (d535c8a69c19 "udp: only extend timeout to stream mode after 2s"): ``{30*HZ,
  120*HZ}``; an unconfirmed entry stamps ``stream_ts = jiffies + 2*HZ``; after a reply the
  stream timeout applies only to a packet later than that, but ASSURED is set by any packet
  (except an ``IPS_NAT_CLASH`` entry).
- 5.15 and later (b7b1d02fc439 "set on IPS_ASSURED if flows enters internal stream state"):
  ASSURED too only once the flow is a stream (6.12+ reads the status once: same result).

Errors are counted differently: up to 4.19 ``udp_error`` is ``l4proto->error``, which
``nf_conntrack_in()`` runs before the lookup and counts as ``error`` and ``invalid``; later it
runs inside ``nf_conntrack_udp_packet()`` and only ``invalid`` counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.include.nf_conntrack_common import IPS_NAT_CLASH
from sim.netfilter.hooks import NfVerdict
from sim.netfilter.sysctl import UdpCt
from sim.packet import UDP_HEADER_LEN

if TYPE_CHECKING:
    from sim.include.nf_conntrack import Conn
    from sim.netfilter.profiles import KernelProfile
    from sim.netfilter.sysctl import ConntrackSysctls
    from sim.packet import Packet

UDP_STREAM_DELAY = 2.0  # "Still active after two seconds? Extend timeout." (2 * HZ)


@dataclass(frozen=True, slots=True)
class UdpHeaderCheck:
    """What ``udp_error()`` reads: the bytes after the IP header, the header's length field,
    whether its checksum field is 0 and whether a non-zero checksum is wrong."""

    available: int
    length_field: int
    no_checksum: bool = False
    bad_checksum: bool = False

    @classmethod
    def of(cls, pkt: Packet) -> UdpHeaderCheck:
        """A packet as nflab builds it: the length field always fits."""
        length = UDP_HEADER_LEN + pkt.payload_len
        return cls(length, length, bad_checksum=pkt.bad_checksum)


def udp_error(check: UdpHeaderCheck, prerouting: bool, checksum: int, profile: KernelProfile) -> str | None:
    """``udp_error()``: the kernel's log text for a datagram conntrack refuses, else None."""
    if check.available < UDP_HEADER_LEN:
        return "short packet"
    if check.length_field > check.available or check.length_field < UDP_HEADER_LEN:
        return "truncated/malformed packet"
    if check.no_checksum:  # "Packet with no checksum"
        return None
    if checksum and prerouting and check.bad_checksum:
        return "bad checksum" if profile.log_l4proto else "bad UDP checksum"
    return None


@dataclass(frozen=True, slots=True)
class UdpResult:
    """What ``nf_conntrack_udp_packet()`` returned: the verdict (negative: refused, the
    entry is dropped from the skb) and the log text, if any."""

    verdict: int
    reason: str | None = None


def nf_conntrack_udp_packet(
    ct: Conn,
    pkt: Packet,
    now: float,
    sysctl: ConntrackSysctls,
    profile: KernelProfile,
    prerouting: bool,
) -> UdpResult:
    """``nf_conntrack_udp_packet()`` (``udp_packet()`` up to 4.19, whose ``udp_error`` ran
    before the lookup as ``l4proto->error``)."""
    if profile.l4_error_in_packet:
        reason = udp_error(UdpHeaderCheck.of(pkt), prerouting, sysctl.checksum, profile)
        if reason is not None:
            return UdpResult(-NfVerdict.ACCEPT, reason)
    timeouts = sysctl.udp_timeouts
    if not profile.udp_stream_after_2s:
        if ct.seen_reply:
            ct.timeout = now + timeouts[UdpCt.REPLIED]
            ct.set_assured()
        else:
            ct.timeout = now + timeouts[UdpCt.UNREPLIED]
        return UdpResult(NfVerdict.ACCEPT)
    if not ct.confirmed:
        ct.stream_ts = now + UDP_STREAM_DELAY
    if not ct.seen_reply:
        ct.timeout = now + timeouts[UdpCt.UNREPLIED]
        return UdpResult(NfVerdict.ACCEPT)
    stream = now > ct.stream_ts  # time_after(jiffies, ct->proto.udp.stream_ts)
    ct.timeout = now + timeouts[UdpCt.REPLIED if stream else UdpCt.UNREPLIED]
    if ct.status & IPS_NAT_CLASH:
        return UdpResult(NfVerdict.ACCEPT)  # "never set ASSURED for IPS_NAT_CLASH"
    if stream or not profile.udp_assured_stream_only:
        ct.set_assured()
    return UdpResult(NfVerdict.ACCEPT)
