"""The closed sets netfilter names in its uapi headers (include/uapi/linux/netfilter.h,
netfilter_ipv4/ip_tables.h, netfilter/xt_conntrack.h, netfilter/nf_nat.h).

The hooks and the chain names iptables shows for them, the IPv4 tables, the ``--ctstate`` bits,
the NAT targets' kinds and the ranges they ask for, REJECT's ``--reject-with`` and what it asks
the caller to send. The trace records them as these enums; the printers say them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum, IntFlag, StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.packet import Packet


class Hook(IntEnum):
    """``enum nf_inet_hooks`` (include/uapi/linux/netfilter.h)."""

    PRE_ROUTING = 0
    LOCAL_IN = 1
    FORWARD = 2
    LOCAL_OUT = 3
    POST_ROUTING = 4


# The hooks under their kernel names, for the per-packet paths:
# on Python 3.11 reading a member as a class attribute goes through EnumType.__getattr__'s
# slow hook (about 900 machine instructions; a module global costs a few).
NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN, NF_INET_FORWARD = Hook.PRE_ROUTING, Hook.LOCAL_IN, Hook.FORWARD
NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING = Hook.LOCAL_OUT, Hook.POST_ROUTING


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


class NatRangeFlag(IntFlag):
    """``NF_NAT_RANGE_*`` (include/uapi/linux/netfilter/nf_nat.h)."""

    MAP_IPS = 1 << 0
    PROTO_SPECIFIED = 1 << 1
    PROTO_RANDOM = 1 << 2
    PERSISTENT = 1 << 3
    PROTO_RANDOM_FULLY = 1 << 4


@dataclass(frozen=True, slots=True)
class NatRange:
    """``struct nf_nat_range2`` (IPv4 part); addresses as dotted quads."""

    flags: NatRangeFlag = NatRangeFlag(0)  # noqa: RUF009 (immutable)
    min_addr: str = "0.0.0.0"
    max_addr: str = "0.0.0.0"
    min_port: int = 0
    max_port: int = 0


@dataclass(frozen=True, slots=True)
class NatRequest:
    """What ``xt_snat_target_v2()``/``xt_dnat_target_v2()``/``masquerade_tg()`` would hand to
    ``nf_nat_setup_info()``: the nat module performs the binding."""

    kind: NatKind
    range: NatRange


class RejectWith(IntEnum):
    """``enum ipt_reject_with`` (include/uapi/linux/netfilter_ipv4/ipt_REJECT.h)."""

    ICMP_NET_UNREACHABLE = 0
    ICMP_HOST_UNREACHABLE = 1
    ICMP_PROT_UNREACHABLE = 2
    ICMP_PORT_UNREACHABLE = 3
    ICMP_NET_PROHIBITED = 5
    ICMP_HOST_PROHIBITED = 6
    TCP_RESET = 7
    ICMP_ADMIN_PROHIBITED = 8


@dataclass(frozen=True, slots=True)
class RejectRequest:
    """What ``reject_tg()`` (ipt_REJECT.c) sends. ``reply`` is the RST for tcp-reset (None when
    ``nf_send_reset()`` sends nothing); ICMP errors are left to the caller, which gets ``offending``."""

    with_: RejectWith
    offending: Packet
    reply: Packet | None
