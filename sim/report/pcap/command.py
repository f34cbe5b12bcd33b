"""``nflab pcap``: which packets of a capture conntrack would mark INVALID or IGNORE, and why.

Passes over the capture (each streamed, memory bounded by the number of connections):

1. with the container's capture as FILE2: the addresses it shows (the container's own);
2. every packet through each ``--kernel``'s tracker (:mod:`sim.report.pcap.analyse`);
   flagged packets are printed as they are found;
3. for the connections where the host answered an INVALID packet with a RST: the same
   packets again through the what-if trackers -- ``nf_conntrack_tcp_be_liberal=1`` and
   every other kernel profile -- to say which fix would have prevented each RST;
4. with FILE2: whether the container ever saw the INVALID packet and the RST.

Then the per-connection summary and the findings, in words, with frame numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sim.case import CaseError
from sim.netfilter.conntrack import ConntrackSysctls, CtTuple
from sim.netfilter.profiles import PROFILES, KernelProfile, get_profile
from sim.packet import TCPHDR_RST, Packet, format_flags
from sim.report.pcap.analyse import Analysis, Connection, Flagged, Tracker, Verdict, frames_of
from sim.report.pcap.reader import CaptureError, Frame, read_frames
from sim.report.pcap.tocase import connection_case, select_flow

KEEP_INVALID = 4096  # INVALID packets remembered for the findings (the newest ones)
MAX_LISTED = 20  # frame numbers listed in one finding before "and N more"
DROP_RULE = "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"
LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal=1"


class PcapError(ValueError):
    """Bad arguments; one line."""


# ---------------------------------------------------------------- arguments


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``pcap`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "pcap",
        help="which packets of a tcpdump capture conntrack marks INVALID, and why",
        description="Run every IPv4 TCP packet of a pcap/pcapng capture through the model's "
        "conntrack and report each packet that is not plain ACCEPT, a summary per connection "
        "and the findings (the host's own RSTs, untranslated packets, the fix that prevents each RST).",
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
    p.add_argument("--json", action="store_true", help="one JSON object per flagged packet, then a summary")
    p.add_argument("--to-case", metavar="OUT", help="write the connection (see --flow) as a replay case file")
    p.add_argument(
        "--flow",
        metavar="FLOW",
        help="the connection for --to-case: its number (#N in the summary) or one endpoint IP:PORT",
    )
    return p


def _profiles(names: list[str] | None) -> list[KernelProfile]:
    if not names:
        return [list(PROFILES.values())[-1]]
    out = []
    for name in names:
        try:
            prof = get_profile(name)
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


# ---------------------------------------------------------------- text


def _ts(ns: int, base: int) -> str:
    return f"{(ns - base) / 1e9:12.6f}"


def _bound_text(v: Verdict) -> str:
    b = v.bound
    if b is None:
        return ""
    return f"; bound {b.name} {b.rule}: limit {b.limit}, packet {b.value}"


def _verdict_word(v: Verdict) -> str:
    if v.ctstate == "INVALID":
        return "INVALID"
    return v.window or "DROP"


def verdict_text(v: Verdict) -> str:
    """``INVALID  ACK is under the lower bound (...); bound IV ...: limit L, packet V``."""
    reason = v.reason or ("accepted" if v.plain_accept else "")
    return f"{_verdict_word(v):<8} {reason}{_bound_text(v)}".rstrip()


def flagged_lines(f: Flagged, base_ns: int, kernels: list[str]) -> list[str]:
    """The report's lines for one flagged packet: the packet, then one line per kernel."""
    head = f"frame {f.frame:>7}  {_ts(f.ts_ns, base_ns)}s  #{f.conn:<3} {f.direction:<8} {f.pkt.describe()}"
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


# ---------------------------------------------------------------- findings


@dataclass(slots=True)
class HostRst:
    rst: Flagged
    bad: Flagged | None
    whatif: dict[str, Verdict | None] = field(default_factory=dict)  # label -> None: plain ACCEPT
    ctr_saw_bad: bool | None = None
    ctr_sent_rst: bool | None = None


@dataclass(slots=True)
class Findings:
    kernels: list[str]
    host_rsts: list[HostRst] = field(default_factory=list)
    untranslated: list[Flagged] = field(default_factory=list)
    untranslated_count: int = 0
    differ: list[int] = field(default_factory=list)
    differ_count: int = 0
    invalid: OrderedDict[int, Flagged] = field(default_factory=OrderedDict)  # on the first kernel

    def add(self, f: Flagged) -> None:
        if f.host_rst_for is not None:
            self.host_rsts.append(HostRst(f, self.invalid.get(f.host_rst_for)))
            return
        if f.untranslated:
            self.untranslated_count += 1
            if len(self.untranslated) < MAX_LISTED:
                self.untranslated.append(f)
        if f.verdicts and f.verdicts[0].ctstate == "INVALID":
            self.invalid[f.frame] = f
            if len(self.invalid) > KEEP_INVALID:
                self.invalid.popitem(last=False)
        if len({_verdict_word(v) for v in f.verdicts}) > 1:
            self.differ_count += 1
            if len(self.differ) < MAX_LISTED:
                self.differ.append(f.frame)


def _listed(frames: list[int], total: int) -> str:
    text = ", ".join(str(n) for n in frames)
    return text + (f" and {total - len(frames)} more" if total > len(frames) else "")


def findings_lines(fd: Findings, have_ctr: bool) -> list[str]:
    """The findings in words, with frame numbers."""
    out: list[str] = []
    k0 = fd.kernels[0]
    for h in fd.host_rsts:
        r = h.rst.pkt
        if h.bad is None:
            out.append(
                f"- frame {h.rst.frame}: the host itself sent a RST (seq {r.seq}) answering frame "
                f"{h.rst.host_rst_for}, which conntrack marked INVALID."
            )
            continue
        b, v = h.bad.pkt, h.bad.verdicts[0]
        field_ = (
            f"the ack of frame {h.bad.frame}"
            if r.seq == b.ack and r.seq
            else f"the end of frame {h.bad.frame}"
        )
        out.append(
            f"- frame {h.rst.frame}: the host itself sent RST seq {r.seq} to {r.dst}:{r.dport}; it equals "
            f"{field_} ({b.src}:{b.sport} [{format_flags(b.flags)}] ack {b.ack}), which conntrack on {k0} "
            f"marked INVALID: {v.reason or 'no reason logged'}{_bound_text(v)}. Without a conntrack entry "
            f"NAT did not translate it, the host's stack found no socket for {b.dst}:{b.dport} and "
            "answered it (tcp_v4_send_reset). This is the incident's signature."
        )
        if have_ctr:
            saw = "saw" if h.ctr_saw_bad else "never saw"
            rst = (
                "has the RST too" if h.ctr_sent_rst else "has no such RST: the container never saw it either"
            )
            out.append(
                f"  The container's capture: the container {saw} frame {h.bad.frame}'s packet; it {rst}."
            )
        fixes = [f"{DROP_RULE} (drops frame {h.bad.frame} in INPUT before the stack can answer it)"]
        others = {v.kernel: None if v.plain_accept else v for v in h.bad.verdicts[1:]}
        for label, w in {**others, **h.whatif}.items():
            ok = w is None or w.ctstate != "INVALID"
            what = (
                "ACCEPT"
                if w is None
                else f"{_verdict_word(w)} ({w.reason})"
                if w.reason
                else _verdict_word(w)
            )
            if label.endswith("+be_liberal"):
                if ok:
                    fixes.append(f"{LIBERAL} (frame {h.bad.frame} would be {what})")
                else:
                    out.append(f"  {LIBERAL} would not help: frame {h.bad.frame} stays {what}.")
            elif ok:
                fixes.append(f"kernel {label} (frame {h.bad.frame} would be {what}: still NATed, no RST)")
            else:
                out.append(f"  kernel {label} would not help: frame {h.bad.frame} is {what}.")
        out.append(f"  Prevented by: {'; '.join(fixes)}.")
    answered = {h.rst.host_rst_for for h in fd.host_rsts}
    quiet = [f for n, f in fd.invalid.items() if n not in answered and f.direction == "REPLY"]
    if quiet:
        frames = _listed([f.frame for f in quiet[:MAX_LISTED]], len(quiet))
        liberal = all(f.verdicts[0].bound is not None for f in quiet)
        out.append(
            f"- frames {frames}: the peer's packets INVALID on {k0} with no RST from the host after them "
            f"in this capture. On a host running {k0} that NATs this connection each would skip NAT and "
            "reach the host's own stack, which answers with a RST (seq = the packet's ack) that only the "
            "peer sees. "
            f"Prevented by {DROP_RULE}" + (f" or {LIBERAL} (each failed a window bound)." if liberal else ".")
        )
    if fd.untranslated_count:
        for f in fd.untranslated:
            v = f.verdicts[0]
            out.append(
                f"- frame {f.frame}: a packet of the container left untranslated ({f.pkt.src}:{f.pkt.sport}"
                f" > {f.pkt.dst}:{f.pkt.dport}, its private source on the uplink): conntrack on {k0} says "
                f"{verdict_text(v)}, and NAT skips packets without an entry."
            )
        if fd.untranslated_count > len(fd.untranslated):
            out.append(f"  ... and {fd.untranslated_count - len(fd.untranslated)} more untranslated packets.")
    if len(fd.kernels) > 1:
        if fd.differ_count:
            frames = _listed(fd.differ, fd.differ_count)
            out.append(f"- the kernels disagree on {fd.differ_count} packet(s): frames {frames}.")
        else:
            out.append(f"- the kernels {', '.join(fd.kernels)} agree on every flagged packet.")
    if not out:
        out.append("- no host RST answering an INVALID packet, no untranslated packet.")
    return out


# ---------------------------------------------------------------- JSON


def verdict_json(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    b = v.bound
    return {
        "ctstate": v.ctstate,
        "window": v.window,
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
                    "prevented_by_drop_invalid": True,
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


def _frames(path: str, progress: bool = False) -> Iterator[Frame]:
    bar = _Progress(path, sys.stderr) if progress else None
    try:
        yield from read_frames(path, progress=bar)
    finally:
        if bar is not None:
            bar.done()


def _addresses(path: str) -> set[str]:
    out: set[str] = set()
    for fr in read_frames(path):
        if fr.pkt is not None:
            out.add(fr.pkt.src)
            out.add(fr.pkt.dst)
    return out


def _whatif(
    path: str,
    fd: Findings,
    conns: dict[int, Connection],
    profiles: list[KernelProfile],
    sysctls: dict[str, int],
) -> None:
    """Re-run the connections with host RSTs under be_liberal and on every other kernel."""
    if not fd.host_rsts:
        return
    trackers = [Tracker(profiles[0], {**sysctls, "tcp_be_liberal": 1}, f"{profiles[0].name}+be_liberal")]
    for prof in PROFILES.values():
        if prof not in profiles:
            try:
                trackers.append(Tracker(prof, sysctls))
            except ValueError:
                continue  # a sysctl this kernel does not have
    tuples: set[CtTuple] = set()
    for h in fd.host_rsts:
        c = conns[h.rst.conn]
        tuples.add(c.orig)
        tuples.add((c.orig[2], c.orig[3], c.orig[0], c.orig[1]))
    wanted = {h.bad.frame: h for h in fd.host_rsts if h.bad is not None}
    seen: dict[int, Flagged] = {}

    def keep(f: Flagged) -> None:
        if f.frame in wanted:
            seen[f.frame] = f

    a = Analysis(trackers, keep, skip_frames={h.rst.frame for h in fd.host_rsts})
    for fr in frames_of(read_frames(path), tuples):
        a.feed(fr)
    for frame, h in wanted.items():
        got = seen.get(frame)
        for i, t in enumerate(trackers):
            v = None if got is None else got.verdicts[i]
            h.whatif[t.name] = None if v is None or v.plain_accept else v


def _container_check(path2: str, fd: Findings) -> None:
    """Did the container's capture see each INVALID packet and each host RST?"""
    bad_keys = {}
    rst_keys = {}
    for h in fd.host_rsts:
        if h.bad is not None:
            b = h.bad.pkt
            bad_keys[(b.sport, b.seq, b.ack, b.flags, b.payload_len)] = h
            h.ctr_saw_bad = False
        r = h.rst.pkt
        rst_keys[(r.dport, r.seq, r.flags)] = h
        h.ctr_sent_rst = False
    for fr in read_frames(path2):
        p = fr.pkt
        if p is None:
            continue
        saw = bad_keys.get((p.sport, p.seq, p.ack, p.flags, p.payload_len))
        if saw is not None:
            saw.ctr_saw_bad = True
        sent = rst_keys.get((p.dport, p.seq, p.flags)) if p.flags & TCPHDR_RST else None
        if sent is not None:
            sent.ctr_sent_rst = True


def run(args: argparse.Namespace, out: TextIO) -> int:
    profiles = _profiles(args.kernel)
    sysctls = _sysctls(args.sysctl, profiles)
    kernels = [p.name for p in profiles]
    inner = _addresses(args.file2) if args.file2 else set()
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

    a = Analysis([Tracker(p, sysctls) for p in profiles], emit, inner)
    start = time.perf_counter()
    for fr in _frames(args.file, progress=True):
        if fr.number == 1 and not args.json:  # after the file header proved readable
            out.write(
                f"nflab pcap {args.file}: kernels {', '.join(kernels)}"
                + (f", sysctl {', '.join(f'{k}={v}' for k, v in sysctls.items())}" if sysctls else "")
                + "\n"
            )
        a.feed(fr)
    conns = a.finish()
    by_id = {c.id: c for c in conns}
    _whatif(args.file, fd, by_id, profiles, sysctls)
    if args.file2:
        _container_check(args.file2, fd)
    elapsed = time.perf_counter() - start
    if args.json:
        out.write(json.dumps(summary_json(a, conns, fd, elapsed)) + "\n")
    else:
        st = a.stats
        skipped = ", ".join(f"{n} {what}" for what, n in sorted(st.skipped.items()))
        out.write(
            f"{st.frames} frames, {st.tcp} IPv4 TCP packets in {len(conns)} connection(s)"
            + (f"; skipped {sum(st.skipped.values())} other frames ({skipped})" if skipped else "")
            + "\n"
        )
        out.write("connections:\n")
        for c in conns:
            out.write("  " + connection_line(c, kernels) + "\n")
        out.write("findings:\n")
        for line in findings_lines(fd, bool(args.file2)):
            out.write(line + "\n")
    if args.to_case:
        conn = select_flow(conns, args.flow)
        case = connection_case(
            read_frames(args.file),
            conn.orig,
            name=Path(args.to_case).stem,
            kernel=kernels[0],
            sysctls=sysctls,
            description=f"connection #{conn.id} of {os.path.basename(args.file)} (frames "
            f"{conn.first_frame}-{conn.last_frame}), written by nflab pcap --to-case",
            skip_frames=set(conn.host_rsts),
            inner_src=inner,
        )
        try:
            Path(args.to_case).write_text(json.dumps(case, indent=1) + "\n")
        except OSError as e:
            raise PcapError(f"{args.to_case}: {e.strerror}") from None
        if not args.json:
            out.write(f"case {args.to_case}: {len(case['packets'])} packets of connection #{conn.id}\n")
    return 0


def main(args: argparse.Namespace) -> int:
    """``nflab pcap``: 0 when analysed, 2 on a bad capture or bad arguments (one line)."""
    try:
        return run(args, sys.stdout)
    except (CaptureError, PcapError, CaseError) as e:
        print(f"nflab pcap: {e}", file=sys.stderr)
        return 2
