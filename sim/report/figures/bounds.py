"""(c) Window bounds III and IV on the remote's ACKs, with the late ACK outside them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sim.netfilter.proto_tcp import WindowCheck
from sim.packet import SEQ_MASK, TCPHDR_ACK, TCPHDR_RST, TCPHDR_SYN, Packet
from sim.report.figures.seed import FigureError, rel, seed_scenario
from sim.report.figures.svg import Svg
from sim.scenario.scenario import Run, run_scenario
from sim.trace import ConntrackInfo


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
        (e, e.ct.check)
        for e in run.world.trace.events
        if e.ct is not None
        and e.ct.check is not None
        and e.ns == "host"
        and e.hook == "PREROUTING"
        and e.before is not None
    ]
    syn = next((c for e, c in checks if c.sender_dir == 0), None)
    if syn is None:
        raise FigureError("no original-direction packet in the trace")
    base = (syn.seq + 1) & SEQ_MASK
    return [_as_check(e.t, c, e.ct, base) for e, c in checks if c.sender_dir == 1 and _plain_ack(e.before)]


def _plain_ack(pkt: Packet | None) -> bool:
    return pkt is not None and bool(pkt.flags & TCPHDR_ACK) and not pkt.flags & (TCPHDR_SYN | TCPHDR_RST)


def _as_check(t: float, check: WindowCheck, ct: ConntrackInfo | None, base: int) -> _Check:
    bounds = {b.name: b for b in check.bounds}
    return _Check(
        t,
        rel(bounds["IV"].limit, base),
        rel(bounds["III"].limit, base),
        rel(bounds["IV"].value, base),
        tuple(check.failed),
        str(ct.window if ct else None),
        ct.reason if ct else None,
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

    svg = Svg(960, 650, "conntrack window bounds on the remote's ACKs")
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
    left = right - 8.0 * max(len(text) for text, _ in lines)  # about 8 px per character at 14 px
    under = max((py for px, py in avoid if px >= left), default=cy)
    top = max(cy + 34, under + 24)
    for i, (text, cls) in enumerate(lines):
        svg.text(right, top + 18 * i, text, cls, anchor="end")


def _bounds_legend(svg: Svg, x: float, y: float) -> None:
    items = [
        ("upper", "bound III: ack <= receiver.td_end (upper limit)"),
        ("lower", "bound IV: ack >= receiver.td_end - MAXACKWINDOW(sender) (lower limit)"),
        ("ack", "the packet's ack"),
    ]
    for i, (cls, label) in enumerate(items):
        svg.line(x, y + i * 18, x + 18, y + i * 18, cls)
        svg.text(x + 24, y + i * 18 + 4, label, "small")
    svg.text(x, y + 3 * 18 + 4, "bounds I and II (on the remote's seq) pass for every segment here:", "small")
    svg.text(x, y + 4 * 18 + 4, "the remote sends no data", "small")
