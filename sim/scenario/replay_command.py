"""``nflab replay``: a crafted-packet case through the model, one line (or JSON object) per
packet as each is decided (:func:`sim.scenario.replay.replay_stream`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.scenario.case_stream import CaseStream


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``replay`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a crafted-packet case file in the model (the kernel-check contract)",
        description="Replay a case (a built-in case name or a case file): a header naming the "
        "kernel, sysctls and rules, then one line per packet (--json: one object per packet, no header).",
    )
    p.add_argument("file", help="case file (JSON, or TOML with the same schema)")
    p.add_argument("--json", action="store_true", help="one JSON object per input packet")
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``replay`` with parsed arguments."""
    return replay(args.file, args.json)


def replay(path: str, as_json: bool) -> int:
    """Replay the case at ``path`` (or a built-in case name); 2 with one line for bad input."""
    from sim.errors import InputError
    from sim.scenario.case_stream import open_case_file
    from sim.scenario.loader import find_case
    from sim.scenario.replay import replay_stream

    try:
        file = find_case(path)
        case = open_case_file(file)  # checked whole, packets read again as they run
    except InputError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    if not as_json:
        print(replay_header(path, case))
    progress = _Progress(case.count) if sys.stderr.isatty() else None
    same_terminal = progress is not None and sys.stdout.isatty()
    try:
        for i, obs in enumerate(replay_stream(case)):
            if progress is not None and same_terminal:
                progress.clear()
            print(json.dumps(obs) if as_json else observation_line(i, obs))
            if progress is not None:
                progress.show(i + 1)
    except InputError as e:  # the model refuses the case's kernel, a sysctl or an iptables line
        if progress is not None:
            progress.clear()
        print(f"nflab: {file}: {e}", file=sys.stderr)
        return 2
    if progress is not None:
        progress.clear()
    return 0


def replay_header(ref: str, stream: CaseStream) -> str:
    """Which kernel, sysctls and host rules the replay runs (text output only)."""
    from pathlib import Path

    from sim.netfilter.profiles import DEFAULT_PROFILE, resolve_kernel

    case = stream.head
    kernel = str(case.get("kernel", DEFAULT_PROFILE))
    try:
        name = resolve_kernel(kernel, note=False).name
    except ValueError:
        name = kernel  # the replay itself refuses it, in one line
    shown = name if name == kernel else f"{name} (from {kernel})"
    lines = [f"nflab replay {Path(ref).name}: kernel {shown}, {stream.count} packets"]
    sysctls = case.get("sysctl") or {}
    lines += [f"  sysctl {k} = {v}" for k, v in sysctls.items()] or ["  sysctls: the kernel's defaults"]
    rules = case.get("iptables") or {}
    rules = rules if isinstance(rules, dict) else {}  # the replay refuses other shapes, in one line
    lines += [f"  {ns}: {r}" for ns, rs in rules.items() for r in rs] or ["  iptables: Docker's ruleset only"]
    return "\n".join(lines)


def observation_line(i: int, obs: dict[str, Any]) -> str:
    """One packet's observation as a line of text."""
    emitted = ", ".join(_emitted_text(e) for e in obs["emitted"])
    tracked = (
        f"window {obs['window']}, state {obs['tcp_state']}"
        if obs.get("proto", "tcp") == "tcp"
        else f"{obs['proto']}, entry {' '.join(obs['ct_status'] or ['none'])}"
    )
    return (
        f"[{i}] ctstate {obs['ctstate']}, {tracked}, {obs['fate']}"
        + (f" as {obs['delivered_as']['src']} > {obs['delivered_as']['dst']}" if obs["delivered_as"] else "")
        + (f"; reason: {obs['reason']}" if obs["reason"] else "")
        + (f"; host emitted: {emitted}" if emitted else "")
    )


def _emitted_text(e: dict[str, Any]) -> str:
    """A packet the host emitted: an ICMP message, a TCP segment, or another protocol."""
    if "icmp" in e:
        return f"ICMP type {e['icmp'][0]} code {e['icmp'][1]} to {e['to']}"
    if "flags" in e:
        return f"{e['flags']} seq {e['seq']} ack {e['ack']} to {e['to']}"
    return f"protocol {e['proto']} to {e['to']}"


class _Progress:
    """``done/total packets`` on the terminal's stderr, redrawn at most ten times a second."""

    def __init__(self, total: int) -> None:
        self.total, self.shown, self.next_draw = total, False, 0.0

    def show(self, done: int) -> None:
        now = time.monotonic()
        if now >= self.next_draw or done == self.total:
            self.next_draw = now + 0.1
            sys.stderr.write(f"\rreplay: {done}/{self.total} packets")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            self.shown = False
