"""The ``nf_hook_ops`` a namespace registers: conntrack, NAT, the iptables tables, confirm.

Each op has the kernel's priority (``sim.netfilter.hooks.Priority``) and mirrors its hook
function: ``ipv4_conntrack_in``/``ipv4_conntrack_local`` (nf_conntrack_proto.c),
``nf_nat_ipv4_pre_routing``/``..._out``/``nf_nat_inet_fn`` (nf_nat_proto.c, nf_nat_core.c),
``iptable_*_hook`` (ipt_do_table) and ``ipv4_confirm``. An op returns a netfilter verdict and
records what it did in the trace. Ops see the stack only through their
:class:`sim.netfilter.core.NfHookState`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.include.netfilter import NF_INET_PRE_ROUTING, CtState, Hook, TableName
from sim.include.nf_conntrack import (
    IP_CT_NEW,
    IPPROTO_ICMP,
    IPS_SRC_NAT,
    CtDir,
    CtEntry,
    CtInfo,
    nf_ct_get_tuple,
)
from sim.netfilter import nat
from sim.netfilter.conntrack import l4proto_log_prefix, stats_delta
from sim.netfilter.core import NfHookOps, NfHookState, hook_dev, note_hook
from sim.netfilter.hooks import NF_ACCEPT, NF_DROP, NfVerdict, Priority
from sim.netfilter.iptables.save import rule_text
from sim.netfilter.log import LogTarget, log_line
from sim.netfilter.proto_tcp import TcpAction
from sim.netfilter.reject import ICMP_CODE, nf_send_unreach_ok
from sim.netfilter.x_tables import XtResult
from sim.netfilter.xtables import TABLE_HOOKS, Table, ctstate_of, ipt_do_table
from sim.packet import IPPROTO_TCP, IcmpType
from sim.skb import Skb
from sim.trace import ConfirmInfo, ConntrackInfo, CtSysctls, NatBinding, TraceVerdict, Why

if TYPE_CHECKING:
    from collections.abc import Callable

    from sim.netfilter.conntrack import ConntrackResult, ConntrackTable
    from sim.netfilter.core import Net
    from sim.netfilter.proto_tcp import TcpResult
    from sim.netfilter.sysctl import ConntrackSysctls
    from sim.packet import Packet

REPLY_INFOS = (CtInfo.ESTABLISHED_REPLY, CtInfo.RELATED_REPLY)
RELATED_INFOS = (CtInfo.RELATED, CtInfo.RELATED_REPLY)
IPPROTO_RAW = 255  # nf_conntrack_log_invalid=255: log every protocol
# The filter-type tables and their priorities (the nat table runs inside nat_hook).
_NAT_PRIORITY = {nat.ManipType.SRC: int(Priority.NAT_SRC), nat.ManipType.DST: int(Priority.NAT_DST)}
TABLE_PRIORITY = {
    TableName.RAW: Priority.RAW,
    TableName.MANGLE: Priority.MANGLE,
    TableName.FILTER: Priority.FILTER,
}


def conntrack_in(skb: Skb, state: NfHookState) -> NfVerdict:
    """``ipv4_conntrack_in`` / ``ipv4_conntrack_local`` -> ``nf_conntrack_in``."""
    w, ns, hook = state.stack, state.net, state.hook
    table = ns.conntrack
    assert table is not None
    tracing = w.trace.enabled
    before = skb.pkt
    logged, evicted = len(table.log), table.stats.early_drop
    res = table.nf_conntrack_in(skb, w.now, hook == NF_INET_PRE_ROUTING, tracing)
    if table.stats.early_drop != evicted or len(table.log) != logged:
        _table_limit(state, skb, table.stats.early_drop - evicted, table.log[logged:])
    reason = res.reason
    proto = before.proto
    if reason and _log_invalid(table.sysctl.log_invalid, proto, res):
        # nf_ct_l4proto_log_invalid() -> nf_log_packet(..., "nf_ct_proto_6: %pV ", ...)
        prefix = l4proto_log_prefix(table.profile, proto)
        line = log_line(LogTarget(prefix=f"{prefix}{reason} "), skb, w.xt_context(ns))
        w.kernel_log(ns, skb.pid, line)
    if tracing:
        tcp = res.tcp
        window = TraceVerdict[res.window.name] if res.window is not None else None
        if window is None:  # no TCP tracking: the entry attached, or not (INVALID), or dropped
            attached = TraceVerdict.ACCEPT if skb.ct is not None else TraceVerdict.INVALID
            verdict = attached if res.verdict == NfVerdict.ACCEPT else TraceVerdict.DROP
        info = ConntrackInfo(
            ctstate=_primary_state(ctstate_of(skb)),
            window=window,
            reason=reason,
            old_state=tcp.old_state if tcp else None,
            new_state=tcp.new_state if tcp else None,
            check=tcp.window if tcp else None,
            ct_id=table.ct_id(skb.ct) if skb.ct is not None else None,
            created=res.created,
            snat=skb.ct is not None and bool(skb.ct.status & IPS_SRC_NAT),
            direction=_direction(skb, tcp),
            entry=_entry(table, before, w.now),
            sysctls=_sysctls(table.sysctl),
            log_prefix=l4proto_log_prefix(table.profile, proto),
        )
        dev = skb.indev or skb.outdev
        prio = int(Priority.CONNTRACK)
        note_hook(state, skb, Why.CONNTRACK, window or verdict, prio, dev=dev, before=before, ct=info)
    return res.verdict


def _log_invalid(log_invalid: int, proto: int, res: ConntrackResult) -> bool:
    """Does ``nf_conntrack_log_invalid`` log this packet? TCP: any non-zero value, for a packet
    the tracker did not accept; the others: ``LOG_INVALID(net, proto)`` /
    ``nf_l4proto_log_invalid()``, the protocol's number or 255."""
    if proto is IPPROTO_TCP:
        return bool(log_invalid) and res.window not in (None, TcpAction.ACCEPT)
    return log_invalid in (proto, IPPROTO_RAW)


def _sysctls(s: ConntrackSysctls) -> CtSysctls:
    """The sysctl values for the trace, one frozen record per distinct set."""
    key = (
        s.tcp_be_liberal,
        s.tcp_loose,
        s.tcp_max_retrans,
        s.tcp_ignore_invalid_rst,
        s.log_invalid,
        s.checksum,
    )
    got = _SYSCTLS.get(key)
    if got is None:
        got = _SYSCTLS[key] = CtSysctls(
            tcp_be_liberal=key[0],
            tcp_loose=key[1],
            tcp_max_retrans=key[2],
            tcp_ignore_invalid_rst=key[3],
            log_invalid=key[4],
            checksum=key[5],
        )
    return got


_SYSCTLS: dict[tuple[int, ...], CtSysctls] = {}


def _table_limit(state: NfHookState, skb: Skb, evicted: int, lines: list[str]) -> None:
    """``__nf_conntrack_alloc()`` met ``nf_conntrack_max``: ``early_drop()`` evicted entries,
    or nothing could go and the kernel warned "table full" (dmesg) and refused the entry."""
    w, ns = state.stack, state.net
    for line in lines:
        w.kernel_log(ns, skb.pid, line)
    if not w.trace.enabled:
        return
    why, verdict = (Why.EARLY_DROP, TraceVerdict.ACCEPT) if evicted else (Why.TABLE_FULL, TraceVerdict.DROP)
    detail = str(evicted) if evicted else lines[-1] if lines else None
    note_hook(state, skb, why, verdict, int(Priority.CONNTRACK), dev=skb.indev or skb.outdev, detail=detail)


def _entry(table: ConntrackTable, pkt: Packet, now: float) -> CtEntry | None:
    """The packet's connection right after conntrack ran (also for an INVALID packet, whose
    entry stays in the table; None for an unconfirmed one), as ``conntrack -L`` would list it."""
    hit = table.find(nf_ct_get_tuple(pkt), now)
    if hit is None:
        return None
    return hit[0].snapshot()


def _direction(skb: Skb, tcp: TcpResult | None) -> CtDir | None:
    """Which way the packet went on its connection: from ctinfo while the entry is attached,
    else (INVALID) from the window check's sender; None when nothing says."""
    if skb.ct is not None:
        return CtDir.REPLY if skb.ctinfo in REPLY_INFOS else CtDir.ORIGINAL
    if tcp is not None and tcp.window is not None:
        return CtDir(tcp.window.sender_dir)
    return None


_PRIMARY_STATES = (CtState.INVALID, CtState.UNTRACKED, CtState.RELATED, CtState.ESTABLISHED, CtState.NEW)


def _primary_state(state: CtState) -> CtState:
    """The one state ``--ctstate`` names for the packet (SNAT/DNAT are extra bits)."""
    return next(s for s in _PRIMARY_STATES if state & s)


def confirm(skb: Skb, state: NfHookState) -> NfVerdict:
    """``ipv4_confirm`` -> ``nf_conntrack_confirm``: insert a new entry as the packet leaves.

    A packet a race holds (``state.stack.wants_held``) is queued here, after every other
    hook function and before confirmation, whatever its entry: none (INVALID), a new one
    (put on the table's ``queued`` list, counted until it is confirmed or freed) or a
    confirmed one, as the live judge's NFQUEUE rule at priority 200 holds it by its IP ID.
    ``nf_reinject()`` runs this function again (``state.stack.is_held``), which then
    confirms it."""
    w, ns = state.stack, state.net
    table = ns.conntrack
    assert table is not None
    ct = skb.ct
    if w.wants_held(skb):
        if ct is not None and not ct.confirmed:
            table.queued.append(ct)
        if w.trace.enabled:
            _confirm_event(state, skb, Why.QUEUED, TraceVerdict.QUEUE)
        return NfVerdict.QUEUE
    if w.is_held(skb.pid):
        if ct is not None and ct in table.queued:
            table.queued.remove(ct)
        if w.trace.enabled:
            _confirm_event(state, skb, Why.REINJECTED, TraceVerdict.ACCEPT)
    before = table.stats.counters(table.profile) if w.trace.enabled else {}
    result = table.nf_conntrack_confirm(skb, w.now)
    if result.outcome is not None and ct is not None and w.trace.enabled:
        moved = tuple(stats_delta(before, table.stats.counters(table.profile)))
        ct_id = table.ct_id(ct)
        info = ConfirmInfo(outcome=result.outcome, ct_id=ct_id, winner=result.winner, counters=moved)
        _confirm_event(state, skb, Why.CONFIRM, TraceVerdict[result.verdict.name], info)
    return result.verdict


def _confirm_event(
    state: NfHookState, skb: Skb, why: Why, verdict: TraceVerdict, info: ConfirmInfo | None = None
) -> None:
    prio = int(Priority.CONNTRACK_CONFIRM)
    note_hook(state, skb, why, verdict, prio, dev=skb.outdev or skb.indev, confirm=info)


def nat_hook(skb: Skb, state: NfHookState) -> NfVerdict:
    """``nf_nat_inet_fn()``: bind on a NEW connection's first packet (running the nat table),
    then translate by direction. A packet without an entry returns ACCEPT untouched."""
    w, ns, hook = state.stack, state.net, state.hook
    ct, manip = skb.ct, nat.hook2manip(hook)
    before = skb.pkt
    if ct is None:
        if w.trace.enabled:
            _nat_event(state, skb, Why.NAT_SKIP, TraceVerdict.SKIP, before)
        return NF_ACCEPT
    if before.proto == IPPROTO_ICMP and skb.ctinfo in RELATED_INFOS:
        # nf_nat_ipv4_fn(): an ICMP error about a NATed connection
        assert skb.ctinfo is not None
        skb.pkt = nat.nf_nat_icmp_reply_translation(ct, skb.ctinfo, hook, before)
        if w.trace.enabled:
            verdict = TraceVerdict.TRANSLATED if skb.pkt is not before else TraceVerdict.UNCHANGED
            _nat_event(state, skb, Why.NAT, verdict, before, after=skb.pkt)
        return NF_ACCEPT
    binding = None
    if skb.ctinfo == IP_CT_NEW and not nat.nf_nat_initialized(ct, manip):
        nat_table = ns.ruleset.table(TableName.NAT)
        result = ipt_do_table(nat_table, hook, skb, w.xt_context(ns))
        if w.trace.enabled:
            _table_event(state, skb, _NAT_PRIORITY[manip], nat_table, result)
        if result.verdict != NF_ACCEPT:
            return NF_DROP
        if result.nat is not None:
            out = ns.dev_addr(skb.outdev) if skb.outdev else None
            rng = nat.request_range(result.nat, out)
            table = ns.conntrack
            assert table is not None
            nat.nf_nat_setup_info(table, ct, rng, manip, w.now, w.nat_rng)
            if w.trace.enabled:
                binding = NatBinding(kind=result.nat.kind, reply=ct.tuples[1][:4])
        else:
            nat.nf_nat_alloc_null_binding(ct, manip)
    direction = 1 if skb.ctinfo in REPLY_INFOS else 0
    skb.pkt = nat.nf_nat_packet(ct, direction, hook, skb.pkt)
    changed = skb.pkt is not before
    if w.trace.enabled:
        verdict = TraceVerdict.TRANSLATED if changed else TraceVerdict.UNCHANGED
        _nat_event(state, skb, Why.NAT, verdict, before, after=skb.pkt, binding=binding)
    return NF_ACCEPT


def _nat_event(
    state: NfHookState,
    skb: Skb,
    why: Why,
    verdict: TraceVerdict,
    before: Packet,
    *,
    after: Packet | None = None,
    binding: NatBinding | None = None,
) -> None:
    hook = state.hook
    prio = _NAT_PRIORITY[nat.hook2manip(hook)]
    note_hook(
        state, skb, why, verdict, prio, dev=hook_dev(skb, hook), before=before, after=after, nat=binding
    )


def _rule_text(table: Table, result: XtResult) -> str:
    """The rule that decided, as ``iptables -t TABLE -S`` prints it, or the chain's policy."""
    chain = table.chains[result.chain]
    if result.rulenum:
        return rule_text(chain, chain.rules[result.rulenum - 1])
    assert chain.policy is not None
    return f"-P {chain.name} {chain.policy.value}"


def _table_event(state: NfHookState, skb: Skb, prio: int, table: Table, result: XtResult) -> None:
    note_hook(
        state,
        skb,
        Why.TABLE,
        TraceVerdict[result.verdict.name],
        prio,
        dev=skb.indev or skb.outdev,
        table=table.name,
        chain=result.chain,
        rule=result.rulenum,
        rule_text=_rule_text(table, result),
        detail=result.nat.kind.value if result.nat else None,
    )


def table_op(name: TableName) -> Callable[[Skb, NfHookState], NfVerdict]:
    """``iptable_<name>_hook``: run the table's chain for this hook."""

    def op(skb: Skb, state: NfHookState) -> NfVerdict:
        w, ns, hook, pid = state.stack, state.net, state.hook, skb.pid
        table = ns.ruleset.tables.get(name)
        if table is None:  # module not loaded: no hook registered in the kernel
            return NF_ACCEPT
        result = ipt_do_table(table, hook, skb, w.xt_context(ns))
        if w.trace.enabled:
            _table_event(state, skb, int(TABLE_PRIORITY[name]), table, result)
        reject = result.reject
        if reject is not None and reject.reply is not None:
            w.emit_local(ns, reject.reply, cause=pid, why=Why.REJECT_RESET)
        elif reject is not None and reject.with_ in ICMP_CODE and nf_send_unreach_ok(reject.offending):
            # nf_send_unreach() -> icmp_send(skb_in, ICMP_DEST_UNREACH, code, 0)
            w.icmp_send(ns, reject.offending, IcmpType.DEST_UNREACH, ICMP_CODE[reject.with_], pid)
        return NF_ACCEPT if result.verdict == NF_ACCEPT else NF_DROP

    op.__name__ = f"iptable_{name.value}_hook"
    return op


def register_host_ops(net: Net) -> None:
    """The ops a host with conntrack, nat and the loaded iptables tables registers."""
    hooks = net.hooks
    for hook in (Hook.PRE_ROUTING, Hook.LOCAL_OUT):
        hooks.register(NfHookOps(hook, Priority.CONNTRACK, "conntrack", conntrack_in))
        hooks.register(NfHookOps(hook, Priority.NAT_DST, "nat", nat_hook))
    for hook in (Hook.LOCAL_IN, Hook.POST_ROUTING):
        hooks.register(NfHookOps(hook, Priority.NAT_SRC, "nat", nat_hook))
        hooks.register(NfHookOps(hook, Priority.CONNTRACK_CONFIRM, "confirm", confirm))
    for name, prio in TABLE_PRIORITY.items():
        op = table_op(name)
        for hook in TABLE_HOOKS[name]:
            hooks.register(NfHookOps(hook, prio, name.value, op))
