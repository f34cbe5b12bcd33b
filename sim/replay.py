"""Crafted-packet replay: the contract shared by the tests, ``nflab kernel-check`` and outside
checkers (shared/DESIGN.md, "Scenarios and the case-file contract").

The end hosts are passive; the host in the middle is the device under test. For each input
packet the result says what ``--ctstate`` matched in host PREROUTING right after conntrack,
the TCP tracker's verdict and log text, the TCP state after it, where the packet ended and as
what, and every packet the host emitted because of it. All of it is read off the trace.
"""

from __future__ import annotations

from typing import Any

from sim.case import CaseError, Topology, parse_case
from sim.netfilter.iptables_cmd import RuleError, iptables
from sim.packet import Packet, format_flags
from sim.topology import DockerBridge, docker_bridge
from sim.trace import Step, TraceEvent
from sim.world import World

HOST_SYSCTLS_OUTSIDE_CONNTRACK = ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables")


def build_world(topology: Topology, kernel: str, seed: int = 0) -> World:
    """The docker-bridge preset with the case's addresses and passive end hosts."""
    return docker_bridge(
        DockerBridge(
            containers=(topology.ctr_ip,),
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


def apply_sysctl(w: World, key: str, value: object) -> None:
    """A host sysctl from a case; one-line CaseError for what the model does not have."""
    host = w.namespaces["host"]
    try:
        number = int(str(value))
    except ValueError:
        raise CaseError(f"sysctl {key}: expected an integer, got {value!r}") from None
    if key == "net.ipv4.ip_forward":
        host.ip_forward = bool(number)
        return
    if key == "net.bridge.bridge-nf-call-iptables":
        return  # routed traffic meets the same hooks either way (one container, one port)
    if not key.startswith("net.netfilter.nf_conntrack_"):
        raise CaseError(f"sysctl {key}: not modelled")
    table = host.conntrack
    assert table is not None
    try:
        table.sysctl.set(key, number, table.profile)
    except ValueError as e:
        raise CaseError(f"sysctl {key}: {e}") from None


def replay_case(case: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """Run a case in the model: one observation per input packet, in order, each taken when
    everything that packet caused has happened."""
    return run_world(case, seed)[1]


def run_world(case: dict[str, Any], seed: int = 0) -> tuple[World, list[dict[str, Any]]]:
    """Build the world for ``case``, send its packets one at a time; the world (whose trace
    the TUI and the tests read) and one observation per packet."""
    topology, sysctls, lines, packets = parse_case(case)
    kernel = case.get("kernel", "6.1")
    try:
        w = build_world(topology, kernel, seed)
    except ValueError as e:
        raise CaseError(f"kernel: {e}") from None
    for key, value in sysctls.items():
        apply_sysctl(w, key, value)
    host = w.namespaces["host"]
    for i, line in enumerate(lines):
        try:
            iptables(host.ruleset, line)
        except RuleError as e:
            raise CaseError(f"iptables.host[{i}]: {e}") from None
    observations = []
    for side, pkt, delay in packets:
        w.run(until=w.clock.now + delay)
        pid = w.inject(side, "eth0", pkt)
        w.run()
        observations.append(observe(w, pid))
    return w, observations


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
        "ctstate": ct.data["ctstate"] if ct else None,
        "window": ct.data["window"] if ct else None,
        "reason": ct.data["reason"] if ct else None,
        "tcp_state": state,
        "fate": fate_of(end),
        "delivered_as": _endpoint(end.before)
        if end is not None and end.step is Step.DELIVER and end.before
        else None,
        "emitted": emitted,
    }
