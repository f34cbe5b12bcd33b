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

from sim.netfilter.changes import CHANGES, CHANGES_BY_KEY, release_key


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

    def __hash__(self) -> int:
        """By name: the generated hash of every switch made each lookup keyed by a profile
        (:func:`sim.netfilter.conntrack.stat_names`, per packet) cost microseconds. Equal
        profiles have equal names."""
        return hash(self.name)


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
    limit = release_key(base)
    have = [c for c in CHANGES if release_key(c.release) <= limit or c.key in backports]
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

    A release string prints one line to stderr (when ``note``) saying how it was resolved, the
    changes of the changelog that the release has and the profile lacks (``5.4`` -> ``4.19``
    lacks the 5.0 NAT changes), and whether its suffix is not a known upstream-tracking
    distribution build (the vendor may carry backports). ValueError (one line) when ``text`` is
    not a release, or is older than every profile.
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
    candidates = [p for p in PROFILES.values() if p.name[0].isdigit() and release_key(p.name) <= wanted]
    if not candidates:
        raise ValueError(f"kernel {text!r}: older than every profile (oldest: {next(iter(PROFILES))})")
    profile = max(candidates, key=lambda p: release_key(p.name))
    suffix = text[m.end(3) if m[3] else m.end(2) :]
    if note:
        newest = profile is list(PROFILES.values())[-1]
        how = (
            f"newer than every profile, using the newest, {profile.name}"
            if newest and release_key(profile.name) < wanted
            else f"profile {profile.name} (the newest not newer than {wanted[0]}.{wanted[1]})"
        )
        missing = [
            c
            for c in CHANGES
            if release_key(profile.name) < release_key(c.release) <= wanted and not getattr(profile, c.switch)
        ]
        if missing:
            how += "; it lacks " + ", ".join(f"{c.key} ({c.release})" for c in missing)
        if suffix and not _UPSTREAM_SUFFIXES.fullmatch(suffix):
            how += f"; vendor suffix {suffix!r} not known, using upstream {profile.name}"
        print(f"nflab: kernel {text}: {how}", file=sys.stderr)
    return profile


KERNEL_HELP = f"kernel: a profile ({', '.join(PROFILES)}) or what uname -r prints"


def kernel_arg(text: str) -> str:
    """``--kernel`` on the command line: :func:`resolve_kernel` for argparse -> the profile's
    name; a bad one is argparse's one-line error."""
    import argparse

    try:
        return resolve_kernel(text).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def switches(profile: KernelProfile) -> dict[str, bool]:
    """The behaviour switches of ``profile`` by name (for listings and diffs)."""
    values = {f.name: getattr(profile, f.name) for f in fields(profile)}
    return {name: value for name, value in values.items() if isinstance(value, bool)}
