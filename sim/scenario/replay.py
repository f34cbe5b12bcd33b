"""Crafted-packet replay: the contract shared by the tests, ``nflab kernel-check`` and outside
checkers (shared/DESIGN.md, "Scenarios and the case-file contract").

The end hosts are passive; the host in the middle is the device under test. For each input
packet the result says what ``--ctstate`` matched in host PREROUTING right after conntrack,
the TCP tracker's verdict and log text, the TCP state after it, where the packet ended and as
what, and every packet the host emitted because of it, all read off the trace; and (contract
v2) its protocol, the status bits of its entry afterwards and the changes of the host's
``conntrack -S`` counters it caused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sim.errors import InputError
from sim.include.netfilter import Hook
from sim.include.nf_conntrack import invert_tuple, nf_ct_get_tuple
from sim.include.nf_conntrack_common import status_names
from sim.net.world import World
from sim.netfilter.conntrack import ConntrackTable, stats_delta
from sim.netfilter.profiles import DEFAULT_PROFILE, resolve_kernel
from sim.packet import IpProto, Packet, format_flags
from sim.scenario.case import CaseError, CasePacket, Topology, parse_case, parse_head
from sim.scenario.case_stream import CaseStream
from sim.scenario.host import configure_host
from sim.topology.docker_bridge import DockerBridge, docker_bridge
from sim.topology.roles import NsRole
from sim.trace import Step, TraceEvent


def build_world(topology: Topology, kernel: str, seed: int = 0) -> World:
    """The docker-bridge preset with the case's addresses and passive end hosts (the extra
    ``hosts``: containers behind docker0, remotes on the uplink's segment)."""
    containers = topology.containers
    return docker_bridge(
        DockerBridge(
            containers=tuple(addr for _, addr in containers),
            container_names=tuple(name for name, _ in containers),
            remotes=topology.remotes[1:],
            bridge_ip=topology.bridge_ip,
            bridge_prefix=24,
            host_ip=topology.host_ip,
            host_prefix=24,
            remote_ip=topology.remote_ip,
            kernel=kernel,
            passive_ends=True,
        ),
        seed=seed,
    )


def replay_case(case: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """Run a case in the model: one observation per input packet, in order, each taken when
    everything that packet caused has happened."""
    return list(replay_stream(case, seed))


def replay_stream(case: dict[str, Any] | CaseStream, seed: int = 0) -> Iterator[dict[str, Any]]:
    """:func:`replay_case` one observation at a time, each yielded as soon as it is decided.
    Nothing is kept once read (no capture records, each packet's trace forgotten after its
    observation; a :class:`CaseStream`'s packets read one at a time), so memory does not grow
    with the number of packets."""
    packets: Iterable[CasePacket]
    if isinstance(case, dict):
        w, packets = build_case_world(case, seed)
    else:
        w, packets = _configured_world(case.head, parse_head(case.head), seed), case.packets()
    w.capturing = False
    w.trace.keep = False
    for pid, ct_stats, entry in _send(w, packets):
        yield observe(w, pid, ct_stats, entry)
        w.trace.forget(pid)


def run_world(case: dict[str, Any], seed: int = 0) -> tuple[World, list[dict[str, Any]]]:
    """Build the world for ``case``, send its packets one at a time; the world (whose trace
    and captures the TUI and the tests read) and one observation per packet."""
    w, packets = build_case_world(case, seed)
    return w, [observe(w, pid, ct_stats, entry) for pid, ct_stats, entry in _send(w, packets)]


def build_case_world(case: dict[str, Any], seed: int = 0) -> tuple[World, list[CasePacket]]:
    """The world a case describes, configured (kernel, sysctls, host rules), and its packets."""
    topology, sysctls, lines, packets = parse_case(case)
    return _configured_world(case, (topology, sysctls, lines), seed), packets


def _configured_world(
    case: dict[str, Any], head: tuple[Topology, dict[str, Any], list[str]], seed: int
) -> World:
    """The world of a case whose head (:func:`sim.scenario.case.parse_head`) is checked."""
    topology, sysctls, lines = head
    try:
        kernel = resolve_kernel(str(case.get("kernel", DEFAULT_PROFILE))).name
        w = build_world(topology, kernel, seed)
    except ValueError as e:
        raise CaseError(f"kernel: {e}") from None
    try:
        configure_host(w, sysctls, lines)
    except InputError as e:
        raise CaseError(str(e)) from None
    return w


def _host_table(w: World) -> ConntrackTable:
    table = w.namespaces[NsRole.HOST].conntrack
    assert table is not None
    return table


def _send(w: World, packets: Iterable[CasePacket]) -> Iterator[tuple[int, dict[str, int], EntryView]]:
    """Send each packet after its delay and run the world until it is quiet: the packet id,
    once everything it caused has happened, the host's ``conntrack -S`` changes it caused and
    its entry as it stood at its end (:func:`entry_view`).

    Before each packet the conntrack tables drop what expired during the delay (as the gc
    worker would). A packet followed by one with ``race: "prev"`` is held before its
    confirmation (:func:`sim.netfilter.ops.confirm`); the racing packet runs to its end, then
    the held one is re-injected and confirmed. The held packet's counters are those from its
    arrival to the hold plus those from its release to its end, and its entry is read after
    its release (so an entry its racer made counts); the racer's is read before the packets it
    raced are released. Observations stay in input order."""
    table = _host_table(w)

    def counters() -> dict[str, int]:
        return table.stats.counters(table.profile)

    held: list[tuple[int, dict[str, int]]] = []  # (pid, its counter changes up to the hold)
    ready: list[tuple[int, dict[str, int], EntryView]] = []
    rest = iter(packets)
    following = next(rest, None)
    while following is not None:
        (side, pkt, delay, _race), following = following, next(rest, None)
        w.run(until=w.clock.now + delay)
        for ns in w.namespaces.values():
            if ns.conntrack is not None:
                ns.conntrack.gc(w.clock.now)
        before = counters()
        pid = w.inject(side, "eth0", pkt)
        hold = following is not None and following.race is not None
        if hold:
            w.hold_pid = pid
        w.run()
        w.hold_pid = None
        if hold and w.is_held(pid):
            held.append((pid, stats_delta(before, counters())))
            continue
        ready.append((pid, stats_delta(before, counters()), entry_view(w, pid)))
        while held:  # the racing packet has run to its end: the held one goes on
            held_pid, so_far = held.pop()
            released = counters()
            w.reinject_held(held_pid)
            w.run()
            for k, v in stats_delta(released, counters()).items():
                so_far[k] = so_far.get(k, 0) + v
            ready.append((held_pid, {k: v for k, v in so_far.items() if v}, entry_view(w, held_pid)))
        yield from sorted(ready)
        ready.clear()


def _emitted(to: str, p: Packet) -> dict[str, Any]:
    """A packet the host emitted, as the kernel judge describes what it captured: a TCP
    segment's flags, seq and ack; an ICMP message's [type, code]."""
    if p.proto is IpProto.ICMP:
        return {"to": to, "icmp": [p.icmp_type, p.icmp_code]}
    if p.proto is IpProto.UDP:
        return {"to": to, "proto": int(p.proto)}
    return {"to": to, "flags": format_flags(p.flags), "seq": p.seq, "ack": p.ack}


def _endpoint(pkt: Packet) -> dict[str, Any]:
    """How a delivered packet looks: ``ip:port`` ends; an ICMP message's addresses with the
    quoted packet's ends (``inner``) for an error, else its identifier (``id``)."""
    if pkt.proto is not IpProto.ICMP:
        return {"src": f"{pkt.src}:{pkt.sport}", "dst": f"{pkt.dst}:{pkt.dport}"}
    if pkt.inner is not None:
        return {"src": pkt.src, "dst": pkt.dst, "inner": _endpoint(pkt.inner)}
    return {"src": pkt.src, "dst": pkt.dst, "id": pkt.sport}


def _terminal(events: list[TraceEvent]) -> TraceEvent | None:
    for e in events:
        if e.step is Step.DELIVER or e.step is Step.DROP or (e.step is Step.SOCKET and e.ns == NsRole.HOST):
            return e
    return None


def fate_of(e: TraceEvent | None) -> str | None:
    """``delivered:NS`` (captured by a passive host), ``local:host`` or ``dropped:NS``."""
    if e is None:
        return None
    if e.step is Step.DELIVER:
        return f"delivered:{e.ns}"
    if e.step is Step.SOCKET:
        return f"local:{e.ns}"
    return f"dropped:{e.ns}"


EntryView = tuple[str | None, list[str] | None]  # (tcp_state, ct_status)


def entry_view(w: World, pid: int) -> EntryView:
    """The TCP state and status bits of the entry packet ``pid`` belongs to, as they stand now
    (for an ICMP error, the entry of the packet it quotes): the host's table looked up by the
    tuple the packet arrived with, as the kernel judge asks ctnetlink; (None, None) when the
    packet never met the host's conntrack or no entry has its tuple."""
    ct = _conntrack_event(w.trace.for_packet(pid))
    if ct is None or ct.before is None:
        return None, None
    pkt = ct.before
    tup = nf_ct_get_tuple(pkt)
    if pkt.inner is not None:
        tup = invert_tuple(nf_ct_get_tuple(pkt.inner))
    hit = _host_table(w).find(tup, w.clock.now)
    if hit is None:
        return None, None
    entry = hit[0]
    return entry.state_name() or None, status_names(entry.status)


def _conntrack_event(events: list[TraceEvent]) -> TraceEvent | None:
    """The host's conntrack step at PREROUTING."""
    for e in events:
        if e.step is Step.CONNTRACK and e.ns == NsRole.HOST and e.hook is Hook.PRE_ROUTING:
            return e
    return None


def observe(
    w: World, pid: int, ct_stats: dict[str, int] | None = None, entry: EntryView | None = None
) -> dict[str, Any]:
    """The replay JSON object for packet ``pid``, read off the trace; ``ct_stats`` the
    changes of the host's ``conntrack -S`` counters the packet caused and ``entry`` its entry
    at its end (both from :func:`_send`; without ``entry``, the entry as it stands now)."""
    events = w.trace.for_packet(pid)
    ct = _conntrack_event(events)
    end = _terminal(events)
    emitted = []
    for child in w.trace.caused_by(pid):
        got = _terminal(w.trace.for_packet(child))
        if got is not None and got.step is Step.DELIVER and got.before is not None:
            emitted.append(_emitted(got.ns, got.before))
    state, status = entry_view(w, pid) if entry is None else entry
    sent = events[0].before if events else None
    return {
        "proto": (sent.proto if sent is not None else IpProto.TCP).name.lower(),
        "ctstate": ct.ct.ctstate.name if ct and ct.ct else None,
        "window": ct.ct.window if ct and ct.ct else None,
        "reason": ct.ct.reason if ct and ct.ct else None,
        "tcp_state": state,
        "fate": fate_of(end),
        "delivered_as": _endpoint(end.before)
        if end is not None and end.step is Step.DELIVER and end.before
        else None,
        "emitted": emitted,
        "ct_status": status,
        "ct_stats": ct_stats or {},
    }
