"""The executable changelog of the kernels nflab models: every behaviour change of
``nf_conntrack_proto_{tcp,udp,icmp}.c``, ``nf_conntrack_core.c`` and ``nf_nat_core.c`` that
alters what a packet meets, with its upstream commit, subject, first release and the
:class:`sim.netfilter.profiles.KernelProfile` switch it sets (``profiles.build`` composes
them into profiles).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Change:
    """One behaviour change: an entry of the executable changelog.

    ``commit`` is the upstream commit id ("" where the mails searched did not name it;
    ``note`` then says how the release was bounded instead)."""

    key: str  # short name, used to name backports
    commit: str  # upstream commit id (12 hex digits), "" when not identified
    subject: str  # its subject line
    release: str  # first upstream release that has it
    switch: str  # the KernelProfile field it sets to True
    note: str = ""


def release_key(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release.split("."))


def _by_release(*changes: Change) -> tuple[Change, ...]:
    """The changes oldest first (stable: same-release changes keep their written order)."""
    return tuple(sorted(changes, key=lambda c: release_key(c.release)))


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
        "commit id not confirmed: no mail, stable backport or tree history searched names it;"
        " release from the trees: NF_NAT_RANGE_PROTO_RANDOM_FULLY is absent in 3.13.11's"
        " include/uapi/linux/netfilter/nf_nat.h (penhoi/linux-3.13.11.lbrpmu) and present, with"
        " the prandom_u32() start in nf_nat_proto_common.c, in 3.14.1 (nadavitay/linux-3.14.1), as"
        " iptables' libxt_SNAT.man says (kernel >= 3.14; libxt_MASQUERADE.man's 3.13 is wrong);"
        " absent in 3.10.99, present in 3.10.0-1160.el7",
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
        "4e35c1cb9460",
        "netfilter: nf_nat: skip nat clash resolution for same-origin entries",
        "5.0",
        "tuple_taken_same_origin",
        "commit named by the Fixes: tag of 07998281c268 ('netfilter: conntrack: skip identical"
        " origin tuple in same zone only', netfilter-devel 2021-02-05, and its stable backports);"
        " release from the trees: the check is absent in 4.20.0's nf_conntrack_tuple_taken()"
        " (a4913994/linux-4.20), present in 5.0.0's (akshaybaviskar/Linux-5.0); absent in 4.19.1,"
        " present in 5.10.13, backported to 3.10.0-1160.el7",
    ),
    Change(
        "nat-random-offset",
        "a504b703bb1d",
        "netfilter: nat: limit port clash resolution attempts",
        "5.0",
        "nat_random_offset",
        "commit named in the stable mails '4.19.y stable request: nat soft lockup fix' (2022-02-02,"
        " with 6ed5943f8735 'netfilter: nat: remove l4 protocol port rovers') and '[PATCH 4.14"
        " 40/69] netfilter: nat: limit port clash resolution attempts' (2022-02-07, 'commit"
        " a504b703bb1d... upstream'); release from the trees: the rover and the whole-range walk"
        " are in 4.20.0's nf_nat_proto_common.c (a4913994/linux-4.20), the random start and"
        " max_attempts = 128 with another_round in 5.0.0's nf_nat_core.c (akshaybaviskar/Linux-5.0);"
        " absent in 4.19.1 (4.19.y got both in February 2022), present in 5.10.13, backported to"
        " 3.10.0-1160.el7",
    ),
    Change(
        "nat-random-any",
        "",
        "netfilter: nat: --random takes the random start too (secure_port() gone)",
        "5.0",
        "nat_random_any",
        "commit not identified; release from the trees: 4.20.0's nf_nat_proto_common.c starts"
        " --random at l3proto->secure_port() (a4913994/linux-4.20), 5.0.0's nf_nat_core.c at"
        " prandom_u32() unless NF_NAT_RANGE_PROTO_OFFSET (akshaybaviskar/Linux-5.0), as iptables'"
        " libxt_MASQUERADE.man says ('Since kernel 5.0, --random is identical to --random-fully');"
        " absent in 4.19.1 and 3.10.0-1160.el7, present in 5.10.13",
    ),
    Change(
        "clash-harder",
        "6a757c07e51f",
        "netfilter: conntrack: allow insertion of clashing entries",
        "5.6",
        "clash_resolve_harder",
        "in the net tree's pull for 5.6-rc3 ([GIT] Networking, netdev "
        "2020-02-20, which also adds IPS_NAT_CLASH to nf_conntrack_common.h); absent in 4.19.1, "
        "present in 5.10.13",
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
        "chaintoolong",
        "d7e7747ac5c2",
        "netfilter: refuse insertion if chain has grown too large",
        "5.15",
        "chaintoolong",
        "'[PATCH net 0/5] Netfilter fixes for net' (netdev 2021-09-03), applied to net as"
        " d7e7747ac5c2 (patchwork-bot, 2021-09-04), in '[GIT PULL] Networking for 5.15-rc1'"
        " (Jakub Kicinski to Linus, 2021-09-07); the recorded tree's limit of 50 + a random 0..29"
        " comes later: c9c3b6811f74 'make max chain length random' ('[GIT PULL] Networking for"
        " 5.15-rc4', 2021-09-30) and 'adopt safer max chain length' (netdev 2023-03-07,"
        " MIN_CHAINLEN 50, MAX_CHAINLEN 80 - 50); absent in 5.10.13, present in 5.15.215",
    ),
    Change(
        "buckets-eq-max",
        "d532bcd0b269",
        "netfilter: conntrack: sanitize table size default settings",
        "5.15",
        "buckets_eq_max",
        "'[PATCH net 2/5] netfilter: conntrack: sanitize table size default settings' (netdev"
        " 2021-09-03: max_factor = 1), applied to net as d532bcd0b269 (patchwork-bot, 2021-09-04),"
        " in '[GIT PULL] Networking for 5.15-rc1' (2021-09-07); absent in 5.10.13, present in"
        " 5.15.215",
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
