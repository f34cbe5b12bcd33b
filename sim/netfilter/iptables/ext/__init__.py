"""The match and target extensions iptables knows, one module per ``libxt_*.c``: the options each
takes and the function that builds it from them."""

from __future__ import annotations

from collections.abc import Callable

from sim.include.netfilter import Hook, NatKind, TableName
from sim.netfilter.iptables.ext.addrtype import _build_addrtype
from sim.netfilter.iptables.ext.conntrack import _build_conntrack, _build_state
from sim.netfilter.iptables.ext.ct import CT_OPTIONS, _build_ct, _build_notrack
from sim.netfilter.iptables.ext.limit import _build_limit
from sim.netfilter.iptables.ext.log import _build_log
from sim.netfilter.iptables.ext.nat import _build_nat
from sim.netfilter.iptables.ext.reject import _build_reject
from sim.netfilter.iptables.ext.statistic import _build_statistic
from sim.netfilter.iptables.ext.tcp import _build_tcp
from sim.netfilter.iptables.ext.udp import _build_udp
from sim.netfilter.iptables.parse import Opts
from sim.netfilter.xtables import XtMatch, XtTarget

MATCHES: dict[str, tuple[frozenset[str], Callable[[Opts], XtMatch]]] = {
    "tcp": (
        frozenset({"--sport", "--source-port", "--dport", "--destination-port", "--syn", "--tcp-flags"}),
        _build_tcp,
    ),
    "udp": (frozenset({"--sport", "--source-port", "--dport", "--destination-port"}), _build_udp),
    "conntrack": (frozenset({"--ctstate"}), _build_conntrack),
    "state": (frozenset({"--state"}), _build_state),
    "limit": (frozenset({"--limit", "--limit-burst"}), _build_limit),
    "addrtype": (frozenset({"--src-type", "--dst-type"}), _build_addrtype),
    "statistic": (frozenset({"--mode", "--every", "--packet", "--probability"}), _build_statistic),
}


# target name -> (options, builder, table it is restricted to, hooks it may be used from)
TARGETS: dict[str, tuple[frozenset[str], Callable[[Opts], XtTarget], TableName | None, frozenset[Hook]]] = {
    "LOG": (
        frozenset({"--log-prefix", "--log-level", "--log-tcp-sequence"}),
        _build_log,
        None,
        frozenset(Hook),
    ),
    "REJECT": (
        frozenset({"--reject-with"}),
        _build_reject,
        TableName.FILTER,
        frozenset({Hook.LOCAL_IN, Hook.FORWARD, Hook.LOCAL_OUT}),
    ),
    "SNAT": (
        frozenset({"--to-source", "--random", "--random-fully", "--persistent"}),
        lambda o: _build_nat(NatKind.SNAT, o),
        TableName.NAT,
        frozenset({Hook.POST_ROUTING, Hook.LOCAL_IN}),
    ),
    "DNAT": (
        frozenset({"--to-destination", "--random", "--persistent"}),
        lambda o: _build_nat(NatKind.DNAT, o),
        TableName.NAT,
        frozenset({Hook.PRE_ROUTING, Hook.LOCAL_OUT}),
    ),
    "CT": (CT_OPTIONS, _build_ct, TableName.RAW, frozenset({Hook.PRE_ROUTING, Hook.LOCAL_OUT})),
    "NOTRACK": (frozenset(), _build_notrack, TableName.RAW, frozenset({Hook.PRE_ROUTING, Hook.LOCAL_OUT})),
    "MASQUERADE": (
        frozenset({"--to-ports", "--random", "--random-fully"}),
        lambda o: _build_nat(NatKind.MASQUERADE, o),
        TableName.NAT,
        frozenset({Hook.POST_ROUTING}),
    ),
}
