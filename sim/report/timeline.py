"""A scenario run told as a timeline, read off the trace, and its two captures.

The story a reader needs: the connection and its NAT binding, each trigger, and for every
packet that fell out of the window the hooks it crossed -- conntrack's verdict with the
failed bound, NAT skipped, the route LOCAL, no socket, the RST's fields -- then what the far
end and the container did, and whether the upload finished.
"""

from __future__ import annotations

from pathlib import Path

from sim.packet import TCPHDR_RST, format_flags
from sim.report.capture import write_pcap
from sim.report.sentences import say
from sim.scenario.scenario import Run
from sim.trace import Step, TraceEvent, TraceVerdict

CAPTURE_POINTS = (("host", "eth0", "host-eth0.pcap"), ("ctr", "eth0", "ctr-eth0.pcap"))


FIX_TITLES = {
    "drop-invalid": "drop INVALID in INPUT",
    "be-liberal": "nf_conntrack_tcp_be_liberal=1",
    "none": "no fix",
}


def _t(t: float) -> str:
    return f"{t:9.3f}s"


def _bounds(e: TraceEvent) -> list[str]:
    check = e.ct.check if e.ct else None
    if check is None:
        return []
    return [
        f"{'':12}  bound {b.name:<3} {b.rule:<48} limit {b.limit:>10}  packet {b.value:>10}  "
        + ("pass" if b.passed else "FAIL")
        for b in check.bounds
    ]


def _story(run: Run, pid: int) -> list[str]:
    """What happened to one packet at the host, hook by hook."""
    lines = []
    for e in run.world.trace.for_packet(pid):
        if e.ns != "host" or e.step in (Step.RECV, Step.BRIDGE, Step.XMIT, Step.LOG):
            continue
        where = f"{e.hook} {e.priority}" if e.hook else e.step.value
        lines.append(f"{'':12}  host {where:<16} {e.verdict or '':<10} {say(e)}")
        if e.step is Step.CONNTRACK:
            lines.extend(_bounds(e))
    return lines


def render(run: Run) -> str:
    """The whole timeline as text."""
    sc, w, tr = run.scenario, run.world, run.world.trace
    table = w.namespaces["host"].conntrack
    assert table is not None
    fix = FIX_TITLES[sc.fix]
    head = f"scenario {sc.name}: kernel {table.profile.name} ({table.profile.description}); {fix}"
    items: list[tuple[float, int, list[str]]] = []  # (time, order, lines), sorted at the end
    first = next((e for e in tr.events if e.step is Step.NAT and e.nat is not None), None)
    if first is not None:
        items.append(
            (
                first.t,
                0,
                [
                    f"{_t(first.t)}  connection {sc.topology.containers[0]}:{sc.sport} -> "
                    f"{sc.topology.remote_ip}:{sc.dport}; {say(first)}"
                ],
            )
        )
    isn = next(
        (e.before.seq for e in tr.events if e.step is Step.SEND and e.ns == sc.upload_from and e.before), 0
    )
    for t, kind, pid in run.fired:
        if kind == "late-ack":
            sent = next((e.before for e in tr.for_packet(pid) if e.step is Step.SEND), None)
            ack = f" (ack {sent.ack}, {(sent.ack - isn - 1) % 2**32} bytes into the upload)" if sent else ""
            items.append((t, 1, [f"{_t(t)}  trigger late-ack: the uplink holds the remote's ACK{ack} back"]))
        elif kind == "conntrack":
            command = next(tr.command for tr in sc.triggers if tr.kind == "conntrack")
            items.append((t, 1, [f"{_t(t)}  trigger conntrack: the host runs conntrack {command}"]))
        else:
            items.append(
                (
                    t,
                    1,
                    [
                        f"{_t(t)}  trigger beyond-window: the remote sends a segment past the "
                        "container's window"
                    ],
                )
            )
    interesting = sorted(
        {
            e.pid
            for e in tr.events
            if e.ct is not None
            and e.ns == "host"
            and e.ct.window in (TraceVerdict.IGNORE, TraceVerdict.INVALID)
            and e.hook == "PREROUTING"
        }
    )
    for pid in interesting:
        ct = next(e for e in tr.for_packet(pid) if e.step is Step.CONNTRACK)
        p = ct.before
        assert p is not None
        window = ct.ct.window if ct.ct else None
        lines = [f"{_t(ct.t)}  {p.describe()} arrives at the host: conntrack says {window}"]
        lines.extend(_story(run, pid))
        for child in tr.caused_by(pid):
            send_ev = next(e for e in tr.for_packet(child) if e.step is Step.SEND)
            rst = send_ev.before
            assert rst is not None
            seen_by = sorted(
                {
                    e.ns
                    for e in tr.for_packet(child)
                    if e.step is Step.DELIVER or (e.step is Step.RECV and e.ns != "host")
                }
            )
            lines.append(
                f"{_t(send_ev.t)}  the host sends [{format_flags(rst.flags)}] seq {rst.seq} ack {rst.ack} "
                f"{rst.src}:{rst.sport} > {rst.dst}:{rst.dport}; seen by: {', '.join(seen_by) or 'nobody'}"
                + ("" if sc.upload_from in seen_by else " -- the container never sees it")
            )
        items.append((ct.t, 2, lines))
    if run.remote.torn_down_at is not None:
        items.append(
            (
                run.remote.torn_down_at,
                3,
                [
                    f"{_t(run.remote.torn_down_at)}  the remote tears the connection down on that RST; "
                    "it drops the container's later segments"
                ],
            )
        )
    out = [head]
    for _t0, _order, lines in sorted(items, key=lambda item: (item[0], item[1])):
        out.extend(lines)
    c = run.client
    if run.completed:
        end = max(e.t for e in tr.events)
        out.append(
            f"{_t(end)}  upload complete: {sc.upload_bytes} bytes acknowledged, "
            f"{c.retransmissions} retransmissions"
        )
    elif c.aborted_reason is None:
        out.append(
            f"{_t(w.clock.now)}  upload unfinished when the scenario's duration ({sc.duration:g}s) ran out: "
            f"{c.bytes_acked} of {sc.upload_bytes} bytes acknowledged, {c.retransmissions} retransmissions"
        )
    else:
        retrans = [e.t for e in tr.events if e.step is Step.SEND and e.ns == sc.upload_from]
        out.append(
            f"{_t(w.clock.now)}  upload FAILED: the container gave up ({c.aborted_reason}) after "
            f"{c.retransmissions} retransmissions with {c.bytes_acked} of {sc.upload_bytes} bytes "
            f"acknowledged" + (f"; its last segment left at {retrans[-1]:.3f}s" if retrans else "")
        )
    return "\n".join(out)


def write_captures(run: Run, out_dir: Path) -> list[tuple[Path, int, int]]:
    """The host uplink and container eth0 captures as pcap files: (path, packets, RSTs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ns_name, dev_name, filename in CAPTURE_POINTS:
        ns = run.world.namespaces[ns_name]
        dev = ns.devices[dev_name]
        peer = run.world.namespaces[dev.peer[0]].devices[dev.peer[1]] if dev.peer else dev
        records = []
        for t, direction, pkt, _pid in run.world.captures[(ns_name, dev_name)].records:
            src, dst = (dev.mac, peer.mac) if direction == "out" else (peer.mac, dev.mac)
            records.append((t, pkt, src, dst))
        path = out_dir / filename
        write_pcap(path, records)
        written.append((path, len(records), sum(1 for _t, p, _s, _d in records if p.flags & TCPHDR_RST)))
    return written
