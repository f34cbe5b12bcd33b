"""Kernel profiles: how ``nf_conntrack_proto_tcp.c`` (and ``nf_conntrack_proto_udp.c``,
``nf_conntrack_proto_icmp.c``), ``nf_conntrack_core.c`` and ``nf_nat_core.c`` behave in the
kernels nflab models.

The profiles are an executable changelog. :data:`CHANGES` lists, oldest first, every change
of the TCP tracker (and of what it logs) that alters a verdict, a reason, a state or a
timeout on the INVALID path, and every change of the conntrack core (confirmation and its
clash handling, the statistics counters, early drop, the "table full" line) and of NAT port
choice that alters what a packet meets: the upstream commit, its subject, the first release
that has it, and the :class:`KernelProfile` switch it sets. A release's profile is the 3.10 baseline
plus every change released up to it; a vendor or stable kernel is a base release plus named
backports (:func:`build`). The code that reads a switch (``proto_tcp``, ``tcp_states``)
keeps the old and the new branch next to each other.

Each profile names the tree its behaviour was read from and checked against: the real
``nf_conntrack_proto_tcp.c`` of that tree, compiled in userspace (``/work/shared/ktcp``),
made the recordings in ``tests/kernel/observed-<profile>/`` that the model must match.
A point release is not a version: stable trees carry backports, so each profile says which
point release it was recorded from (``release``); an older point release of the same series
may lack a later backport (e.g. 5.15.215's 2026 RST direction check).

:func:`resolve_kernel` maps what ``uname -r`` prints to a profile.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class KernelProfile:
    """How one kernel tracks TCP. Every switch is False/old in 3.10 and names the change
    (:data:`CHANGES`) that flips it."""

    name: str
    description: str
    # The tree and point release the profile was recorded from.
    release: str = "3.10.99"
    source: str = ""
    # Names of the CHANGES this profile has, oldest first.
    changes: tuple[str, ...] = ()
    # Bound II passes while the receiver's window is unknown ("!receiver->td_maxwin ||").
    bound_ii_unknown_receiver: bool = False
    # REPLY syn in TIME_WAIT: sSS (server reopens, may have switched role); 3.10: sIV.
    reply_syn_reopens_time_wait: bool = False
    # RFC 5961: a SYN ignored in LAST_ACK marks IP_CT_EXP_CHALLENGE_ACK; the peer's ACK
    # answering it is "challenge-ack ignored" and the state stays LAST_ACK.
    challenge_ack_last_ack: bool = False
    # nf_ct_l4proto_log_invalid(): "nf_ct_proto_6: " prefix and lower-case texts ("invalid
    # rst", "bad checksum", "challenge-ack ignored"); 3.10: nf_log_packet("nf_ct_tcp: ...").
    log_l4proto: bool = False
    # SYN_SENT2 marks IP_CT_TCP_SIMULTANEOUS_OPEN; the REPLY ACK in SYN_RECV -> ESTABLISHED.
    simultaneous_open: bool = False
    # A zero window last seen (last_win == 0) caps the timeout at RETRANS.
    zero_window_retrans_timeout: bool = False
    # Retransmission counting compares the raw window (win_raw); before: the scaled one.
    retrans_raw_window: bool = False
    # A RST in ESTABLISHED (assured) whose seq is in window but not td_maxack keeps the
    # state (challenge ACK, RFC 5961) unless it follows data ("part of train"); any RST
    # gets the CLOSE timeout. Before: every in-window RST -> CLOSE.
    rst_exact_seq: bool = False
    # Mid-stream pickup: "else if (sack == receiver->td_end + 1) receiver->td_end++".
    keepalive_td_end_bump: bool = False
    # sysctl nf_conntrack_tcp_ignore_invalid_rst exists.
    has_ignore_invalid_rst: bool = False
    # A RST in a closing state skips every RST check and the window check; otherwise the
    # td_maxack check is skipped after a SYN we let through, and seq 0 outside established
    # (an answer to such a SYN) is accepted.
    rst_tuple_reuse: bool = False
    # "packet (index %d) in dir %d ignored, state %s"; before: "invalid packet ignored in
    # state %s".
    log_ignored_index: bool = False
    # tcp_options() / state reset keep IP_CT_TCP_FLAG_BE_LIBERAL; before: all flags cleared.
    options_keep_be_liberal: bool = False
    # Bound I failing by a small overshoot still moves td_end ("%u bytes more than expected").
    overshoot_td_end: bool = False
    # A retransmitted SYN in SYN_SENT (no reply seen) does not renew the timeout.
    syn_retransmit_no_renew: bool = False
    # Sender re-initialisation only for a SYN in SYN_SENT/SYN_RECV (a SYN without ACK from
    # the reply side then returns ACCEPT); before: any segment, SYN_SENT+ORIGINAL or
    # SYN_RECV+REPLY.
    reinit_requires_syn: bool = False
    # tcp_in_window() returns IGNORE for bounds II/IV and a small overshoot of I, checks
    # I, III, II, IV one by one and logs the bound's value; before: one combined test,
    # every failure INVALID, message order I, II, III, IV.
    window_ignore: bool = False
    # nf_tcp_handle_invalid(): an out-of-window FIN/RST answering the peer's FIN/RST lowers
    # an assured entry's timeout to UNACK.
    handle_invalid_timeout: bool = False
    # RFC 5961 challenge ACK during connection reuse: the REPLY ACK ignored in SYN_SENT is
    # remembered (last_ack) and a RST with that seq skips the window check.
    challenge_ack_syn_sent: bool = False
    # "packet (index %d) in dir %d invalid, state %s"; before: "invalid state".
    log_invalid_index: bool = False
    # Window scaling is switched off for both sides only when the reply-direction SYN/ACK
    # shows one side did not offer it; before: tested in either direction.
    wscale_check_reply_only: bool = False
    # tcp_new() logs "invalid new" when the state table refuses the first packet.
    log_invalid_new: bool = False
    # The "RST answering a SYN/ACK we let through" shortcut needs the RST to go the
    # opposite way to the recorded SYN ("ct->proto.tcp.last_dir != dir").
    rst_to_syn_needs_other_dir: bool = False
    # -- nf_conntrack_core.c and nf_nat_core.c --------------------------------------------
    # NF_NAT_RANGE_PROTO_RANDOM_FULLY exists (--random-fully); before, the flag is unknown.
    nat_random_fully: bool = False
    # The per-bucket-lock rework of nf_conntrack_core.c: early_drop() takes the first
    # unassured entry of a chain; an entry found dying at confirmation is dropped and counted
    # insert_failed (before: the last unassured one; a dying entry is accepted uncounted).
    bucket_locks: bool = False
    # nf_ct_resolve_clash(): a protocol with allow_clash (UDP) losing the insertion race is
    # merged into the winner when the winner has no NAT or both match; before: dropped.
    clash_resolve: bool = False
    # early_drop() scans NF_CT_EVICTION_RANGE buckets with early_drop_list() (every
    # evictable entry of the first bucket that has one); before: up to 8 entries, chain by
    # chain from the new tuple's bucket on.
    early_drop_buckets: bool = False
    # The stats lost searched/new/delete/delete_list; found counts only
    # nf_conntrack_tuple_taken() hits and insert only ctnetlink's inserts.
    stats_lean: bool = False
    # nf_conntrack_core.c defines pr_fmt (KBUILD_MODNAME ": "): log lines get a second
    # "nf_conntrack: " prefix.
    core_pr_fmt: bool = False
    # nf_conntrack_tuple_taken() skips an entry whose original tuple is the caller's own
    # (same-origin flows: left to clash resolution).
    tuple_taken_same_origin: bool = False
    # nf_ct_resolve_clash_harder(): an unmergeable loser is inserted in the reply direction
    # only (IPS_NAT_CLASH, 1 s timeout); resolved clashes count clash_resolve, not insert_failed.
    clash_resolve_harder: bool = False
    # The "ignore" counter is gone (a packet that already has an entry is not counted).
    no_ignore_stat: bool = False
    # early_drop() walks to the next bucket ((bucket + 1) % hsize); before: reciprocal_scale
    # of hash + 1, i.e. nearly always the same bucket again.
    early_drop_next_bucket: bool = False
    # nf_nat_l4proto_unique_tuple(): random start, at most 128 attempts then halving
    # rounds; before: the shared per-protocol rover, the whole range.
    nat_random_offset: bool = False
    # --random also takes the random start (no secure_port() hash).
    nat_random_any: bool = False
    # The chaintoolong counter: confirmation refuses a hash chain longer than 50..80.
    chaintoolong: bool = False
    # nf_conntrack_buckets defaults to nf_conntrack_max (max_factor 1); before: max / 4.
    buckets_eq_max: bool = False
    # nf_ct_can_merge(): a clash merges when the entries match, also in reverse; the
    # "winner has no NAT" shortcut is gone.
    clash_merge_reverse: bool = False
    # get_unique_tuple() keeps the original tuple through nf_nat_used_tuple_new() (a reverse
    # clash of two un-NATed allow_clash entries is left to confirmation).
    nat_used_tuple_new: bool = False
    # nf_nat_used_tuple_harder(): in the last 32 attempts for a TCP SYN_SENT entry, a colliding
    # SNATed TIME_WAIT entry whose sequence has advanced is killed and its port reused.
    nat_evict_time_wait: bool = False
    # A DST manip without --random starts the port search at offset 0.
    nat_dst_offset_zero: bool = False
    # "table full in netns %u, dropping packet" outside init_net.
    table_full_netns: bool = False
    # UDP (nf_conntrack_proto_udp.c): the stream timeout (120 s; before 180 s) only for a
    # packet more than 2 s after the entry was created (ct->proto.udp.stream_ts).
    udp_stream_after_2s: bool = False
    # UDP: ASSURED only once the flow is a stream; before: any packet after the reply.
    udp_assured_stream_only: bool = False
    # The UDP and ICMP error checks run inside the trackers (nf_conntrack_udp_packet(),
    # nf_conntrack_handle_icmp()): a refused packet counts "invalid" (UDP) or "error" (ICMP)
    # only; before, l4proto->error() ran first and counted both.
    l4_error_in_packet: bool = False
    # nf_conntrack_inet_error(): an ICMP error's destination must be the destination of the
    # entry's direction it relates to ("outer daddr %pI4 != inner %pI4").
    icmp_outer_daddr_check: bool = False

    @property
    def log_prefix(self) -> str:
        """The prefix of the kernel's log lines for this tracker."""
        return "nf_ct_proto_6: " if self.log_l4proto else "nf_ct_tcp: "


@dataclass(frozen=True, slots=True)
class Change:
    """One behaviour change of the TCP tracker: an entry of the executable changelog.

    ``commit`` is the upstream commit id ("" where the mails searched did not name it;
    ``note`` then says how the release was bounded instead)."""

    key: str  # short name, used to name backports
    commit: str  # upstream commit id (12 hex digits), "" when not identified
    subject: str  # its subject line
    release: str  # first upstream release that has it
    switch: str  # the KernelProfile field it sets to True
    note: str = ""


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release.split("."))


def _by_release(*changes: Change) -> tuple[Change, ...]:
    """The changes oldest first (stable: same-release changes keep their written order)."""
    return tuple(sorted(changes, key=lambda c: _release_key(c.release)))


_BOUNDED = "commit not identified; release bounded by the recorded trees (absent in {0}, present in {1})"

# Oldest first. Commit ids, subjects and releases from the netdev/netfilter-devel, stable and
# pull-request mails; every switch was confirmed by diffing nf_conntrack_proto_tcp.c between
# the recorded trees and by the judges' recordings.
CHANGES: tuple[Change, ...] = _by_release(
    Change(
        "fast-open",
        "356d7d88e088",
        "netfilter: nf_conntrack: fix tcp_in_window for Fast Open",
        "3.11",
        "bound_ii_unknown_receiver",
    ),
    Change(
        "tw-reopen-reply",
        "",
        "netfilter: conntrack: allow server to become a client in TW handling",
        "4.19",
        "reply_syn_reopens_time_wait",
        _BOUNDED.format("3.10.99", "4.19.1; backported to RHEL 7"),
    ),
    Change(
        "rfc5961-last-ack",
        "",
        "netfilter: conntrack: RFC5961 challenge ACK confuse conntrack LAST-ACK transition",
        "4.19",
        "challenge_ack_last_ack",
        _BOUNDED.format("3.10.99", "4.19.1; backported to RHEL 7 (kernel-3.10.0-229.7.2)"),
    ),
    Change(
        "simultaneous-open",
        "",
        "netfilter: conntrack: mark simultaneous open (IP_CT_TCP_SIMULTANEOUS_OPEN)",
        "4.19",
        "simultaneous_open",
        _BOUNDED.format("3.10.99 and 3.10.0-1160.el7", "4.19.1"),
    ),
    Change(
        "l4proto-log",
        "",
        "netfilter: conntrack: log invalid packets through nf_ct_l4proto_log_invalid",
        "4.19",
        "log_l4proto",
        _BOUNDED.format("3.10.0-1160.el7", "4.19.1"),
    ),
    Change(
        "zero-window-timeout",
        "",
        "netfilter: conntrack: use the RETRANS timeout while the window is zero",
        "4.19",
        "zero_window_retrans_timeout",
        _BOUNDED.format("3.10.0-1160.el7", "4.19.1"),
    ),
    Change(
        "raw-window",
        "959b69ef57db",
        "netfilter: conntrack: always store window size un-scaled",
        "5.3",
        "retrans_raw_window",
    ),
    Change(
        "l4-error-in-packet",
        "",
        "netfilter: conntrack: run the udp/icmp error checks from the trackers, not l4proto->error",
        "5.10",
        "l4_error_in_packet",
        _BOUNDED.format("4.19.1", "5.10.13"),
    ),
    Change(
        "icmp-outer-daddr",
        "",
        "netfilter: conntrack: an ICMP error's outer destination must match the entry's (outer daddr)",
        "5.10",
        "icmp_outer_daddr_check",
        _BOUNDED.format("4.19.1", "5.10.13"),
    ),
    Change(
        "udp-stream-2s",
        "d535c8a69c19",
        "netfilter: conntrack: udp: only extend timeout to stream mode after 2s",
        "5.10",
        "udp_stream_after_2s",
        "release bounded by the recorded trees (absent in 4.19.1, present in 5.10.13); the same trees"
        " lower udp_timeout_stream from 180 s to 120 s",
    ),
    Change(
        "rst-exact-seq",
        "be0502a3f2e9",
        "netfilter: conntrack: tcp: only close if RST matches exact sequence",
        "5.10",
        "rst_exact_seq",
        "release bounded by the recorded trees (absent in 4.19.1, present in 5.10.13)",
    ),
    Change(
        "keepalive-pickup",
        "4f25434bccc2",
        "netfilter: conntrack: connection timeout after re-register",
        "5.10",
        "keepalive_td_end_bump",
    ),
    Change(
        "log-ignored-index",
        "07b5a76e1892",
        "netfilter: conntrack: avoid misleading 'invalid' in log message",
        "5.12",
        "log_ignored_index",
    ),
    Change(
        "ignore-invalid-rst",
        "1da4cd82dd18",
        "netfilter: conntrack: add new sysctl to disable RST check",
        "5.14",
        "has_ignore_invalid_rst",
    ),
    Change(
        "rst-tuple-reuse",
        "c4edc3ccbc63",
        "netfilter: conntrack: improve RST handling when tuple is re-used",
        "5.14",
        "rst_tuple_reuse",
    ),
    Change(
        "udp-assured-stream",
        "b7b1d02fc439",
        "netfilter: conntrack: set on IPS_ASSURED if flows enters internal stream state",
        "5.16",
        "udp_assured_stream_only",
        "net-next, October 2021; in 5.10.y and 5.15.y stable (November 2021)",
    ),
    Change(
        "keep-be-liberal",
        "f2dd495a8d58",
        "netfilter: nf_conntrack_tcp: preserve liberal flag in tcp options",
        "5.18",
        "options_keep_be_liberal",
    ),
    Change(
        "syn-sent-no-renew",
        "e15d4cdf27cb",
        "netfilter: conntrack: do not renew entry stuck in tcp SYN_SENT state",
        "5.18",
        "syn_retransmit_no_renew",
    ),
    Change(
        "reinit-syn-only",
        "c7aab4f17021",
        "netfilter: nf_conntrack_tcp: re-init for syn packets only",
        "5.18",
        "reinit_requires_syn",
    ),
    Change(
        "log-invalid-index",
        "f74360d3440c",
        "netfilter: conntrack: remove pr_debug callsites from tcp tracker",
        "5.19",
        "log_invalid_index",
    ),
    Change(
        "exceeded-window",
        "cf97769c761a",
        "netfilter: conntrack: work around exceeded receive window",
        "6.0",
        "overshoot_td_end",
    ),
    Change(
        "overly-delayed",
        "6e250dcbff1d",
        "netfilter: conntrack: ignore overly delayed tcp packets",
        "6.1",
        "window_ignore",
    ),
    Change(
        "out-of-window-fin-rst",
        "628d694344a0",
        "netfilter: conntrack: reduce timeout when receiving out-of-window fin or rst",
        "6.1",
        "handle_invalid_timeout",
    ),
    Change(
        "challenge-ack-reuse",
        "c410cb974f2b",
        "netfilter: conntrack: handle tcp challenge acks during connection reuse",
        "6.2",
        "challenge_ack_syn_sent",
    ),
    Change(
        "log-invalid-new",
        "6ac9c51eebe8",
        "netfilter: conntrack: prefer tcp_error_log to pr_debug",
        "6.7",
        "log_invalid_new",
    ),
    Change(
        "wscale-reply-only",
        "",
        "netfilter: conntrack: check window scaling only on the reply-direction SYN/ACK",
        "6.12",
        "wscale_check_reply_only",
        "commit not identified; absent in the 6.1 series (Aug 2022), present in 6.1.175 (stable) and 6.12.19",
    ),
    Change(
        "rst-to-syn-other-dir",
        "bed6e04be8e6",
        "netfilter: conntrack: tcp: do not force CLOSE on invalid-seq RST without direction check",
        "7.1",
        "rst_to_syn_needs_other_dir",
        "upstream in 2026 after 6.18; first mainline release not verified; in 5.15.y and 6.18.y stable",
    ),
    Change(
        "random-fully",
        "34ce324019e7",
        "netfilter: nat: add full port randomization support",
        "3.14",
        "nat_random_fully",
        "commit id recalled, not confirmed in a mail; absent in 3.10.99, present in 3.10.0-1160.el7",
    ),
    Change(
        "bucket-locks",
        "",
        "netfilter: conntrack: fine grained locking (per-bucket locks)",
        "3.19",
        "bucket_locks",
        "commit not identified, release not verified; absent in 3.10.99, backported to "
        "3.10.0-1160.el7, superseded in 4.19.1 by early_drop_list()",
    ),
    Change(
        "clash-resolve",
        "71d8c47fc653",
        "netfilter: conntrack: introduce clash resolution on insertion race",
        "4.8",
        "clash_resolve",
    ),
    Change(
        "early-drop-buckets",
        "",
        "netfilter: conntrack: early_drop evicts from NF_CT_EVICTION_RANGE buckets",
        "4.19",
        "early_drop_buckets",
        _BOUNDED.format("3.10.99 and 3.10.0-1160.el7", "4.19.1"),
    ),
    Change(
        "stats-lean",
        "",
        "netfilter: conntrack: remove unused statistics counters",
        "4.19",
        "stats_lean",
        _BOUNDED.format("3.10.99 and 3.10.0-1160.el7", "4.19.1"),
    ),
    Change(
        "core-pr-fmt",
        "",
        "netfilter: conntrack: nf_conntrack_core.c defines pr_fmt",
        "4.19",
        "core_pr_fmt",
        _BOUNDED.format("3.10.99 and 3.10.0-1160.el7", "4.19.1"),
    ),
    Change(
        "same-origin",
        "",
        "netfilter: nf_nat: skip nat clash resolution for same-origin entries",
        "5.0",
        "tuple_taken_same_origin",
        "commit 4e35c1cb9460 recalled, not confirmed; absent in 4.19.1, present in 5.10.13 "
        "and backported to 3.10.0-1160.el7",
    ),
    Change(
        "clash-harder",
        "",
        "netfilter: conntrack: allow insertion of clashing entries",
        "5.7",
        "clash_resolve_harder",
        "commit 6a757c07e51f recalled, not confirmed; absent in 4.19.1, present in 5.10.13",
    ),
    Change(
        "no-ignore-stat",
        "",
        "netfilter: conntrack: remove the ignore counter",
        "5.10",
        "no_ignore_stat",
        _BOUNDED.format("4.19.1", "5.10.13"),
    ),
    Change(
        "early-drop-next-bucket",
        "",
        "netfilter: conntrack: early_drop walks to the next bucket",
        "5.10",
        "early_drop_next_bucket",
        _BOUNDED.format("4.19.1", "5.10.13"),
    ),
    Change(
        "nat-random-offset",
        "",
        "netfilter: nat: limit port clash resolution attempts",
        "5.10",
        "nat_random_offset",
        "commit a504b703bb1d recalled, not confirmed; rover absent, random start and 128 "
        "attempts present in 5.10.13 (not in 4.19.1); backported to 3.10.0-1160.el7",
    ),
    Change(
        "nat-random-any",
        "",
        "netfilter: nat: --random takes the random start too (secure_port() gone)",
        "5.10",
        "nat_random_any",
        _BOUNDED.format("4.19.1 and 3.10.0-1160.el7", "5.10.13"),
    ),
    Change(
        "chaintoolong",
        "",
        "netfilter: refuse insertion if chain has grown too large",
        "5.15",
        "chaintoolong",
        "commit d7e7747ac5c2 recalled, not confirmed; absent in 5.10.13, present in 5.15.215",
    ),
    Change(
        "buckets-eq-max",
        "",
        "netfilter: conntrack: sanitize table size default settings",
        "5.15",
        "buckets_eq_max",
        "commit d532bcd0b269 recalled, not confirmed; absent in 5.10.13, present in 5.15.215",
    ),
    Change(
        "clash-merge-reverse",
        "",
        "netfilter: conntrack: merge clashing entries that match in reverse",
        "6.12",
        "clash_merge_reverse",
        _BOUNDED.format("6.1.175", "6.12.19"),
    ),
    Change(
        "nat-used-tuple-new",
        "",
        "netfilter: nat: check for a reverse clash when keeping the original tuple",
        "6.12",
        "nat_used_tuple_new",
        _BOUNDED.format("6.1.175", "6.12.19"),
    ),
    Change(
        "nat-evict-time-wait",
        "",
        "netfilter: nat: evict a colliding TIME_WAIT entry in the last port attempts",
        "6.12",
        "nat_evict_time_wait",
        _BOUNDED.format("6.1.175", "6.12.19"),
    ),
    Change(
        "nat-dst-offset-zero",
        "",
        "netfilter: nat: DST port search starts at offset 0 without --random",
        "6.12",
        "nat_dst_offset_zero",
        _BOUNDED.format("6.1.175", "6.12.19"),
    ),
    Change(
        "table-full-netns",
        "",
        "netfilter: conntrack: name the netns in the table full message",
        "6.18",
        "table_full_netns",
        _BOUNDED.format("6.12.19", "6.18.35"),
    ),
)
CHANGES_BY_KEY = {c.key: c for c in CHANGES}


def build(
    name: str,
    base: str,
    description: str,
    release: str,
    source: str,
    backports: tuple[str, ...] = (),
) -> KernelProfile:
    """The profile of upstream ``base`` (every change released up to it) plus ``backports``
    (keys of later changes a stable or vendor tree carries)."""
    unknown = [k for k in backports if k not in CHANGES_BY_KEY]
    if unknown:
        raise ValueError(f"profile {name}: unknown backports {unknown}")
    limit = _release_key(base)
    have = [c for c in CHANGES if _release_key(c.release) <= limit or c.key in backports]
    settings: dict[str, Any] = {c.switch: True for c in have}
    settings["changes"] = tuple(c.key for c in have)
    return replace(KernelProfile(name, description, release, source), **settings)


PROFILES: dict[str, KernelProfile] = {
    p.name: p
    for p in (
        build(
            "3.10",
            "3.10",
            "Linux 3.10 (upstream 3.10.y): every out-of-window segment is INVALID",
            "3.10.99",
            "harviswang/linux-3.10.99",
        ),
        build(
            "el7",
            "3.10",
            "CentOS/RHEL 7 (3.10.0-1160.el7): 3.10 with RHEL backports; the late ACK is INVALID",
            "3.10.0-1160.el7",
            "tremb1e/linux-3.10.0-1160.el7",
            (
                "fast-open",
                "tw-reopen-reply",
                "rfc5961-last-ack",
                "random-fully",
                "bucket-locks",
                "clash-resolve",
                "same-origin",
                "nat-random-offset",
            ),
        ),
        build(
            "4.19",
            "4.19",
            "Linux 4.19: every out-of-window segment is INVALID",
            "4.19.1",
            "chens37/linux-4.19.1",
        ),
        build(
            "5.10",
            "5.10",
            "Linux 5.10: exact-seq RST checks; out-of-window segments still INVALID",
            "5.10.13",
            "Rtoax/linux-5.10.13",
        ),
        build(
            "5.15",
            "5.15",
            "Linux 5.15.y: ignore_invalid_rst; out-of-window segments still INVALID",
            "5.15.215",
            "unifreq/linux-5.15.y",
            (
                "udp-assured-stream",
                "keep-be-liberal",
                "syn-sent-no-renew",
                "exceeded-window",
                "rst-to-syn-other-dir",
            ),
        ),
        build(
            "6.1",
            "6.1",
            "Linux 6.1.y: overly delayed ACKs and old retransmissions are IGNOREd",
            "6.1.175",
            "atho13/linux-6.1.y",
            ("challenge-ack-reuse", "wscale-reply-only"),
        ),
        build(
            "6.12",
            "6.12",
            'Linux 6.12.y: as 6.1, and tcp_new() logs "invalid new"',
            "6.12.19",
            "wishday/linux-6.12.y",
        ),
        build(
            "6.18",
            "6.18",
            "Linux 6.18.y (the live kernel here): as 6.12, RST-to-SYN shortcut only the other way",
            "6.18.35",
            "leftymods/linux-6.18.y",
            ("rst-to-syn-other-dir",),
        ),
    )
}
DEFAULT_PROFILE = "6.18"


def get_profile(name: str) -> KernelProfile:
    """The profile called ``name``; ValueError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown kernel profile {name!r} (known: {known})") from None


# What `uname -r` prints: VERSION.PATCHLEVEL[.SUBLEVEL][-EXTRA] (EXTRA: distribution,
# build or local version, e.g. "-1160.el7.x86_64", "-91-generic", "-26-amd64").
_RELEASE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?(?:[-+_.~].*)?")
# Vendor kernels whose tracker is not upstream's at their base release.
_VENDORS = (("el7", re.compile(r"^3\.10\.0-\d+.*\.el7")),)
# Suffixes of distributions that ship their base release with only upstream stable fixes.
_UPSTREAM_SUFFIXES = re.compile(
    r"-(\d+-)?(generic|amd64|arm64|cloud-amd64|rt-amd64|lowlatency|aws|azure|gcp|kvm)"
)


def resolve_kernel(text: str, note: bool = True) -> KernelProfile:
    """A profile name or a kernel release string (what ``uname -r`` prints) -> a profile.

    Rules, in order:

    1. a profile name (``6.1``, ``el7``) is that profile;
    2. a RHEL/CentOS 7 release (``3.10.0-1160.el7.x86_64``) is ``el7``;
    3. otherwise the upstream release VERSION.PATCHLEVEL picks the newest profile not newer
       than it (``5.15.0-91-generic`` -> ``5.15``, ``6.6.30`` -> ``6.1``, ``6.18.44-fc-v857``
       -> ``6.18``, ``7.7.7`` -> ``6.18``: newer than every profile).

    A release string prints one line to stderr (when ``note``) saying how it was resolved,
    and whether its suffix is not a known upstream-tracking distribution build (the vendor
    may carry backports). ValueError (one line) when ``text`` is not a release, or is older
    than every profile.
    """
    text = text.strip()
    if text in PROFILES:
        return PROFILES[text]
    for name, pattern in _VENDORS:
        if pattern.match(text):
            if note:
                print(f"nflab: kernel {text}: a RHEL/CentOS 7 build, profile {name}", file=sys.stderr)
            return PROFILES[name]
    m = _RELEASE.fullmatch(text)
    if m is None:
        known = ", ".join(PROFILES)
        raise ValueError(f"kernel {text!r}: not a profile ({known}) nor a release like 6.1.0-26-amd64")
    wanted = (int(m[1]), int(m[2]))
    candidates = [p for p in PROFILES.values() if p.name[0].isdigit() and _release_key(p.name) <= wanted]
    if not candidates:
        raise ValueError(f"kernel {text!r}: older than every profile (oldest: {next(iter(PROFILES))})")
    profile = max(candidates, key=lambda p: _release_key(p.name))
    suffix = text[m.end(3) if m[3] else m.end(2) :]
    if note:
        newest = profile is list(PROFILES.values())[-1]
        how = (
            f"newer than every profile, using the newest, {profile.name}"
            if newest and _release_key(profile.name) < wanted
            else f"profile {profile.name} (the newest not newer than {wanted[0]}.{wanted[1]})"
        )
        if suffix and not _UPSTREAM_SUFFIXES.fullmatch(suffix):
            how += f"; vendor suffix {suffix!r} not known, using upstream {profile.name}"
        print(f"nflab: kernel {text}: {how}", file=sys.stderr)
    return profile


def switches(profile: KernelProfile) -> dict[str, bool]:
    """The behaviour switches of ``profile`` by name (for listings and diffs)."""
    values = {f.name: getattr(profile, f.name) for f in fields(profile)}
    return {name: value for name, value in values.items() if isinstance(value, bool)}
