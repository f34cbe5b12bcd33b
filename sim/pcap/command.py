"""``nflab pcap``: which packets of a capture conntrack would mark INVALID or IGNORE, and why.

Passes over the capture (each streamed, memory bounded by the number of connections):

1. with the container's capture as FILE2: the addresses it shows (the container's own);
2. every packet through each ``--kernel``'s tracker (:mod:`sim.pcap.analyse`);
   flagged packets are printed as they are found;
3. for the connections where the host answered an INVALID packet with a RST: the same
   packets again through the what-if trackers -- ``nf_conntrack_tcp_be_liberal=1`` and
   every other kernel profile -- to say which fix would have prevented each RST;
4. with FILE2: whether the container ever saw the INVALID packet and the RST;
5. when two containers' SYNs from one source port met (:mod:`sim.pcap.signatures`): their
   SYNs and SYN/ACKs again, for snat-port-clash.

UDP and ICMP go through the same trackers (:mod:`sim.pcap.flows`) in pass 2, and FILE2's DNS
lookups in pass 1, for dns-race. Then the per-connection and per-flow summary, the findings and
the signatures, in words, with frame numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from sim.errors import InputError
from sim.include.netfilter import CtState
from sim.netfilter.profiles import PROFILES, KernelProfile, resolve_kernel
from sim.netfilter.sysctl import ConntrackSysctls
from sim.packet import IpProto
from sim.pcap.analyse import Analysis, Connection, Flagged, Tracker
from sim.pcap.datagram import datagram_of
from sim.pcap.findings import MAX_LISTED, Findings, container_check, findings_lines, whatif
from sim.pcap.flows import DatagramAnalysis, DatagramFlagged
from sim.pcap.reader import Frame, read_frames
from sim.pcap.render import (
    connection_line,
    datagram_json,
    datagram_lines,
    flagged_json,
    flagged_lines,
    flow_json,
    flow_line,
    verdict_json,
)
from sim.pcap.signatures import DnsRace, clash_candidates, pod_ip_leak, port_clash, signature_lines


class PcapError(InputError):
    """Bad arguments; one line."""


# ---------------------------------------------------------------- arguments


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``pcap`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pcap",
        help="which packets of a tcpdump capture conntrack marks INVALID, and why",
        description="Run every IPv4 TCP, UDP and ICMP packet of a pcap/pcapng capture through the "
        "model's conntrack and report each packet that is not plain ACCEPT (NEW/ESTABLISHED for "
        "UDP and ICMP), a summary per connection and flow, the findings (the host's own RSTs, "
        "untranslated packets, the fix that prevents each RST) and the scenario library's "
        "signatures it shows (dns-race, snat-port-clash, pod-ip-leak).",
    )
    p.add_argument("file", metavar="FILE", help="the capture (pcap or pcapng), e.g. the host's uplink")
    p.add_argument("file2", nargs="?", metavar="FILE2", help="the container's capture taken at the same time")
    p.add_argument(
        "--kernel",
        action="append",
        metavar="KERNEL",
        help=f"kernel profile, repeatable: a column each ({', '.join(PROFILES)}; default the newest)",
    )
    p.add_argument(
        "--sysctl",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a net.netfilter.nf_conntrack_* sysctl, e.g. nf_conntrack_tcp_be_liberal=1 (repeatable)",
    )
    p.add_argument(
        "--nflog-group",
        type=_group,
        metavar="N",
        help="of an NFLOG capture (tcpdump -i nflog), only group N's packets (default every group)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per flagged packet, then a summary")
    p.add_argument("--to-case", metavar="OUT", help="write the connection (see --flow) as a replay case file")
    p.add_argument(
        "--flow",
        metavar="FLOW",
        help="the connection for --to-case: its number (#N in the summary) or one endpoint IP:PORT",
    )
    return p


def _group(text: str) -> int:
    """``--nflog-group``: an NFLOG group, 0..65535 (``--nflog-group`` of iptables' NFLOG)."""
    if not (text.isascii() and text.isdigit()) or int(text) > 0xFFFF:
        raise argparse.ArgumentTypeError(f"expected a group number 0..65535, got {text!r}")
    return int(text)


def _profiles(names: list[str] | None) -> list[KernelProfile]:
    if not names:
        return [list(PROFILES.values())[-1]]
    out = []
    for name in names:
        try:
            prof = resolve_kernel(name)
        except ValueError as e:
            raise PcapError(f"--kernel: {e}") from None
        if prof not in out:
            out.append(prof)
    return out


def _sysctls(items: list[str], profiles: list[KernelProfile]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        key, eq, value = item.partition("=")
        short = key.strip().removeprefix("net.netfilter.").removeprefix("nf_conntrack_")
        if not eq or not short or not value.strip().lstrip("-").isdigit():
            raise PcapError(f"--sysctl {item!r}: expected KEY=INTEGER, e.g. nf_conntrack_tcp_be_liberal=1")
        for prof in profiles:
            try:
                ConntrackSysctls().set(short, int(value), prof)
            except ValueError as e:
                raise PcapError(f"--sysctl {item}: {e}") from None
        out[short] = int(value)
    return out


# ---------------------------------------------------------------- JSON


def summary_json(a: Analysis, conns: list[Connection], fd: Findings, elapsed: float) -> dict[str, Any]:
    return {
        "summary": {
            "frames": a.stats.frames,
            "tcp_packets": a.stats.tcp,
            "skipped": a.stats.skipped,
            "kernels": a.kernels,
            "seconds": round(elapsed, 3),
            "connections": [
                {
                    "id": c.id,
                    "src": f"{c.orig[0]}:{c.orig[1]}",
                    "dst": f"{c.orig[2]}:{c.orig[3]}",
                    "first_frame": c.first_frame,
                    "last_frame": c.last_frame,
                    "packets": c.packets,
                    "payload": c.payload,
                    "picked_up": c.picked_up,
                    "flagged": c.counts,
                    "final_state": c.states,
                    "host_rsts": c.host_rsts,
                    "untranslated": len(c.untranslated),
                }
                for c in conns
            ],
            "host_rsts": [
                {
                    "frame": h.rst.frame,
                    "answers": h.rst.host_rst_for,
                    "seq": h.rst.pkt.seq,
                    "container_saw_invalid": h.ctr_saw_bad,
                    "container_saw_rst": h.ctr_sent_rst,
                    "prevented_by_drop_invalid": h.bad is not None
                    and h.bad.verdicts[0].ctstate is CtState.INVALID,
                    "whatif": {k: verdict_json(v) for k, v in h.whatif.items()},
                }
                for h in fd.host_rsts
            ],
            "untranslated": fd.untranslated_count,
            "kernels_differ": fd.differ_count,
        }
    }


# ---------------------------------------------------------------- passes


class _Progress:
    """A progress line on stderr when it is a terminal (bytes read of the file's size)."""

    def __init__(self, path: str, stream: TextIO) -> None:
        self.on = stream.isatty()
        self.stream = stream
        self.size = max(os.path.getsize(path), 1) if self.on else 1
        self.last = 0.0
        self.name = os.path.basename(path)

    def __call__(self, offset: int) -> None:
        now = time.monotonic()
        if self.on and now - self.last >= 0.25:
            self.last = now
            pct = min(100.0, 100.0 * offset / self.size)
            self.stream.write(f"\r{self.name}: {pct:5.1f}% ({offset >> 20} of {self.size >> 20} MiB)")
            self.stream.flush()

    def done(self) -> None:
        if self.on and self.last:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def _warn(message: str) -> None:
    print(f"nflab pcap: warning: {message}", file=sys.stderr)


def _quiet(_message: str) -> None:
    """Later passes over a capture cut off mid-frame: the first pass warned."""


def _frames(args: argparse.Namespace, path: str, first: bool = False) -> Iterator[Frame]:
    """The frames of ``path`` (FILE or FILE2); the first pass over it shows progress and warns."""
    bar = _Progress(path, sys.stderr) if first and path == args.file else None
    try:
        yield from read_frames(path, bar, _warn if first else _quiet, args.nflog_group)
    finally:
        if bar is not None:
            bar.done()


def _addresses(args: argparse.Namespace, dns: DnsRace) -> set[str]:
    """The container's addresses; its DNS lookups go to ``dns`` (the dns-race signature)."""
    out: set[str] = set()
    lookups = DatagramAnalysis([], lambda _f: None, on_datagram=dns.on_datagram)
    for fr in _frames(args, args.file2, first=True):
        pkt = fr.pkt or datagram_of(fr.skipped)
        if pkt is not None:
            out.add(pkt.src)
            out.add(pkt.dst)
            if pkt.proto is not IpProto.TCP:
                lookups.feed(fr, pkt)
    return out


def _check_paths(args: argparse.Namespace) -> None:
    """What can be refused before the analysis: the same capture twice, ``--flow`` without
    ``--to-case``, a ``--to-case`` file that cannot be written."""
    both = args.file2 and os.path.exists(args.file) and os.path.exists(args.file2)
    if both and os.path.samefile(args.file, args.file2):
        raise PcapError(f"{args.file2}: the same capture as FILE; FILE2 is the container's capture")
    if args.flow is not None and not args.to_case:
        raise PcapError("--flow chooses the connection for --to-case; give --to-case OUT too")
    flow = (args.flow or "").removeprefix("#")
    host, colon, port = flow.rpartition(":")
    if args.flow is not None and not flow.isdigit() and not (colon and host and port.isdigit()):
        raise PcapError(f"--flow {args.flow}: expected #N (a connection of the summary) or IP:PORT")
    if args.to_case:
        target = Path(args.to_case)
        folder = target.parent if str(target.parent) else Path(".")
        if target.is_dir():
            raise PcapError(f"--to-case {args.to_case}: is a directory")
        if not folder.is_dir():
            raise PcapError(f"--to-case {args.to_case}: no directory {folder}")
        if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
            raise PcapError(f"--to-case {args.to_case}: not writable")


def run(args: argparse.Namespace, out: TextIO) -> int:
    _check_paths(args)
    profiles = _profiles(args.kernel)
    sysctls = _sysctls(args.sysctl, profiles)
    kernels = [p.name for p in profiles]
    ctr_dns = DnsRace(args.file2)
    inner = _addresses(args, ctr_dns) if args.file2 else set()
    fd = Findings(kernels)
    base: list[int] = []

    def emit(f: Flagged) -> None:
        fd.add(f)
        if not base:
            base.append(a.stats.first_ts_ns or 0)
        if args.json:
            out.write(json.dumps(flagged_json(f, base[0])) + "\n")
        else:
            out.write("\n".join(flagged_lines(f, base[0], kernels)) + "\n")

    dns = DnsRace()
    leaked: list[DatagramFlagged] = []

    def emit_datagram(f: DatagramFlagged) -> None:
        if f.untranslated:
            leaked.append(f)
        if not base:
            base.append(a.stats.first_ts_ns or 0)
        if args.json:
            out.write(json.dumps(datagram_json(f, base[0])) + "\n")
        else:
            out.write("\n".join(datagram_lines(f, base[0], kernels)) + "\n")

    trackers = [Tracker(p, sysctls) for p in profiles]
    dg = DatagramAnalysis(trackers, emit_datagram, inner, dns.on_datagram, lambda t: _label(a, t))
    a = Analysis(trackers, emit, inner, on_datagram=dg.feed)
    start = time.perf_counter()
    for fr in _frames(args, args.file, first=True):
        if fr.number == 1 and not args.json:  # after the file header proved readable
            out.write(
                f"nflab pcap {args.file}: kernels {', '.join(kernels)}"
                + (f", sysctl {', '.join(f'{k}={v}' for k, v in sysctls.items())}" if sysctls else "")
                + "\n"
            )
        a.feed(fr)
    conns = a.finish()
    by_id = {c.id: c for c in conns}
    flows = dg.finish()
    found = [
        *dns.found,
        *ctr_dns.found,
        *port_clash(_frames(args, args.file), clash_candidates(conns), a.stats.last_ts_ns),
        *pod_ip_leak(fd.untranslated, fd.untranslated_count, leaked[:MAX_LISTED], by_id),
    ]
    whatif(_frames(args, args.file), fd, by_id, profiles, sysctls, inner)
    if args.file2:
        container_check(_frames(args, args.file2), fd)
    elapsed = time.perf_counter() - start
    if args.json:
        summary = summary_json(a, conns, fd, elapsed)
        summary["summary"].update(
            udp_packets=dg.stats.udp,
            icmp_packets=dg.stats.icmp,
            flows=[flow_json(f) for f in flows],
            signatures=[sig.json() for sig in found],
        )
        out.write(json.dumps(summary) + "\n")
    else:
        st = a.stats
        skipped = ", ".join(f"{n} {what}" for what, n in sorted(st.skipped.items()))
        out.write(
            f"{st.frames} frames, {st.tcp} IPv4 TCP packets in {len(conns)} connection(s)"
            + (f"; {dg.stats.udp} UDP, {dg.stats.icmp} ICMP in {len(flows)} flow(s)" if flows else "")
            + (f"; skipped {sum(st.skipped.values())} other frames ({skipped})" if skipped else "")
            + "\n"
        )
        out.write("connections:\n")
        for c in conns:
            out.write("  " + connection_line(c, kernels) + "\n")
        if flows:
            out.write("flows:\n" + "".join(f"  {flow_line(f, kernels)}\n" for f in flows))
        out.write("findings:\n")
        for line in findings_lines(fd, bool(args.file2)):
            out.write(line + "\n")
        out.write("signatures:\n" + "".join(f"{line}\n" for line in signature_lines(found)))
    if args.to_case:
        case, conn, split = _to_case(args, conns, kernels, sysctls, inner)
        try:
            Path(args.to_case).write_text(json.dumps(case, indent=1) + "\n")
        except OSError as e:
            raise PcapError(f"{args.to_case}: {e.strerror}") from None
        if split:
            frames = ", ".join(f"{n} ({size} bytes: {k})" for n, size, k in split[:10])
            more = f" and {len(split) - 10} more" if len(split) > 10 else ""
            print(
                f"nflab pcap: {args.file}: {len(split)} offload super-packet(s) split into the segments "
                f"the wire carried (frame (payload: segments)): {frames}{more}",
                file=sys.stderr,
            )
        if not args.json:
            out.write(f"case {args.to_case}: {len(case['packets'])} packets of connection #{conn.id}\n")
    return 0


def _label(a: Analysis, tup: tuple[str, int, str, int]) -> str | None:
    """``#N``: the TCP connection an ICMP error is about."""
    conn = a.connections.get(tup)
    return None if conn is None else f"#{conn.id}"


def _to_case(
    args: argparse.Namespace,
    conns: list[Connection],
    kernels: list[str],
    sysctls: dict[str, int],
    inner: set[str],
) -> tuple[dict[str, Any], Connection, list[tuple[int, int, int]]]:
    from sim.pcap.tocase import connection_case, select_flow  # the case layer: only for --to-case
    from sim.scenario.case import CaseError

    split: list[tuple[int, int, int]] = []
    try:
        conn = select_flow(conns, args.flow)
        case = connection_case(
            _frames(args, args.file),
            conn,
            name=Path(args.to_case).stem,
            kernel=kernels[0],
            sysctls=sysctls,
            description=f"connection #{conn.id} of {os.path.basename(args.file)} (frames "
            f"{conn.first_frame}-{conn.last_frame}), written by nflab pcap --to-case",
            inner_addrs=inner,
            split=split,
        )
    except CaseError as e:
        raise PcapError(f"{args.file}: --to-case: {e}") from None
    if split:
        case["description"] += (
            f"; {len(split)} offload super-packet(s) split into the {sum(k for _, _, k in split)} "
            "segments the wire carried (tcp_gso_segment)"
        )
    return case, conn, split


def main(args: argparse.Namespace) -> int:
    """``nflab pcap``: 0 when analysed, 2 on a bad capture or bad arguments (one line)."""
    try:
        return run(args, sys.stdout)
    except InputError as e:  # CaptureError, PcapError, CaseError
        print(f"nflab pcap: {e}", file=sys.stderr)
        return 2
