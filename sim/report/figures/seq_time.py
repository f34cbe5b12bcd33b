"""(b) Sequence number over time of the stalled and the fixed upload, on the host's eth0."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sim.packet import SEQ_MASK, TCPHDR_ACK, TCPHDR_RST, TCPHDR_SYN, Packet
from sim.report.figures.seed import FigureError, rel, seed_scenario
from sim.report.figures.svg import Panel, Svg, TimeAxis, group, panel_frame
from sim.scenario.scenario import Run, run_scenario
from sim.trace import Step


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
        (str(e.ct.window if e.ct else None) for e in events if e.step is Step.CONNTRACK and e.ns == "host"),
        "?",
    )
    if any(e.step is Step.DROP and e.ns == "host" for e in events):
        where = next(e.hook for e in events if e.step is Step.DROP and e.ns == "host")
        return f"{verdict}, dropped in host {where}"
    if run.world.trace.caused_by(pid):
        return f"{verdict}, answered by a host RST"
    if any(e.step is Step.DELIVER and e.ns != "host" for e in events):
        return f"{verdict}, NATed on to the container"
    return verdict


def _draw_upload(svg: Svg, p: Panel, up: _Upload) -> None:
    x, y = p.axis.x, p.y
    svg.segments(((x(t), y(lo), x(t), y(hi)) for t, lo, hi in group(up.data)), "data")
    acks = group((t, a, a) for t, a in up.acks)
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
        x += 36 + 8 * len(label)  # about 8 px per character at 14 px


def _outcome(up: _Upload) -> list[str]:
    """The panel's outcome, one or two lines."""
    if up.completed:
        return [f"upload complete at {up.end_t:.2f} s: {up.acked} bytes acknowledged, no RST"]
    return [
        f"upload FAILED: {len(up.retx)} retransmissions into a torn-down connection;",
        f"the container gave up at {up.end_t:.2f} s with {up.acked} bytes acknowledged",
    ]


def seq_time_svg(stalled: Run | None = None, fixed: Run | None = None) -> str:
    """Figure (b): seq/time of the stalled upload and the fixed upload (host ``eth0``)."""
    stalled = stalled or run_scenario(seed_scenario())
    fixed = fixed or run_scenario(seed_scenario(fix="drop-invalid"))
    ups = [upload_series(stalled), upload_series(fixed)]
    t_max = 10.0 ** math.ceil(math.log10(max(max(u.end_t for u in ups), 10.0)))
    axis = TimeAxis(x0=90.0, width=880.0, knee=1.0, t_max=t_max)
    y_max = max(stalled.scenario.upload_bytes, fixed.scenario.upload_bytes)
    svg = Svg(1000, 760, "sequence numbers over time: stalled and fixed upload")
    titles = [
        f"stalled: kernel {stalled.scenario.kernel}, no fix (captured on host eth0)",
        f"fixed: kernel {fixed.scenario.kernel}, iptables -A INPUT -m conntrack --ctstate INVALID -j DROP",
    ]
    for i, (up, title) in enumerate(zip(ups, titles, strict=True)):
        panel = Panel(axis, 60.0 + i * 340.0, 250.0, y_max)
        panel_frame(svg, panel, title)
        _draw_upload(svg, panel, up)
        for i, line in enumerate(_outcome(up)):
            svg.text(axis.x0 + 10, panel.top + 18 + 18 * i, line, "small")
    _legend(svg, 90.0, 740.0)
    return svg.render()
