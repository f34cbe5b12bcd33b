"""sim.netfilter.core: hook registration order and nf_hook_slow's handling of every verdict.

Expected behaviour typed in from net/netfilter/core.c (Linux 6.18): nf_hook_entries_grow()
inserts a new entry before the first existing one with a priority not lower than its own;
nf_hook_slow() goes on after NF_ACCEPT, frees the skb and stops on NF_DROP, stops on NF_STOLEN,
hands NF_QUEUE to nf_queue() (-ESRCH without a queue handler: the skb is freed, the hook
returns 0), and hits WARN_ON_ONCE + return 0 on anything else (NF_REPEAT included).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from sim.include.netfilter import Hook
from sim.netfilter.core import NfHookOps, NfHooks, NfHookState, nf_hook_slow
from sim.netfilter.hooks import NfVerdict
from sim.netfilter.xtables import Ruleset
from sim.packet import Packet, TcpFlag
from sim.skb import Skb
from sim.trace import Step, Trace

PKT = Packet("192.0.2.2", "198.51.100.2", 40000, 443, 1, 0, int(TcpFlag.SYN), 64240)


@dataclass
class FakeNet:
    name: str = "host"
    conntrack: None = None
    ruleset: Ruleset = field(default_factory=Ruleset)
    hooks: NfHooks = field(default_factory=NfHooks)

    def dev_addr(self, dev: str) -> str | None:
        return None


@dataclass
class FakeStack:
    now: float = 1.5
    trace: Trace = field(default_factory=Trace)
    nat_rng: random.Random = field(default_factory=random.Random)

    def xt_context(self, net: object) -> object:
        raise AssertionError("not used")

    def kernel_log(self, net: object, pid: int, line: str) -> None:
        raise AssertionError("not used")

    def emit_local(self, net: object, pkt: Packet, cause: int, why: str) -> int:
        raise AssertionError("not used")


def _run(entries: list[tuple[int, str, NfVerdict]]) -> tuple[bool, list[str], Trace]:
    net, stack, called = FakeNet(), FakeStack(), []
    for prio, name, verdict in entries:

        def fn(skb: Skb, state: NfHookState, name: str = name, verdict: NfVerdict = verdict) -> NfVerdict:
            assert state.hook is Hook.PRE_ROUTING and state.net is net
            called.append(name)
            return verdict

        net.hooks.register(NfHookOps(Hook.PRE_ROUTING, prio, name, fn))
    ok = nf_hook_slow(Skb(PKT, indev="eth0", pid=7), NfHookState(Hook.PRE_ROUTING, net, stack))
    return ok, called, stack.trace


def test_entries_run_in_priority_order_whatever_the_registration_order():
    ok, called, trace = _run(
        [
            (0, "filter", NfVerdict.ACCEPT),
            (-300, "raw", NfVerdict.ACCEPT),
            (-200, "conntrack", NfVerdict.ACCEPT),
        ]
    )
    assert ok and called == ["raw", "conntrack", "filter"] and trace.events == []


def test_equal_priority_new_entry_goes_first():
    # nf_hook_entries_grow(): "if (inserted || reg->priority > orig_ops[i]->priority)" keeps
    # the old entry first only when the new one's priority is higher
    ok, called, _ = _run([(0, "first", NfVerdict.ACCEPT), (0, "second", NfVerdict.ACCEPT)])
    assert ok and called == ["second", "first"]


@pytest.mark.parametrize("verdict", [NfVerdict.DROP, NfVerdict.STOLEN, NfVerdict.QUEUE, NfVerdict.REPEAT])
def test_every_verdict_but_accept_stops_the_packet(verdict: NfVerdict):
    ok, called, trace = _run(
        [(-200, "a", NfVerdict.ACCEPT), (-100, "b", verdict), (0, "c", NfVerdict.ACCEPT)]
    )
    assert not ok and called == ["a", "b"]
    (e,) = trace.events
    assert (e.step, e.pid, e.hook, e.priority, e.verdict, e.dev, e.t) == (
        Step.DROP,
        7,
        Hook.PRE_ROUTING,
        -100,
        verdict.name,
        "eth0",
        1.5,
    )


def test_unregister_removes_the_entry():
    hooks = NfHooks()
    a = NfHookOps(Hook.LOCAL_IN, 0, "a", lambda skb, state: NfVerdict.DROP)
    hooks.register(a)
    hooks.unregister(a)
    assert hooks.entries[Hook.LOCAL_IN] == []
