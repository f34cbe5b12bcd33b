"""The state table cell by cell, typed in from tcp_conntracks[] in the kernel sources
(newest net/netfilter/nf_conntrack_proto_tcp.c for 6.1; the 3.x file for 3.10)."""

import pytest

from sim.netfilter.tcp_states import STATE_TABLES, TcpIndex, TcpState, get_conntrack_index
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
    0: dict(NEWEST[0], synack="sIV sIV sIG sIG sIG sIG sIG sIG sIG sSR"),
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
    for profile, table in (("6.1", NEWEST), ("3.10", OLD))
    for direction, rows in table.items()
    for row, text in rows.items()
    for col, cell in zip(COLUMNS, text.split(), strict=True)
]


@pytest.mark.parametrize(("profile", "direction", "row", "col", "expected"), CELLS)
def test_cell(profile, direction, row, col, expected):
    old = NAMES[col]
    assert STATE_TABLES[profile][direction][INDEX[row]][old] == expected


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
