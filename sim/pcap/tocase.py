"""One connection of a capture as a crafted-packet replay case (the ``nflab replay`` /
``nflab kernel-check`` contract, :mod:`sim.scenario.case`).

The connection's originator (conntrack's ORIGINAL direction) becomes the container and its
peer the remote of the case's docker-bridge topology (the documentation addresses of
:class:`sim.scenario.case.Topology`); ports, sequence numbers, flags, windows, payload lengths and TCP
options are kept, and each packet's ``delay`` is its capture time minus the previous one's.
The container's packets are addressed as they left the container (``ctr_ip:sport ->
remote_ip:dport``), the remote's as they reach the host (``remote_ip:dport ->
host_ip:sport``): MASQUERADE keeps the port. RSTs the host itself sent are left out: the
case's host makes its own.

A capture taken where segmentation offloads are on (TSO/GSO on the sender, GRO on the
receiver: a default Docker host) holds super-packets, e.g. 7,240 or 65,160 payload bytes,
that no wire carried and no case may send. Each is split into the segments the wire carried,
as ``tcp_gso_segment()`` (net/ipv4/tcp_offload.c) cuts them: ``gso_size`` bytes each (the
peer's SYN MSS less this segment's TCP options, as ``tcp_current_mss()`` sizes ``mss_cache``;
the 1500-byte MTU's when the handshake is not in the capture), consecutive sequence numbers,
FIN and PSH only on the last, CWR only on the first, the same ACK, window and options.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sim.netfilter.profiles import resolve_kernel
from sim.netfilter.tcp_states import ORIGINAL, REPLY
from sim.packet import TCPHDR_CWR, TCPHDR_FIN, TCPHDR_PSH, Packet, format_flags
from sim.pcap.analyse import Analysis, Connection, Tracker
from sim.pcap.reader import Frame, read_frames
from sim.scenario.case import CaseError, Topology, max_payload, parse_case


def packet_entry(side: str, pkt: Packet, src: str, dst: str, delay: float) -> dict[str, Any]:
    opts = pkt.options
    options: dict[str, Any] = {}
    if opts.mss is not None:
        options["mss"] = opts.mss
    if opts.wscale is not None:
        options["wscale"] = opts.wscale
    if opts.sack_perm:
        options["sack_perm"] = True
    if opts.sack:
        options["sack"] = [list(block) for block in opts.sack]
    if opts.ts is not None:
        options["ts"] = list(opts.ts)
    entry: dict[str, Any] = {
        "from": side,
        "src": src,
        "dst": dst,
        "flags": format_flags(pkt.flags),
        "seq": pkt.seq,
        "ack": pkt.ack,
        "win": pkt.window,
        "len": pkt.payload_len,
    }
    if options:
        entry["options"] = options
    entry["delay"] = round(delay, 6)
    return entry


def gso_segments(p: Packet, peer_mss: int | None) -> list[Packet]:
    """``p`` as the wire carried it: itself, or the segments ``tcp_gso_segment()`` cuts a
    super-packet into (module docstring)."""
    fits = max_payload(p.options)
    size = min(fits, peer_mss - p.options.wire_length()) if peer_mss else fits
    if p.payload_len <= fits or size <= 0:
        return [p]
    out = []
    for off in range(0, p.payload_len, size):
        last = off + size >= p.payload_len
        flags = p.flags if last else p.flags & ~(TCPHDR_FIN | TCPHDR_PSH)
        if off:
            flags &= ~TCPHDR_CWR
        seq, length = (p.seq + off) & 0xFFFFFFFF, min(size, p.payload_len - off)
        out.append(replace(p, seq=seq, flags=flags, payload_len=length))
    return out


def connection_case(
    frames: Iterable[Frame],
    conn: Connection,
    *,
    name: str,
    kernel: str,
    sysctls: dict[str, int],
    description: str,
    inner_addrs: Iterable[str] = (),
    topology: Topology | None = None,
    split: list[tuple[int, int, int]] | None = None,
) -> dict[str, Any]:
    """The case for connection ``conn`` of an analysis of ``frames``; CaseError names a frame
    that cannot be expressed in a case. Each super-packet split is appended to ``split`` as
    (frame, payload bytes, segments).

    The frames are grouped again exactly as the analysis grouped them (:class:`Analysis` with
    no tracker), so the case holds the packets conntrack saw, in its directions: copies on
    other interfaces, the host's own RSTs (``conn.host_rsts``) left out, untranslated packets
    and replies to the NATed address in.
    """
    topology = topology or Topology()
    _src, sport, _dst, dport = conn.orig
    ends = {
        ORIGINAL: ("ctr", f"{topology.ctr_ip}:{sport}", f"{topology.remote_ip}:{dport}"),
        REPLY: ("remote", f"{topology.remote_ip}:{dport}", f"{topology.host_ip}:{sport}"),
    }
    packets: list[dict[str, Any]] = []
    last_ns: list[int] = []
    syn_mss: dict[int, int] = {}  # direction -> the MSS its SYN announced

    def take(fr: Frame, c: Connection, direction: int, p: Packet) -> None:
        if c.id != conn.id:
            return
        if p.syn and p.options.mss:
            syn_mss[direction] = p.options.mss
        delay = 0.0 if not last_ns else max(fr.ts_ns - last_ns[0], 0) / 1e9
        last_ns[:] = [fr.ts_ns]
        side, a, b = ends[direction]
        segments = gso_segments(p, syn_mss.get(1 - direction))
        if len(segments) > 1 and split is not None:
            split.append((fr.number, p.payload_len, len(segments)))
        for i, seg in enumerate(segments):
            packets.append(packet_entry(side, seg, a, b, 0.0 if i else delay))

    a = Analysis([], inner_addrs=inner_addrs, skip_frames=conn.host_rsts, on_packet=take)
    for fr in frames:
        a.feed(fr)
    if not packets:
        raise CaseError(f"no packets of connection #{conn.id} in the capture")
    case: dict[str, Any] = {"name": name, "description": description, "kernel": kernel}
    if sysctls:
        case["sysctl"] = {f"net.netfilter.nf_conntrack_{k}": v for k, v in sysctls.items()}
    case["packets"] = packets
    parse_case(case)
    return case


def select_flow(conns: list[Connection], flow: str | None) -> Connection:
    """``--flow``: ``#N`` / ``N`` (the summary's connection number) or one endpoint ``IP:PORT``;
    None picks the only connection."""
    if flow is None:
        if len(conns) == 1:
            return conns[0]
        raise CaseError(
            f"the capture has {len(conns)} connections: choose one with --flow #N or --flow IP:PORT"
        )
    text = flow.removeprefix("#")
    if text.isdigit():
        for c in conns:
            if c.id == int(text):
                return c
        raise CaseError(f"--flow {flow}: no connection #{text} (there are {len(conns)})")
    for c in conns:
        if flow in (f"{c.orig[0]}:{c.orig[1]}", f"{c.orig[2]}:{c.orig[3]}"):
            return c
    raise CaseError(f"--flow {flow}: no connection has the endpoint {flow}")


def capture_case(path: str, flow: str | None = None, kernel: str = "6.1") -> dict[str, Any]:
    """A capture file -> the replay case of one of its connections (for front ends that open
    captures, e.g. the TUI): one pass to find the connections and the host's own RSTs, one
    to convert. CaptureError / CaseError carry one line."""
    a = Analysis([Tracker(resolve_kernel(kernel))])
    for fr in read_frames(path):
        a.feed(fr)
    conn = select_flow(a.finish(), flow)
    return connection_case(
        read_frames(path),
        conn,
        name=Path(path).stem,
        kernel=kernel,
        sysctls={},
        description=f"connection #{conn.id} of {Path(path).name}"
        f" (frames {conn.first_frame}-{conn.last_frame})",
    )
