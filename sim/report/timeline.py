"""A scenario run told as a timeline, read off the trace, and its two captures.

The story a reader needs: the connection and its NAT binding, each trigger, and for every
packet that fell out of the window the hooks it crossed -- conntrack's verdict with the
failed bound, NAT skipped, the route LOCAL, no socket, the RST's fields -- then what the far
end and the container did, and whether the upload finished.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.include.netfilter import HOOK_CHAIN, Hook
from sim.netfilter.profiles import KERNEL_HELP, kernel_arg
from sim.packet import TCPHDR_RST, format_flags
from sim.report.capture import write_pcap
from sim.report.sentences import say
from sim.scenario.fixes import FIXES
from sim.scenario.scenario import Run
from sim.topology.roles import NsRole
from sim.trace import Step, TraceEvent, TraceVerdict

if TYPE_CHECKING:
    from sim.scenario.story import Story

CAPTURE_POINTS = ((NsRole.HOST, "eth0", "host-eth0.pcap"), (NsRole.CONTAINER, "eth0", "ctr-eth0.pcap"))


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
        if e.ns != NsRole.HOST or e.step in (Step.RECV, Step.BRIDGE, Step.XMIT, Step.LOG):
            continue
        where = f"{HOOK_CHAIN[e.hook]} {e.priority}" if e.hook is not None else e.step.value
        lines.append(f"{'':12}  host {where:<16} {e.verdict or '':<10} {say(e)}")
        if e.step is Step.CONNTRACK:
            lines.extend(_bounds(e))
    return lines


def render(run: Run) -> str:
    """The whole timeline as text."""
    sc, w, tr = run.scenario, run.world, run.world.trace
    table = w.namespaces[NsRole.HOST].conntrack
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
            and e.ns == NsRole.HOST
            and e.ct.window in (TraceVerdict.IGNORE, TraceVerdict.INVALID)
            and e.hook is Hook.PRE_ROUTING
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
                    if e.step is Step.DELIVER or (e.step is Step.RECV and e.ns != NsRole.HOST)
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


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``run`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run", help="run a scenario (built-in name or TOML/JSON file) and print its timeline"
    )
    p.add_argument("scenario", help="built-in scenario name (e.g. seed-incident) or a scenario file")
    p.add_argument("--kernel", type=kernel_arg, help=f"{KERNEL_HELP} (default: the scenario's)")
    p.add_argument(
        "--fix",
        choices=tuple(FIXES),
        default="none",
        help="apply a fix (default none): drop-invalid, be-liberal, random-fully, bigger-table "
        "(host rules or sysctls); single-request-reopen, conntrack-delete (a story's workload or actions)",
    )
    p.add_argument(
        "--out",
        default="nflab-out",
        metavar="DIR",
        help="where the two captures (host-eth0.pcap, ctr-eth0.pcap) go (default ./nflab-out)",
    )
    p.add_argument(
        "--show",
        action="append",
        choices=("iptables", "conntrack", "dmesg"),
        default=[],
        help="after the timeline also print the host's iptables-save -c, conntrack -L or dmesg (repeatable)",
    )
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``run`` with parsed arguments: the timeline, what ``--show`` asks for, the captures."""
    from sim.errors import InputError
    from sim.net.netns import dmesg
    from sim.netfilter.conntrack import format_conntrack
    from sim.netfilter.iptables.save import iptables_save
    from sim.scenario.scenario import load_any, run_scenario
    from sim.scenario.story import Story

    problem = _unwritable_dir(Path(args.out))
    if problem:
        print(f"nflab: --out {args.out}: {problem}", file=sys.stderr)
        return 2
    try:
        sc = load_any(args.scenario)
        if args.kernel is not None:
            sc = sc.with_kernel(args.kernel)
        if isinstance(sc, Story):
            return _run_story(sc.with_fix(args.fix), args.out)
        result = run_scenario(sc.with_fix(args.fix))
    except InputError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    print(render(result))
    host = result.world.namespaces[NsRole.HOST]
    for what in args.show:
        print(f"--- host {what}")
        if what == "iptables":
            print(iptables_save(host.ruleset), end="")
        elif what == "conntrack":
            assert host.conntrack is not None
            for ct in host.conntrack.entries(result.world.clock.now):
                print(format_conntrack(ct, result.world.clock.now))
        else:
            print("\n".join(dmesg(host.log)))
    try:
        written = write_captures(result, Path(args.out))
    except OSError as e:
        print(f"nflab: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    for path, packets, rsts in written:
        print(f"capture {path}: {packets} packets, {rsts} RST")
    return 0


def _run_story(story: Story, out: str) -> int:
    """``nflab run`` for a story scenario: its timeline, and the captures on both sides of the host;
    exit 0 whether or not the story succeeds (the timeline says which)."""
    from sim.report.story import render as render_story
    from sim.report.story import write_captures as write_story_captures
    from sim.scenario.story import run_story

    run = run_story(story)
    print(render_story(run))
    try:
        written = write_story_captures(run, Path(out))
    except OSError as e:
        print(f"nflab: {out}: {e.strerror}", file=sys.stderr)
        return 2
    for path, packets in written:
        print(f"capture {path}: {packets} packets")
    return 0


def _unwritable_dir(path: Path) -> str:
    """Why the captures could not be written into ``path`` (made if missing: the run would
    make it), or "": tried with a scratch file, so that the run does not fail at its end."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return ""
