"""The TCP conntrack state machine as data (net/netfilter/nf_conntrack_proto_tcp.c).

``state_table(profile)[dir][index][old_state]`` is the kernel's ``tcp_conntracks`` table,
typed in from the newest source with its comments. The tables of 3.10.y (harviswang/linux-3.10.99)
and of every later tree recorded here (CentOS 7's 3.10.0-1160 up to 6.18) differ in one cell
only, listed in ``_OLDER_CELLS`` with the text of the 3.10 source.
"""

from __future__ import annotations

from sim.include.nf_conntrack import REPLY
from sim.include.nf_conntrack_tcp import TcpIndex, TcpState
from sim.netfilter.profiles import KernelProfile
from sim.packet import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_RST, TCPHDR_SYN


def get_conntrack_index(flags: int) -> TcpIndex:
    """``get_conntrack_index()``: RST beats SYN beats FIN beats ACK."""
    if flags & TCPHDR_RST:
        return TcpIndex.RST
    if flags & TCPHDR_SYN:
        return TcpIndex.SYNACK if flags & TCPHDR_ACK else TcpIndex.SYN
    if flags & TCPHDR_FIN:
        return TcpIndex.FIN
    if flags & TCPHDR_ACK:
        return TcpIndex.ACK
    return TcpIndex.NONE


sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2, sIV, sIG = (
    TcpState.NONE,
    TcpState.SYN_SENT,
    TcpState.SYN_RECV,
    TcpState.ESTABLISHED,
    TcpState.FIN_WAIT,
    TcpState.CLOSE_WAIT,
    TcpState.LAST_ACK,
    TcpState.TIME_WAIT,
    TcpState.CLOSE,
    TcpState.SYN_SENT2,
    TcpState.MAX,
    TcpState.IGNORE,
)

# fmt: off
_NEWEST: tuple[tuple[tuple[TcpState, ...], ...], ...] = (
    (
# ORIGINAL
#            sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
    (sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2),  # syn
#   sNO -> sSS  Initialize a new connection
#   sSS -> sSS  Retransmitted SYN
#   sS2 -> sS2  Late retransmitted SYN
#   sSR -> sIG
#   sES -> sIG  Error: SYNs in window outside the SYN_SENT state are errors. Receiver will
#               reply with RST and close the connection. Or we are not in sync and hold a
#               dead connection.
#   sFW, sCW, sLA -> sIG
#   sTW -> sSS  Reopened connection (RFC 1122).
#   sCL -> sSS
    (sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR),  # synack
#   sNO -> sIV  Too late and no reason to do anything
#   sSS -> sIV  Client can't send SYN and then SYN/ACK
#   sS2 -> sSR  SYN/ACK sent to SYN2 in simultaneous open
#   sSR -> sSR  Late retransmitted SYN/ACK in simultaneous open
#   sES -> sIV  Invalid SYN/ACK packets sent by the client
#   sFW, sCW, sLA, sTW, sCL -> sIV
    (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),  # fin
#   sNO -> sIV  Too late and no reason to do anything...
#   sSS -> sIV  Client might not send FIN in this state: we enforce waiting for a SYN/ACK
#   sS2 -> sIV
#   sSR -> sFW  Close started.
#   sES -> sFW
#   sFW -> sLA  FIN seen in both directions, waiting for the last ACK. Might be a
#               retransmitted FIN as well...
#   sCW -> sLA
#   sLA -> sLA  Retransmitted FIN. Remain in the same state.
#   sTW -> sTW
#   sCL -> sCL
    (sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV),  # ack
#   sNO -> sES  Assumed.
#   sSS -> sIV  ACK is invalid: we haven't seen a SYN/ACK yet.
#   sS2 -> sIV
#   sSR -> sES  Established state is reached.
#   sES -> sES  :-)
#   sFW -> sCW  Normal close request answered by ACK.
#   sCW -> sCW
#   sLA -> sTW  Last ACK detected (RFC5961 challenged)
#   sTW -> sTW  Retransmitted last ACK. Remain in the same state.
#   sCL -> sCL
    (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),  # rst
    (sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV),  # none
    ),
    (
# REPLY
#            sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
    (sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2),  # syn
#   sNO -> sIV  Never reached.
#   sSS -> sS2  Simultaneous open
#   sS2 -> sS2  Retransmitted simultaneous SYN
#   sSR -> sIV  Invalid SYN packets sent by the server
#   sES, sFW, sCW, sLA -> sIV
#   sTW -> sSS  Reopened connection, but server may have switched role
#   sCL -> sIV
    (sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR),  # synack
#   sSS -> sSR  Standard open.
#   sS2 -> sSR  Simultaneous open
#   sSR -> sIG  Retransmitted SYN/ACK, ignore it.
#   sES -> sIG  Late retransmitted SYN/ACK?
#   sFW -> sIG  Might be SYN/ACK answering ignored SYN
#   sCW, sLA, sTW, sCL -> sIG
    (sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV),  # fin
#   sSS -> sIV  Server might not send FIN in this state.
#   sS2 -> sIV
#   sSR -> sFW  Close started.
#   sES -> sFW
#   sFW -> sLA  FIN seen in both directions.
#   sCW -> sLA
#   sLA -> sLA  Retransmitted FIN.
#   sTW -> sTW
#   sCL -> sCL
    (sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG),  # ack
#   sSS -> sIG  Might be a half-open connection.
#   sS2 -> sIG
#   sSR -> sSR  Might answer late resent SYN.
#   sES -> sES  :-)
#   sFW -> sCW  Normal close request answered by ACK.
#   sCW -> sCW
#   sLA -> sTW  Last ACK detected (RFC5961 challenged)
#   sTW -> sTW  Retransmitted last ACK.
#   sCL -> sCL
    (sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL),  # rst
    (sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV),  # none
    ),
)
# fmt: on

# Cells where the 3.10 table differs: (dir, index, old_state) -> (3.10 value, its comment).
# (Older 3.x files also had sIG for ORIGINAL synack in sSR..sCL; 3.10 already has sIV there.)
_OLDER_CELLS: dict[tuple[int, TcpIndex, TcpState], tuple[TcpState, str]] = {
    # REPLY syn in TIME_WAIT: "sTW -> sIV Reopened connection, but server may not do it."
    (REPLY, TcpIndex.SYN, sTW): (sIV, "sTW -> sIV  Reopened connection, but server may not do it."),
}

StateTable = tuple[tuple[tuple[TcpState, ...], ...], ...]


def _older_table() -> StateTable:
    rows = [[list(row) for row in direction] for direction in _NEWEST]
    for (direction, index, old), (new, _comment) in _OLDER_CELLS.items():
        rows[direction][index][old] = new
    return tuple(tuple(tuple(row) for row in direction) for direction in rows)


NEWEST_TABLE: StateTable = _NEWEST
OLDER_TABLE: StateTable = _older_table()


def state_table(profile: KernelProfile) -> StateTable:
    """The profile's ``tcp_conntracks``: the 3.10 table until "server may have switched role"
    (REPLY syn in TIME_WAIT -> sSS, ``reply_syn_reopens_time_wait``)."""
    return NEWEST_TABLE if profile.reply_syn_reopens_time_wait else OLDER_TABLE
