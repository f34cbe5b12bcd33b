"""Course figures drawn from the model: plain SVG text, written by hand, byte-for-byte
deterministic (fixed float formatting, no timestamps, no randomness beyond the scenario seed).

- :func:`topology_svg`: the docker-bridge world's graph (namespaces, devices, addresses, veth
  links, bridge ports) and the host's MASQUERADE rule;
- :func:`seq_time_svg`: sequence number over time of the stalled upload (3.10, no fix) and the
  fixed one (3.10, ``--fix drop-invalid``), as captured on the host's ``eth0``, with the late
  ACK, the host's RST and the container's retransmissions;
- :func:`window_bounds_svg`: for every reply segment of the seed connection, bound IV's lower
  and bound III's upper limit on its ACK (from the trace's ``WindowCheck``), with the late ACK
  outside them;
- :func:`packet_flow_svg`: the host's five hooks with the ops the model registers on each, in
  priority order, and the late ACK's path through them (the lecture's one-page diagram).

Every figure is drawn to be read inline in the course's content column (about 690 px wide):
its smallest text is 14 px in a drawing at most 1000 px wide.

``nflab figures [--out DIR]`` writes all four (:func:`generate`), by default into the checkout's
``docs/figures`` beside the ``sim`` package, wherever it is run from. The SVG writer is
:mod:`sim.report.figures.svg`; each drawing has its module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.report.figures.bounds import window_bounds_svg
from sim.report.figures.packet_flow import packet_flow_svg
from sim.report.figures.seed import FigureError, seed_scenario
from sim.report.figures.seq_time import seq_time_svg
from sim.report.figures.topology import topology_svg
from sim.scenario.scenario import run_scenario

# the checkout's docs/figures, beside the sim package (not relative to the working directory):
# this file is sim/report/figures/__init__.py
DEFAULT_OUT = Path(__file__).resolve().parents[3] / "docs" / "figures"


FIGURES: dict[str, Callable[[], str]] = {
    "topology.svg": topology_svg,
    "seq-time.svg": seq_time_svg,
    "window-bounds.svg": window_bounds_svg,
    "packet-flow.svg": packet_flow_svg,
}


def render_all() -> dict[str, str]:
    """Every figure's SVG text by file name; the 3.10 run is shared by (b) and (c)."""
    stalled = run_scenario(seed_scenario())
    fixed = run_scenario(seed_scenario(fix="drop-invalid"))
    return {
        "topology.svg": topology_svg(stalled.world),
        "seq-time.svg": seq_time_svg(stalled, fixed),
        "window-bounds.svg": window_bounds_svg(stalled),
        "packet-flow.svg": packet_flow_svg(stalled.world),
    }


def generate(out_dir: str | Path = DEFAULT_OUT) -> list[Path]:
    """Write every figure into ``out_dir`` (created if missing); the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``figures`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "figures",
        help="draw the course figures from the model (SVG)",
        description="Run the seed incident and write the topology, seq/time, window-bound and "
        "packet-flow figures as SVG. Exit 0: written, 2: cannot write.",
    )
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        metavar="DIR",
        help=f"where the SVG files go (default {DEFAULT_OUT})",
    )
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``figures`` with parsed arguments; returns the exit status."""
    try:
        written = generate(args.out)
    except OSError as e:
        print(f"nflab: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    except FigureError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
