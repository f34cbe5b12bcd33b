"""The closed sets netfilter names in its uapi headers (include/uapi/linux/netfilter.h,
netfilter_ipv4/ip_tables.h, netfilter/xt_conntrack.h, netfilter/nf_nat.h).

The hooks and the chain names iptables shows for them, the IPv4 tables, the ``--ctstate`` bits
and the NAT targets' kinds. The trace records them as these enums; the printers say them.
"""

from __future__ import annotations

from enum import Enum, IntEnum, IntFlag, StrEnum


class Hook(IntEnum):
    """``enum nf_inet_hooks`` (include/uapi/linux/netfilter.h)."""

    PRE_ROUTING = 0
    LOCAL_IN = 1
    FORWARD = 2
    LOCAL_OUT = 3
    POST_ROUTING = 4


class TableName(StrEnum):
    """The IPv4 tables: iptable_raw.c, iptable_mangle.c, iptable_nat.c, iptable_filter.c."""

    RAW = "raw"
    MANGLE = "mangle"
    NAT = "nat"
    FILTER = "filter"


# The chain name iptables shows for each hook (ip_tables.c hooknames[]).
HOOK_CHAIN: dict[Hook, str] = {
    Hook.PRE_ROUTING: "PREROUTING",
    Hook.LOCAL_IN: "INPUT",
    Hook.FORWARD: "FORWARD",
    Hook.LOCAL_OUT: "OUTPUT",
    Hook.POST_ROUTING: "POSTROUTING",
}
CHAIN_HOOK = {name: hook for hook, name in HOOK_CHAIN.items()}


class CtState(IntFlag):
    """``XT_CONNTRACK_STATE_*`` (include/uapi/linux/netfilter/xt_conntrack.h, nf_conntrack_common.h)."""

    INVALID = 1 << 0
    ESTABLISHED = 1 << 1  # XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED)
    RELATED = 1 << 2
    NEW = 1 << 3
    SNAT = 1 << 8
    DNAT = 1 << 9
    UNTRACKED = 1 << 10


class NatKind(Enum):
    """Which NAT target asked: xt_nat.c (SNAT, DNAT) or xt_MASQUERADE.c."""

    SNAT = "SNAT"
    DNAT = "DNAT"
    MASQUERADE = "MASQUERADE"
