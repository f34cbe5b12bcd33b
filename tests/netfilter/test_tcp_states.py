"""The state table cell by cell, typed in from tcp_conntracks[] in the kernel sources:
newest net/netfilter/nf_conntrack_proto_tcp.c (6.18; the same table from CentOS 7's
3.10.0-1160 on), and upstream 3.10.99 (harviswang/linux-3.10.99), whose REPLY syn row has
sIV in TIME_WAIT. (An earlier version of this test had sIG in 3.10's ORIGINAL synack row:
that is an older 3.x file; 3.10.99 reads "{ sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR }".)"""

import pytest

from sim.include.nf_conntrack_tcp import TcpIndex, TcpState
from sim.netfilter.profiles import PROFILES
from sim.netfilter.tcp_states import get_conntrack_index, state_table
from sim.packet import parse_flags

COLUMNS = ["sNO", "sSS", "sSR", "sES", "sFW", "sCW", "sLA", "sTW", "sCL", "sS2"]
NAMES = {
    "sNO": TcpState.NONE,
    "sSS": TcpState.SYN_SENT,
    "sSR": TcpState.SYN_RECV,
    "sES": TcpState.ESTABLISHED,
    "sFW": TcpState.FIN_WAIT,
    "sCW": TcpState.CLOSE_WAIT,
    "sLA": TcpState.LAST_ACK,
    "sTW": TcpState.TIME_WAIT,
    "sCL": TcpState.CLOSE,
    "sS2": TcpState.SYN_SENT2,
    "sIV": TcpState.MAX,
    "sIG": TcpState.IGNORE,
}

NEWEST = {
    0: {
        "syn": "sSS sSS sIG sIG sIG sIG sIG sSS sSS sS2",
        "synack": "sIV sIV sSR sIV sIV sIV sIV sIV sIV sSR",
        "fin": "sIV sIV sFW sFW sLA sLA sLA sTW sCL sIV",
        "ack": "sES sIV sES sES sCW sCW sTW sTW sCL sIV",
        "rst": "sIV sCL sCL sCL sCL sCL sCL sCL sCL sCL",
        "none": "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
    },
    1: {
        "syn": "sIV sS2 sIV sIV sIV sIV sIV sSS sIV sS2",
        "synack": "sIV sSR sIG sIG sIG sIG sIG sIG sIG sSR",
        "fin": "sIV sIV sFW sFW sLA sLA sLA sTW sCL sIV",
        "ack": "sIV sIG sSR sES sCW sCW sTW sTW sCL sIG",
        "rst": "sIV sCL sCL sCL sCL sCL sCL sCL sCL sCL",
        "none": "sIV sIV sIV sIV sIV sIV sIV sIV sIV sIV",
    },
}
OLD = {
    0: NEWEST[0],
    1: dict(NEWEST[1], syn="sIV sS2 sIV sIV sIV sIV sIV sIV sIV sS2"),
}
INDEX = {
    "syn": TcpIndex.SYN,
    "synack": TcpIndex.SYNACK,
    "fin": TcpIndex.FIN,
    "ack": TcpIndex.ACK,
    "rst": TcpIndex.RST,
    "none": TcpIndex.NONE,
}

CELLS = [
    (profile, direction, row, col, NAMES[cell])
    for profile in PROFILES
    for table in [OLD if profile == "3.10" else NEWEST]
    for direction, rows in table.items()
    for row, text in rows.items()
    for col, cell in zip(COLUMNS, text.split(), strict=True)
]


@pytest.mark.parametrize(("profile", "direction", "row", "col", "expected"), CELLS)
def test_cell(profile, direction, row, col, expected):
    old = NAMES[col]
    assert state_table(PROFILES[profile])[direction][INDEX[row]][old] == expected


@pytest.mark.parametrize(
    ("flags", "index"),
    [
        ("S", TcpIndex.SYN),
        ("SA", TcpIndex.SYNACK),
        ("FA", TcpIndex.FIN),
        ("A", TcpIndex.ACK),
        ("RA", TcpIndex.RST),
        ("SR", TcpIndex.RST),
        ("SF", TcpIndex.SYN),
        ("", TcpIndex.NONE),
        ("P", TcpIndex.NONE),
        ("F", TcpIndex.FIN),
    ],
)
def test_get_conntrack_index(flags, index):
    assert get_conntrack_index(parse_flags(flags)) == index
