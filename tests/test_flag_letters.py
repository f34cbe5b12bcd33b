"""TCP flag letters: case files write SYN first then bit order ("SA", "FPA"); tcpdump prints
bit order with "." for ACK (print-tcp.c's tcp_flag_values[], as in ``Flags [S.]``,
``Flags [FP.]``, ``Flags [R]``, ``Flags [none]`` in real tcpdump -n output)."""

from __future__ import annotations

import pytest

from sim.packet import Packet, format_flags, parse_flags
from sim.report.capture import tcpdump_line


@pytest.mark.parametrize(
    ("case", "tcpdump"),
    [("SA", "S."), ("FPA", "FP."), ("R", "R"), ("SF", "FS"), ("", "none"), ("SFRPAUEW", "FSRP.UEW")],
)
def test_one_flag_set_in_both_spellings(case, tcpdump):
    flags = parse_flags(case)
    assert format_flags(flags) == case
    assert parse_flags(tcpdump.replace("none", "")) == flags
    pkt = Packet("192.0.2.1", "198.51.100.2", 1000, 80, 1, 0, flags, 512)
    assert f"Flags [{tcpdump}]" in tcpdump_line(pkt, 0.0, absolute=True)
