"""Crafted-packet replay: the contract shared by the tests, ``nflab kernel-check`` and outside
checkers (shared/DESIGN.md, "Scenarios and the case-file contract").

The end hosts are passive; the host in the middle is the device under test. For each input
packet the result says what ``--ctstate`` matched in host PREROUTING right after conntrack,
the TCP tracker's verdict and log text, the TCP state after it, where the packet ended and as
what, and every packet the host emitted because of it. All of it is read off the trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sim.net.world import World
from sim.netfilter.profiles import DEFAULT_PROFILE, resolve_kernel
from sim.packet import Packet, format_flags
from sim.scenario.case import CaseError, CasePacket, Topology, parse_case
from sim.scenario.host import configure_host
from sim.scenario.loader import InputError
from sim.topology.docker_bridge import DockerBridge, docker_bridge
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


def replay_stream(case: dict[str, Any], seed: int = 0) -> Iterator[dict[str, Any]]:
    """:func:`replay_case` one observation at a time, each yielded as soon as it is decided.
    Nothing is kept once read (no capture records, each packet's trace forgotten after its
    observation), so memory does not grow with the number of packets."""
    w, packets = build_case_world(case, seed)
    w.capturing = False
    w.trace.keep = False
    for pid in _send(w, packets):
        yield observe(w, pid)
        w.trace.forget(pid)


def run_world(case: dict[str, Any], seed: int = 0) -> tuple[World, list[dict[str, Any]]]:
    """Build the world for ``case``, send its packets one at a time; the world (whose trace
    and captures the TUI and the tests read) and one observation per packet."""
    w, packets = build_case_world(case, seed)
    return w, [observe(w, pid) for pid in _send(w, packets)]


def build_case_world(case: dict[str, Any], seed: int = 0) -> tuple[World, list[CasePacket]]:
    """The world a case describes, configured (kernel, sysctls, host rules), and its packets."""
    topology, sysctls, lines, packets = parse_case(case)
    try:
        kernel = resolve_kernel(str(case.get("kernel", DEFAULT_PROFILE))).name
        w = build_world(topology, kernel, seed)
    except ValueError as e:
        raise CaseError(f"kernel: {e}") from None
    try:
        configure_host(w, sysctls, lines)
    except InputError as e:
        raise CaseError(str(e)) from None
    return w, packets


def _send(w: World, packets: list[CasePacket]) -> Iterator[int]:
    """Send each packet after its delay and run the world until it is quiet: the packet id,
    once everything it caused has happened."""
    for side, pkt, delay, _race in packets:
        w.run(until=w.clock.now + delay)
        pid = w.inject(side, "eth0", pkt)
        w.run()
        yield pid


def _endpoint(pkt: Packet) -> dict[str, str]:
    return {"src": f"{pkt.src}:{pkt.sport}", "dst": f"{pkt.dst}:{pkt.dport}"}


def _terminal(events: list[TraceEvent]) -> TraceEvent | None:
    for e in events:
        if e.step is Step.DELIVER or e.step is Step.DROP or (e.step is Step.SOCKET and e.ns == "host"):
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


def observe(w: World, pid: int) -> dict[str, Any]:
    """The replay JSON object for packet ``pid``, read off the trace."""
    events = w.trace.for_packet(pid)
    ct = next(
        (e for e in events if e.step is Step.CONNTRACK and e.ns == "host" and e.hook == "PREROUTING"), None
    )
    end = _terminal(events)
    emitted = []
    for child in w.trace.caused_by(pid):
        got = _terminal(w.trace.for_packet(child))
        if got is not None and got.step is Step.DELIVER and got.before is not None:
            p = got.before
            emitted.append({"to": got.ns, "flags": format_flags(p.flags), "seq": p.seq, "ack": p.ack})
    state = None
    if ct is not None and ct.before is not None:
        table = w.namespaces["host"].conntrack
        assert table is not None
        p = ct.before
        hit = table.find((p.src, p.sport, p.dst, p.dport), w.clock.now)
        state = hit[0].state_name() if hit is not None else None
    return {
        "ctstate": ct.ct.ctstate if ct and ct.ct else None,
        "window": ct.ct.window if ct and ct.ct else None,
        "reason": ct.ct.reason if ct and ct.ct else None,
        "tcp_state": state,
        "fate": fate_of(end),
        "delivered_as": _endpoint(end.before)
        if end is not None and end.step is Step.DELIVER and end.before
        else None,
        "emitted": emitted,
    }
