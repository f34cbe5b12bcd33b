"""The connection tracking core (net/netfilter/nf_conntrack_core.c, nf_conntrack_standalone.c).

One :class:`ConntrackTable` per network namespace. ``nf_conntrack_in`` looks a packet's
tuple up in both directions, creates an unconfirmed entry for a new connection, hands the
packet to the TCP tracker and attaches the entry to the skb -- or, when the tracker says
INVALID, detaches it, so that ``--ctstate INVALID`` matches and NAT leaves the packet alone.
``nf_conntrack_confirm`` inserts the entry when the packet leaves the stack (POSTROUTING or
INPUT). Time is passed in; entries expire lazily on lookup, as the kernel's
``nf_ct_is_expired`` check does before its gc worker gets to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from sim.netfilter.hooks import NfVerdict
from sim.netfilter.profiles import DEFAULT_PROFILE, KernelProfile, resolve_kernel
from sim.netfilter.proto_tcp import (
    STATE_NAMES,
    TCP_TIMEOUTS,
    TcpAction,
    TcpCt,
    TcpResult,
    nf_conntrack_tcp_packet,
)
from sim.netfilter.tcp_states import ORIGINAL, REPLY, TcpState
from sim.skb import CtInfo, Skb
from sim.trace import CtEntry

# enum ip_conntrack_status (include/uapi/linux/netfilter/nf_conntrack_common.h)
IPS_EXPECTED = 1 << 0
IPS_SEEN_REPLY = 1 << 1
IPS_ASSURED = 1 << 2
IPS_CONFIRMED = 1 << 3
IPS_SRC_NAT = 1 << 4
IPS_DST_NAT = 1 << 5
IPS_NAT_MASK = IPS_SRC_NAT | IPS_DST_NAT
IPS_SRC_NAT_DONE = 1 << 7
IPS_DST_NAT_DONE = 1 << 8
IPS_DYING = 1 << 9
IPS_UNTRACKED = 1 << 12

# nf_conntrack_max: 262144 is the hash size (and so the limit) the kernel picks on a machine
# with more than 4 GiB of memory (nf_conntrack_init_start()).
NF_CONNTRACK_MAX_DEFAULT = 262144

CtTuple = tuple[str, int, str, int]  # (src, sport, dst, dport); the protocol is always TCP


def invert_tuple(t: CtTuple) -> CtTuple:
    """``nf_ct_invert_tuple()``."""
    return (t[2], t[3], t[0], t[1])


class Conn:
    """``struct nf_conn``: one tracked connection."""

    __slots__ = ("id", "mark", "status", "tcp", "timeout", "tuples")

    def __init__(self, orig: CtTuple, ident: int) -> None:
        self.tuples: tuple[CtTuple, CtTuple] = (orig, invert_tuple(orig))  # tuplehash[ORIGINAL/REPLY]
        self.status = 0
        self.timeout = 0.0  # absolute expiry, seconds of virtual time
        self.mark = 0
        self.id = ident
        self.tcp = TcpCt()

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
        return STATE_NAMES[self.tcp.state]

    def snapshot(self) -> CtEntry:
        """The entry as it stands now, frozen (what ``conntrack -L`` would list now)."""
        original, reply = self.tuples
        return CtEntry(
            original=original,
            reply=reply,
            state=self.state_name(),
            expires=self.timeout,
            seen_reply=self.seen_reply,
            assured=self.assured,
            mark=self.mark,
        )


INT_MAX = 2**31 - 1
# The boolean TCP sysctls: proc_dointvec (any int) in the per-protocol table of 3.10 and
# 4.19 (nf_conntrack_proto_tcp.c); proc_dointvec_minmax with extra1/extra2 = 0/1 in
# nf_conntrack_standalone.c's table (5.10.13 has it; the SYSCTL_ZERO rename of 5.3 already
# finds it), proc_dou8vec_minmax 0..1 later. The release is bounded by the recorded trees
# (absent in 4.19.1, present in 5.10.13): no profile lies between.
_BOOLEAN = frozenset({"tcp_be_liberal", "tcp_loose", "tcp_ignore_invalid_rst"})
MINMAX_SINCE = (5, 3)


def _release_key(release: str) -> tuple[int, int]:
    major, _, rest = release.partition(".")
    return int(major), int(rest.split(".")[0].split("-")[0])


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

    _NAMES = (
        "tcp_be_liberal",
        "tcp_loose",
        "tcp_max_retrans",
        "tcp_ignore_invalid_rst",
        "log_invalid",
        "checksum",
        "max",
    )

    def set(self, name: str, value: int, profile: KernelProfile) -> None:
        """Set ``net.netfilter.nf_conntrack_<name>``; ValueError names what is wrong."""
        short = name.removeprefix("net.netfilter.").removeprefix("nf_conntrack_")
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
        if value > INT_MAX:  # proc_dointvec*(): "if (lval > INT_MAX) return -EINVAL"
            raise ValueError(f"sysctl {name}: {value} is more than an int holds ({INT_MAX}): EINVAL")
        if short in _BOOLEAN and value > 1 and _release_key(profile.release) >= MINMAX_SINCE:
            raise ValueError(
                f"sysctl {name}: kernel {profile.name} accepts 0 or 1 (proc_dou8vec_minmax), got {value}"
            )
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


class ConntrackTable:
    """One namespace's conntrack: the hash of confirmed entries and its sysctls."""

    __slots__ = ("_entries", "_next_id", "log", "profile", "stats", "sysctl")

    def __init__(
        self, profile: KernelProfile | str = DEFAULT_PROFILE, sysctl: ConntrackSysctls | None = None
    ):
        self.profile = resolve_kernel(profile, note=False) if isinstance(profile, str) else profile
        self.sysctl = sysctl or ConntrackSysctls()
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

        Resolves the entry (``resolve_normal_ct``), derives ctinfo, runs the TCP tracker and
        attaches the entry to ``skb`` -- or leaves ``skb.ct`` None when the tracker said the
        packet is invalid ("inverse of the return code tells the netfilter core what to do").
        """
        pkt = skb.pkt
        if skb.ct is not None:  # already tracked (untracked template, or a looped packet)
            return ConntrackResult(NfVerdict.ACCEPT, skb.ct, skb.ctinfo, None)
        tup: CtTuple = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        sysctl, profile = self.sysctl, self.profile
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
            res = nf_conntrack_tcp_packet(ct, pkt, direction, now, sysctl, profile, prerouting, explain)
            if res.verdict == -NfVerdict.REPEAT:
                # "TCP tracker reports an attempt to reopen a closed/aborted connection. We have
                # to go back and create a fresh conntrack."
                self.delete(ct)
                continue
            break
        if res.verdict <= 0:
            self.stats.invalid += 1
            if res.verdict == -NfVerdict.DROP:
                self.stats.drop += 1
            skb.ct = None
            skb.ctinfo = None
            verdict = NfVerdict(-res.verdict)
            return ConntrackResult(verdict, None, None, res, res.reason, created)
        if ctinfo == CtInfo.ESTABLISHED_REPLY:
            ct.status |= IPS_SEEN_REPLY
        if ct.dying and ct.confirmed:
            self.delete(ct)  # nf_ct_kill_acct(): "we can delete the conntrack immediately"
        skb.ct = ct
        skb.ctinfo = ctinfo
        return ConntrackResult(NfVerdict.ACCEPT, ct, ctinfo, res, res.reason, created)

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
    output format: protocol, seconds left, state, the original tuple, [UNREPLIED] before the
    reply tuple, [ASSURED] after it, mark and use)."""
    o_src, o_sport, o_dst, o_dport = entry.original
    r_src, r_sport, r_dst, r_dport = entry.reply
    remaining = max(int(entry.expires - now), 0)
    return "".join(
        (
            f"tcp      6 {remaining} {entry.state} ",
            f"src={o_src} dst={o_dst} sport={o_sport} dport={o_dport} ",
            "" if entry.seen_reply else "[UNREPLIED] ",
            f"src={r_src} dst={r_dst} sport={r_sport} dport={r_dport} ",
            "[ASSURED] " if entry.assured else "",
            f"mark={entry.mark} use=1",
        )
    )


def format_conntrack(ct: Conn, now: float) -> str:
    """One line of ``conntrack -L`` for a live entry."""
    return format_entry(ct.snapshot(), now)


def format_proc_conntrack(ct: Conn, now: float) -> str:
    """One line of ``/proc/net/nf_conntrack`` (``ct_seq_show()``)."""
    body = format_conntrack(ct, now).removesuffix("use=1")
    return f"ipv4     2 {body}zone=0 use=2"
