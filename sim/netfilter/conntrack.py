"""The connection tracking core (net/netfilter/nf_conntrack_core.c, nf_conntrack_standalone.c).

One :class:`ConntrackTable` per network namespace. ``nf_conntrack_in`` looks a packet's
tuple up in both directions, creates an unconfirmed entry for a new connection, hands the
packet to its protocol's tracker (TCP, UDP, ICMP; an ICMP error first goes to
``nf_conntrack_handle_icmp``, which attaches the entry it relates to) and attaches the entry
to the skb -- or, when the tracker says INVALID, detaches it, so that ``--ctstate INVALID``
matches and NAT leaves the packet alone.
``nf_conntrack_confirm`` inserts the entry when the packet leaves the stack (POSTROUTING or
INPUT). Time is passed in; entries expire lazily on lookup, as the kernel's
``nf_ct_is_expired`` check does before its gc worker gets to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sim.netfilter.hooks import NfVerdict
from sim.netfilter.nf_conntrack_common import IpConntrackStatus
from sim.netfilter.profiles import DEFAULT_PROFILE, KernelProfile, resolve_kernel
from sim.netfilter.proto_icmp import icmp_error, icmp_invert_type, nf_conntrack_icmp_packet
from sim.netfilter.proto_tcp import (
    STATE_NAMES,
    TCP_TIMEOUTS,
    TcpAction,
    TcpCt,
    TcpResult,
    nf_conntrack_tcp_packet,
)
from sim.netfilter.proto_udp import (
    UdpCt,
    UdpHeaderCheck,
    nf_conntrack_udp_packet,
    udp_default_timeouts,
    udp_error,
)
from sim.netfilter.tcp_states import ORIGINAL, REPLY, TcpState
from sim.packet import IpProto, Packet
from sim.skb import CtInfo, Skb
from sim.trace import CtEntry

# enum ip_conntrack_status (include/uapi/linux/netfilter/nf_conntrack_common.h), as plain ints
IPS_EXPECTED = int(IpConntrackStatus.EXPECTED)
IPS_SEEN_REPLY = int(IpConntrackStatus.SEEN_REPLY)
IPS_ASSURED = int(IpConntrackStatus.ASSURED)
IPS_CONFIRMED = int(IpConntrackStatus.CONFIRMED)
IPS_SRC_NAT = int(IpConntrackStatus.SRC_NAT)
IPS_DST_NAT = int(IpConntrackStatus.DST_NAT)
IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT
IPS_SRC_NAT_DONE = int(IpConntrackStatus.SRC_NAT_DONE)
IPS_DST_NAT_DONE = int(IpConntrackStatus.DST_NAT_DONE)
IPS_DYING = int(IpConntrackStatus.DYING)
IPS_UNTRACKED = int(IpConntrackStatus.UNTRACKED)

# nf_conntrack_max: 262144 is the hash size (and so the limit) the kernel picks on a machine
# with more than 4 GiB of memory (nf_conntrack_init_start()).
NF_CONNTRACK_MAX_DEFAULT = 262144

# (src, sport, dst, dport, protonum): ``struct nf_conntrack_tuple``. For ICMP the "ports" are
# the identifier (src.u.icmp.id) and the type and code (dst.u.all = type << 8 | code).
CtTuple = tuple[str, int, str, int, int]
IPPROTO_ICMP = int(IpProto.ICMP)


def nf_ct_get_tuple(pkt: Packet) -> CtTuple:
    """``nf_ct_get_tuple()``: a packet's tuple (``icmp_pkt_to_tuple()`` for ICMP)."""
    return (pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.proto)


def l4proto_log_prefix(profile: KernelProfile, proto: int) -> str:
    """The prefix of conntrack's invalid-packet log line: ``nf_l4proto_log_invalid()``'s
    "nf_ct_proto_%d: " from 4.19, 3.10's per-tracker "nf_ct_tcp: ", "nf_ct_udp: ",
    "nf_ct_icmp: "."""
    if profile.log_l4proto:
        return f"nf_ct_proto_{proto}: "
    return f"nf_ct_{IpProto(proto).name.lower()}: "


def invert_tuple(t: CtTuple) -> CtTuple:
    """``nf_ct_invert_tuple()``; an ICMP query's inverse has the answering type
    (``nf_conntrack_invert_icmp_tuple()``: "tuple->src.u.icmp.id = orig->src.u.icmp.id"). A
    type without an answer keeps its type (the kernel refuses to invert it; such an entry is
    never confirmed: ``nf_conntrack_icmp_packet()`` refuses it first)."""
    if t[4] == IPPROTO_ICMP:
        answer = icmp_invert_type(t[3])
        return (t[2], t[1], t[0], t[3] if answer is None else answer, IPPROTO_ICMP)
    return (t[2], t[3], t[0], t[1], t[4])


class Conn:
    """``struct nf_conn``: one tracked connection."""

    __slots__ = ("id", "mark", "status", "stream_ts", "tcp", "timeout", "tuples")

    def __init__(self, orig: CtTuple, ident: int) -> None:
        self.tuples: tuple[CtTuple, CtTuple] = (orig, invert_tuple(orig))  # tuplehash[ORIGINAL/REPLY]
        self.status = 0
        self.timeout = 0.0  # absolute expiry, seconds of virtual time
        self.mark = 0
        self.id = ident
        self.tcp = TcpCt()
        self.stream_ts = 0.0  # ct->proto.udp.stream_ts (5.10+)

    @property
    def proto(self) -> int:
        """``tuplehash[ORIGINAL].tuple.dst.protonum``."""
        return self.tuples[0][4]

    # The status bits, spelled as the kernel's test_bit() helpers.
    @property
    def confirmed(self) -> bool:
        return bool(self.status & IPS_CONFIRMED)

    @property
    def seen_reply(self) -> bool:
        return bool(self.status & IPS_SEEN_REPLY)

    @property
    def assured(self) -> bool:
        return bool(self.status & IPS_ASSURED)

    @property
    def untracked(self) -> bool:
        return bool(self.status & IPS_UNTRACKED)

    @property
    def dying(self) -> bool:
        return bool(self.status & IPS_DYING)

    @dying.setter
    def dying(self, value: bool) -> None:
        self.status = self.status | IPS_DYING if value else self.status & ~IPS_DYING

    def set_assured(self) -> None:
        self.status |= IPS_ASSURED

    def state_name(self) -> str:
        """The TCP state's name; "" for the protocols without states."""
        return STATE_NAMES[self.tcp.state] if self.proto == IpProto.TCP else ""

    def snapshot(self) -> CtEntry:
        """The entry as it stands now, frozen (what ``conntrack -L`` would list now)."""
        original, reply = self.tuples
        return CtEntry(
            original=original[:4],
            reply=reply[:4],
            state=self.state_name(),
            expires=self.timeout,
            seen_reply=self.seen_reply,
            assured=self.assured,
            mark=self.mark,
            proto=original[4],
            status=self.status,
        )


@dataclass(slots=True)
class ConntrackSysctls:
    """``net.netfilter.nf_conntrack_*`` of one namespace, with the kernel's defaults."""

    tcp_be_liberal: int = 0
    tcp_loose: int = 1
    tcp_max_retrans: int = 3
    tcp_ignore_invalid_rst: int = 0
    log_invalid: int = 0
    checksum: int = 1
    max: int = NF_CONNTRACK_MAX_DEFAULT
    timeouts: dict[TcpState, float] = field(default_factory=lambda: dict(TCP_TIMEOUTS))
    # nf_conntrack_udp_timeout / _stream (udp_timeouts[], per profile) and _icmp_timeout
    udp_timeouts: dict[UdpCt, int] = field(default_factory=lambda: {UdpCt.UNREPLIED: 30, UdpCt.REPLIED: 120})
    icmp_timeout: int = 30  # nf_ct_icmp_timeout = 30*HZ

    _NAMES = (
        "tcp_be_liberal",
        "tcp_loose",
        "tcp_max_retrans",
        "tcp_ignore_invalid_rst",
        "log_invalid",
        "checksum",
        "max",
        "icmp_timeout",
    )

    @classmethod
    def for_profile(cls, profile: KernelProfile) -> ConntrackSysctls:
        """The defaults of ``profile``'s kernel."""
        return cls(udp_timeouts=udp_default_timeouts(profile))

    def set(self, name: str, value: int, profile: KernelProfile) -> None:
        """Set ``net.netfilter.nf_conntrack_<name>``; ValueError names what is wrong."""
        short = name.removeprefix("net.netfilter.").removeprefix("nf_conntrack_")
        udp = {t.value.removeprefix("nf_conntrack_"): t for t in UdpCt}
        if short in udp:
            if value < 0:
                raise ValueError(f"sysctl {name} must not be negative, got {value}")
            self.udp_timeouts[udp[short]] = value
            return
        if short.startswith("tcp_timeout_"):
            state = short.removeprefix("tcp_timeout_").upper()
            slots = {"MAX_RETRANS": TcpState.RETRANS, "UNACKNOWLEDGED": TcpState.UNACK}
            key = slots.get(state) or TcpState.__members__.get(state)
            if key is None or key not in self.timeouts:
                raise ValueError(f"unknown sysctl {name}")
            self.timeouts[key] = float(value)
            return
        if short not in self._NAMES:
            raise ValueError(f"unknown sysctl {name}")
        if short == "tcp_ignore_invalid_rst" and not profile.has_ignore_invalid_rst:
            raise ValueError(f"sysctl {name} does not exist in kernel {profile.name} (added in 5.14)")
        if value < 0:
            raise ValueError(f"sysctl {name} must not be negative, got {value}")
        setattr(self, short, value)


@dataclass(slots=True)
class ConntrackResult:
    """What ``nf_conntrack_in`` did with one packet.

    ``verdict`` is the hook verdict (ACCEPT or DROP). ``ct``/``ctinfo`` are what was attached
    to the skb (None: INVALID). ``tcp`` is the TCP tracker's result, None when it did not run
    (table full). ``reason`` is the kernel's log text for the packet, if any.
    """

    verdict: NfVerdict
    ct: Conn | None
    ctinfo: CtInfo | None
    tcp: TcpResult | None
    reason: str | None = None
    created: bool = False

    @property
    def window(self) -> TcpAction | None:
        """The tracker's classification: ACCEPT, IGNORE, INVALID; None if it did not run."""
        if self.tcp is None:
            return None
        if self.tcp.action is None:
            return TcpAction.INVALID
        return self.tcp.action


@dataclass(slots=True)
class ConntrackStats:
    """The per-cpu counters of ``/proc/net/stat/nf_conntrack`` that nflab keeps."""

    found: int = 0
    invalid: int = 0
    insert: int = 0
    insert_failed: int = 0
    drop: int = 0
    early_drop: int = 0
    error: int = 0


class ConntrackTable:
    """One namespace's conntrack: the hash of confirmed entries and its sysctls."""

    __slots__ = ("_entries", "_next_id", "log", "profile", "stats", "sysctl")

    def __init__(
        self, profile: KernelProfile | str = DEFAULT_PROFILE, sysctl: ConntrackSysctls | None = None
    ):
        self.profile = resolve_kernel(profile, note=False) if isinstance(profile, str) else profile
        self.sysctl = sysctl or ConntrackSysctls.for_profile(self.profile)
        # Both directions' tuples point at the entry; the direction a tuple matches is found
        # by comparing it with the entry's original tuple (no per-key pair to store).
        self._entries: dict[CtTuple, Conn] = {}
        self._next_id = 1
        self.stats = ConntrackStats()
        self.log: list[str] = []  # kernel warnings such as "table full, dropping packet"

    def __len__(self) -> int:
        return len(self._entries) // 2

    def __iter__(self) -> Iterator[Conn]:
        """Confirmed entries, oldest first (expired ones included until looked up)."""
        for key, ct in self._entries.items():
            if ct.tuples[ORIGINAL] == key:
                yield ct

    def entries(self, now: float) -> list[Conn]:
        """The live entries at ``now``, as ``conntrack -L`` would list them."""
        return [ct for ct in self if ct.timeout > now]

    def find(self, tup: CtTuple, now: float) -> tuple[Conn, int] | None:
        """``__nf_conntrack_find_get()``: the entry and the direction ``tup`` matches.

        An expired entry is removed on the way (``nf_ct_gc_expired``) and not returned.
        """
        ct = self._entries.get(tup)
        if ct is None:
            return None
        if ct.timeout <= now:
            self.delete(ct)
            return None
        return ct, ORIGINAL if ct.tuples[ORIGINAL] == tup else REPLY

    def delete(self, ct: Conn) -> None:
        """``nf_ct_delete()``: unlink both directions."""
        for key in ct.tuples:
            if self._entries.get(key) is ct:
                del self._entries[key]
        ct.dying = True

    def flush(self) -> None:
        """``conntrack -F``."""
        for ct in list(self):
            self.delete(ct)

    def _early_drop(self, now: float) -> bool:
        """``early_drop()``: evict one entry that is not ASSURED to make room.

        The kernel scans only NF_CT_EVICTION_RANGE (8) hash buckets next to the new tuple's
        bucket; nflab has no hash layout and scans oldest-first instead.
        """
        for ct in self:
            if ct.timeout <= now or not ct.assured:
                self.delete(ct)
                self.stats.early_drop += 1
                return True
        return False

    def _init_conntrack(self, tup: CtTuple, now: float) -> Conn | None:
        """``init_conntrack()`` / ``__nf_conntrack_alloc()``: a new unconfirmed entry, or None
        when the table is full and nothing can be evicted."""
        limit = self.sysctl.max
        if limit and len(self._entries) // 2 + 1 > limit and not self._early_drop(now):
            self.log.append("nf_conntrack: table full, dropping packet")
            return None
        ct = Conn(tup, self._next_id)
        self._next_id += 1
        return ct

    def nf_conntrack_in(
        self, skb: Skb, now: float, prerouting: bool = True, explain: bool = False
    ) -> ConntrackResult:
        """``nf_conntrack_in()`` at PRE_ROUTING / LOCAL_OUT.

        ICMP first goes to ``nf_conntrack_handle_icmp()`` (up to 4.19 every protocol's
        ``l4proto->error()`` ran here, UDP's too), which may attach the entry an error relates
        to. Then resolves the entry (``resolve_normal_ct``), derives ctinfo, runs the
        protocol's tracker and attaches the entry to ``skb`` -- or leaves ``skb.ct`` None when
        the tracker said the packet is invalid ("inverse of the return code tells the
        netfilter core what to do").
        """
        pkt = skb.pkt
        if skb.ct is not None:  # already tracked (untracked template, or a looped packet)
            return ConntrackResult(NfVerdict.ACCEPT, skb.ct, skb.ctinfo, None)
        sysctl, profile = self.sysctl, self.profile
        proto = pkt.proto
        if proto is not IpProto.TCP:
            early = self._l4proto_error(skb, now, prerouting)
            if early is not None:
                return early
        tup = nf_ct_get_tuple(pkt)
        tcp = None
        while True:
            hit = self.find(tup, now)
            created = hit is None
            if hit is None:
                ct = self._init_conntrack(tup, now)
                if ct is None:
                    self.stats.drop += 1  # "Too stressed to deal."
                    return ConntrackResult(NfVerdict.DROP, None, None, None, "table full, dropping packet")
                direction = ORIGINAL
                ctinfo = CtInfo.NEW
            else:
                ct, direction = hit
                self.stats.found += 1
                if direction == REPLY:
                    ctinfo = CtInfo.ESTABLISHED_REPLY
                elif ct.seen_reply:
                    ctinfo = CtInfo.ESTABLISHED
                else:
                    ctinfo = CtInfo.NEW
            if proto is IpProto.TCP:
                tcp = nf_conntrack_tcp_packet(ct, pkt, direction, now, sysctl, profile, prerouting, explain)
                verdict, reason = tcp.verdict, tcp.reason
                if verdict == -NfVerdict.REPEAT:
                    # "TCP tracker reports an attempt to reopen a closed/aborted connection. We
                    # have to go back and create a fresh conntrack."
                    self.delete(ct)
                    continue
            elif proto is IpProto.UDP:
                udp = nf_conntrack_udp_packet(ct, pkt, now, sysctl, profile, prerouting)
                verdict, reason = udp.verdict, udp.reason
            else:
                verdict, reason = nf_conntrack_icmp_packet(ct, now, sysctl), None
            break
        if verdict <= 0:
            self.stats.invalid += 1
            if verdict == -NfVerdict.DROP:
                self.stats.drop += 1
            skb.ct = None
            skb.ctinfo = None
            return ConntrackResult(NfVerdict(-verdict), None, None, tcp, reason, created)
        if ctinfo == CtInfo.ESTABLISHED_REPLY:
            ct.status |= IPS_SEEN_REPLY
        if ct.dying and ct.confirmed:
            self.delete(ct)  # nf_ct_kill_acct(): "we can delete the conntrack immediately"
        skb.ct = ct
        skb.ctinfo = ctinfo
        return ConntrackResult(NfVerdict.ACCEPT, ct, ctinfo, tcp, reason, created)

    def _l4proto_error(self, skb: Skb, now: float, prerouting: bool) -> ConntrackResult | None:
        """The checks before the lookup: ``nf_conntrack_handle_icmp()`` (ICMP; an error gets
        the entry it relates to attached, RELATED), and up to 4.19 ``l4proto->error()`` for
        UDP too. A refused packet counts ``error`` (and ``invalid`` up to 4.19) and is
        INVALID. None: go on to the lookup."""
        pkt, profile = skb.pkt, self.profile
        if pkt.proto is IpProto.ICMP:
            err = icmp_error(pkt, self, now, self.sysctl, profile, prerouting)
            if err.ct is not None:
                skb.ct, skb.ctinfo = err.ct, err.ctinfo  # "Update skb to refer to this connection"
                return ConntrackResult(NfVerdict.ACCEPT, err.ct, err.ctinfo, None)
            if err.verdict > 0:
                return None
            reason = err.reason
        elif profile.l4_error_in_packet:
            return None
        else:
            reason = udp_error(UdpHeaderCheck.of(pkt), prerouting, self.sysctl.checksum, profile)
            if reason is None:
                return None
        self.stats.error += 1
        if not profile.l4_error_in_packet:
            self.stats.invalid += 1
        return ConntrackResult(NfVerdict.ACCEPT, None, None, None, reason)

    def nf_conntrack_confirm(self, skb: Skb, now: float) -> NfVerdict:
        """``__nf_conntrack_confirm()``: insert a new entry as its first packet leaves.

        A clash with an entry inserted meanwhile drops the packet (``insert_failed``); the
        kernel may first try ``nf_ct_resolve_clash``, which TCP does not allow.
        """
        ct = skb.ct
        if ct is None or ct.confirmed or ct.untracked:
            return NfVerdict.ACCEPT
        if ct.dying:
            return NfVerdict.ACCEPT  # killed before confirmation: never inserted
        orig, reply = ct.tuples
        for key in (orig, reply):
            if self.find(key, now) is not None:
                self.stats.insert_failed += 1
                self.stats.drop += 1
                return NfVerdict.DROP
        ct.status |= IPS_CONFIRMED
        self._entries[orig] = ct
        self._entries[reply] = ct
        self.stats.insert += 1
        return NfVerdict.ACCEPT

    def reply_tuple_taken(self, tup: CtTuple, ignored: Conn, now: float) -> bool:
        """``nf_nat_used_tuple()`` -> ``nf_conntrack_tuple_taken()``: would a connection whose
        original tuple becomes ``tup`` have a reply tuple that another entry already uses?"""
        hit = self.find(invert_tuple(tup), now)
        return hit is not None and hit[0] is not ignored


def format_entry(entry: CtEntry, now: float) -> str:
    """One line of ``conntrack -L`` for an entry as it stood (libnetfilter_conntrack's default
    output format: protocol name padded to 8 and number, seconds left, the TCP state, the
    original tuple, [UNREPLIED] before the reply tuple, [ASSURED] after it, mark and use). An
    ICMP tuple prints ``type= code= id=`` instead of ports."""
    remaining = max(int(entry.expires - now), 0)
    name = IpProto(entry.proto).name.lower()
    state = f"{entry.state} " if entry.state else ""
    return "".join(
        (
            f"{name:<8} {entry.proto} {remaining} {state}",
            _format_tuple(entry.original, entry.proto),
            "" if entry.seen_reply else "[UNREPLIED] ",
            _format_tuple(entry.reply, entry.proto),
            "[ASSURED] " if entry.assured else "",
            f"mark={entry.mark} use=1",
        )
    )


def _format_tuple(t: tuple[str, int, str, int], proto: int) -> str:
    src, sport, dst, dport = t
    if proto == IPPROTO_ICMP:
        return f"src={src} dst={dst} type={dport >> 8} code={dport & 0xFF} id={sport} "
    return f"src={src} dst={dst} sport={sport} dport={dport} "


def format_conntrack(ct: Conn, now: float) -> str:
    """One line of ``conntrack -L`` for a live entry."""
    return format_entry(ct.snapshot(), now)


def format_proc_conntrack(ct: Conn, now: float) -> str:
    """One line of ``/proc/net/nf_conntrack`` (``ct_seq_show()``)."""
    body = format_conntrack(ct, now).removesuffix("use=1")
    return f"ipv4     2 {body}zone=0 use=2"
