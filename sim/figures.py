"""Course figures drawn from the model: plain SVG text, written by hand, byte-for-byte
deterministic (fixed float formatting, no timestamps, no randomness beyond the scenario seed).

- :func:`topology_svg`: the docker-bridge world's graph (namespaces, devices, addresses, veth
  links, bridge ports) and the host's MASQUERADE rule;
- :func:`seq_time_svg`: sequence number over time of the stalled upload (3.10, no fix) and the
  fixed one (3.10, ``--fix drop-invalid``), as captured on the host's ``eth0``, with the late
  ACK, the host's RST and the container's retransmissions;
- :func:`window_bounds_svg`: for every reply segment of the seed connection, bound IV's lower
  and bound III's upper limit on its ACK (from the trace's ``WindowCheck``), with the late ACK
  outside them.

``nflab figures [--out DIR]`` writes all three (:func:`generate`), by default into the checkout's
``docs/figures`` beside the ``sim`` package, wherever it is run from.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import sim
from sim.netfilter.iptables_save import iptables_save
from sim.netfilter.proto_tcp import WindowCheck
from sim.packet import SEQ_MASK, TCPHDR_ACK, TCPHDR_RST, TCPHDR_SYN, Packet
from sim.scenario import Run, Scenario, load_scenario, run_scenario
from sim.topology import docker_bridge
from sim.trace import Step
from sim.world import World

# the checkout's docs/figures, beside the sim package (not relative to the working directory)
DEFAULT_OUT = Path(sim.__file__ or "sim").resolve().parent.parent / "docs" / "figures"
SCENARIO = "seed-incident"
KERNEL = "3.10"  # the article's kernel: the late ACK itself is INVALID

STYLE = """
text { font-family: sans-serif; font-size: 13px; fill: #222; }
.small { font-size: 12px; }
.mono { font-family: monospace; font-size: 12px; }
.title { font-size: 16px; font-weight: bold; }
.axis { stroke: #444; stroke-width: 1; fill: none; }
.grid { stroke: #ddd; stroke-width: 1; fill: none; }
.ns { fill: #f4f6fb; stroke: #7a869a; stroke-width: 1.5; }
.dev { fill: #ffffff; stroke: #34495e; stroke-width: 1.2; }
.bridge { fill: #fff8e1; stroke: #a67c00; stroke-width: 1.2; }
.link { stroke: #34495e; stroke-width: 2.5; fill: none; }
.route { stroke: #7a869a; stroke-width: 1.5; stroke-dasharray: 2 3; fill: none; }
.port { stroke: #a67c00; stroke-width: 2; stroke-dasharray: 5 3; fill: none; }
.data { stroke: #1f5fa8; stroke-width: 1.5; fill: none; }
.retx { stroke: #e67e22; stroke-width: 1.5; fill: #e67e22; }
.ack { stroke: #2e8b57; stroke-width: 1.5; stroke-dasharray: 3 2; fill: none; }
.late { stroke: #c0392b; stroke-width: 1.5; fill: #c0392b; }
.held { stroke: #c0392b; stroke-width: 1.2; stroke-dasharray: 4 3; fill: none; }
.rst { stroke: #c0392b; stroke-width: 2.5; fill: none; }
.band { fill: #d6eaf8; stroke: none; }
.upper { stroke: #1f5fa8; stroke-width: 1.2; fill: none; }
.lower { stroke: #8e44ad; stroke-width: 1.5; stroke-dasharray: 6 3; fill: none; }
.ackdot { fill: #2e8b57; stroke: none; }
.bad { fill: none; stroke: #c0392b; stroke-width: 2; }
.red { fill: #c0392b; }
"""


class FigureError(ValueError):
    """A figure cannot be drawn from this run (the message is one line)."""


def num(x: float) -> str:
    """Fixed formatting for every coordinate: one decimal, never ``-0.0``."""
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


class Svg:
    """A tiny SVG writer: elements appended in order, rendered with fixed number formatting."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = [f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>"]
        self.parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')

    def add(self, tag: str, cls: str | None = None, text: str | None = None, **attrs: float | str) -> None:
        """One element; float attributes go through :func:`num`, ``_`` in names becomes ``-``."""
        items = [f"class={quoteattr(cls)}"] if cls else []
        for key, value in attrs.items():
            shown = num(value) if isinstance(value, float) else str(value)
            items.append(f"{key.rstrip('_').replace('_', '-')}={quoteattr(shown)}")
        head = f"<{tag} {' '.join(items)}"
        self.parts.append(f"{head}>{escape(text)}</{tag}>" if text is not None else f"{head}/>")

    def text(self, x: float, y: float, s: str, cls: str | None = None, anchor: str = "start") -> None:
        if anchor == "start":
            self.add("text", cls, s, x=x, y=y)
        else:
            self.add("text", cls, s, x=x, y=y, text_anchor=anchor)

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str) -> None:
        self.add("line", cls, x1=x1, y1=y1, x2=x2, y2=y2)

    def rect(self, x: float, y: float, w: float, h: float, cls: str, rx: float = 0.0) -> None:
        self.add("rect", cls, x=x, y=y, width=w, height=h, rx=rx)

    def path(self, points: Sequence[tuple[float, float]], cls: str, close: bool = False) -> None:
        if not points:
            return
        d = " ".join(f"{'M' if i == 0 else 'L'}{num(x)} {num(y)}" for i, (x, y) in enumerate(points))
        self.add("path", cls, d=d + (" Z" if close else ""))

    def segments(self, segs: Iterable[tuple[float, float, float, float]], cls: str) -> None:
        """Many short lines as one path (``M x1 y1 L x2 y2`` per segment)."""
        d = " ".join(f"M{num(a)} {num(b)} L{num(c)} {num(e)}" for a, b, c, e in segs)
        if d:
            self.add("path", cls, d=d)

    def render(self) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}">'
        )
        return "\n".join([head, *self.parts, "</svg>"]) + "\n"


# --------------------------------------------------------------------------- the runs


def seed_scenario(kernel: str = KERNEL, fix: str = "none") -> Scenario:
    """The built-in seed incident on ``kernel`` with ``fix``."""
    return load_scenario(SCENARIO).with_kernel(kernel).with_fix(fix)


def rel(x: int, base: int) -> int:
    """``x - base`` in sequence space (mod 2**32), as a signed offset."""
    d = (x - base) & SEQ_MASK
    return d - (SEQ_MASK + 1) if d > SEQ_MASK // 2 else d


# --------------------------------------------------------------------------- (a) topology

DEV_W, DEV_H = 150.0, 54.0
NS_PAD = 16.0
ROW_H = 96.0


@dataclass(frozen=True, slots=True)
class _Placed:
    x: float
    y: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x, self.y + DEV_H / 2)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + DEV_W, self.y + DEV_H / 2)


def _edges(graph: Any, kind: str) -> list[tuple[str, str]]:
    return [(str(a), str(b)) for a, b, k in graph.edges(data="kind") if k == kind]


def _topology_columns(graph: Any) -> tuple[list[str], list[str], list[str], list[str]]:
    """Containers (namespaces whose device is linked to a bridge port), the host's bridge ports,
    the host's bridges and the rest: one column each, left to right."""
    ports = sorted({a if graph.nodes[a]["kind"] != "bridge" else b for a, b in _edges(graph, "port")})
    bridges = sorted(n for n, k in graph.nodes(data="kind") if k == "bridge")
    linked = {b if a in ports else a for a, b in _edges(graph, "link") if a in ports or b in ports}
    containers = sorted({str(n).split("/")[0] for n in linked})
    return containers, ports, bridges, sorted({str(n).split("/")[0] for n in graph.nodes} - {"host"})


def _device(svg: Svg, node: str, attrs: dict[str, Any], at: _Placed, prefix: int | None) -> None:
    kind = str(attrs.get("kind"))
    svg.rect(at.x, at.y, DEV_W, DEV_H, "bridge" if kind == "bridge" else "dev", rx=5.0)
    svg.text(at.x + DEV_W / 2, at.y + 18, f"{node.split('/')[1]} ({kind})", anchor="middle")
    addr = attrs.get("addr")
    shown = f"{addr}/{prefix}" if addr else "no address"
    svg.text(at.x + DEV_W / 2, at.y + 38, shown, "mono", anchor="middle")


def _prefix(world: World, node: str) -> int | None:
    ns, dev = node.split("/")
    return world.namespaces[ns].devices[dev].prefix


def _place(graph: Any) -> tuple[dict[str, _Placed], dict[str, tuple[float, float, float, float]]]:
    """Device positions and namespace boxes (x, y, w, h)."""
    containers, ports, bridges, others = _topology_columns(graph)
    remotes = [n for n in others if n not in containers]
    rows = max(len(containers), len(remotes), 1)
    top = 70.0
    cols = {"ctr": 30.0, "port": 300.0, "bridge": 520.0, "uplink": 860.0, "remote": 1100.0}
    pos: dict[str, _Placed] = {}
    for i, node in enumerate(ports):
        pos[node] = _Placed(cols["port"], top + 40 + i * ROW_H)
    for i, node in enumerate(bridges):
        pos[node] = _Placed(cols["bridge"], top + 40 + i * ROW_H)
    host_rest = sorted(n for n in graph.neighbors("host") if n not in pos)
    for i, node in enumerate(host_rest):
        pos[node] = _Placed(cols["uplink"], top + 40 + i * ROW_H)
    for column, names in (("ctr", containers), ("remote", remotes)):
        for i, ns in enumerate(names):
            for node in sorted(graph.neighbors(ns)):
                pos[node] = _Placed(cols[column], top + 40 + i * ROW_H)
    height = rows * ROW_H + 10
    host_x = cols["port"] - NS_PAD
    boxes = {"host": (host_x, top, cols["uplink"] + DEV_W + NS_PAD - host_x, height)}
    for column, names in (("ctr", containers), ("remote", remotes)):
        for i, ns in enumerate(names):
            boxes[ns] = (cols[column] - NS_PAD, top + 14 + i * ROW_H, DEV_W + 2 * NS_PAD, ROW_H - 12)
    return pos, boxes


def _masquerade_line(world: World) -> str:
    lines = iptables_save(world.namespaces["host"].ruleset, counters=False).splitlines()
    return next((line for line in lines if "MASQUERADE" in line), "(no MASQUERADE rule)")


def topology_svg(world: World | None = None) -> str:
    """Figure (a): the docker-bridge world as the model builds it (``world.graph``)."""
    if world is None:
        world = docker_bridge(seed_scenario().topology)
    graph = world.graph
    pos, boxes = _place(graph)
    height = int(max(y + h for _, y, _, h in boxes.values()) + 110)
    svg = Svg(1280, height, "docker-bridge topology")
    svg.text(20, 28, "The docker-bridge world (sim.topology.docker_bridge, seed-incident addresses)", "title")
    svg.text(20, 48, "namespaces are boxes; devices carry their addresses; edges from world.graph", "small")
    for ns, (x, y, w, h) in sorted(boxes.items()):
        svg.rect(x, y, w, h, "ns", rx=8.0)
        svg.text(x + 8, y + 16, f"netns {ns}", "small")
    for a, b in sorted(_edges(graph, "link")):
        left, right = sorted((pos[a], pos[b]), key=lambda p: p.x)
        svg.line(*left.right, *right.left, "link")
        label = "veth pair" if _is_port(graph, a) or _is_port(graph, b) else "wire"
        svg.text((left.right[0] + right.left[0]) / 2, left.right[1] - 8, label, "small", anchor="middle")
    for a, b in sorted(_edges(graph, "port")):
        left, right = sorted((pos[a], pos[b]), key=lambda p: p.x)
        svg.line(*left.right, *right.left, "port")
        svg.text(
            (left.right[0] + right.left[0]) / 2, left.right[1] - 8, "bridge port", "small", anchor="middle"
        )
    _routing(svg, world, pos)
    for node, at in sorted(pos.items()):
        _device(svg, node, dict(graph.nodes[node]), at, _prefix(world, node))
    base = height - 50
    svg.text(20, base, "host nat POSTROUTING (Docker's ruleset):", "small")
    svg.text(20, base + 16, _masquerade_line(world), "mono")
    svg.text(
        20,
        base + 34,
        "replies to the masqueraded port come back to the host's eth0 address; "
        "only conntrack's NAT sends them on to the container",
        "small",
    )
    return svg.render()


def _routing(svg: Svg, world: World, pos: dict[str, _Placed]) -> None:
    """The host's IP forwarding between docker0 and eth0: a path, not a graph edge."""
    bridge, uplink = pos.get("host/docker0"), pos.get("host/eth0")
    if bridge is None or uplink is None:
        return
    svg.line(*bridge.right, *uplink.left, "route")
    forward = "ip_forward=1" if world.namespaces["host"].ip_forward else "ip_forward=0"
    mid = (bridge.right[0] + uplink.left[0]) / 2
    svg.text(mid, bridge.right[1] - 8, f"routed ({forward})", "small", anchor="middle")
    svg.text(mid, bridge.right[1] + 16, "netfilter hooks, conntrack, NAT", "small", anchor="middle")


def _is_port(graph: Any, node: str) -> bool:
    return any(node in edge for edge in _edges(graph, "port"))


# --------------------------------------------------------------------------- (b) seq / time


@dataclass(slots=True)
class _Upload:
    """One run's upload as seen on the host's ``eth0``, in bytes from the client's ISN + 1."""

    data: list[tuple[float, int, int]]  # (t, first byte, end) of each new data segment
    retx: list[tuple[float, int]]  # (t, first byte) of each retransmission
    acks: list[tuple[float, int]]  # (t, ack) of the remote's ACKs, the late one excluded
    late: list[tuple[float, float, int, str, str]]  # (fired, arrived, ack, trigger kind, what became of it)
    rsts: list[tuple[float, int]]  # (t, seq) of the host's RSTs
    end_t: float
    completed: bool
    acked: int


def _client_isn(records: Sequence[tuple[float, str, Packet, int]]) -> int:
    for _, direction, pkt, _ in records:
        if direction == "out" and pkt.flags & TCPHDR_SYN and not pkt.flags & TCPHDR_ACK:
            return pkt.seq
    raise FigureError("no SYN from the container on host eth0")


def upload_series(run: Run) -> _Upload:
    """Read the host's ``eth0`` capture: data out, ACKs in, RSTs out, the triggers."""
    records = run.world.captures[("host", "eth0")].records
    base = (_client_isn(records) + 1) & SEQ_MASK
    triggers = {pid: (t, kind) for t, kind, pid in run.fired}
    data: list[tuple[float, int, int]] = []
    retx: list[tuple[float, int]] = []
    acks: list[tuple[float, int]] = []
    late: list[tuple[float, float, int, str, str]] = []
    rsts: list[tuple[float, int]] = []
    high = 0
    for t, direction, pkt, pid in records:
        if direction == "out" and pkt.flags & TCPHDR_RST:
            rsts.append((t, rel(pkt.seq, base)))
        elif direction == "out" and pkt.payload_len:
            first = rel(pkt.seq, base)
            if first < high:
                retx.append((t, first))
            else:
                data.append((t, first, first + pkt.payload_len))
            high = max(high, first + pkt.payload_len)
        elif direction == "in" and pid in triggers:
            fired, kind = triggers[pid]
            late.append((fired, t, rel(pkt.ack, base), kind, f"trigger {kind}: {trigger_fate(run, pid)}"))
        elif direction == "in" and pkt.flags & TCPHDR_ACK and not pkt.flags & TCPHDR_SYN:
            acks.append((t, rel(pkt.ack, base)))
    return _Upload(data, retx, acks, late, rsts, run.world.clock.now, run.completed, run.client.bytes_acked)


def trigger_fate(run: Run, pid: int) -> str:
    """What the host did with a trigger packet, read off the trace (e.g. ``INVALID, host RST``)."""
    events = run.world.trace.for_packet(pid)
    verdict = next(
        (str(e.data.get("window")) for e in events if e.step is Step.CONNTRACK and e.ns == "host"), "?"
    )
    if any(e.step is Step.DROP and e.ns == "host" for e in events):
        where = next(e.hook for e in events if e.step is Step.DROP and e.ns == "host")
        return f"{verdict}, dropped in host {where}"
    if run.world.trace.caused_by(pid):
        return f"{verdict}, answered by a host RST"
    if any(e.step is Step.DELIVER and e.ns != "host" for e in events):
        return f"{verdict}, NATed on to the container"
    return verdict


@dataclass(frozen=True, slots=True)
class _TimeAxis:
    """Linear from 0 to ``knee`` seconds over ``split`` of the width, then log10 up to ``t_max``."""

    x0: float
    width: float
    knee: float
    t_max: float
    split: float = 0.62

    def x(self, t: float) -> float:
        if t <= self.knee:
            return self.x0 + self.width * self.split * t / self.knee
        frac = math.log10(t / self.knee) / math.log10(self.t_max / self.knee)
        return self.x0 + self.width * (self.split + (1 - self.split) * min(frac, 1.0))

    def ticks(self) -> list[tuple[float, str]]:
        lin = [(self.knee * i / 5, f"{self.knee * i / 5:g}") for i in range(6)]
        logs, t = [], self.knee * 10
        while t <= self.t_max * 1.0001:
            logs.append((t, f"{t:g}"))
            t *= 10
        return lin + logs


def _group(points: Iterable[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """Merge the segments of one burst (same instant) into one vertical stroke."""
    merged: dict[float, tuple[int, int]] = {}
    for t, lo, hi in points:
        key = round(t, 6)
        old = merged.get(key)
        merged[key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    return [(t, lo, hi) for t, (lo, hi) in sorted(merged.items())]


@dataclass(frozen=True, slots=True)
class _Panel:
    axis: _TimeAxis
    top: float
    height: float
    y_max: int

    def y(self, offset: float) -> float:
        return self.top + self.height * (1 - offset / self.y_max)


def _panel_frame(svg: Svg, p: _Panel, title: str) -> None:
    a = p.axis
    svg.text(a.x0, p.top - 12, title, "title")
    for i in range(5):
        value = p.y_max * i / 4
        svg.line(a.x0, p.y(value), a.x0 + a.width, p.y(value), "grid")
        svg.text(a.x0 - 6, p.y(value) + 4, f"{value / 1e6:.1f} MB", "small", anchor="end")
    for t, label in a.ticks():
        svg.line(a.x(t), p.top + p.height, a.x(t), p.top + p.height + 4, "axis")
        svg.text(a.x(t), p.top + p.height + 16, label, "small", anchor="middle")
    knee = a.x(a.knee)
    svg.line(knee, p.top, knee, p.top + p.height, "grid")
    svg.text(knee + 4, p.top + p.height - 6, "log scale from 1 s", "small")
    svg.rect(a.x0, p.top, a.width, p.height, "axis")
    svg.text(a.x0 + a.width, p.top + p.height + 30, "virtual time (s)", "small", anchor="end")


def _draw_upload(svg: Svg, p: _Panel, up: _Upload) -> None:
    x, y = p.axis.x, p.y
    svg.segments(((x(t), y(lo), x(t), y(hi)) for t, lo, hi in _group(up.data)), "data")
    acks = _group((t, a, a) for t, a in up.acks)
    svg.segments(((x(t) + 1.5, y(lo), x(t) + 1.5, y(hi) - 1.0) for t, lo, hi in acks), "ack")
    for t, first in up.retx:
        svg.add("circle", "retx", cx=x(t), cy=y(first), r=2.5)
    for fired, arrived, value, kind, what in up.late:
        svg.add("circle", "late", cx=x(arrived), cy=y(value), r=4.0)
        svg.text(x(arrived) + 8, y(value) + 16, what, "small")
        if kind == "late-ack":
            svg.line(x(fired), y(value), x(arrived), y(value), "held")
            label = f"ack {value} sent at {fired:.2f} s, held on the uplink until {arrived:.2f} s"
        else:
            label = f"the remote's segment (ack {value}) sent at {fired:.2f} s, at the host {arrived:.2f} s"
        svg.text(x(fired), y(value) + 30, label, "small")
    for t, seq in up.rsts:
        cx, cy = x(t), y(seq)
        svg.segments([(cx - 6, cy - 6, cx + 6, cy + 6), (cx - 6, cy + 6, cx + 6, cy - 6)], "rst")
        svg.text(cx + 10, cy - 40, f"RST from the host at {t:.2f} s (tcp_v4_send_reset), seq {seq}", "red")
        svg.line(cx + 8, cy - 36, cx + 2, cy - 8, "held")


def _legend(svg: Svg, x: float, y: float) -> None:
    items = [
        ("data", "container data segment (seq .. seq+len)"),
        ("ack", "remote's ACKs"),
        ("retx", "retransmission"),
        ("late", "trigger packet"),
        ("rst", "host RST"),
    ]
    for cls, label in items:
        if cls in ("retx", "late"):
            svg.add("circle", cls, cx=x + 9, cy=y, r=2.5 if cls == "retx" else 4.0)
        elif cls == "rst":
            svg.segments([(x + 3, y - 6, x + 15, y + 6), (x + 3, y + 6, x + 15, y - 6)], cls)
        else:
            svg.line(x, y, x + 18, y, cls)
        svg.text(x + 24, y + 4, label, "small")
        x += 36 + 7 * len(label)


def _outcome(up: _Upload) -> str:
    if up.completed:
        return f"upload complete at {up.end_t:.2f} s: {up.acked} bytes acknowledged, no RST"
    return (
        f"upload FAILED: {len(up.retx)} retransmissions into a torn-down connection; "
        f"the container gave up at {up.end_t:.2f} s with {up.acked} bytes acknowledged"
    )


def seq_time_svg(stalled: Run | None = None, fixed: Run | None = None) -> str:
    """Figure (b): seq/time of the stalled upload and the fixed upload (host ``eth0``)."""
    stalled = stalled or run_scenario(seed_scenario())
    fixed = fixed or run_scenario(seed_scenario(fix="drop-invalid"))
    ups = [upload_series(stalled), upload_series(fixed)]
    t_max = 10.0 ** math.ceil(math.log10(max(max(u.end_t for u in ups), 10.0)))
    axis = _TimeAxis(x0=90.0, width=880.0, knee=1.0, t_max=t_max)
    y_max = max(stalled.scenario.upload_bytes, fixed.scenario.upload_bytes)
    svg = Svg(1000, 760, "sequence numbers over time: stalled and fixed upload")
    titles = [
        f"stalled: kernel {stalled.scenario.kernel}, no fix (captured on host eth0)",
        f"fixed: kernel {fixed.scenario.kernel}, iptables -A INPUT -m conntrack --ctstate INVALID -j DROP",
    ]
    for i, (up, title) in enumerate(zip(ups, titles, strict=True)):
        panel = _Panel(axis, 60.0 + i * 340.0, 250.0, y_max)
        _panel_frame(svg, panel, title)
        _draw_upload(svg, panel, up)
        svg.text(axis.x0 + 10, panel.top + 18, _outcome(up), "small")
    _legend(svg, 90.0, 740.0)
    return svg.render()


# --------------------------------------------------------------------------- (c) window bounds


@dataclass(frozen=True, slots=True)
class _Check:
    t: float
    lower: int  # bound IV's limit
    upper: int  # bound III's limit
    ack: int  # the packet's (s)ack
    failed: tuple[str, ...]
    verdict: str
    reason: str | None


def reply_checks(run: Run) -> list[_Check]:
    """Every reply-direction window check in the host's PREROUTING, relative to the client's
    ISN + 1 (bytes into the upload). The direction is the check's ``sender_dir``: an INVALID
    packet has no ctinfo, so the event's ``direction`` says nothing about it."""
    checks = [
        (e, e.data["check"])
        for e in run.world.trace.events
        if e.step is Step.CONNTRACK
        and e.ns == "host"
        and e.hook == "PREROUTING"
        and isinstance(e.data.get("check"), WindowCheck)
        and e.before is not None
    ]
    syn = next((c for e, c in checks if c.sender_dir == 0), None)
    if syn is None:
        raise FigureError("no original-direction packet in the trace")
    base = (syn.seq + 1) & SEQ_MASK
    return [_as_check(e.t, c, e.data, base) for e, c in checks if c.sender_dir == 1 and _plain_ack(e.before)]


def _plain_ack(pkt: Packet | None) -> bool:
    return pkt is not None and bool(pkt.flags & TCPHDR_ACK) and not pkt.flags & (TCPHDR_SYN | TCPHDR_RST)


def _as_check(t: float, check: WindowCheck, data: dict[str, Any], base: int) -> _Check:
    bounds = {b.name: b for b in check.bounds}
    return _Check(
        t,
        rel(bounds["IV"].limit, base),
        rel(bounds["III"].limit, base),
        rel(bounds["IV"].value, base),
        tuple(check.failed),
        str(data.get("window")),
        data.get("reason"),
    )


def window_bounds_svg(run: Run | None = None) -> str:
    """Figure (c): bound IV's lower and bound III's upper limit on each reply ACK over time."""
    run = run or run_scenario(seed_scenario())
    checks = reply_checks(run)
    if not checks:
        raise FigureError("no reply-direction window checks in the trace")
    t_end = max(c.t for c in checks)
    step = 250_000
    y_max = step * math.ceil(max(c.upper for c in checks) / step)
    y_min = step * math.floor(min(0, *(c.lower for c in checks if not c.failed)) / step)
    x0, width, top, height = 100.0, 820.0, 70.0, 420.0

    def x(t: float) -> float:
        return x0 + width * t / (t_end * 1.05)

    def y(v: float) -> float:
        return top + height * (y_max - v) / (y_max - y_min)

    svg = Svg(960, 600, "conntrack window bounds on the remote's ACKs")
    svg.text(
        20, 28, f"Window bounds on the remote's ACKs (seed-incident, kernel {run.scenario.kernel})", "title"
    )
    svg.text(
        20,
        48,
        "from the trace: each reply segment's WindowCheck in host PREROUTING (bytes into the upload)",
        "small",
    )
    for value in range(y_min, y_max + 1, step):
        svg.line(x0, y(value), x0 + width, y(value), "grid")
        svg.text(x0 - 6, y(value) + 4, f"{value / 1e6:.2f} MB", "small", anchor="end")
    for i in range(int(t_end * 1.05 / 0.1) + 1):
        svg.text(x(i * 0.1), top + height + 16, f"{i * 0.1:.1f}", "small", anchor="middle")
    svg.text(x0 + width, top + height + 32, "virtual time (s)", "small", anchor="end")
    ok = [c for c in checks if not c.failed]
    upper = [(x(c.t), y(c.upper)) for c in ok]
    lower = [(x(c.t), y(c.lower)) for c in ok]
    svg.path(upper + lower[::-1], "band", close=True)
    svg.path(upper, "upper")
    svg.path(lower, "lower")
    for c in checks:
        svg.add("circle", "ackdot", cx=x(c.t), cy=y(c.ack), r=1.8)
    for c in (c for c in checks if c.failed):
        _mark_failure(svg, (x(c.t), y(c.ack)), y(c.lower), x0 + width - 10, c, lower)
    svg.rect(x0, top, width, height, "axis")
    _bounds_legend(svg, x0, top + height + 56)
    return svg.render()


def _mark_failure(
    svg: Svg,
    at: tuple[float, float],
    limit_y: float,
    right: float,
    c: _Check,
    avoid: Sequence[tuple[float, float]],
) -> None:
    """Circle the failed ACK, a dashed line up to its limit, and the verdict right-aligned below,
    low enough not to cross the ``avoid`` line (the lower limit) over the text's width."""
    cx, cy = at
    svg.add("circle", "bad", cx=cx, cy=cy, r=7.0)
    svg.line(cx, cy, cx, limit_y, "held")
    names = ", ".join(f"bound {n} FAIL" for n in c.failed)
    lines = [
        (f"{names}: ack {c.ack} < lower limit {c.lower} (t = {c.t:.2f} s)", "red"),
        (f"verdict {c.verdict}: {c.reason}", "small"),
        (f"{c.lower - c.ack} bytes under the limit: the late ACK, held on the uplink", "small"),
    ]
    left = right - 7.0 * max(len(text) for text, _ in lines)  # about 7 px per character at 12 px
    under = max((py for px, py in avoid if px >= left), default=cy)
    top = max(cy + 34, under + 24)
    for i, (text, cls) in enumerate(lines):
        svg.text(right, top + 16 * i, text, cls, anchor="end")


def _bounds_legend(svg: Svg, x: float, y: float) -> None:
    items = [
        ("upper", "bound III: ack <= receiver.td_end (upper limit)"),
        ("lower", "bound IV: ack >= receiver.td_end - MAXACKWINDOW(sender) (lower limit)"),
        ("ack", "the packet's ack"),
    ]
    for i, (cls, label) in enumerate(items):
        svg.line(x, y + i * 16, x + 18, y + i * 16, cls)
        svg.text(x + 24, y + i * 16 + 4, label, "small")
    svg.text(x + 505, y + 4, "bounds I and II (on the remote's seq) pass for every", "small")
    svg.text(x + 505, y + 20, "segment here: the remote sends no data", "small")


# --------------------------------------------------------------------------- files and CLI

FIGURES: dict[str, Callable[[], str]] = {
    "topology.svg": topology_svg,
    "seq-time.svg": seq_time_svg,
    "window-bounds.svg": window_bounds_svg,
}


def render_all() -> dict[str, str]:
    """Every figure's SVG text by file name; the 3.10 run is shared by (b) and (c)."""
    stalled = run_scenario(seed_scenario())
    fixed = run_scenario(seed_scenario(fix="drop-invalid"))
    return {
        "topology.svg": topology_svg(stalled.world),
        "seq-time.svg": seq_time_svg(stalled, fixed),
        "window-bounds.svg": window_bounds_svg(stalled),
    }


def generate(out_dir: str | Path = DEFAULT_OUT) -> list[Path]:
    """Write every figure into ``out_dir`` (created if missing); the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``figures`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "figures",
        help="draw the course figures from the model (SVG)",
        description="Run the seed incident and write the topology, seq/time and window-bound "
        "figures as SVG. Exit 0: written, 2: cannot write.",
    )
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        metavar="DIR",
        help=f"where the SVG files go (default {DEFAULT_OUT})",
    )
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``figures`` with parsed arguments; returns the exit status."""
    try:
        written = generate(args.out)
    except OSError as e:
        print(f"nflab: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    except FigureError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
