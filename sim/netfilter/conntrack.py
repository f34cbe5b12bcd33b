"""The connection tracking core (net/netfilter/nf_conntrack_core.c, nf_conntrack_standalone.c).

One :class:`ConntrackTable` per network namespace. ``nf_conntrack_in`` looks a packet's
tuple up in both directions, creates an unconfirmed entry for a new connection, hands the
packet to its protocol's tracker (TCP, UDP, ICMP; an ICMP error first goes to
``nf_conntrack_handle_icmp``, which attaches the entry it relates to) and attaches the entry
to the skb -- or, when the tracker says INVALID, detaches it, so that ``--ctstate INVALID``
matches and NAT leaves the packet alone.
``nf_conntrack_confirm`` inserts the entry when the packet leaves the stack (POSTROUTING or
INPUT); an entry with the same tuple confirmed meanwhile is a clash, handled as each kernel
does (:meth:`ConntrackTable.nf_conntrack_confirm`). ``nf_conntrack_max`` counts the
unconfirmed entries too; a full table tries ``early_drop()`` the way each kernel scans its
hash (the model hashes tuples with the world's seed, as the kernel does with its random
seed, so which bucket holds what is as arbitrary as on a real host). The per-netns
statistics are :class:`ConntrackStats`. Time is passed in; entries expire lazily on lookup
(``nf_ct_is_expired``) and all at once in :meth:`ConntrackTable.gc`, as the gc worker would.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields

from sim.include.nf_conntrack import (
    IP_CT_ESTABLISHED,
    IP_CT_ESTABLISHED_REPLY,
    IP_CT_NEW,
    IP_CT_RELATED_REPLY,
    IPPROTO_ICMP,
    IPS_CONFIRMED,
    IPS_DYING,
    IPS_FIXED_TIMEOUT,
    IPS_NAT_CLASH,
    IPS_NAT_DONE_MASK,
    IPS_SEEN_REPLY,
    IPS_SRC_NAT,
    ORIGINAL,
    REPLY,
    Conn,
    CtDir,
    CtEntry,
    CtInfo,
    CtTuple,
    invert_tuple,
    nf_ct_get_tuple,
)
from sim.netfilter.hooks import NF_ACCEPT, NF_DROP, NF_REPEAT, NfVerdict
from sim.netfilter.profiles import DEFAULT_PROFILE, KernelProfile, resolve_kernel
from sim.netfilter.proto_icmp import icmp_error, nf_conntrack_icmp_packet
from sim.netfilter.proto_tcp import (
    TcpAction,
    TcpResult,
    nf_conntrack_tcp_established,
    nf_conntrack_tcp_packet,
    tcp_error,
)
from sim.netfilter.proto_udp import UdpHeaderCheck, nf_conntrack_udp_packet, udp_error
from sim.netfilter.sysctl import ConntrackSysctls
from sim.packet import IPPROTO_TCP, IPPROTO_UDP, IpProto, TcpOptions
from sim.skb import Skb
from sim.trace import ConfirmOutcome

NF_CT_EVICTION_RANGE = 8  # early_drop()
HZ = 1.0  # a jiffy count of one second, as the seconds of virtual time nflab keeps


def l4proto_log_prefix(profile: KernelProfile, proto: int) -> str:
    """The prefix of conntrack's invalid-packet log line: ``nf_l4proto_log_invalid()``'s
    "nf_ct_proto_%d: " from 4.19, 3.10's per-tracker "nf_ct_tcp: ", "nf_ct_udp: ",
    "nf_ct_icmp: "."""
    if profile.log_l4proto:
        return f"nf_ct_proto_{proto}: "
    return f"nf_ct_{IpProto(proto).name.lower()}: "


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
    """``struct ip_conntrack_stat`` summed over CPUs, in ``enum ctattr_stats`` order (the order
    ``conntrack -S`` prints them). Each kernel has a subset (:func:`stat_names`); a counter
    it lacks stays 0. ``expect_*`` are the expectation counters, which nflab never moves."""

    searched: int = 0
    found: int = 0
    new: int = 0
    invalid: int = 0
    ignore: int = 0
    delete: int = 0
    delete_list: int = 0
    insert: int = 0
    insert_failed: int = 0
    drop: int = 0
    early_drop: int = 0
    error: int = 0
    search_restart: int = 0
    clash_resolve: int = 0
    chaintoolong: int = 0

    def counters(self, profile: KernelProfile) -> dict[str, int]:
        """The counters ``profile``'s kernel sends to ``conntrack -S``, by name, in order."""
        return {name: getattr(self, name) for name in stat_names(profile)}


_STAT_FIELDS = tuple(f.name for f in fields(ConntrackStats))


@functools.cache
def stat_names(profile: KernelProfile) -> tuple[str, ...]:
    """The CTA_STATS_* attributes ``ctnetlink_ct_stat_cpu_fill_info()`` sends: 3.10 and el7
    send searched, new, delete and delete_list too; 4.19 adds nothing and keeps ignore;
    5.10 drops ignore and adds clash_resolve; 5.15 adds chaintoolong."""
    gone: set[str] = set()
    if profile.stats_lean:
        gone |= {"searched", "new", "delete", "delete_list"}
    if profile.no_ignore_stat:
        gone.add("ignore")
    if not profile.clash_resolve_harder:
        gone.add("clash_resolve")
    if not profile.chaintoolong:
        gone.add("chaintoolong")
    return tuple(n for n in _STAT_FIELDS if n not in gone)


def stats_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The non-zero changes between two :meth:`ConntrackStats.counters` readings (what the
    replay reports as ``ct_stats``)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def format_stats(stats: ConntrackStats, profile: KernelProfile) -> str:
    """``conntrack -S`` (conntrack-tools 1.4.7) for one netns, folded to one line: the tool
    prints a ``cpu=N`` line per possible CPU; nflab keeps no CPUs, so its one line, ``cpu=0``,
    carries the sums."""
    body = "".join(f"{k}={v} " for k, v in stats.counters(profile).items())
    return f"cpu={0:<4}\t{body}"


@dataclass(frozen=True, slots=True)
class ConfirmResult:
    """The verdict of ``__nf_conntrack_confirm()``, what happened (None: nothing to confirm)
    and the id of the entry that won the race."""

    verdict: NfVerdict
    outcome: ConfirmOutcome | None
    winner: int | None = None


class ConntrackTable:
    """One namespace's conntrack: the hash of confirmed entries, its sysctls and counters.

    ``queued`` holds the unconfirmed entries of packets waiting in an nf_queue (a held race):
    they count towards ``nf_conntrack_max`` like every allocated entry. ``hash_rnd`` seeds
    the tuple hash (the kernel's ``nf_conntrack_hash_rnd``); ``netns_inum`` is None for
    init_net, else the inode number the 6.18 "table full" line names."""

    __slots__ = (
        "_confirmed",
        "_entries",
        "_next_id",
        "hash_rnd",
        "log",
        "nat_bysource",
        "nat_rovers",
        "netns_inum",
        "profile",
        "queued",
        "stats",
        "sysctl",
    )

    def __init__(
        self,
        profile: KernelProfile | str = DEFAULT_PROFILE,
        sysctl: ConntrackSysctls | None = None,
        hash_rnd: int = 0,
        netns_inum: int | None = None,
    ):
        self.profile = resolve_kernel(profile, note=False) if isinstance(profile, str) else profile
        self.sysctl = sysctl or ConntrackSysctls.for_profile(self.profile)
        # The hash: every entry under its original tuple, and under its reply tuple only when
        # NAT made that differ from the original's inverse (a lookup of an un-NATed reply
        # inverts the tuple and finds the original). The direction a tuple matches is found by
        # comparing it with the entry's original tuple. An entry inserted by
        # nf_ct_resolve_clash_harder() has only its reply key.
        self._entries: dict[CtTuple, Conn] = {}
        self._confirmed = 0
        self._next_id = 1
        self.queued: list[Conn] = []
        self.hash_rnd = hash_rnd
        self.netns_inum = netns_inum
        # tcp_port_rover, udp_port_rover (3.10, 4.19): nf_nat_proto_{tcp,udp}.c's static u16
        self.nat_rovers: dict[int, int] = {}
        # nf_nat_bysource: SNATed entries, confirmed or not, by their original source (address,
        # port or ICMP id, protocol), newest first (sim.netfilter.nat.find_appropriate_src)
        self.nat_bysource: dict[tuple[str, int, int], list[Conn]] = {}
        self.stats = ConntrackStats()
        self.log: list[str] = []  # kernel warnings such as "table full, dropping packet"

    def ct_id(self, ct: Conn) -> int:
        """The entry's id (numbered in the order they are first asked for)."""
        if not ct.id:
            ct.id = self._next_id
            self._next_id += 1
        return ct.id

    def __len__(self) -> int:
        """The confirmed entries (``nf_conntrack_count`` less the unconfirmed ones)."""
        return self._confirmed

    @property
    def count(self) -> int:
        """``cnet->count``: every allocated entry, confirmed or waiting in a queue."""
        return self._confirmed + len(self.queued)

    def __iter__(self) -> Iterator[Conn]:
        """Confirmed entries, oldest first (expired ones included until looked up), as
        ctnetlink walks the hash: a reply-only clash entry is not listed."""
        for key, ct in self._entries.items():
            if ct.orig == key:
                yield ct

    def entries(self, now: float) -> list[Conn]:
        """The live entries at ``now``, as ``conntrack -L`` would list them."""
        return [ct for ct in self if ct.timeout > now]

    def _lookup(self, tup: CtTuple) -> Conn | None:
        """The hashed entry one of whose tuples is ``tup`` (``nf_ct_key_equal``), expired or not."""
        return self._entries.get(tup) or self._unhashed_reply(tup)

    def _unhashed_reply(self, tup: CtTuple) -> Conn | None:
        """The entry whose reply tuple is ``tup`` without being hashed under it: one without
        NAT, hashed under its original tuple, the inverse of ``tup``."""
        inverse = invert_tuple(tup)
        ct = self._entries.get(inverse)
        if ct is None or ct.nat_reply is not None or ct.orig != inverse:
            return None
        return ct

    def find(self, tup: CtTuple, now: float) -> tuple[Conn, CtDir] | None:
        """``__nf_conntrack_find_get()``: the entry and the direction ``tup`` matches.

        An expired entry is removed on the way (``nf_ct_gc_expired``) and not returned.
        Counts nothing: :meth:`nf_conntrack_in` counts its own lookups."""
        ct = self._entries.get(tup) or self._unhashed_reply(tup)  # _lookup(), one call less
        if ct is None:
            return None
        if ct.timeout <= now:
            self.delete(ct)
            return None
        return ct, ORIGINAL if ct.orig == tup else REPLY

    def _hash_insert(self, ct: Conn, original: bool = True) -> None:
        """``__nf_conntrack_hash_insert()``; ``original`` False: the reply direction only."""
        if original:
            self._entries[ct.orig] = ct
        if ct.nat_reply is not None or not original:
            self._entries[ct.reply] = ct
        self._confirmed += 1

    def delete(self, ct: Conn) -> None:
        """``nf_ct_delete()``: unlink both directions (3.10/el7 count delete_list, and delete
        as the entry is freed)."""
        removed = False
        for key in (ct.orig, ct.reply):
            if self._entries.get(key) is ct:
                del self._entries[key]
                removed = True
        if removed:
            self._confirmed -= 1
            if not self.profile.stats_lean:
                self.stats.delete_list += 1
                self.stats.delete += 1
        ct.dying = True
        if ct.status & IPS_SRC_NAT:
            self.nat_unhash(ct)

    def destroy_unconfirmed(self, ct: Conn) -> None:
        """``nf_ct_put()`` of an unconfirmed entry whose packet died (``destroy_conntrack``)."""
        if not ct.confirmed and not ct.dying:
            ct.dying = True
            if not self.profile.stats_lean:
                self.stats.delete += 1
            if ct.status & IPS_SRC_NAT:
                self.nat_unhash(ct)

    def nat_unhash(self, ct: Conn) -> None:
        """``nf_nat_cleanup_conntrack()``: a freed entry leaves the NAT's by-source hash."""
        orig = ct.orig
        chain = self.nat_bysource.get((orig[0], orig[1], orig[4]))
        if chain is not None:
            chain[:] = [c for c in chain if c is not ct]
            if not chain:
                del self.nat_bysource[(orig[0], orig[1], orig[4])]

    def flush(self) -> None:
        """``conntrack -F``."""
        for ct in list(dict.fromkeys(self._entries.values())):
            self.delete(ct)

    def gc(self, now: float) -> int:
        """``gc_worker()`` (3.10: each entry's timer): remove every entry expired at ``now``;
        how many went."""
        expired = {id(ct): ct for ct in self._entries.values() if ct.timeout <= now}
        for ct in expired.values():
            self.delete(ct)
        return len(expired)

    # -- the hash and early_drop() ---------------------------------------------------------
    def hash_raw(self, tup: CtTuple) -> int:
        """``hash_conntrack_raw()``: a 32-bit hash of the tuple under the table's seed (the
        kernel's is jhash2 under a random seed; only its arbitrariness is modelled).

        The tuple is hashed as its values, spelled out with the protocol by name: a compiled
        build (mypyc) holds a tuple's protocol as a plain int where the interpreter holds the
        ``IpProto`` member, and ``repr(tup)`` would hash the same tuple to another bucket."""
        src, sport, dst, dport, proto = tup
        spelled = f"({src!r}, {sport}, {dst!r}, {dport}, {IpProto(proto)!r})"
        return zlib.crc32(spelled.encode(), self.hash_rnd)

    def _bucket(self, raw: int, size: int) -> int:
        return (raw * size) >> 32  # reciprocal_scale() / hash_bucket()

    def _chains(self, size: int) -> dict[int, list[Conn]]:
        """The hash chains: each bucket's entries, newest first (``hlist_nulls_add_head_rcu``),
        an entry once per direction hashed there."""
        chains: dict[int, list[Conn]] = {}
        for key in reversed(self._entries):
            ct = self._entries[key]
            keys = (key,) if key != ct.orig or ct.nat_reply is not None else (ct.reply, key)
            for k in keys:
                chains.setdefault(self._bucket(self.hash_raw(k), size), []).append(ct)
        return chains

    def _early_drop(self, tup: CtTuple, now: float) -> bool:
        """``early_drop()``: evict entries that are not ASSURED to make room for ``tup``.

        3.10 (per-netns hash): from the new tuple's bucket, chain after chain, take the last
        unassured entry of a chain, stopping once NF_CT_EVICTION_RANGE entries were seen.
        el7: the first unassured, not dying entry; the same stop. 4.19:
        ``reciprocal_scale(_hash++, hsize)`` eight times, which is (nearly always) the one
        bucket again; 5.10+: eight consecutive buckets. From 4.19 ``early_drop_list()`` drops
        every unassured confirmed entry of the first bucket that has one (expired ones go to
        gc uncounted)."""
        p = self.profile
        size = self.sysctl.buckets_for(p)
        raw = self.hash_raw(tup)
        chains = self._chains(size)
        if not p.early_drop_buckets:
            bucket, cnt, victim = self._bucket(raw, size), 0, None
            for _ in range(size):
                for tmp in chains.get(bucket, ()):
                    if p.bucket_locks:  # el7: the first unassured, live entry, and stop
                        if not tmp.assured and not tmp.dying:
                            victim = tmp
                            break
                        cnt += 1
                    else:  # 3.10: the chain's last unassured entry; every entry counts
                        if not tmp.assured:
                            victim = tmp
                        cnt += 1
                if victim is not None and victim.dying:
                    victim = None
                if victim is not None or cnt >= NF_CT_EVICTION_RANGE:
                    break
                bucket = (bucket + 1) % size
            if victim is None:
                return False
            self.delete(victim)
            self.stats.early_drop += 1
            return True
        for i in range(NF_CT_EVICTION_RANGE):
            if p.early_drop_next_bucket:
                bucket = self._bucket(raw, size) if i == 0 else (bucket + 1) % size
            else:
                bucket = self._bucket((raw + i) & 0xFFFFFFFF, size)
            drops = 0
            for tmp in dict.fromkeys(chains.get(bucket, ())):
                if tmp.dying:
                    continue
                if tmp.timeout <= now:
                    self.delete(tmp)  # nf_ct_gc_expired()
                    continue
                if not tmp.assured and tmp.confirmed:
                    self.delete(tmp)
                    drops += 1
            if drops:
                self.stats.early_drop += drops
                return True
        return False

    def table_full_line(self) -> str:
        """The ``net_warn_ratelimited()`` line of ``__nf_conntrack_alloc()``: 4.19+ print it
        through the file's ``pr_fmt`` ("nf_conntrack: " twice); 6.18 names a netns other than
        init_net."""
        prefix = "nf_conntrack: " if self.profile.core_pr_fmt else ""
        if self.profile.table_full_netns and self.netns_inum is not None:
            return f"{prefix}nf_conntrack: table full in netns {self.netns_inum}, dropping packet"
        return f"{prefix}nf_conntrack: table full, dropping packet"

    def _init_conntrack(self, tup: CtTuple, now: float) -> Conn | None:
        """``init_conntrack()`` / ``__nf_conntrack_alloc()``: a new unconfirmed entry, or None
        when the table is full and nothing can be evicted."""
        limit = self.sysctl.max
        if limit and self.count + 1 > limit and not self._early_drop(tup, now):
            self.log.append(self.table_full_line())
            return None
        ct = Conn(tup)
        if not self.profile.stats_lean:
            self.stats.new += 1
        return ct

    def nf_conntrack_in(
        self, skb: Skb, now: float, prerouting: bool = True, explain: bool = False
    ) -> ConntrackResult:
        """``nf_conntrack_in()`` at PRE_ROUTING / LOCAL_OUT.

        ICMP first goes to ``nf_conntrack_handle_icmp()`` (up to 4.19 every protocol's
        ``l4proto->error()`` ran here: TCP's and UDP's too, counting error and invalid), which
        may attach the entry an error relates to. Then resolves the entry
        (``resolve_normal_ct``), derives ctinfo, runs the protocol's tracker and attaches the
        entry to ``skb`` -- or leaves ``skb.ct`` None when the tracker said the packet is
        invalid ("inverse of the return code tells the netfilter core what to do").
        """
        pkt = skb.pkt
        sysctl, profile, st = self.sysctl, self.profile, self.stats
        if skb.ct is not None or skb.ctinfo is CtInfo.UNTRACKED:  # untracked (raw CT --notrack), or looped
            if not profile.no_ignore_stat:
                st.ignore += 1  # "Previously seen (loopback or untracked)?  Ignore."
            return ConntrackResult(NF_ACCEPT, skb.ct, skb.ctinfo, None)
        proto = pkt.proto
        if proto == IPPROTO_ICMP or not profile.l4_error_in_packet:
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
                    st.drop += 1  # "Too stressed to deal."
                    return ConntrackResult(NF_DROP, None, None, None, "table full, dropping packet")
                direction = ORIGINAL
                ctinfo = IP_CT_NEW
            else:
                ct, direction = hit
                if not profile.stats_lean:
                    st.found += 1  # ____nf_conntrack_find()
                ctinfo = _ctinfo(ct, direction)
            if proto is IPPROTO_TCP:
                tcp = nf_conntrack_tcp_packet(ct, pkt, direction, now, sysctl, profile, prerouting, explain)
                verdict, reason = tcp.verdict, tcp.reason
                if verdict == -NF_REPEAT:
                    # "TCP tracker reports an attempt to reopen a closed/aborted connection. We
                    # have to go back and create a fresh conntrack."
                    st.invalid += 1
                    self.delete(ct)
                    continue
            elif proto is IPPROTO_UDP:
                udp = nf_conntrack_udp_packet(ct, pkt, now, sysctl, profile, prerouting)
                verdict, reason = udp.verdict, udp.reason
            else:
                verdict, reason = nf_conntrack_icmp_packet(ct, now, sysctl), None
            break
        if verdict <= 0:
            st.invalid += 1
            if verdict == -NF_DROP:
                st.drop += 1
            if created:
                self.destroy_unconfirmed(ct)
            skb.ct = None
            skb.ctinfo = None
            return ConntrackResult(NfVerdict(-verdict), None, None, tcp, reason, created)
        self._accepted(ct, ctinfo)
        skb.ct = ct
        skb.ctinfo = ctinfo
        return ConntrackResult(NF_ACCEPT, ct, ctinfo, tcp, reason, created)

    def nf_conntrack_in_established(
        self,
        tup: CtTuple,
        flags: int,
        seq: int,
        ack: int,
        win: int,
        end: int,
        options: TcpOptions,
        now: float,
    ) -> ConntrackResult | None:
        """:meth:`nf_conntrack_in` at PRE_ROUTING for the common TCP segment, on its header
        fields (``tup`` its tuple; no skb: a capture's segment is tracked and goes nowhere).

        When the live entry ``tup`` finds takes the segment down
        :func:`~sim.netfilter.proto_tcp.nf_conntrack_tcp_established`'s path (an ACK in
        ESTABLISHED), this is what ``nf_conntrack_in()`` does for it: ``tcp_error()`` passes,
        the lookup (``found``), ctinfo, the tracker, INVALID (``invalid``) or the entry kept
        (SEEN_REPLY on a reply); confirming it would do nothing (confirmed). None, with
        nothing changed or counted, for any other segment: build its packet and run
        :meth:`nf_conntrack_in`.
        """
        ct = self._lookup(tup)
        if ct is None or ct.timeout <= now:
            return None
        direction = ORIGINAL if ct.orig == tup else REPLY
        tcp = nf_conntrack_tcp_established(
            ct, direction, flags, seq, ack, win, end, options, now, self.sysctl, self.profile
        )
        if tcp is None:
            return None
        st = self.stats
        if not self.profile.stats_lean:
            st.found += 1
        if tcp.verdict <= 0:
            st.invalid += 1
            return ConntrackResult(NfVerdict(-tcp.verdict), None, None, tcp, tcp.reason)
        ctinfo = _ctinfo(ct, direction)
        self._accepted(ct, ctinfo)
        return ConntrackResult(NF_ACCEPT, ct, ctinfo, tcp, tcp.reason)

    def _accepted(self, ct: Conn, ctinfo: CtInfo) -> None:
        """The end of ``nf_conntrack_in()`` for a packet the tracker accepted: a reply marks
        the entry SEEN_REPLY, and a confirmed entry the tracker killed goes at once."""
        if ctinfo == IP_CT_ESTABLISHED_REPLY:
            ct.status |= IPS_SEEN_REPLY
        if ct.status & IPS_DYING and ct.status & IPS_CONFIRMED:
            self.delete(ct)  # nf_ct_kill_acct(): "we can delete the conntrack immediately"

    def _l4proto_error(self, skb: Skb, now: float, prerouting: bool) -> ConntrackResult | None:
        """The checks before the lookup: ``nf_conntrack_handle_icmp()`` (ICMP; an error gets
        the entry it relates to attached, RELATED), and up to 4.19 ``l4proto->error()`` for
        TCP (``tcp_error()``) and UDP too (later kernels run those inside the trackers, and
        :meth:`nf_conntrack_in` does not call this for them). A refused packet counts
        ``error`` (and ``invalid`` up to 4.19) and is INVALID. None: go on to the lookup."""
        pkt, profile = skb.pkt, self.profile
        if pkt.proto is IPPROTO_TCP:
            reason = tcp_error(pkt, profile, bool(self.sysctl.checksum), prerouting)
            if reason is None:
                return None
            self.stats.error += 1
            self.stats.invalid += 1
            res = TcpResult(-NF_ACCEPT, None, reason)
            return ConntrackResult(NF_ACCEPT, None, None, res, reason)
        if pkt.proto == IPPROTO_ICMP:
            err = icmp_error(pkt, self, now, self.sysctl, profile, prerouting)
            if err.ct is not None:
                skb.ct, skb.ctinfo = err.ct, err.ctinfo  # "Update skb to refer to this connection"
                return ConntrackResult(NF_ACCEPT, err.ct, err.ctinfo, None)
            if err.verdict > 0:
                return None
            reason = err.reason
        else:
            reason = udp_error(UdpHeaderCheck.of(pkt), prerouting, self.sysctl.checksum, profile)
            if reason is None:
                return None
        self.stats.error += 1
        if not profile.l4_error_in_packet:
            self.stats.invalid += 1
        return ConntrackResult(NF_ACCEPT, None, None, None, reason)

    def nf_conntrack_confirm(self, skb: Skb, now: float) -> ConfirmResult:
        """``__nf_conntrack_confirm()``: insert a new entry as its first packet leaves.

        If an entry with the packet's original or reply tuple was confirmed meanwhile (its
        packet won the race), the entry clashes:

        - 3.10: ``insert_failed``, the packet is dropped;
        - el7 (backport) and 4.19: ``nf_ct_resolve_clash()``: a protocol with ``allow_clash``
          (UDP) whose winner has no NAT binding, or whose entries match in both directions,
          moves the packet to the winner (accepted); otherwise ``drop``. ``insert_failed``
          counts either way;
        - 5.10+: ``__nf_ct_resolve_clash()`` as above (6.12+: the entries match, also in
          reverse) counting ``clash_resolve``; failing that ``nf_ct_resolve_clash_harder()``
          inserts the loser in the reply direction only (hidden from ``conntrack -L``,
          ``IPS_NAT_CLASH``, 1 s) unless its reply tuple clashes too; unresolved: ``drop``
          and ``insert_failed``. TCP never has ``allow_clash``.
        """
        ct, p, st = skb.ct, self.profile, self.stats
        if ct is None or ct.status & IPS_CONFIRMED or ct.untracked or skb.ctinfo in _REPLY_CTINFO:
            return _NOTHING_TO_CONFIRM
        if ct.dying:  # killed before confirmation: never inserted
            if not p.bucket_locks:
                return ConfirmResult(NfVerdict.ACCEPT, ConfirmOutcome.DYING)
            st.insert_failed += 1
            return ConfirmResult(NfVerdict.DROP, ConfirmOutcome.DYING)
        winner = self._lookup(ct.orig) or self._lookup(ct.reply)
        if winner is None:
            ct.status |= IPS_CONFIRMED
            self._hash_insert(ct)
            if not p.stats_lean:
                st.insert += 1
            return ConfirmResult(NfVerdict.ACCEPT, ConfirmOutcome.INSERTED)
        return self._resolve_clash(skb, ct, winner, now)

    def _resolve_clash(self, skb: Skb, loser: Conn, winner: Conn, now: float) -> ConfirmResult:
        """``nf_ct_resolve_clash()`` of each kernel (see :meth:`nf_conntrack_confirm`)."""
        p, st = self.profile, self.stats
        allow_clash = l4proto_allow_clash(skb)
        if not p.clash_resolve_harder:
            if p.clash_resolve and allow_clash and not winner.dying and self._can_merge(winner, loser):
                self._merge(skb, loser, winner)
                st.insert_failed += 1
                return ConfirmResult(NfVerdict.ACCEPT, ConfirmOutcome.CLASH_MERGED, self.ct_id(winner))
            if p.clash_resolve:
                st.drop += 1
            st.insert_failed += 1
            self.destroy_unconfirmed(loser)
            return ConfirmResult(NfVerdict.DROP, ConfirmOutcome.CLASH_DROP, self.ct_id(winner))
        if allow_clash:
            if self._can_merge(winner, loser):
                self._merge(skb, loser, winner)
                st.clash_resolve += 1
                return ConfirmResult(NfVerdict.ACCEPT, ConfirmOutcome.CLASH_MERGED, self.ct_id(winner))
            # nf_ct_resolve_clash_harder(): "Reply direction must never result in a clash,
            # unless both origin and reply tuples are identical."
            other = self._lookup(loser.reply)
            if other is not None:
                if self._can_merge(other, loser):
                    self._merge(skb, loser, other)
                    st.clash_resolve += 1
                    return ConfirmResult(NfVerdict.ACCEPT, ConfirmOutcome.CLASH_MERGED, self.ct_id(other))
            else:
                loser.timeout = now + HZ  # "go away real soon: 1 second timeout"
                loser.status |= IPS_FIXED_TIMEOUT | IPS_NAT_CLASH | IPS_CONFIRMED
                self._hash_insert(loser, original=False)  # the ORIGINAL add is a fake one
                st.clash_resolve += 1
                return ConfirmResult(NfVerdict.ACCEPT, ConfirmOutcome.CLASH_REPLY_ONLY, self.ct_id(winner))
        st.drop += 1
        st.insert_failed += 1
        self.destroy_unconfirmed(loser)
        return ConfirmResult(NfVerdict.DROP, ConfirmOutcome.CLASH_DROP, self.ct_id(winner))

    def _can_merge(self, winner: Conn, loser: Conn) -> bool:
        """``__nf_ct_resolve_clash()``'s test: up to 6.1 a winner without NAT binding, or
        ``nf_ct_match()``; 5.10+ refuse a dying winner; 6.12+ ``nf_ct_can_merge()``:
        ``nf_ct_match()`` or ``nf_ct_match_reverse()``."""
        p = self.profile
        if p.clash_merge_reverse:
            w_orig, w_reply = winner.tuples
            l_orig, l_reply = loser.tuples
            return (w_orig, w_reply) == (l_orig, l_reply) or (w_orig, w_reply) == (l_reply, l_orig)
        if p.clash_resolve_harder and winner.dying:
            return False
        return not winner.status & IPS_NAT_DONE_MASK or winner.tuples == loser.tuples

    def _merge(self, skb: Skb, loser: Conn, winner: Conn) -> None:
        """``nf_ct_set(skb, ct, ctinfo)``: the packet goes on with the winner's entry; the
        loser is freed."""
        self.destroy_unconfirmed(loser)
        skb.ct = winner

    def reply_tuple_taken(self, tup: CtTuple, ignored: Conn, now: float) -> bool:
        """``nf_nat_used_tuple()`` -> ``nf_conntrack_tuple_taken()``: would a connection whose
        original tuple becomes ``tup`` have a reply tuple that another confirmed entry already
        uses? Counts ``found`` on a hit. el7 and 5.0+ skip an entry whose original tuple is
        the caller's own ("Let nf_ct_resolve_clash() deal with this later")."""
        hit = self.find(invert_tuple(tup), now)
        if hit is None or hit[0] is ignored:
            return False
        if self.profile.tuple_taken_same_origin and hit[0].tuples[ORIGINAL] == ignored.tuples[ORIGINAL]:
            return False
        self.stats.found += 1
        return True


def _ctinfo(ct: Conn, direction: int) -> CtInfo:
    """``resolve_normal_ct()``'s ctinfo for a packet that found ``ct``: a reply is
    ESTABLISHED_REPLY; an original-direction packet ESTABLISHED once a reply was seen, else
    NEW."""
    if direction == REPLY:
        return IP_CT_ESTABLISHED_REPLY
    return IP_CT_ESTABLISHED if ct.status & IPS_SEEN_REPLY else IP_CT_NEW


_REPLY_CTINFO = (IP_CT_ESTABLISHED_REPLY, IP_CT_RELATED_REPLY)
_NOTHING_TO_CONFIRM = ConfirmResult(NfVerdict.ACCEPT, None)


def l4proto_allow_clash(skb: Skb) -> bool:
    """``l4proto->allow_clash``: UDP (and UDP-Lite) in every kernel that resolves clashes;
    never TCP. (ICMP gained it after 6.18.)"""
    return skb.pkt.proto is IPPROTO_UDP


def format_entry(entry: CtEntry, now: float) -> str:
    """One line of ``conntrack -L`` for an entry as it stood (libnetfilter_conntrack's default
    output format: protocol name padded to 8 and number, seconds left, the TCP state, the
    original tuple, [UNREPLIED] before the reply tuple, [ASSURED] after it, mark and use). An
    ICMP tuple prints ``type= code= id=`` instead of ports."""
    remaining = max(int(entry.expires - now), 0)
    name = IpProto(entry.proto).name.lower()
    state = f"{entry.state.name} " if entry.proto == IpProto.TCP else ""
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
