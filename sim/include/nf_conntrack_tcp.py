"""The TCP part of a conntrack entry (include/linux/netfilter/nf_conntrack_tcp.h,
include/uapi/linux/netfilter/nf_conntrack_tcp.h).

``enum tcp_conntrack``, the ``IP_CT_TCP_FLAG_*`` bits, ``struct ip_ct_tcp_state`` and
``struct ip_ct_tcp``. The tracker that fills them is :mod:`sim.netfilter.proto_tcp`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class TcpState(IntEnum):
    """``enum tcp_conntrack`` (include/uapi/linux/netfilter/nf_conntrack_tcp.h)."""

    NONE = 0
    SYN_SENT = 1
    SYN_RECV = 2
    ESTABLISHED = 3
    FIN_WAIT = 4
    CLOSE_WAIT = 5
    LAST_ACK = 6
    TIME_WAIT = 7
    CLOSE = 8
    SYN_SENT2 = 9  # TCP_CONNTRACK_LISTEN: "obsolete", reused for simultaneous open
    MAX = 10  # sIV: invalid
    IGNORE = 11  # sIG: ignored
    RETRANS = 12  # timeout slot only
    UNACK = 13  # timeout slot only


# tcp_conntrack_names[] (nf_conntrack_proto_tcp.c): the states' names in enum order, NONE .. SYN_SENT2
STATE_NAMES = tuple(s.name for s in TcpState if s <= TcpState.SYN_SENT2)


class TcpIndex(IntEnum):
    """``enum tcp_bit_set`` (nf_conntrack_proto_tcp.c): which flag class a segment falls in.
    Here because ``ip_ct_tcp.last_index`` holds one."""

    SYN = 0
    SYNACK = 1
    FIN = 2
    ACK = 3
    RST = 4
    NONE = 5


# include/uapi/linux/netfilter/nf_conntrack_tcp.h
IP_CT_TCP_FLAG_WINDOW_SCALE: Final = 0x01
IP_CT_TCP_FLAG_SACK_PERM: Final = 0x02
IP_CT_TCP_FLAG_CLOSE_INIT: Final = 0x04
IP_CT_TCP_FLAG_BE_LIBERAL: Final = 0x08
IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED: Final = 0x10
IP_CT_TCP_FLAG_MAXACK_SET: Final = 0x20
IP_CT_EXP_CHALLENGE_ACK: Final = 0x40
IP_CT_TCP_SIMULTANEOUS_OPEN: Final = 0x80


class TcpDirState:
    """``struct ip_ct_tcp_state``: what conntrack knows of one direction's sender."""

    __slots__ = ("flags", "td_end", "td_maxack", "td_maxend", "td_maxwin", "td_scale")

    def __init__(self) -> None:
        self.td_end = 0  # max of seq + len
        self.td_maxend = 0  # max of ack + max(win, 1)
        self.td_maxwin = 0  # max(win)
        self.td_maxack = 0  # max of ack
        self.td_scale = 0  # window scale factor
        self.flags = 0  # IP_CT_TCP_FLAG_*

    def reset(self, keep_be_liberal: bool) -> None:
        """``nf_ct_tcp_state_reset()`` (6.1) or the memset of 3.10."""
        self.td_end = self.td_maxend = self.td_maxwin = self.td_maxack = self.td_scale = 0
        self.flags = self.flags & IP_CT_TCP_FLAG_BE_LIBERAL if keep_be_liberal else 0

    def clone(self) -> TcpDirState:
        c = TcpDirState()
        c.td_end, c.td_maxend, c.td_maxwin = self.td_end, self.td_maxend, self.td_maxwin
        c.td_maxack, c.td_scale, c.flags = self.td_maxack, self.td_scale, self.flags
        return c

    def snapshot(self) -> dict[str, int]:
        return {
            "td_end": self.td_end,
            "td_maxend": self.td_maxend,
            "td_maxwin": self.td_maxwin,
            "td_maxack": self.td_maxack,
            "td_scale": self.td_scale,
            "flags": self.flags,
        }


class TcpCt:
    """``struct ip_ct_tcp``: the TCP part of a conntrack entry. ``seen`` is the pair of
    directions (kept as two fields: a pair object per entry would cost 56 bytes)."""

    __slots__ = (
        "last_ack",
        "last_dir",
        "last_end",
        "last_flags",
        "last_index",
        "last_seq",
        "last_win",
        "last_wscale",
        "retrans",
        "seen_orig",
        "seen_repl",
        "state",
    )

    @property
    def seen(self) -> tuple[TcpDirState, TcpDirState]:
        """``seen[IP_CT_DIR_ORIGINAL]``, ``seen[IP_CT_DIR_REPLY]``."""
        return self.seen_orig, self.seen_repl

    def __init__(self) -> None:
        self.seen_orig = TcpDirState()
        self.seen_repl = TcpDirState()
        self.state = TcpState.NONE
        self.last_dir = 0
        self.retrans = 0
        self.last_index = TcpIndex.SYN
        self.last_seq = 0
        self.last_ack = 0
        self.last_end = 0
        self.last_win = 0
        self.last_wscale = 0
        self.last_flags = 0

    def clone(self) -> TcpCt:
        """A copy of the TCP part alone (to run ``tcp_in_window()`` again on it)."""
        c = TcpCt()
        c.seen_orig, c.seen_repl = self.seen_orig.clone(), self.seen_repl.clone()
        c.state, c.last_dir, c.retrans, c.last_index = (
            self.state,
            self.last_dir,
            self.retrans,
            self.last_index,
        )
        c.last_seq, c.last_ack, c.last_end, c.last_win = (
            self.last_seq,
            self.last_ack,
            self.last_end,
            self.last_win,
        )
        c.last_wscale, c.last_flags = self.last_wscale, self.last_flags
        return c
