"""``nflab pcap``'s words and JSON for one flagged packet, one verdict, one connection."""

from __future__ import annotations

from typing import Any

from sim.packet import ICMP_ERROR_TYPES, IpProto, Packet, format_flags
from sim.pcap.analyse import Connection, Flagged, Verdict, verdict_word
from sim.pcap.flows import DatagramFlagged, Flow, datagram_word, icmp_name


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


def _untranslated(copy_of: int | None) -> str:
    seen = f"; a copy of frame {copy_of}, which conntrack saw" if copy_of is not None else ""
    return f"    left untranslated: its source is the container's own address (no SNAT){seen}"


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
        lines.append(_untranslated(f.copy_of))
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
        "copy_of": f.copy_of,
    }


# ---------------------------------------------------------------- UDP and ICMP (sim.pcap.flows)


def datagram_text(p: Packet) -> str:
    """A datagram as the report shows it (ICMP with its type's name and what an error quotes)."""
    if p.proto is IpProto.ICMP:
        quoted = f" quoting {p.inner.describe()}" if p.inner is not None else ""
        ident = "" if p.icmp_type in ICMP_ERROR_TYPES else f" id {p.sport} seq {p.seq}"
        return f"{p.src} > {p.dst} ICMP {icmp_name(p)} (type {p.icmp_type} code {p.icmp_code}){ident}{quoted}"
    return p.describe()


def datagram_lines(f: DatagramFlagged, base_ns: int, kernels: list[str]) -> list[str]:
    where = f"about {f.flow}" if f.direction == "ERROR" else f"{f.flow} {f.direction}"
    lines = [f"frame {f.frame:>7}  {ts_text(f.ts_ns, base_ns)}s  {where:<13} {datagram_text(f.pkt)}"]
    if f.untranslated:
        lines.append(_untranslated(f.copy_of))
    width = max(len(k) for k in kernels)
    for v in f.verdicts:
        word = datagram_word(v)
        lines.append(f"    {v.kernel:<{width}}  {word:<11} {v.reason or ''}".rstrip())
    return lines


def flow_line(f: Flow, kernels: list[str]) -> str:
    src, sport, dst, dport, _ = f.orig
    if f.proto is IpProto.ICMP:
        what = f"{f.label} ICMP {src} > {dst} {icmp_name(Packet(src, dst, sport, dport))} id {sport}"
    else:
        what = f"{f.label} UDP {src}:{sport} > {dst}:{dport}"
    parts = [
        f"{what}: frames {f.first_frame}-{f.last_frame}, {f.packets[0]} + {f.packets[1]} datagrams"
        f" ({f.payload[0]} + {f.payload[1]} payload bytes)"
    ]
    for k in kernels:
        counts = ", ".join(f"{n} {what}" for what, n in sorted(f.counts.get(k, {}).items()))
        parts.append(f"{k}: {counts}, ends {f.states.get(k, '?')}")
    if f.untranslated:
        parts.append(f"{len(f.untranslated)} untranslated")
    return "; ".join(parts)


def datagram_json(f: DatagramFlagged, base_ns: int) -> dict[str, Any]:
    p = f.pkt
    icmp = None
    if p.proto is IpProto.ICMP:
        icmp = {"type": p.icmp_type, "code": p.icmp_code, "name": icmp_name(p)}
        if p.inner is not None:
            icmp["quotes"] = p.inner.describe()
    return {
        "frame": f.frame,
        "time": round((f.ts_ns - base_ns) / 1e9, 9),
        "ts_ns": f.ts_ns,
        "proto": p.proto.name,
        "flow": f.flow,
        "direction": f.direction,
        "src": f"{p.src}:{p.sport}" if p.proto is IpProto.UDP else p.src,
        "dst": f"{p.dst}:{p.dport}" if p.proto is IpProto.UDP else p.dst,
        "len": p.payload_len,
        "icmp": icmp,
        "verdicts": {
            v.kernel: {"ctstate": datagram_word(v), "reason": v.reason, "entry": v.state} for v in f.verdicts
        },
        "untranslated": f.untranslated,
        "copy_of": f.copy_of,
    }


def flow_json(f: Flow) -> dict[str, Any]:
    src, sport, dst, dport, _ = f.orig
    return {
        "id": f.label,
        "proto": f.proto.name,
        "src": f"{src}:{sport}" if f.proto is IpProto.UDP else src,
        "dst": f"{dst}:{dport}" if f.proto is IpProto.UDP else dst,
        "icmp_id": sport if f.proto is IpProto.ICMP else None,
        "first_frame": f.first_frame,
        "last_frame": f.last_frame,
        "packets": f.packets,
        "payload": f.payload,
        "ctstates": f.counts,
        "final_state": f.states,
        "untranslated": len(f.untranslated),
    }
