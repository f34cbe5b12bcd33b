"""Conntrack's decisions in plain words, with the numbers that matter, for the CLI and the TUI.

Pure functions over what the model returns: the window-check explanation of
``sim.netfilter.proto_tcp.tcp_in_window`` (:class:`WindowCheck`, its four :class:`Bound`s and the
tracker state before the packet) and the tracker's action. The kernel's formula stays beside
these words on screen; the words come first.
"""

from __future__ import annotations

from sim.packet import SEQ_MASK, TcpFlag, format_flags
from sim.trace import Bound, TraceVerdict, WindowCheck


def _n(x: int) -> str:
    return f"{x:,}"


def _gap(a: int, b: int) -> int:
    """``a - b`` in sequence space (mod 2**32), as the kernel's before()/after() see it."""
    return (a - b) & SEQ_MASK


def _td(check: WindowCheck, side: str, key: str) -> int | None:
    """The sender's or receiver's tracker field before this packet."""
    d = check.sender_dir if side == "sender" else 1 - check.sender_dir
    return check.before[d].get(key) if len(check.before) == 2 else None


def bound_words(b: Bound, check: WindowCheck) -> str:
    """One failed bound as a sentence: what the segment did, by how many bytes, and the allowance.

    Bound I (``seq <= sender.td_maxend``), II (``seq + len >= sender.td_end - receiver.td_maxwin``),
    III (``sack <= receiver.td_end``), IV (``sack >= receiver.td_end - MAXACKWINDOW(sender)``), as
    ``tcp_in_window()`` (net/netfilter/nf_conntrack_proto_tcp.c) tests them.
    """
    if b.name == "I":
        return (
            f"this segment starts {_n(_gap(b.value, b.limit))} bytes beyond the end of the window the "
            "receiver has offered (sender.td_maxend): it carries data there was never room for"
        )
    if b.name == "II":
        back = _td(check, "receiver", "td_maxwin")
        allowance = f" (at most {_n(back)} bytes, the receiver's largest window, back)" if back else ""
        return (
            f"this segment ends {_n(_gap(b.limit, b.value))} bytes before the oldest data conntrack "
            f"still accepts{allowance}: it repeats data acknowledged long ago"
        )
    if b.name == "III":
        return (
            f"this ACK acknowledges {_n(_gap(b.value, b.limit))} bytes the other side has not sent yet "
            "(beyond the newest byte conntrack has seen from it)"
        )
    back = _td(check, "receiver", "td_end")
    allowance = f" (at most {_n(_gap(back, b.limit))} bytes back)" if back is not None else ""
    return (
        f"this ACK acknowledges data {_n(_gap(b.limit, b.value))} bytes older than the oldest ACK "
        f"conntrack still accepts{allowance}"
    )


def window_words(check: WindowCheck, action: TraceVerdict, liberal: bool) -> list[str]:
    """What the window check decided, in words: each failed bound, then what the verdict means.

    ``action`` is the tracker's verdict (``ACCEPT``/``IGNORE``/``INVALID``); ``liberal`` says
    whether ``nf_conntrack_tcp_be_liberal`` (or the connection's BE_LIBERAL flag) was set.
    """
    failed = [b for b in check.bounds if not b.passed]
    out = [f"Out of window: {bound_words(b, check)} (bound {b.name})." for b in failed]
    if not failed:
        out.append("In window: all four bounds pass, and the tracker moves its window forward.")
    elif action is TraceVerdict.INVALID:
        out.append(
            "So conntrack calls the packet INVALID: tcp_packet() returns -NF_ACCEPT, the packet goes on "
            "without its conntrack entry, and NAT will not translate it."
        )
    elif action is TraceVerdict.IGNORE:
        out.append(
            "Since Linux 6.1 conntrack IGNOREs this class of out-of-window segment: the entry stays "
            "attached, so NAT still translates the packet, and the tracker's window is left as it was."
        )
    elif action is TraceVerdict.ACCEPT and liberal:
        out.append(
            "be_liberal overrides the failed bound: with nf_conntrack_tcp_be_liberal=1 tcp_in_window() "
            "accepts an out-of-window segment silently (no log, window unchanged), so the entry stays "
            "attached and NAT translates the packet as usual."
        )
    return out


def untracked_words(flags: int) -> str:
    """Why a packet that matches no conntrack entry and cannot open one is INVALID, without a log line.

    ``tcp_new()`` returns false for it: the state table's cell for (NONE, these flags) is INVALID
    ("invalid new"), or ``nf_conntrack_tcp_loose`` is 0 and the packet is no SYN. The kernel reports
    either only with pr_debug(): nothing reaches the log.
    """
    if flags & TcpFlag.RST:
        why = (
            "a RST cannot open a new connection (tcp_new(): the state table's cell for NONE and RST "
            "is INVALID)"
        )
    else:
        why = (
            f"a [{format_flags(flags)}] segment cannot open one here (tcp_new(): the state table's cell "
            "for NONE and these flags is INVALID, or nf_conntrack_tcp_loose=0 forbids picking a connection "
            "up mid-stream)"
        )
    return (
        f"No conntrack entry has this packet's addresses, and {why}. So it is INVALID; the kernel "
        "says that only with pr_debug(), so no log line."
    )


def late_words(sent: float, arrived: float, usual: float) -> str:
    """A segment that spent longer on a link than the link's usual delay (the late-ack trigger)."""
    took, held = arrived - sent, arrived - sent - usual
    return (
        f"Sent at {sent:.3f} s, it arrives at {arrived:.3f} s: {took * 1000:.0f} ms on the uplink where "
        f"packets take {usual * 1000:.0f} ms. The link held it back {held * 1000:.0f} ms, so segments sent "
        "after it arrived first."
    )
