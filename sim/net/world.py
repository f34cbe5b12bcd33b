"""The simulated world: namespaces joined by links, one clock, one seeded RNG, one trace.

The world builds the topology (namespaces, devices, links; seen as a networkx graph on demand:
namespaces and devices as nodes, membership, veth links and bridge ports as edges), lets
packets in (crafted frames, the stacks' own segments, the kernel's RSTs), runs the sockets'
timers and records the trace. It is what the layers ask for -- netfilter's
:class:`sim.netfilter.core.Stack`, the device layer's :class:`sim.net.stack.NetDev` and the
IPv4 paths' :class:`sim.net.stack.Ipv4Stack` -- while the work is theirs:
:mod:`sim.net.dev` (links, the bridge, captures), :mod:`sim.net.ipv4` (the NF_HOOK call sites),
:mod:`sim.net.tcp_ipv4` (socket delivery). The same seed gives the same run.
"""

from __future__ import annotations

import functools
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sim.clock import Clock
from sim.include.netfilter import Hook
from sim.net.dev import dev_queue_xmit
from sim.net.icmp import icmp_send
from sim.net.ipv4 import ip_local_out, ip_rcv
from sim.net.netns import Device, Namespace
from sim.net.stack import Capture, LinkDelay
from sim.net.tcp_ipv4 import socket_name
from sim.netfilter.core import Net, NfHookState, NfQueueEntry, nf_reinject
from sim.netfilter.iptables.save import rule_text
from sim.netfilter.x_tables import RuleAt
from sim.packet import Packet
from sim.skb import Skb
from sim.trace import STACK_EVENTS, Step, Trace, TraceEvent, TraceVerdict, Why

if TYPE_CHECKING:
    import networkx as nx


@dataclass(slots=True)
class NsContext:
    """The ``XtContext`` the iptables code asks for, for one namespace."""

    world: World
    ns: Namespace

    @property
    def now(self) -> float:
        return self.world.clock.now

    @property
    def local_addrs(self) -> set[str]:
        return self.ns.local_addrs

    def mac_header(self, skb: Skb) -> str:
        """``dump_mac_header()``: destination MAC, source MAC, ethertype 08:00."""
        dev = self.ns.devices.get(skb.physindev or skb.indev or "")
        if dev is None or dev.peer is None:
            return ""
        src = self.world.namespaces[dev.peer[0]].devices[dev.peer[1]].mac
        dst = self.ns.devices[skb.indev].mac if skb.indev in self.ns.devices else dev.mac
        return f"{dst}:{src}:08:00"

    def log(self, level: int, line: str, skb: Skb, at: RuleAt) -> None:
        text = None
        if self.world.trace.enabled:
            chain = self.ns.ruleset.tables[at.table].chains[at.chain]
            text = rule_text(chain, chain.rules[at.rulenum - 1])
        self.world.kernel_log(self.ns, skb.pid, line, rule_text=text, at=at)


class Trigger(LinkDelay, Protocol):
    """Something a scenario makes happen mid-run (``sim.scenario.scenario``'s late-ack and
    beyond-window); the world runs it at two points: on the link (``delay``) and after each
    segment a socket took."""

    def after_socket(self, w: World) -> None:
        """Runs after each segment a socket took (its timers armed and its answer sent)."""
        ...


class World:
    """Namespaces, links, the clock, the RNG and the trace; the layers' :class:`Ipv4Stack`."""

    def __init__(self, seed: int = 0, trace: bool = True) -> None:
        self.clock = Clock()
        self.rng = random.Random(seed)
        self.nat_rng = random.Random(seed + 1)  # get_random_u16() for NAT port choice
        self.namespaces: dict[str, Namespace] = {}
        self.trace = Trace(trace)
        self.captures: dict[tuple[str, str], Capture] = defaultdict(Capture)
        self.capturing = True  # off: no capture records (a streaming replay keeps memory flat)
        self._next_pid = 0
        self.crossings = 0  # packets counted once per namespace they pass (bench)
        self.triggers: list[Trigger] = []  # a scenario's triggers, run by xmit and deliver_to_socket
        self._armed: dict[int, float] = {}  # id(socket) -> the deadline its poll is scheduled for
        self._contexts: dict[str, NsContext] = {}
        self._hook_states: dict[tuple[str, Hook], NfHookState] = {}
        self.hold_pid: int | None = None  # the packet a race holds before its confirmation
        self.held: list[NfQueueEntry] = []  # packets waiting in the queue (nf_queue)
        # the IPv4 packet_type handler the device layer hands frames to (dev_add_pack())
        self.ip_rcv: Callable[[Namespace, Skb], None] = functools.partial(ip_rcv, self)

    # -- building -------------------------------------------------------------------------
    def add_namespace(self, ns: Namespace) -> Namespace:
        self.namespaces[ns.name] = ns
        return ns

    def add_device(self, ns: Namespace, dev: Device) -> Device:
        ns.add_device(dev)
        return dev

    @property
    def graph(self) -> nx.Graph:
        """The topology as a networkx graph, built when asked (only the topology figure and
        its users draw it, so a run never imports networkx): namespaces and devices as nodes
        (``kind``, ``addr``), membership (``has``), bridge ports (``port``) and veth pairs or
        segment stations (``link``) as edges."""
        import networkx as nx

        g = nx.Graph()
        for ns in self.namespaces.values():
            g.add_node(ns.name, kind="netns")
            for dev in ns.devices.values():
                g.add_node(f"{ns.name}/{dev.name}", kind=dev.kind.value, addr=dev.addr)
        for ns in self.namespaces.values():
            for dev in ns.devices.values():
                node = f"{ns.name}/{dev.name}"
                g.add_edge(ns.name, node, kind="has")
                if dev.master is not None:
                    g.add_edge(node, f"{ns.name}/{dev.master}", kind="port")
                for far in ([dev.peer] if dev.peer is not None else []) + list(dev.stations.values()):
                    g.add_edge(node, f"{far[0]}/{far[1]}", kind="link")
        return g

    def link(self, a: tuple[str, str], b: tuple[str, str], delay: float = 0.0) -> None:
        """A veth pair (or a wire) between device ``a`` and device ``b``."""
        da = self.namespaces[a[0]].devices[a[1]]
        db = self.namespaces[b[0]].devices[b[1]]
        da.peer, db.peer = b, a
        da.delay = db.delay = delay

    def attach(self, a: tuple[str, str], b: tuple[str, str], delay: float = 0.0) -> None:
        """Device ``b`` joins device ``a``'s Ethernet segment as one more station: ``a`` sends
        frames for ``b``'s address to it, ``b`` sends everything to ``a`` (a switch that has
        learnt every address, with nothing else to see)."""
        da = self.namespaces[a[0]].devices[a[1]]
        db = self.namespaces[b[0]].devices[b[1]]
        assert db.addr is not None
        da.stations[db.addr] = b
        db.peer = a
        db.delay = delay

    # -- what netfilter asks of the stack (sim.netfilter.core.Stack) -----------------------------
    @property
    def now(self) -> float:
        return self.clock.now

    def xt_context(self, net: Net) -> NsContext:
        ctx = self._contexts.get(net.name)
        if ctx is None:
            ctx = self._contexts[net.name] = NsContext(self, self.namespaces[net.name])
        return ctx

    def hook_state(self, ns: Namespace, hook: Hook) -> NfHookState:
        """The ``nf_hook_state`` for ``hook`` in ``ns`` (one per pair, made on first use)."""
        state = self._hook_states.get((ns.name, hook))
        if state is None:
            state = self._hook_states[(ns.name, hook)] = NfHookState(hook, ns, self)
        return state

    # -- the queue a race holds a packet in ---------------------------------------------------
    def wants_held(self, skb: Skb) -> bool:
        """Is ``skb`` the packet to hold before confirmation? (Once: the hold is used up.)"""
        if skb.pid != self.hold_pid:
            return False
        self.hold_pid = None
        return True

    def nf_queue(self, entry: NfQueueEntry) -> bool:
        """The queue handler: keep the packet until :meth:`reinject_held`."""
        self.held.append(entry)
        return True

    def is_held(self, pid: int) -> bool:
        """Is packet ``pid`` in the queue (waiting, or being re-injected)?"""
        return bool(self.held) and any(entry.skb.pid == pid for entry in self.held)

    def reinject_held(self, pid: int) -> None:
        """``nf_reinject()`` the held packet ``pid``: it goes on to confirmation (and leaves
        the queue once it has run to its end)."""
        for entry in self.held:
            if entry.skb.pid == pid:
                nf_reinject(entry)
                self.held = [e for e in self.held if e is not entry]
                return

    # -- trace helpers ----------------------------------------------------------------------
    def new_pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    def note(
        self, why: Why, ns: Namespace, skb: Skb, *, dev: str | None = None, detail: str | None = None
    ) -> None:
        """Record one decision of the IP layer about ``skb`` (``dev``: the skb's input device
        unless given). Callers check ``trace.enabled`` first: off, nothing is built."""
        self.note_dev(why, ns, skb.indev if dev is None else dev, skb.pkt, skb.pid, detail=detail)

    def note_dev(
        self,
        why: Why,
        ns: Net,
        dev: str | None,
        pkt: Packet | None,
        pid: int,
        *,
        detail: str | None = None,
        cause: int | None = None,
        rule_text: str | None = None,
        at: RuleAt | None = None,
        sent: bool = False,
    ) -> None:
        """Record one decision of the device layer (or the stack) about packet ``pid``; its
        step and verdict follow from ``why`` (:data:`sim.trace.STACK_EVENTS`), or are SEND
        when ``sent`` (a packet the kernel built, entering the world). ``at`` is the rule
        behind a LOG line (its table, chain and number)."""
        step, verdict = (Step.SEND, TraceVerdict.SEND) if sent else STACK_EVENTS[why]
        self.trace.add(
            TraceEvent(
                t=self.clock.now,
                pid=pid,
                step=step,
                why=why,
                ns=ns.name,
                dev=dev,
                verdict=verdict,
                before=pkt,
                detail=detail,
                cause=cause,
                table=at.table if at is not None else None,
                chain=at.chain if at is not None else None,
                rule=at.rulenum if at is not None else None,
                rule_text=rule_text,
            )
        )

    def kernel_log(
        self, net: Net, pid: int, line: str, *, rule_text: str | None = None, at: RuleAt | None = None
    ) -> None:
        """A kernel log line about packet ``pid`` (``rule_text``: the LOG rule that wrote it,
        ``at``: where that rule sits)."""
        self.namespaces[net.name].log.append((self.clock.now, line))
        if self.trace.enabled:
            self.note_dev(Why.LOG, net, None, None, pid, detail=line, rule_text=rule_text, at=at)

    # -- packets in ---------------------------------------------------------------------------
    def inject(self, ns_name: str, dev_name: str, pkt: Packet) -> int:
        """A crafted frame sent on an AF_PACKET socket: it bypasses the sender's stack."""
        pid = self.new_pid()
        ns = self.namespaces[ns_name]
        if self.trace.enabled:
            self.note_dev(Why.CRAFTED, ns, dev_name, pkt, pid)
        dev_queue_xmit(self, ns, dev_name, pkt, pid, pkt.dst)
        return pid

    def send(self, ns_name: str, pkt: Packet) -> int:
        """A packet the namespace's own TCP sends: ``ip_local_out``."""
        pid = self.new_pid()
        ns = self.namespaces[ns_name]
        self.crossings += 1
        if self.trace.enabled:
            self.note_dev(Why.STACK_SENDS, ns, None, pkt, pid)
        ip_local_out(self, ns, Skb(pkt, pid=pid))
        return pid

    def emit_local(self, net: Net, pkt: Packet, cause: int, why: Why) -> int:
        """A packet the kernel itself sends in answer to packet ``cause`` (a RST)."""
        ns = self.namespaces[net.name]
        pid = self.new_pid()
        if self.trace.enabled:
            self.note_dev(why, ns, None, pkt, cause)  # RST on the packet that caused it
            self.note_dev(why, ns, None, pkt, pid, cause=cause, sent=True)  # and it is sent
        ip_local_out(self, ns, Skb(pkt, pid=pid))
        return pid

    def icmp_send(self, net: Net, pkt: Packet, icmp_type: int, code: int, cause: int) -> None:
        """``icmp_send()`` in namespace ``net`` (:func:`sim.net.icmp.icmp_send`)."""
        icmp_send(self, self.namespaces[net.name], pkt, icmp_type, code, cause)

    def deliver_to_socket(self, ns: Namespace, sk: Any, pkt: Packet, pid: int) -> None:
        """Hand a segment to an endpoint and send what it answers."""
        if self.trace.enabled:
            self.note_dev(Why.DELIVERED, ns, None, pkt, pid, detail=socket_name(ns.sockets, pkt))
        for out in sk.receive(pkt, self.clock.now):
            self.send(ns.name, out)
        self.arm(ns.name, sk)
        for trigger in self.triggers:
            trigger.after_socket(self)

    def arm(self, ns_name: str, sk: Any) -> None:
        """Schedule the socket's timers (retransmission, delayed ACK, ...): ``sk.poll`` runs at
        ``sk.next_deadline()``, and whatever it sends leaves through ``ip_local_out``."""
        deadline = sk.next_deadline()
        if deadline is not None and self._armed.get(id(sk), float("inf")) > deadline:
            self._armed[id(sk)] = deadline
            self.clock.schedule(max(deadline - self.clock.now, 0.0), self._poll, ns_name, sk)

    def _poll(self, ns_name: str, sk: Any) -> None:
        self._armed.pop(id(sk), None)
        for pkt in sk.poll(self.clock.now):
            self.send(ns_name, pkt)
        self.arm(ns_name, sk)

    def run(self, until: float | None = None) -> None:
        self.clock.run(until)
