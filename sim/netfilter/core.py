"""The netfilter core: per-namespace hook registration and ``nf_hook_slow`` (net/netfilter/core.c,
include/linux/netfilter.h).

A namespace keeps one list of hook entries per hook, sorted by priority
(``nf_register_net_hook`` -> ``nf_hook_entries_grow``: a new entry goes before the entries
of equal priority). ``nf_hook_slow`` calls them in order with the packet and an
:class:`NfHookState`, and acts on each verdict as the kernel does.

Netfilter does not know the world it runs in: what a hook function needs from the stack
(virtual time, the trace, the kernel log, packets the kernel sends itself) comes through the
:class:`Stack` protocol on the hook state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sim.include.netfilter import Hook
from sim.netfilter.hooks import NF_ACCEPT, NF_QUEUE, NF_STOLEN, NfVerdict
from sim.trace import Step, TraceEvent, TraceVerdict, Why

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

    from sim.include.netfilter import TableName
    from sim.netfilter.conntrack import ConntrackTable
    from sim.netfilter.x_tables import XtContext
    from sim.netfilter.xtables import Ruleset
    from sim.packet import Packet
    from sim.skb import Skb
    from sim.trace import ConfirmInfo, ConntrackInfo, NatBinding, Trace


class Net(Protocol):
    """What netfilter reads of a network namespace (``struct net``)."""

    @property
    def name(self) -> str: ...

    @property
    def conntrack(self) -> ConntrackTable | None: ...

    @property
    def ruleset(self) -> Ruleset: ...

    @property
    def hooks(self) -> NfHooks: ...

    def dev_addr(self, dev: str) -> str | None: ...


class Stack(Protocol):
    """What netfilter asks of the network stack around it."""

    @property
    def now(self) -> float:
        """Virtual time in seconds."""
        ...

    @property
    def trace(self) -> Trace: ...

    @property
    def nat_rng(self) -> random.Random:
        """``get_random_u16()`` for NAT's port choice."""
        ...

    def xt_context(self, net: Net) -> XtContext: ...

    def kernel_log(self, net: Net, pid: int, line: str) -> None: ...

    def emit_local(self, net: Net, pkt: Packet, cause: int, why: Why) -> int:
        """Send a packet the kernel builds itself (a RST) through ``ip_local_out``."""
        ...

    def icmp_send(self, net: Net, pkt: Packet, icmp_type: int, code: int, cause: int) -> None:
        """``icmp_send()``: the ICMP error about ``pkt`` (net/ipv4/icmp.c)."""
        ...

    def wants_held(self, skb: Skb) -> bool:
        """Is this the packet a race holds before its confirmation (one hold per packet)?"""
        ...

    def is_held(self, pid: int) -> bool:
        """Is packet ``pid`` in the queue (while ``nf_reinject()`` runs it, too)?"""
        ...

    def nf_queue(self, entry: NfQueueEntry) -> bool:
        """``nf_queue()``: hand the packet to the queue handler; False when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class NfHookState:
    """``struct nf_hook_state``: which hook is running, in which namespace, on which stack."""

    hook: Hook
    net: Net
    stack: Stack


@dataclass(frozen=True, slots=True)
class NfHookOps:
    """``struct nf_hook_ops``: a hook function with its hook and priority."""

    hook: Hook
    priority: int
    name: str
    fn: Callable[[Skb, NfHookState], NfVerdict]


@dataclass(slots=True)
class NfHooks:
    """A namespace's ``net->nf.hooks_ipv4``: for each hook its entries, in priority order."""

    entries: dict[Hook, list[NfHookOps]] = field(default_factory=dict)

    def register(self, ops: NfHookOps) -> None:
        """``nf_register_net_hook()`` -> ``nf_hook_entries_grow()``: the new entry goes before
        the first one whose priority is not lower than its own."""
        hooks = self.entries.setdefault(ops.hook, [])
        i = 0
        while i < len(hooks) and ops.priority > hooks[i].priority:
            i += 1
        hooks.insert(i, ops)

    def unregister(self, ops: NfHookOps) -> None:
        """``nf_unregister_net_hook()``."""
        self.entries[ops.hook].remove(ops)


@dataclass(frozen=True, slots=True)
class NfQueueEntry:
    """``struct nf_queue_entry``: a queued packet, its hook state, the index of the hook entry
    that queued it and the function the packet goes on to (``state->okfn``)."""

    skb: Skb
    state: NfHookState
    index: int
    okfn: Callable[[Skb], None]


def nf_hook_slow(
    skb: Skb, state: NfHookState, okfn: Callable[[Skb], None] | None = None, start: int = 0
) -> bool:
    """``nf_hook_slow()``: run the hook's entries in priority order from entry ``start`` (the
    kernel's ``s``: 0, or for ``nf_reinject()`` the entry that queued the packet); True when
    the packet goes on to ``okfn``.

    ACCEPT goes to the next entry. DROP frees the packet (and with it an unconfirmed
    conntrack entry). STOLEN: the hook function took the packet; it goes no further here.
    QUEUE hands the packet to ``nf_queue``, which without a queue handler fails with -ESRCH
    and frees it. Any other verdict (REPEAT is only a queue handler's or conntrack's internal
    answer) hits ``WARN_ON_ONCE`` and stops the packet.
    """
    entries = state.net.hooks.entries.get(state.hook, ())
    for i in range(start, len(entries)):
        ops = entries[i]
        verdict = ops.fn(skb, state)
        if verdict == NF_ACCEPT:
            continue
        if (
            verdict == NF_QUEUE
            and okfn is not None
            and state.stack.nf_queue(NfQueueEntry(skb, state, i, okfn))
        ):
            return False
        table = state.net.conntrack
        if table is not None and skb.ct is not None and verdict != NF_STOLEN:
            if skb.ct in table.queued:  # no queue handler took it
                table.queued.remove(skb.ct)
            table.destroy_unconfirmed(skb.ct)
        if state.stack.trace.enabled:
            _stopped(skb, state, ops, verdict)
        return False
    return True


def nf_reinject(entry: NfQueueEntry) -> None:
    """``nf_reinject()`` with NF_REPEAT: the queued packet runs the entry that queued it
    again, then the rest of the hook, then its ``okfn``."""
    if nf_hook_slow(entry.skb, entry.state, entry.okfn, entry.index):
        entry.okfn(entry.skb)


# The step of each hook function's decision.
_HOOK_STEP = {
    Why.CONNTRACK: Step.CONNTRACK,
    Why.CONFIRM: Step.CONNTRACK,
    Why.EARLY_DROP: Step.CONNTRACK,
    Why.TABLE_FULL: Step.CONNTRACK,
    Why.QUEUED: Step.CONNTRACK,
    Why.REINJECTED: Step.CONNTRACK,
    Why.NAT_SKIP: Step.NAT,
    Why.NAT: Step.NAT,
    Why.TABLE: Step.TABLE,
    Why.HOOK_VERDICT: Step.DROP,
}


def hook_dev(skb: Skb, hook: Hook) -> str | None:
    """The device a hook's event names: the output device on the way out, else the input one."""
    return skb.outdev if hook in (Hook.POST_ROUTING, Hook.LOCAL_OUT) else skb.indev


def note_hook(
    state: NfHookState,
    skb: Skb,
    why: Why,
    verdict: TraceVerdict,
    priority: int,
    *,
    dev: str | None,
    before: Packet | None = None,
    after: Packet | None = None,
    table: TableName | None = None,
    chain: str | None = None,
    rule: int | None = None,
    rule_text: str | None = None,
    detail: str | None = None,
    ct: ConntrackInfo | None = None,
    nat: NatBinding | None = None,
    confirm: ConfirmInfo | None = None,
) -> None:
    """Record one decision of a hook function about ``skb`` (``before``: the packet as it came
    in, ``skb.pkt`` unless given). Callers check ``trace.enabled`` first: off, nothing is built."""
    stack = state.stack
    stack.trace.add(
        TraceEvent(
            t=stack.now,
            pid=skb.pid,
            step=_HOOK_STEP[why],
            why=why,
            ns=state.net.name,
            dev=dev,
            hook=state.hook,
            priority=priority,
            table=table,
            chain=chain,
            rule=rule,
            rule_text=rule_text,
            verdict=verdict,
            before=skb.pkt if before is None else before,
            after=after,
            detail=detail,
            ct=ct,
            nat=nat,
            confirm=confirm,
        )
    )


def _stopped(skb: Skb, state: NfHookState, ops: NfHookOps, verdict: NfVerdict) -> None:
    note_hook(
        state,
        skb,
        Why.HOOK_VERDICT,
        TraceVerdict[verdict.name],
        ops.priority,
        dev=hook_dev(skb, state.hook),
        detail=ops.name,
    )
