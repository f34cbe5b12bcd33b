"""The simulated world: namespaces joined by links, one clock, one seeded RNG, one trace.

Frames leave a device (``xmit``), cross a veth or the bridge, and arrive on the peer device
(``netif_receive``) after the link's delay; jitter, loss, duplication and reordering draw from
the world's RNG, so the same seed gives the same run. The topology is also kept as a networkx
graph (namespaces and devices as nodes; membership, veth links and bridge ports as edges).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import networkx as nx

from sim.clock import Clock
from sim.net.icmp import icmp_send
from sim.net.ipv4 import ip_local_out, ip_rcv
from sim.net.netns import Device, Namespace
from sim.net.tcp_ipv4 import socket_name
from sim.netfilter.core import Net, NfHookState, NfQueueEntry, nf_reinject
from sim.packet import Packet
from sim.skb import Hook, Skb
from sim.trace import Step, Trace, TraceEvent, TraceVerdict, Why


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

    def log(self, level: int, line: str, skb: Skb) -> None:
        self.world.kernel_log(self.ns, skb.pid, line)


@dataclass(slots=True)
class Capture:
    """What a capture point saw: (time, direction "in"/"out", packet, packet id)."""

    records: list[tuple[float, str, Packet, int]] = field(default_factory=list)


class Trigger(Protocol):
    """Something a scenario makes happen mid-run (``sim.scenario.scenario``'s late-ack and
    beyond-window); the world runs it at two points."""

    def delay(self, ns: str, dev: str, pkt: Packet, pid: int) -> float:
        """Extra seconds packet ``pid`` spends on the link out of ``ns``/``dev`` (0: none)."""
        ...

    def after_socket(self, w: World) -> None:
        """Runs after each segment a socket took (its timers armed and its answer sent)."""
        ...


class World:
    """Namespaces, links, the clock, the RNG and the trace."""

    def __init__(self, seed: int = 0, trace: bool = True) -> None:
        self.clock = Clock()
        self.rng = random.Random(seed)
        self.nat_rng = random.Random(seed + 1)  # get_random_u16() for NAT port choice
        self.namespaces: dict[str, Namespace] = {}
        self.graph: nx.Graph = nx.Graph()
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

    # -- building -------------------------------------------------------------------------
    def add_namespace(self, ns: Namespace) -> Namespace:
        self.namespaces[ns.name] = ns
        self.graph.add_node(ns.name, kind="netns")
        for dev in ns.devices.values():
            self._add_dev_node(ns, dev)
        return ns

    def _add_dev_node(self, ns: Namespace, dev: Device) -> None:
        node = f"{ns.name}/{dev.name}"
        self.graph.add_node(node, kind=dev.kind.value, addr=dev.addr)
        self.graph.add_edge(ns.name, node, kind="has")
        if dev.master is not None:
            self.graph.add_edge(node, f"{ns.name}/{dev.master}", kind="port")

    def add_device(self, ns: Namespace, dev: Device) -> Device:
        ns.add_device(dev)
        self._add_dev_node(ns, dev)
        return dev

    def link(self, a: tuple[str, str], b: tuple[str, str], delay: float = 0.0) -> None:
        """A veth pair (or a wire) between device ``a`` and device ``b``."""
        da = self.namespaces[a[0]].devices[a[1]]
        db = self.namespaces[b[0]].devices[b[1]]
        da.peer, db.peer = b, a
        da.delay = db.delay = delay
        self.graph.add_edge(f"{a[0]}/{a[1]}", f"{b[0]}/{b[1]}", kind="link")

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
        self.graph.add_edge(f"{a[0]}/{a[1]}", f"{b[0]}/{b[1]}", kind="link")

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
        """Is packet ``pid`` waiting in the queue?"""
        return any(entry.skb.pid == pid for entry in self.held)

    def reinject_held(self, pid: int) -> None:
        """``nf_reinject()`` the held packet ``pid``: it goes on to confirmation."""
        for i, entry in enumerate(self.held):
            if entry.skb.pid == pid:
                del self.held[i]
                nf_reinject(entry)
                return

    # -- trace helpers ----------------------------------------------------------------------
    def new_pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    def event(
        self,
        *,
        pid: int,
        step: Step,
        why: Why,
        ns: Namespace,
        verdict: TraceVerdict,
        before: Packet,
        skb: Skb | None = None,
        dev: str | None = None,
        detail: str | None = None,
        cause: int | None = None,
    ) -> None:
        """Record one event of the stack (callers check ``trace.enabled`` first, so nothing is
        built when tracing is off). ``dev`` defaults to the skb's input device."""
        self.trace.add(
            TraceEvent(
                t=self.clock.now,
                pid=pid,
                step=step,
                why=why,
                ns=ns.name,
                dev=dev if dev is not None or skb is None else skb.indev,
                verdict=verdict,
                before=before,
                detail=detail,
                cause=cause,
            )
        )

    def kernel_log(self, net: Net, pid: int, line: str) -> None:
        self.namespaces[net.name].log.append((self.clock.now, line))
        if self.trace.enabled:
            self.trace.add(
                TraceEvent(
                    t=self.clock.now,
                    pid=pid,
                    step=Step.LOG,
                    why=Why.LOG,
                    ns=net.name,
                    verdict=TraceVerdict.LOG,
                    detail=line,
                )
            )

    # -- packets in ---------------------------------------------------------------------------
    def inject(self, ns_name: str, dev_name: str, pkt: Packet) -> int:
        """A crafted frame sent on an AF_PACKET socket: it bypasses the sender's stack."""
        pid = self.new_pid()
        ns = self.namespaces[ns_name]
        if self.trace.enabled:
            self.event(
                pid=pid,
                step=Step.SEND,
                why=Why.CRAFTED,
                ns=ns,
                verdict=TraceVerdict.SEND,
                before=pkt,
                dev=dev_name,
            )
        self.xmit(ns, dev_name, pkt, pid, pkt.dst)
        return pid

    def send(self, ns_name: str, pkt: Packet) -> int:
        """A packet the namespace's own TCP sends: ``ip_local_out``."""
        pid = self.new_pid()
        ns = self.namespaces[ns_name]
        self.crossings += 1
        if self.trace.enabled:
            self.event(
                pid=pid, step=Step.SEND, why=Why.STACK_SENDS, ns=ns, verdict=TraceVerdict.SEND, before=pkt
            )
        ip_local_out(self, ns, Skb(pkt, pid=pid))
        return pid

    def emit_local(self, net: Net, pkt: Packet, cause: int, why: Why) -> int:
        """A packet the kernel itself sends in answer to packet ``cause`` (a RST)."""
        ns = self.namespaces[net.name]
        pid = self.new_pid()
        if self.trace.enabled:
            self.event(pid=cause, step=Step.RST, why=why, ns=ns, verdict=TraceVerdict.RST, before=pkt)
            self.event(
                pid=pid, step=Step.SEND, why=why, ns=ns, verdict=TraceVerdict.SEND, before=pkt, cause=cause
            )
        ip_local_out(self, ns, Skb(pkt, pid=pid))
        return pid

    def icmp_send(self, net: Net, pkt: Packet, icmp_type: int, code: int, cause: int) -> None:
        """``icmp_send()`` in namespace ``net`` (:func:`sim.net.icmp.icmp_send`)."""
        icmp_send(self, self.namespaces[net.name], pkt, icmp_type, code, cause)

    # -- links ----------------------------------------------------------------------------------
    def xmit(self, ns: Namespace, dev_name: str, pkt: Packet, pid: int, nexthop: str) -> None:
        """``dev_queue_xmit()``: out of a device; a bridge picks its port from the neighbour."""
        dev = ns.devices[dev_name]
        if self.capturing:
            self.captures[(ns.name, dev_name)].records.append((self.clock.now, "out", pkt, pid))
        if dev.kind.value == "bridge":
            port = self._bridge_port(ns, dev_name, nexthop)
            if port is None:
                if self.trace.enabled:
                    self.event(
                        pid=pid,
                        step=Step.DROP,
                        why=Why.NEIGH_UNRESOLVED,
                        ns=ns,
                        verdict=TraceVerdict.DROP,
                        before=pkt,
                        dev=dev_name,
                        detail=nexthop,
                    )
                return
            if self.trace.enabled:
                self.event(
                    pid=pid,
                    step=Step.BRIDGE,
                    why=Why.BRIDGE_OUT,
                    ns=ns,
                    verdict=TraceVerdict.OUT,
                    before=pkt,
                    dev=port,
                    detail=dev_name,
                )
            dev = ns.devices[port]
            if self.capturing:
                self.captures[(ns.name, port)].records.append((self.clock.now, "out", pkt, pid))
        if dev.peer is None:
            if self.trace.enabled:
                self.event(
                    pid=pid,
                    step=Step.DROP,
                    why=Why.NO_LINK,
                    ns=ns,
                    verdict=TraceVerdict.DROP,
                    before=pkt,
                    dev=dev.name,
                )
            return
        if self.trace.enabled:
            self.event(
                pid=pid,
                step=Step.XMIT,
                why=Why.XMIT,
                ns=ns,
                verdict=TraceVerdict.XMIT,
                before=pkt,
                dev=dev.name,
            )
        copies = 1
        if dev.loss and self.rng.random() < dev.loss:
            if self.trace.enabled:
                self.event(
                    pid=pid,
                    step=Step.DROP,
                    why=Why.LOST,
                    ns=ns,
                    verdict=TraceVerdict.DROP,
                    before=pkt,
                    dev=dev.name,
                )
            return
        if dev.duplicate and self.rng.random() < dev.duplicate:
            copies = 2
        for _ in range(copies):
            delay = dev.delay + (self.rng.uniform(0, dev.jitter) if dev.jitter else 0.0)
            for trigger in self.triggers:
                delay += trigger.delay(ns.name, dev.name, pkt, pid)
            if dev.reorder and self.rng.random() < dev.reorder:
                delay += dev.delay or 0.001
            peer = dev.stations.get(nexthop, dev.peer) if dev.stations else dev.peer
            self.clock.schedule(delay, self.netif_receive, peer[0], peer[1], pkt, pid)

    def _bridge_port(self, ns: Namespace, bridge: str, nexthop: str) -> str | None:
        """The bridge's forwarding database, as learned from the neighbours behind its ports."""
        for dev in ns.devices.values():
            if (
                dev.master == bridge
                and dev.peer is not None
                and nexthop in self.namespaces[dev.peer[0]].local_addrs
            ):
                return dev.name
        return None

    def netif_receive(self, ns_name: str, dev_name: str, pkt: Packet, pid: int) -> None:
        """``__netif_receive_skb_core()``: a frame arrives; a bridge port passes it up."""
        ns = self.namespaces[ns_name]
        self.crossings += 1
        if self.capturing:
            self.captures[(ns_name, dev_name)].records.append((self.clock.now, "in", pkt, pid))
        if self.trace.enabled:
            self.event(
                pid=pid,
                step=Step.RECV,
                why=Why.RECV,
                ns=ns,
                verdict=TraceVerdict.RECV,
                before=pkt,
                dev=dev_name,
            )
        dev = ns.devices[dev_name]
        skb = Skb(pkt, indev=dev_name, pid=pid)
        if dev.master is not None:
            # br_handle_frame(): addressed to the bridge's own MAC, so up the stack on docker0
            skb.indev, skb.physindev = dev.master, dev_name
            if self.capturing:
                self.captures[(ns_name, dev.master)].records.append((self.clock.now, "in", pkt, pid))
            if self.trace.enabled:
                self.event(
                    pid=pid,
                    step=Step.BRIDGE,
                    why=Why.BRIDGE_UP,
                    ns=ns,
                    verdict=TraceVerdict.UP,
                    before=pkt,
                    skb=skb,
                    detail=dev_name,
                )
        if ns.passive:
            if self.trace.enabled:
                self.event(
                    pid=pid,
                    step=Step.DELIVER,
                    why=Why.CAPTURED,
                    ns=ns,
                    verdict=TraceVerdict.CAPTURED,
                    before=pkt,
                    skb=skb,
                )
            return
        ip_rcv(self, ns, skb)

    def deliver_to_socket(self, ns: Namespace, sk: Any, pkt: Packet, pid: int) -> None:
        """Hand a segment to an endpoint and send what it answers."""
        if self.trace.enabled:
            self.event(
                pid=pid,
                step=Step.DELIVER,
                why=Why.DELIVERED,
                ns=ns,
                verdict=TraceVerdict.DELIVERED,
                before=pkt,
                detail=socket_name(ns.sockets, pkt),
            )
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
