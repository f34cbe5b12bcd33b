"""``nflab pcap``'s words and JSON for one flagged packet, one verdict, one connection."""

from __future__ import annotations

from typing import Any

from sim.packet import Packet, format_flags
from sim.pcap.analyse import Connection, Flagged, Verdict, verdict_word


def ts_text(ns: int, base: int) -> str:
    return f"{(ns - base) / 1e9:12.6f}"


def bound_text(v: Verdict) -> str:
    b = v.bound
    if b is None:
        return ""
    return f"; bound {b.name} {b.rule}: limit {b.limit}, packet {b.value}"


def verdict_text(v: Verdict) -> str:
    """``INVALID  ACK is under the lower bound (...); bound IV ...: limit L, packet V``."""
    reason = v.reason or ("accepted" if v.plain_accept else "")
    return f"{verdict_word(v):<8} {reason}{bound_text(v)}".rstrip()


def flagged_lines(f: Flagged, base_ns: int, kernels: list[str]) -> list[str]:
    """The report's lines for one flagged packet: the packet, then one line per kernel."""
    head = (
        f"frame {f.frame:>7}  {ts_text(f.ts_ns, base_ns)}s  #{f.conn:<3} {f.direction:<8} {f.pkt.describe()}"
    )
    if f.host_rst_for is not None:
        return [
            head,
            f"    the host's own RST (tcp_v4_send_reset) answering frame {f.host_rst_for}: not tracked",
        ]
    lines = [head]
    if f.untranslated:
        lines.append("    left untranslated: its source is the container's own address (no SNAT)")
    width = max(len(k) for k in kernels)
    lines += [f"    {v.kernel:<{width}}  {verdict_text(v)}" for v in f.verdicts]
    return lines


def connection_line(c: Connection, kernels: list[str]) -> str:
    src, sport, dst, dport = c.orig
    parts = [
        f"#{c.id} {src}:{sport} > {dst}:{dport}: frames {c.first_frame}-{c.last_frame},"
        f" {c.packets[0]} + {c.packets[1]} packets ({c.payload[0]} + {c.payload[1]} payload bytes),"
        f" {'picked up mid-stream' if c.picked_up else 'handshake seen'}"
    ]
    for k in kernels:
        counts = c.counts.get(k, {})
        flagged = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "all ACCEPT"
        parts.append(f"{k}: {flagged}, ends {c.states.get(k, '?')}")
    if c.host_rsts:
        parts.append(f"{len(c.host_rsts)} host RST")
    if c.untranslated:
        parts.append(f"{len(c.untranslated)} untranslated")
    return "; ".join(parts)


def verdict_json(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    b = v.bound
    return {
        "ctstate": v.ctstate.name,
        "window": None if v.window is None else v.window.name,
        "reason": v.reason,
        "tcp_state": v.state,
        "bound": None if b is None else {"name": b.name, "rule": b.rule, "limit": b.limit, "value": b.value},
    }


def packet_json(p: Packet) -> dict[str, Any]:
    return {
        "src": f"{p.src}:{p.sport}",
        "dst": f"{p.dst}:{p.dport}",
        "flags": format_flags(p.flags),
        "seq": p.seq,
        "ack": p.ack,
        "win": p.window,
        "len": p.payload_len,
    }


def flagged_json(f: Flagged, base_ns: int) -> dict[str, Any]:
    return {
        "frame": f.frame,
        "time": round((f.ts_ns - base_ns) / 1e9, 9),
        "ts_ns": f.ts_ns,
        "connection": f.conn,
        "direction": f.direction,
        **packet_json(f.pkt),
        "verdicts": {v.kernel: verdict_json(v) for v in f.verdicts},
        "host_rst_for": f.host_rst_for,
        "untranslated": f.untranslated,
    }
