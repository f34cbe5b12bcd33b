"""Netfilter verdicts and hook priorities (include/uapi/linux/netfilter.h, netfilter_ipv4.h)."""

from __future__ import annotations

from enum import IntEnum


class NfVerdict(IntEnum):
    """``NF_DROP`` .. ``NF_REPEAT``. Conntrack returns them negated (``-NF_ACCEPT``) to say
    "accept, but detach the entry" (``nf_conntrack_in``)."""

    DROP = 0
    ACCEPT = 1
    STOLEN = 2
    QUEUE = 3
    REPEAT = 4


# The verdicts under their kernel names, for the per-packet paths:
# on Python 3.11 reading a member as a class attribute goes through EnumType.__getattr__'s
# slow hook (about 900 machine instructions; a module global costs a few).
NF_DROP, NF_ACCEPT, NF_STOLEN, NF_QUEUE, NF_REPEAT = (
    NfVerdict.DROP,
    NfVerdict.ACCEPT,
    NfVerdict.STOLEN,
    NfVerdict.QUEUE,
    NfVerdict.REPEAT,
)


class Priority(IntEnum):
    """``enum nf_ip_hook_priorities`` (include/uapi/linux/netfilter_ipv4.h)."""

    FIRST = -(2**31)
    RAW_BEFORE_DEFRAG = -450
    CONNTRACK_DEFRAG = -400
    RAW = -300
    SELINUX_FIRST = -225
    CONNTRACK = -200
    MANGLE = -150
    NAT_DST = -100
    FILTER = 0
    SECURITY = 50
    NAT_SRC = 100
    SELINUX_LAST = 225
    CONNTRACK_HELPER = 300
    CONNTRACK_CONFIRM = 2**31 - 1
    LAST = 2**31 - 1
