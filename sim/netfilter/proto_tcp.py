"""TCP connection tracking (net/netfilter/nf_conntrack_proto_tcp.c).

Names follow the kernel: ``tcp_error``, ``tcp_new``, ``tcp_in_window``,
``nf_conntrack_tcp_packet``. Each function's docstring names what it mirrors; the branches
that differ between kernels test a switch of :class:`sim.netfilter.profiles.KernelProfile`,
each set by one entry of the changelog ``sim.netfilter.changes.CHANGES``.

Sequence numbers are ints in [0, 2**32); arithmetic is masked with ``& SEQ_MASK`` where the
kernel's ``u32`` would wrap. Timeouts are in seconds of virtual time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Final

from sim.include.nf_conntrack import ORIGINAL, REPLY
from sim.include.nf_conntrack_tcp import (
    IP_CT_EXP_CHALLENGE_ACK,
    IP_CT_TCP_FLAG_BE_LIBERAL,
    IP_CT_TCP_FLAG_CLOSE_INIT,
    IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED,
    IP_CT_TCP_FLAG_MAXACK_SET,
    IP_CT_TCP_FLAG_SACK_PERM,
    IP_CT_TCP_FLAG_WINDOW_SCALE,
    IP_CT_TCP_SIMULTANEOUS_OPEN,
    STATE_NAMES,
    TcpCt,
    TcpDirState,
    TcpIndex,
    TcpState,
)
from sim.netfilter.hooks import NfVerdict
from sim.netfilter.profiles import KernelProfile
from sim.netfilter.tcp_states import get_conntrack_index, state_table
from sim.packet import (
    SEQ_MASK,
    TCP_MAX_WSCALE,
    TCPHDR_ACK,
    TCPHDR_CWR,
    TCPHDR_ECE,
    TCPHDR_FIN,
    TCPHDR_PSH,
    TCPHDR_RST,
    TCPHDR_SYN,
    TCPHDR_URG,
    Packet,
    TcpOptions,
    after,
    before,
)
from sim.trace import Bound, WindowCheck

if TYPE_CHECKING:
    from sim.include.nf_conntrack import Conn
    from sim.netfilter.sysctl import ConntrackSysctls

MAXACKWINCONST: Final = 66000  # "Fixme: what about big packets?"


class TcpAction(IntEnum):
    """``enum nf_ct_tcp_action``: what ``tcp_in_window`` (6.1) decided."""

    IGNORE = 0
    INVALID = 1
    ACCEPT = 2


# The members the path of every segment names, under the kernel's own names: a module global
# is several times faster to read than ``TcpAction.ACCEPT`` (an attribute of an Enum class).
NFCT_TCP_IGNORE: Final = TcpAction.IGNORE
NFCT_TCP_INVALID: Final = TcpAction.INVALID
NFCT_TCP_ACCEPT: Final = TcpAction.ACCEPT
NF_ACCEPT: Final = NfVerdict.ACCEPT
TCP_ACK_SET: Final = TcpIndex.ACK
TCP_RST_SET: Final = TcpIndex.RST
TCP_CONNTRACK_ESTABLISHED: Final = TcpState.ESTABLISHED
TCP_CONNTRACK_SYN_RECV: Final = TcpState.SYN_RECV
TCP_CONNTRACK_FIN_WAIT: Final = TcpState.FIN_WAIT
TCP_CONNTRACK_CLOSE: Final = TcpState.CLOSE
TCP_CONNTRACK_RETRANS: Final = TcpState.RETRANS
TCP_CONNTRACK_UNACK: Final = TcpState.UNACK


@dataclass(slots=True)
class TcpResult:
    """What ``nf_conntrack_tcp_packet`` returned, plus what the trace wants to show.

    ``verdict`` is the netfilter verdict (``-ACCEPT`` = accepted without the entry);
    ``action`` is the tracker's classification (ACCEPT/IGNORE/INVALID, None when
    ``tcp_error``/``tcp_new`` rejected the packet before tracking); ``reason`` is the text the
    kernel logs (without the ``nf_ct_proto_6:`` prefix), None when it logs nothing.
    """

    verdict: int
    action: TcpAction | None
    reason: str | None = None
    old_state: TcpState = TcpState.NONE
    new_state: TcpState = TcpState.NONE
    window: WindowCheck | None = None


# tcp_valid_flags[]: "table of valid flag combinations - PUSH, ECE and CWR are always valid"
_F, _S, _R, _A, _U = TCPHDR_FIN, TCPHDR_SYN, TCPHDR_RST, TCPHDR_ACK, TCPHDR_URG
TCP_VALID_FLAGS: Final = frozenset({_S, _S | _U, _S | _A, _R, _R | _A, _F | _A, _F | _A | _U, _A, _A | _U})
_IGNORED_FLAG_BITS: Final = TCPHDR_ECE | TCPHDR_CWR | TCPHDR_PSH


def tcp_error(pkt: Packet, profile: KernelProfile, checksum: bool, prerouting: bool) -> str | None:
    """``tcp_error()``: the reason a segment is broken, or None.

    Truncation cannot be expressed by a :class:`Packet`; the checksum is only verified in
    PRE_ROUTING when ``net.netfilter.nf_conntrack_checksum`` is on, as in the kernel.
    """
    old = not profile.log_l4proto
    if checksum and prerouting and pkt.bad_checksum:
        return "bad TCP checksum" if old else "bad checksum"
    if (pkt.flags & ~_IGNORED_FLAG_BITS & 0xFF) not in TCP_VALID_FLAGS:
        return "invalid TCP flag combination" if old else "invalid tcp flag combination"
    return None


def _has_options(opts: TcpOptions) -> bool:
    # tcp_options()/tcp_sack(): "int length = (tcph->doff*4) - sizeof(struct tcphdr);
    # if (!length) return;"
    return opts.wire_length() != 0


def tcp_options(opts: TcpOptions, state: TcpDirState, profile: KernelProfile) -> None:
    """``tcp_options()``: read SACK_PERM and WINDOW_SCALE into ``state``.

    A header without options leaves ``state`` untouched. 3.10 clears all flags; 6.1 keeps
    BE_LIBERAL (``state->flags &= IP_CT_TCP_FLAG_BE_LIBERAL``).
    """
    if not _has_options(opts):
        return
    state.td_scale = 0
    state.flags = state.flags & IP_CT_TCP_FLAG_BE_LIBERAL if profile.options_keep_be_liberal else 0
    if opts.sack_perm:
        state.flags |= IP_CT_TCP_FLAG_SACK_PERM
    if opts.wscale is not None:
        state.td_scale = min(opts.wscale, TCP_MAX_WSCALE)
        state.flags |= IP_CT_TCP_FLAG_WINDOW_SCALE


def tcp_sack(opts: TcpOptions, sack: int) -> int:
    """``tcp_sack()``: the highest right edge of the SACK blocks, if after ``sack``."""
    for _left, right in opts.sack:
        if after(right, sack):
            sack = right
    return sack


def maxackwindow(sender: TcpDirState) -> int:
    """``MAXACKWINDOW(sender)``: max(td_maxwin, 66000)."""
    return sender.td_maxwin if sender.td_maxwin > MAXACKWINCONST else MAXACKWINCONST


def tcp_init_sender(
    sender: TcpDirState,
    receiver: TcpDirState,
    options: TcpOptions,
    end: int,
    win: int,
    direction: int,
    profile: KernelProfile,
) -> None:
    """``tcp_init_sender()``: a SYN/ACK, or a SYN from the reply side, starts this side.

    RFC 1323: both sides must send the Window Scale option to enable scaling in either
    direction. 6.1 applies that only in the reply direction; 3.10 in both.
    """
    sender.td_end = sender.td_maxend = end
    sender.td_maxwin = win if win else 1
    tcp_options(options, sender, profile)
    if (direction == REPLY or not profile.wscale_check_reply_only) and not (
        sender.flags & IP_CT_TCP_FLAG_WINDOW_SCALE and receiver.flags & IP_CT_TCP_FLAG_WINDOW_SCALE
    ):
        sender.td_scale = 0
        receiver.td_scale = 0


def _bounds(
    seq: int, end: int, sack: int, sender: TcpDirState, receiver: TcpDirState, profile: KernelProfile
) -> list[Bound]:
    """The four bounds exactly as the kernel evaluates them, for the explanation."""
    lower_data = (sender.td_end - receiver.td_maxwin) & SEQ_MASK
    lower_ack = (receiver.td_end - maxackwindow(sender)) & SEQ_MASK
    in_recv_win = after(end, (lower_data - 1) & SEQ_MASK)
    if profile.bound_ii_unknown_receiver:
        in_recv_win = not receiver.td_maxwin or in_recv_win
    return [
        Bound(
            "I",
            "seq <= sender.td_maxend",
            sender.td_maxend,
            seq,
            before(seq, (sender.td_maxend + 1) & SEQ_MASK),
        ),
        Bound("II", "seq + len >= sender.td_end - receiver.td_maxwin", lower_data, end, in_recv_win),
        Bound(
            "III",
            "sack <= receiver.td_end",
            receiver.td_end,
            sack,
            before(sack, (receiver.td_end + 1) & SEQ_MASK),
        ),
        Bound(
            "IV",
            "sack >= receiver.td_end - MAXACKWINDOW(sender)",
            lower_ack,
            sack,
            after(sack, (lower_ack - 1) & SEQ_MASK),
        ),
    ]


_OLD_MESSAGES = {
    "I": "SEQ is over the upper bound (over the window of the receiver)",
    "II": "SEQ is under the lower bound (already ACKed data retransmitted)",
    "III": "ACK is over the upper bound (ACKed data not seen yet)",
    "IV": "ACK is under the lower bound (possible overly delayed ACK)",
}


def tcp_in_window(
    tcp: TcpCt,
    direction: int,
    index: TcpIndex,
    pkt: Packet,
    profile: KernelProfile,
    sysctl_be_liberal: bool,
    explain: bool,
) -> tuple[TcpAction, str | None, WindowCheck | None]:
    """``tcp_in_window()``: is the segment inside the window conntrack tracks?

    Returns (action, the kernel's log text or None, the explanation when ``explain``).
    Under be_liberal (sysctl, or the sender's BE_LIBERAL flag) every failure becomes ACCEPT
    with no log and no window update (``nf_tcp_log_invalid``; 3.10: ``res = true``).
    The work is :func:`tcp_window`'s, on the header fields the kernel reads.
    """
    return tcp_window(
        tcp,
        direction,
        index,
        pkt.flags,
        pkt.seq,
        pkt.ack,
        pkt.window,
        pkt.end_seq,
        pkt.options,
        profile,
        sysctl_be_liberal,
        explain,
    )


def tcp_window(
    tcp: TcpCt,
    direction: int,
    index: TcpIndex,
    flags: int,
    seq: int,
    ack: int,
    win: int,
    end: int,
    options: TcpOptions,
    profile: KernelProfile,
    sysctl_be_liberal: bool,
    explain: bool,
) -> tuple[TcpAction, str | None, WindowCheck | None]:
    """:func:`tcp_in_window` on the segment's header fields: ``flags``, ``seq``, ``ack``, the
    raw ``win``, ``end`` = ``segment_seq_plus_len()`` and the options (so that a capture's
    segment needs no :class:`Packet`). ``before()``/``after()`` are written out inline on
    the path every in-window segment takes (``after(a, b)`` is ``(b - a) & SEQ_MASK >=
    0x80000000``): this is the model's hottest function.
    """
    if direction:
        sender, receiver = tcp.seen_repl, tcp.seen_orig
    else:
        sender, receiver = tcp.seen_orig, tcp.seen_repl
    sack = ack
    win_raw = win
    syn = flags & TCPHDR_SYN
    has_ack = flags & TCPHDR_ACK

    if receiver.flags & IP_CT_TCP_FLAG_SACK_PERM and options.sack:
        sack = tcp_sack(options, sack)
    # "Take into account NAT sequence number mangling": no helper mangles payload here,
    # so nf_ct_seq_offset() is 0.

    if sender.td_maxwin == 0:
        # Initialize sender data.
        if syn:
            tcp_init_sender(sender, receiver, options, end, win, direction, profile)
            if not has_ack:
                return TcpAction.ACCEPT, None, None  # Simultaneous open
        else:
            # "We are in the middle of a connection, its history is lost for us."
            sender.td_end = end
            swin = (win << sender.td_scale) & SEQ_MASK
            sender.td_maxwin = swin if swin else 1
            sender.td_maxend = (end + sender.td_maxwin) & SEQ_MASK
            if receiver.td_maxwin == 0:
                # "We haven't seen traffic in the other direction yet but we have to tweak
                # window tracking to pass III and IV until that happens."
                receiver.td_end = receiver.td_maxend = sack
            elif profile.keepalive_td_end_bump and sack == (receiver.td_end + 1) & SEQ_MASK:
                receiver.td_end = (receiver.td_end + 1) & SEQ_MASK  # reply to a keepalive
    elif profile.reinit_requires_syn:
        if syn and after(end, sender.td_end) and tcp.state in (TcpState.SYN_SENT, TcpState.SYN_RECV):
            # RFC 793: "if a TCP is reinitialized ... then it need not wait at all; it must
            # only be sure to use sequence numbers larger than those recently used."
            tcp_init_sender(sender, receiver, options, end, win, direction, profile)
            if direction == REPLY and not has_ack:
                return TcpAction.ACCEPT, None, None
    elif (
        (tcp.state == TcpState.SYN_SENT and direction == ORIGINAL)
        or (tcp.state == TcpState.SYN_RECV and direction == REPLY)
    ) and after(end, sender.td_end):
        # 3.10: "Re-init state for this direction, just like for the first syn(-ack) reply,
        # it might differ in seq, ack or tcp options."
        sender.td_end = sender.td_maxend = end
        sender.td_maxwin = win if win else 1
        tcp_options(options, sender, profile)

    if not has_ack:
        ack = sack = receiver.td_end  # "If there is no ACK, just pretend it was set and OK."
    elif flags & TCPHDR_RST and ack == 0:
        ack = sack = receiver.td_end  # "Broken TCP stacks, that set ACK in RST packets ..."

    if flags & TCPHDR_RST and seq == 0 and tcp.state == TcpState.SYN_SENT:
        seq = end = sender.td_end  # "RST sent answering SYN."

    check = None
    if explain:
        check = WindowCheck(seq, end, ack, sack, win_raw, direction)
        check.before = (tcp.seen[0].snapshot(), tcp.seen[1].snapshot())
        check.bounds = _bounds(seq, end, sack, sender, receiver, profile)

    liberal = sysctl_be_liberal or bool(sender.flags & IP_CT_TCP_FLAG_BE_LIBERAL)
    if profile.window_ignore:
        action, reason = _window_verdict_61(seq, end, sack, sender, receiver)
    else:
        action, reason = _window_verdict_310(seq, end, sack, sender, receiver, profile, liberal)
    if action is not NFCT_TCP_ACCEPT:
        if liberal:
            action, reason = NFCT_TCP_ACCEPT, None
        _finish(check, tcp)
        return action, reason, check

    # Take into account window scaling (RFC 1323).
    if not syn:
        win = (win << sender.td_scale) & SEQ_MASK
    # Update sender data.
    swin = (win + (sack - ack)) & SEQ_MASK
    if sender.td_maxwin < swin:
        sender.td_maxwin = swin
    if (sender.td_end - end) & SEQ_MASK >= 0x80000000:  # after(end, sender->td_end)
        sender.td_end = end
        sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
    if has_ack:
        if not sender.flags & IP_CT_TCP_FLAG_MAXACK_SET:
            sender.td_maxack = ack
            sender.flags |= IP_CT_TCP_FLAG_MAXACK_SET
        elif (sender.td_maxack - ack) & SEQ_MASK >= 0x80000000:  # after(ack, sender->td_maxack)
            sender.td_maxack = ack
    # Update receiver data.
    if receiver.td_maxwin != 0 and (sender.td_maxend - end) & SEQ_MASK >= 0x80000000:
        # after(end, sender->td_maxend)
        receiver.td_maxwin = (receiver.td_maxwin + end - sender.td_maxend) & SEQ_MASK
    if (receiver.td_maxend - 1 - sack - win) & SEQ_MASK >= 0x80000000:
        # after(sack + win, receiver->td_maxend - 1)
        receiver.td_maxend = (sack + win) & SEQ_MASK
        if win == 0:
            receiver.td_maxend = (receiver.td_maxend + 1) & SEQ_MASK
    if ack == receiver.td_end:
        receiver.flags &= ~IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
    # Check retransmissions.
    if index is TCP_ACK_SET:
        last_win = win_raw if profile.retrans_raw_window else win
        if (
            tcp.last_dir == direction
            and tcp.last_seq == seq
            and tcp.last_ack == ack
            and tcp.last_end == end
            and tcp.last_win == last_win
        ):
            tcp.retrans += 1
        else:
            tcp.last_dir = direction
            tcp.last_seq = seq
            tcp.last_ack = ack
            tcp.last_end = end
            tcp.last_win = last_win
            tcp.retrans = 0
    _finish(check, tcp)
    return NFCT_TCP_ACCEPT, None, check


def _finish(check: WindowCheck | None, tcp: TcpCt) -> None:
    if check is not None:
        check.after = (tcp.seen[0].snapshot(), tcp.seen[1].snapshot())


def _window_verdict_61(
    seq: int, end: int, sack: int, sender: TcpDirState, receiver: TcpDirState
) -> tuple[TcpAction, str | None]:
    """6.1's checks in the kernel's order: I (with the small-overshoot IGNORE), III, II, IV."""
    maxackwin = maxackwindow(sender)
    # before(a, b) is (a - b) & SEQ_MASK >= 0x80000000, written out below: the hottest path
    if (seq - sender.td_maxend - 1) & SEQ_MASK < 0x80000000:  # !before(seq, sender->td_maxend + 1)
        overshot = (end - sender.td_maxend + 1) & SEQ_MASK
        ack_ok = after(sack, (receiver.td_end - maxackwin - 1) & SEQ_MASK)
        in_recv_win = bool(receiver.td_maxwin) and after(
            end, (sender.td_end - receiver.td_maxwin - 1) & SEQ_MASK
        )
        if (
            in_recv_win
            and ack_ok
            and overshot <= receiver.td_maxwin
            and before(sack, (receiver.td_end + 1) & SEQ_MASK)
        ):
            # "Work around TCPs that send more bytes than allowed by the receive window."
            sender.td_end = end
            sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
            return NFCT_TCP_IGNORE, f"{overshot} bytes more than expected"
        return (
            NFCT_TCP_INVALID,
            f"SEQ is over upper bound {(sender.td_maxend + 1) & SEQ_MASK} (over the window of the receiver)",
        )
    if (sack - receiver.td_end - 1) & SEQ_MASK < 0x80000000:  # !before(sack, receiver->td_end + 1)
        return (
            NFCT_TCP_INVALID,
            f"ACK is over upper bound {(receiver.td_end + 1) & SEQ_MASK} (ACKed data not seen yet)",
        )
    lower = (sender.td_end - receiver.td_maxwin - 1) & SEQ_MASK
    if receiver.td_maxwin and (lower - end) & SEQ_MASK < 0x80000000:  # !after(end, lower)
        return NFCT_TCP_IGNORE, f"SEQ is under lower bound {lower} (already ACKed data retransmitted)"
    lower = (receiver.td_end - maxackwin - 1) & SEQ_MASK
    if (lower - sack) & SEQ_MASK < 0x80000000:  # !after(sack, lower)
        return NFCT_TCP_IGNORE, f"ignored ACK under lower bound {lower} (possible overly delayed)"
    return NFCT_TCP_ACCEPT, None


def _window_verdict_310(
    seq: int,
    end: int,
    sack: int,
    sender: TcpDirState,
    receiver: TcpDirState,
    profile: KernelProfile,
    liberal: bool,
) -> tuple[TcpAction, str | None]:
    """Before 6.1: all four bounds in one test; the message names the first failing in
    I..IV. Bound II passes while the receiver is unknown from "fix tcp_in_window for Fast
    Open"; from "work around exceeded receive window" (5.15.y, 6.0) a small overshoot of
    bound I alone still moves td_end (verdict INVALID, unless be_liberal)."""
    maxackwin = maxackwindow(sender)
    in_recv_win = after(end, (sender.td_end - receiver.td_maxwin - 1) & SEQ_MASK)
    if profile.bound_ii_unknown_receiver:
        in_recv_win = not receiver.td_maxwin or in_recv_win
    seq_ok = before(seq, (sender.td_maxend + 1) & SEQ_MASK)
    ack_ok = before(sack, (receiver.td_end + 1) & SEQ_MASK)
    ack_low_ok = after(sack, (receiver.td_end - maxackwin - 1) & SEQ_MASK)
    if seq_ok and in_recv_win and ack_ok and ack_low_ok:
        return TcpAction.ACCEPT, None
    if profile.overshoot_td_end and not liberal and not seq_ok:
        overshot = (end - sender.td_maxend + 1) & SEQ_MASK
        if in_recv_win and ack_low_ok and overshot <= receiver.td_maxwin and ack_ok:
            sender.td_end = end
            sender.flags |= IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED
            return TcpAction.INVALID, f"{overshot} bytes more than expected"
    if not seq_ok:
        return TcpAction.INVALID, _OLD_MESSAGES["I"]
    if not in_recv_win:
        return TcpAction.INVALID, _OLD_MESSAGES["II"]
    if not ack_ok:
        return TcpAction.INVALID, _OLD_MESSAGES["III"]
    return TcpAction.INVALID, _OLD_MESSAGES["IV"]


def tcp_new(tcp: TcpCt, pkt: Packet, profile: KernelProfile, loose: bool) -> str | None:
    """``tcp_new()``: set up a fresh entry from its first packet.

    Returns None when the entry was set up, else the log text of the refusal ("" when the
    kernel logs nothing).

    A SYN starts SYN_SENT tracking; anything else the state table accepts from NONE (a bare
    ACK) is a mid-stream pickup, allowed only with ``nf_conntrack_tcp_loose``, and marks both
    directions SACK_PERM | BE_LIBERAL.
    """
    new_state = state_table(profile)[ORIGINAL][get_conntrack_index(pkt.flags)][TcpState.NONE]
    if new_state >= TcpState.MAX:
        # 6.7+ logs "invalid new"; before, only a pr_debug ("" = refused, nothing logged).
        return "invalid new" if profile.log_invalid_new else ""
    seen0 = tcp.seen[0]
    end = pkt.end_seq
    if new_state == TcpState.SYN_SENT:
        seen0.td_end = end
        seen0.td_maxwin = pkt.window or 1
        seen0.td_maxend = end
        tcp_options(pkt.options, seen0, profile)
    elif not loose:
        return ""  # "Don't try to pick up connections." -- no log line
    else:
        seen0.td_end = end
        seen0.td_maxwin = pkt.window or 1
        seen0.td_maxend = (end + seen0.td_maxwin) & SEQ_MASK
        # "We assume SACK and liberal window checking to handle window scaling"
        seen0.flags = tcp.seen[1].flags = IP_CT_TCP_FLAG_SACK_PERM | IP_CT_TCP_FLAG_BE_LIBERAL
    tcp.last_index = TcpIndex.NONE  # "tcp_packet will set them"
    return None


def _state_name(state: TcpState) -> str:
    return STATE_NAMES[state]


def nf_conntrack_tcp_packet(
    ct: Conn,
    pkt: Packet,
    direction: int,
    now: float,
    sysctl: ConntrackSysctls,
    profile: KernelProfile,
    prerouting: bool,
    explain: bool = False,
) -> TcpResult:
    """``nf_conntrack_tcp_packet()`` (3.10: ``tcp_packet()``): track one segment.

    Moves the state, refreshes the timeout on ``ct`` and returns the verdict. A verdict of
    ``-NfVerdict.ACCEPT`` means INVALID (the caller detaches the entry); ``-NfVerdict.REPEAT``
    means the entry was killed to reopen a closed connection (look up again).
    """
    error = tcp_error(pkt, profile, bool(sysctl.checksum), prerouting)
    if error is not None:
        return TcpResult(-NfVerdict.ACCEPT, None, error)
    tcp = ct.tcp
    if not ct.confirmed:
        refused = tcp_new(tcp, pkt, profile, bool(sysctl.tcp_loose))
        if refused is not None:
            return TcpResult(-NfVerdict.ACCEPT, None, refused or None)

    old_state = tcp.state
    index = get_conntrack_index(pkt.flags)
    new_state = state_table(profile)[direction][index][old_state]

    def result(
        verdict: int,
        action: TcpAction,
        reason: str | None,
        check: WindowCheck | None = None,
        state: TcpState | None = None,
    ) -> TcpResult:
        return TcpResult(verdict, action, reason, old_state, tcp.state if state is None else state, check)

    if new_state == TcpState.SYN_SENT and old_state >= TcpState.TIME_WAIT:
        # RFC 1122 reopen from TIME_WAIT/CLOSE: "Attempt to reopen a closed/aborted
        # connection. Delete this connection and look up again."
        if (tcp.seen[direction].flags | tcp.seen[1 - direction].flags) & IP_CT_TCP_FLAG_CLOSE_INIT or (
            tcp.last_dir == direction and tcp.last_index == TcpIndex.RST
        ):
            return result(-NfVerdict.REPEAT, TcpAction.ACCEPT, None)
        new_state = TcpState.IGNORE  # fallthrough to the ignore case
    if new_state == TcpState.IGNORE:
        ignored = _ignore(tcp, pkt, direction, index, old_state, profile)
        if ignored is not None:
            return result(NfVerdict.ACCEPT, TcpAction.IGNORE, ignored)
        old_state, new_state = TcpState.SYN_SENT, TcpState.SYN_RECV  # back in sync
    elif new_state == TcpState.MAX:
        # (The SYN proxy keep-alive exception needs nf_synproxy, which nflab does not model.)
        text = (
            f"packet (index {int(index)}) in dir {direction} invalid, state {_state_name(old_state)}"
            if profile.log_invalid_index
            else "invalid state"
        )
        return result(-NfVerdict.ACCEPT, TcpAction.INVALID, text)
    elif new_state == TcpState.TIME_WAIT:
        if (
            profile.challenge_ack_last_ack
            and old_state == TcpState.LAST_ACK
            and index == TcpIndex.ACK
            and tcp.last_dir != direction
            and tcp.last_index == TcpIndex.SYN
            and tcp.last_flags & IP_CT_EXP_CHALLENGE_ACK
        ):
            # "Detected RFC5961 challenge ACK"
            tcp.last_flags &= ~IP_CT_EXP_CHALLENGE_ACK
            text = "challenge-ack ignored" if profile.log_l4proto else "challenge-ACK ignored"
            return result(NfVerdict.ACCEPT, TcpAction.IGNORE, text)
    elif new_state == TcpState.SYN_SENT2:
        if profile.simultaneous_open:
            tcp.last_flags |= IP_CT_TCP_SIMULTANEOUS_OPEN  # "table is not smart enough"
    elif new_state == TcpState.SYN_RECV:
        if (
            profile.simultaneous_open
            and direction == REPLY
            and index == TcpIndex.ACK
            and tcp.last_flags & IP_CT_TCP_SIMULTANEOUS_OPEN
        ):
            new_state = TcpState.ESTABLISHED
    elif new_state == TcpState.CLOSE and index == TcpIndex.RST:
        invalid, keep, skip_window = _rst_checks(ct, tcp, pkt, direction, old_state, sysctl, profile)
        if invalid is not None:
            return result(-NfVerdict.ACCEPT, TcpAction.INVALID, invalid)
        if keep:
            new_state = old_state
        if skip_window:
            return _in_window(
                ct, tcp, pkt.flags, direction, index, old_state, new_state, now, sysctl, profile, None
            )

    action, reason, check = tcp_in_window(
        tcp, direction, index, pkt, profile, bool(sysctl.tcp_be_liberal), explain
    )
    return _windowed(
        ct,
        tcp,
        pkt.flags,
        direction,
        index,
        old_state,
        new_state,
        action,
        reason,
        check,
        now,
        sysctl,
        profile,
    )


def _windowed(
    ct: Conn,
    tcp: TcpCt,
    flags: int,
    direction: int,
    index: TcpIndex,
    old_state: TcpState,
    new_state: TcpState,
    action: TcpAction,
    reason: str | None,
    check: WindowCheck | None,
    now: float,
    sysctl: ConntrackSysctls,
    profile: KernelProfile,
) -> TcpResult:
    """``nf_conntrack_tcp_packet()`` after ``tcp_in_window()``: IGNORE, INVALID (6.1+:
    ``nf_tcp_handle_invalid()``) or on to ``in_window:``."""
    if action is NFCT_TCP_IGNORE:
        return TcpResult(NF_ACCEPT, action, reason, old_state, tcp.state, check)
    if action is NFCT_TCP_INVALID:
        if profile.handle_invalid_timeout:
            nf_tcp_handle_invalid(ct, direction, index, now, sysctl.timeouts[TCP_CONNTRACK_UNACK])
        return TcpResult(-NF_ACCEPT, action, reason, old_state, tcp.state, check)
    return _in_window(ct, tcp, flags, direction, index, old_state, new_state, now, sysctl, profile, check)


_PLAIN_ACK: Final = frozenset({TCPHDR_ACK, TCPHDR_ACK | TCPHDR_URG})  # valid flags whose index is ACK


def nf_conntrack_tcp_established(
    ct: Conn,
    direction: int,
    flags: int,
    seq: int,
    ack: int,
    win: int,
    end: int,
    options: TcpOptions,
    now: float,
    sysctl: ConntrackSysctls,
    profile: KernelProfile,
) -> TcpResult | None:
    """``nf_conntrack_tcp_packet()`` for the segment that makes up most of a connection's life,
    on its header fields (no :class:`Packet`): an ACK (with or without PSH, URG, ECE, CWR;
    no SYN, FIN or RST) on a confirmed entry in ESTABLISHED, whose checksum is not known to
    be bad (a capture's segment: checksums are not verified, :mod:`sim.pcap.reader`).

    For it ``tcp_error()`` passes (valid flags), ``tcp_new()`` does not run (confirmed), the
    state table says ESTABLISHED -> ESTABLISHED in both directions and no case of the
    kernel's switch applies, so ``nf_conntrack_tcp_packet()`` goes straight to
    ``tcp_in_window()`` and on: this is that path, through the same functions. None for any
    other segment, before anything changed: the caller runs :func:`nf_conntrack_tcp_packet`.
    """
    if (
        (flags & ~_IGNORED_FLAG_BITS & 0xFF) not in _PLAIN_ACK
        or ct.state is not TCP_CONNTRACK_ESTABLISHED
        or not ct.confirmed
    ):
        return None
    tcp = ct.tcp
    new_state = state_table(profile)[direction][TCP_ACK_SET][TCP_CONNTRACK_ESTABLISHED]
    if new_state is not TCP_CONNTRACK_ESTABLISHED:
        return None
    action, reason, check = tcp_window(
        tcp,
        direction,
        TCP_ACK_SET,
        flags,
        seq,
        ack,
        win,
        end,
        options,
        profile,
        bool(sysctl.tcp_be_liberal),
        False,
    )
    return _windowed(
        ct,
        tcp,
        flags,
        direction,
        TCP_ACK_SET,
        TCP_CONNTRACK_ESTABLISHED,
        new_state,
        action,
        reason,
        check,
        now,
        sysctl,
        profile,
    )


def _ignore(
    tcp: TcpCt,
    pkt: Packet,
    direction: int,
    index: TcpIndex,
    old_state: TcpState,
    profile: KernelProfile,
) -> str | None:
    """The ``TCP_CONNTRACK_IGNORE`` case: note the packet, or resync on a matching SYN/ACK.

    Returns the log text when the packet is ignored, None when this SYN/ACK "acknowledges a
    SYN that we earlier ignored as invalid" and conntrack gets back in sync (SYN_SENT ->
    SYN_RECV with the annotated values).
    """
    if (
        index == TcpIndex.SYNACK
        and tcp.last_index == TcpIndex.SYN
        and tcp.last_dir != direction
        and pkt.ack == tcp.last_end
    ):
        last = tcp.seen[tcp.last_dir]
        last.td_end = last.td_maxend = tcp.last_end
        last.td_maxwin = tcp.last_win or 1
        last.td_scale = tcp.last_wscale
        tcp.last_flags &= ~IP_CT_EXP_CHALLENGE_ACK
        last.flags = tcp.last_flags
        tcp.seen[direction].reset(profile.options_keep_be_liberal)
        return None
    tcp.last_index = index
    tcp.last_dir = direction
    tcp.last_seq = pkt.seq
    tcp.last_end = pkt.end_seq
    tcp.last_win = pkt.window
    if index == TcpIndex.SYN and direction == ORIGINAL:
        # "a) This is a SYN in ORIGINAL. The client and the server may be in sync but we are
        # not. In that case, we annotate the TCP options and let the packet go through."
        seen = TcpDirState()
        tcp.last_flags = tcp.last_wscale = 0
        tcp_options(pkt.options, seen, profile)
        if seen.flags & IP_CT_TCP_FLAG_WINDOW_SCALE:
            tcp.last_flags |= IP_CT_TCP_FLAG_WINDOW_SCALE
            tcp.last_wscale = seen.td_scale
        if seen.flags & IP_CT_TCP_FLAG_SACK_PERM:
            tcp.last_flags |= IP_CT_TCP_FLAG_SACK_PERM
        if profile.challenge_ack_last_ack and old_state == TcpState.LAST_ACK:
            tcp.last_flags |= IP_CT_EXP_CHALLENGE_ACK  # potential RFC5961 challenge ACK
    if (
        profile.challenge_ack_syn_sent
        and old_state == TcpState.SYN_SENT
        and index == TcpIndex.ACK
        and direction == REPLY
    ):
        tcp.last_ack = pkt.ack  # possible challenge ack reply to syn
    if profile.log_ignored_index:
        return f"packet (index {int(index)}) in dir {direction} ignored, state {_state_name(old_state)}"
    return f"invalid packet ignored in state {_state_name(old_state)}"


def _rst_checks(
    ct: Conn,
    tcp: TcpCt,
    pkt: Packet,
    direction: int,
    old_state: TcpState,
    sysctl: ConntrackSysctls,
    profile: KernelProfile,
) -> tuple[str | None, bool, bool]:
    """The ``TCP_CONNTRACK_CLOSE`` case for a RST: (INVALID log text, keep state, skip window).

    Every version: a RST whose seq is before the peer's highest ACK is "invalid rst", and a
    RST answering a SYN or ACK we let through skips the window check. The ``break``s of the
    kernel's switch (no shortcut, on to ``tcp_in_window``) are the early ``return``s here.
    """
    seq = pkt.seq
    peer = tcp.seen[1 - direction]
    keep = False
    if profile.rst_tuple_reuse and tcp_can_early_drop(tcp.state):
        # "If we are closing, tuple might have been re-used already ... As the conntrack
        # can already be expired by GC under pressure, just skip validation checks."
        return None, False, True
    # "td_maxack might be outdated if we let a SYN through earlier" (rst_tuple_reuse)
    if peer.flags & IP_CT_TCP_FLAG_MAXACK_SET and not (
        profile.rst_tuple_reuse and tcp.last_index == TcpIndex.SYN
    ):
        established = tcp.state == TcpState.ESTABLISHED and ct.assured
        if profile.rst_tuple_reuse and seq == 0 and not established:
            return None, False, False  # "most likely an answer to a SYN we let go through"
        if before(seq, peer.td_maxack) and not (
            profile.has_ignore_invalid_rst and sysctl.tcp_ignore_invalid_rst
        ):
            return ("invalid rst" if profile.log_l4proto else "invalid RST"), False, False
        if profile.rst_exact_seq:
            if not established or seq == peer.td_maxack:
                return None, False, False
            if tcp.last_index == TcpIndex.ACK and tcp.last_dir == direction and seq == tcp.last_end:
                return None, False, False  # "Check if rst is part of train"
            # "RST sequence number doesn't match exactly, keep established state to allow
            # a possible challenge ACK."
            keep = True
    if (
        (
            ct.seen_reply
            and tcp.last_index == TcpIndex.SYN
            and not (profile.rst_to_syn_needs_other_dir and tcp.last_dir == direction)
        )
        or (not ct.assured and tcp.last_index == TcpIndex.ACK)
    ) and pkt.ack == tcp.last_end:
        # "RST sent to invalid SYN or ACK we had let through at a) and c) above ... Delete our
        # connection entry. We skip window checking, because packet might ACK segments we
        # ignored."
        return None, keep, True
    if (
        profile.challenge_ack_syn_sent
        and old_state == TcpState.SYN_SENT
        and tcp.last_index == TcpIndex.ACK
        and tcp.last_dir == REPLY
        and seq == tcp.last_ack
    ):
        return None, keep, True  # "Reset in response to a challenge-ack we let through earlier"
    return None, keep, False


def tcp_can_early_drop(state: TcpState) -> bool:
    """``tcp_can_early_drop()``: the closing states."""
    return state in (
        TcpState.FIN_WAIT,
        TcpState.LAST_ACK,
        TcpState.TIME_WAIT,
        TcpState.CLOSE,
        TcpState.CLOSE_WAIT,
    )


def nf_tcp_handle_invalid(
    ct: Conn, direction: int, index: TcpIndex, now: float, unack_timeout: float
) -> None:
    """``nf_tcp_handle_invalid()`` (6.1): an out-of-window FIN/RST answering the peer's
    FIN/RST lowers an assured entry's timeout to the UNACK one ("We don't want to have
    connections hanging around in ESTABLISHED state for long time 'just because' conntrack
    deemed a FIN/RST out-of-window.")."""
    tcp = ct.tcp
    if not ct.assured or index not in (TcpIndex.RST, TcpIndex.FIN):
        return
    if tcp.last_dir != direction and tcp.last_index in (TcpIndex.FIN, TcpIndex.RST):
        expires = ct.timeout - now
        if expires < 120:
            return
        if expires > unack_timeout:
            ct.timeout = now + unack_timeout
    else:
        tcp.last_index = index
        tcp.last_dir = direction


def _in_window(
    ct: Conn,
    tcp: TcpCt,
    flags: int,
    direction: int,
    index: TcpIndex,
    old_state: TcpState,
    new_state: TcpState,
    now: float,
    sysctl: ConntrackSysctls,
    profile: KernelProfile,
    check: WindowCheck | None,
) -> TcpResult:
    """The ``in_window:`` tail of ``nf_conntrack_tcp_packet()``: move the state, pick the
    timeout, set ASSURED, refresh."""
    tcp.last_index = index
    tcp.last_dir = direction
    tcp.state = new_state
    if old_state != new_state and new_state == TCP_CONNTRACK_FIN_WAIT:
        tcp.seen[direction].flags |= IP_CT_TCP_FLAG_CLOSE_INIT
    timeouts = sysctl.timeouts
    if tcp.retrans >= sysctl.tcp_max_retrans and timeouts[new_state] > timeouts[TCP_CONNTRACK_RETRANS]:
        timeout = timeouts[TCP_CONNTRACK_RETRANS]
    elif profile.rst_exact_seq and index == TCP_RST_SET:
        timeout = timeouts[TCP_CONNTRACK_CLOSE]
    elif (tcp.seen_orig.flags | tcp.seen_repl.flags) & IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED and timeouts[
        new_state
    ] > timeouts[TCP_CONNTRACK_UNACK]:
        timeout = timeouts[TCP_CONNTRACK_UNACK]
    elif (
        profile.zero_window_retrans_timeout
        and tcp.last_win == 0
        and timeouts[new_state] > timeouts[TCP_CONNTRACK_RETRANS]
    ):
        timeout = timeouts[TCP_CONNTRACK_RETRANS]
    else:
        timeout = timeouts[new_state]
    res = TcpResult(NF_ACCEPT, NFCT_TCP_ACCEPT, None, old_state, new_state, check)
    if not ct.seen_reply:
        if flags & TCPHDR_RST:
            # "If only reply is a RST, we can consider ourselves not to have an established
            # connection: this is a fairly common problem case, so we can delete the
            # conntrack immediately. --RR"
            ct.dying = True
            return res
        if profile.syn_retransmit_no_renew and index == TcpIndex.SYN and old_state == TcpState.SYN_SENT:
            return res  # "do not renew timeout on SYN retransmit."
        if new_state == TCP_CONNTRACK_ESTABLISHED and timeout > timeouts[TCP_CONNTRACK_UNACK]:
            timeout = timeouts[TCP_CONNTRACK_UNACK]  # mid-connection pickup with loose=1
    elif (
        not ct.assured
        and old_state in (TCP_CONNTRACK_SYN_RECV, TCP_CONNTRACK_ESTABLISHED)
        and (new_state == TCP_CONNTRACK_ESTABLISHED)
    ):
        # "Set ASSURED if we see valid ack in ESTABLISHED after SYN_RECV or a valid answer
        # for a picked up connection."
        ct.set_assured()
    ct.timeout = now + timeout
    return res
