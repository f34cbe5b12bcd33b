"""The status bits of a conntrack entry (include/uapi/linux/netfilter/nf_conntrack_common.h,
``enum ip_conntrack_status``), by the kernel's names: what ``ct_status`` in the replay output
lists."""

from __future__ import annotations

from enum import IntFlag


class IpConntrackStatus(IntFlag):
    """``enum ip_conntrack_status`` (``IPS_*``), the same bits from 3.10 to 6.18; NAT_CLASH
    re-purposes UNTRACKED's bit 12 inside the kernel since 5.6."""

    EXPECTED = 1 << 0
    SEEN_REPLY = 1 << 1
    ASSURED = 1 << 2
    CONFIRMED = 1 << 3
    SRC_NAT = 1 << 4
    DST_NAT = 1 << 5
    SEQ_ADJUST = 1 << 6
    SRC_NAT_DONE = 1 << 7
    DST_NAT_DONE = 1 << 8
    DYING = 1 << 9
    FIXED_TIMEOUT = 1 << 10
    TEMPLATE = 1 << 11
    UNTRACKED = 1 << 12
    HELPER = 1 << 13
    OFFLOAD = 1 << 14
    HW_OFFLOAD = 1 << 15


# "Re-purposed for in-kernel use: Tags a conntrack entry that clashed with an existing entry
# on insert." (IPS_NAT_CLASH_BIT = IPS_UNTRACKED_BIT)
IPS_NAT_CLASH = IpConntrackStatus.UNTRACKED


# Each bit with its name, lowest first. Bit 12 is named NAT_CLASH: on an entry in the table it
# can mean nothing else (UNTRACKED marked the untracked template, which is never hashed).
_BIT_NAMES = tuple(
    (int(bit), "NAT_CLASH" if bit is IPS_NAT_CLASH else bit.name or "") for bit in IpConntrackStatus
)


def status_names(status: int) -> list[str]:
    """An entry's set bits by name, lowest first (bit 12 as NAT_CLASH)."""
    return [name for bit, name in _BIT_NAMES if status & bit]
