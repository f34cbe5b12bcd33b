"""``nflab bench``: throughput and memory of the model, measured on this machine.

Every figure is one timed run of real model code on a realistic input; nothing is estimated.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from sim.include.nf_conntrack import ORIGINAL, REPLY, CtDir
from sim.include.nf_conntrack_tcp import TcpCt, TcpIndex
from sim.netfilter.conntrack import ConntrackTable
from sim.netfilter.profiles import get_profile
from sim.netfilter.proto_tcp import tcp_in_window
from sim.packet import SEQ_MASK, Packet, TcpFlag, TcpOptions, udp_packet
from sim.skb import Skb

CLIENT = ("172.17.0.2", 39700)
SERVER = ("203.0.113.9", 443)


def mixed_flow(segments: int = 2000) -> list[tuple[CtDir, Packet]]:
    """An upload with ACKs, a few out-of-window packets and window updates: (dir, packet)."""
    ack_flag, psh = int(TcpFlag.ACK), int(TcpFlag.ACK | TcpFlag.PSH)
    c_isn, s_isn = 4294900000, 1000  # the client's numbers wrap during the upload
    out = [
        (
            ORIGINAL,
            Packet(
                CLIENT[0],
                SERVER[0],
                CLIENT[1],
                SERVER[1],
                c_isn,
                0,
                int(TcpFlag.SYN),
                64240,
                0,
                TcpOptions(mss=1460, wscale=7, sack_perm=True),
            ),
        ),
        (
            REPLY,
            Packet(
                SERVER[0],
                CLIENT[0],
                SERVER[1],
                CLIENT[1],
                s_isn,
                (c_isn + 1) & SEQ_MASK,
                int(TcpFlag.SYN | TcpFlag.ACK),
                65160,
                0,
                TcpOptions(mss=1460, wscale=7, sack_perm=True),
            ),
        ),
    ]
    seq = (c_isn + 1) & SEQ_MASK
    for i in range(segments):
        out.append(
            (ORIGINAL, Packet(CLIENT[0], SERVER[0], CLIENT[1], SERVER[1], seq, s_isn + 1, psh, 502, 1448))
        )
        seq = (seq + 1448) & SEQ_MASK
        if i % 2:
            out.append(
                (REPLY, Packet(SERVER[0], CLIENT[0], SERVER[1], CLIENT[1], s_isn + 1, seq, ack_flag, 4000, 0))
            )
        if i % 50 == 49:  # an overly delayed ACK and an ACK of unseen data
            late = (seq - 200_000) & SEQ_MASK
            out.append(
                (REPLY, Packet(SERVER[0], CLIENT[0], SERVER[1], CLIENT[1], s_isn + 1, late, ack_flag, 187, 0))
            )
            ahead = (seq + 100_000) & SEQ_MASK
            out.append(
                (
                    REPLY,
                    Packet(SERVER[0], CLIENT[0], SERVER[1], CLIENT[1], s_isn + 1, ahead, ack_flag, 187, 0),
                )
            )
    return out


def _rate(count: int, fn: Callable[[], object], min_seconds: float = 0.5) -> float:
    """Items per second of ``fn`` (which processes ``count`` items), repeated until
    ``min_seconds`` have passed."""
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return runs * count / elapsed


def window_checks_per_s(profile: str = "6.1") -> float:
    """``tcp_in_window`` decisions per second on :func:`mixed_flow`."""
    prof = get_profile(profile)
    flow = mixed_flow()
    index = TcpIndex.ACK

    def run() -> None:
        tcp = TcpCt()
        seen0 = tcp.seen[0]
        seen0.td_end = seen0.td_maxend = flow[0][1].end_seq
        seen0.td_maxwin = 64240
        for direction, pkt in flow:
            tcp_in_window(tcp, direction, index, pkt, prof, False, False)

    return _rate(len(flow), run)


def conntrack_packets_per_s(profile: str = "6.1") -> float:
    """Packets per second through ``nf_conntrack_in`` + confirm (lookup + TCP tracking)."""
    flow = mixed_flow()

    def run() -> None:
        table = ConntrackTable(profile)
        for i, (_d, pkt) in enumerate(flow):
            skb = Skb(pkt)
            table.nf_conntrack_in(skb, float(i))
            table.nf_conntrack_confirm(skb, float(i))

    return _rate(len(flow), run)


def udp_flow(datagrams: int = 2000, flows: int = 50) -> list[Packet]:
    """DNS-like UDP: ``flows`` client ports in turn, each query answered at once."""
    out = []
    for i in range(datagrams // 2):
        port = 32768 + i % flows
        out.append(udp_packet(CLIENT[0], port, SERVER[0], 53, 33))
        out.append(udp_packet(SERVER[0], 53, CLIENT[0], port, 90))
    return out


def udp_packets_per_s(profile: str = "6.18") -> float:
    """UDP datagrams per second through ``nf_conntrack_in`` + confirm (lookup + UDP tracking):
    :func:`udp_flow`, 10 ms of virtual time apart, so each flow is created, answered, and a
    stream (ASSURED, the stream timeout) from its third round on."""
    flow = udp_flow()

    def run() -> None:
        table = ConntrackTable(profile)
        for i, pkt in enumerate(flow):
            skb = Skb(pkt)
            table.nf_conntrack_in(skb, i * 0.01)
            table.nf_conntrack_confirm(skb, i * 0.01)

    return _rate(len(flow), run)


def _alive() -> dict[int, object]:
    """Every object reachable from the garbage collector's objects, by id (C-level walks)."""
    seen: dict[int, object] = {}
    level: list[object] = gc.get_objects()
    while level:
        found = dict(zip(map(id, level), level, strict=True))
        fresh = [found[i] for i in found.keys() - seen.keys()]
        seen.update(zip(map(id, fresh), fresh, strict=True))
        level = gc.get_referents(*fresh) + [k for o in fresh if type(o) is dict for k in o]
    return seen


def heap_bytes_left_by(build: Callable[[], object]) -> int:
    """Bytes of the objects ``build()`` leaves alive: ``sys.getsizeof`` (the object with its
    GC header and its own buffers: a dict's table, a list's slots) summed over every object
    reachable after the call and not before it. What tracemalloc would count for them, except
    that an int made by arithmetic may keep a spare digit tracemalloc sees (4 bytes)."""
    gc.collect()
    before = _alive()
    result = build()
    gc.collect()
    counted: dict[int, object] = {}
    skip: set[int] = set()
    skip |= {id(before), id(counted), id(skip)}
    level: list[object] = gc.get_objects()
    while level:
        found = dict(zip(map(id, level), level, strict=True))
        fresh = [found[i] for i in found.keys() - before.keys() - counted.keys() - skip]
        counted.update(zip(map(id, fresh), fresh, strict=True))
        # dict_traverse() skips the keys of str-keyed dicts (a str cannot be part of a cycle)
        level = gc.get_referents(*fresh) + [k for o in fresh if type(o) is dict for k in o]
    del result
    return sum(map(sys.getsizeof, counted.values()))


def conntrack_bytes_per_entry(entries: int = 262_144, profile: str = "6.1") -> float:
    """Python heap bytes per established, assured entry in a table of ``entries``, built by
    the real SYN, SYN-ACK, ACK through ``nf_conntrack_in`` (see :func:`heap_bytes_left_by`)."""
    syn, synack, ack = int(TcpFlag.SYN), int(TcpFlag.SYN | TcpFlag.ACK), int(TcpFlag.ACK)

    def build() -> ConntrackTable:
        table = ConntrackTable(profile)
        table.sysctl.max = entries
        for n in range(entries):
            src = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            sport = 1024 + n % 60000
            for pkt in (
                Packet(src, SERVER[0], sport, 443, 1, 0, syn, 64240),
                Packet(SERVER[0], src, 443, sport, 9, 2, synack, 65160),
                Packet(src, SERVER[0], sport, 443, 2, 10, ack, 502),
            ):
                skb = Skb(pkt)
                table.nf_conntrack_in(skb, 0.0)
                table.nf_conntrack_confirm(skb, 0.0)
        assert len(table) == entries, len(table)
        return table

    return heap_bytes_left_by(build) / entries


def fuzz_examples_per_s(examples: int = 300) -> float:
    """Hypothesis examples per second of the standard window property (well-formed
    conversations are never INVALID or IGNORE), run in-process through the public driver
    :func:`sim.testing.track_conversation` (verdicts only: the property reads no bounds)."""
    from hypothesis import HealthCheck, given, settings

    from sim.testing import Conversation, TcpAction, conversations, track_conversation

    def prop(conv: Conversation) -> None:
        for res in track_conversation(conv, kernel="6.1", explain=False):
            assert res.window is TcpAction.ACCEPT, res.reason

    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )(given(conversations())(prop))
    start = time.perf_counter()
    test()
    return examples / (time.perf_counter() - start)


def pipeline_packets_per_s() -> float:
    """Packets per second through the docker-bridge world (counted once per namespace each
    crosses): the seed scenario's 2 MB upload with the DROP fix, trace off."""
    from sim.scenario.scenario import load_scenario, run_scenario

    sc = load_scenario("seed-incident").with_fix("drop-invalid")
    crossings, start = 0, time.perf_counter()
    while True:
        crossings += run_scenario(sc, trace=False).world.crossings
        elapsed = time.perf_counter() - start
        if elapsed >= 0.5:
            return crossings / elapsed


def seed_scenario_s() -> float:
    """Wall seconds of ``nflab run seed-incident``'s simulation (trace on, to the abort)."""
    from sim.scenario.scenario import load_scenario, run_scenario

    sc = load_scenario("seed-incident")
    start = time.perf_counter()
    run_scenario(sc)
    return time.perf_counter() - start


def upload_case(packets: int) -> dict[str, Any]:
    """A crafted-packet case of ``packets`` packets: the handshake of late-ack.json, then the
    container's 1000-byte segments each ACKed by the remote; of every 50 ACKs one is 70000
    bytes late and one acknowledges 100000 bytes never sent."""
    ctr, remote, host = "192.0.2.2:40000", "198.51.100.2:443", "198.51.100.1:40000"
    opts = {"mss": 1460, "sack_perm": True, "wscale": 7}
    out: list[dict[str, Any]] = [
        {
            "from": "ctr",
            "src": ctr,
            "dst": remote,
            "flags": "S",
            "seq": 1000000,
            "win": 64240,
            "options": opts,
        },
        {
            "from": "remote",
            "src": remote,
            "dst": host,
            "flags": "SA",
            "seq": 5000000,
            "ack": 1000001,
            "win": 65160,
            "options": opts,
        },
        {"from": "ctr", "src": ctr, "dst": remote, "flags": "A", "seq": 1000001, "ack": 5000001, "win": 502},
    ]
    seq = 1000001
    while len(out) < packets:
        if len(out) % 2:
            data = {"from": "ctr", "src": ctr, "dst": remote, "flags": "PA", "seq": seq, "ack": 5000001}
            out.append({**data, "win": 502, "len": 1000})
            seq = (seq + 1000) & SEQ_MASK
        else:
            ack = seq
            if len(out) % 100 == 0:
                ack = (seq - 70000) & SEQ_MASK  # overly delayed: IGNORE since 6.1
            elif len(out) % 100 == 50:
                ack = (seq + 100000) & SEQ_MASK  # unseen data: INVALID, answered with a RST
            out.append(
                {
                    "from": "remote",
                    "src": remote,
                    "dst": host,
                    "flags": "A",
                    "seq": 5000001,
                    "ack": ack,
                    "win": 509,
                }
            )
    return {"name": f"upload-{packets}", "kernel": "6.1", "packets": out}


def replay_packets_per_s(packets: int = 100_000) -> float:
    """Packets per second through ``nflab replay``'s streaming replay (trace on, each packet's
    observation taken and its trace forgotten) on :func:`upload_case`."""
    from sim.scenario.replay import replay_stream

    case = upload_case(packets)
    start = time.perf_counter()
    done = sum(1 for _ in replay_stream(case))
    return done / (time.perf_counter() - start)


MODEL_FIGURES: tuple[tuple[str, Callable[[], float]], ...] = (
    ("window_checks_per_s", window_checks_per_s),
    ("conntrack_packets_per_s", conntrack_packets_per_s),
    ("udp_packets_per_s", udp_packets_per_s),
    # before the memory figure: the first run after its 262,144-entry table is about twice
    # as slow in CPU time (measured 968 -> 550 examples/s, then 1,406 on the next run)
    ("fuzz_examples_per_s", fuzz_examples_per_s),
    ("conntrack_bytes_per_entry", conntrack_bytes_per_entry),
    ("pipeline_packets_per_s", pipeline_packets_per_s),
    ("seed_scenario_s", seed_scenario_s),
    ("replay_packets_per_s", replay_packets_per_s),
)


def run_all(progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """Every model figure, in the order ``nflab bench --json`` prints them."""
    out: dict[str, float] = {}
    for name, fn in MODEL_FIGURES:
        if progress is not None:
            progress(name)
        out[name] = round(fn(), 3)
    return out


FIGURES_HELP = """figures (+ higher is better, - lower is better):
  window_checks_per_s        + tcp_in_window() decisions per second on a 2,000-segment upload
  conntrack_packets_per_s    + TCP packets per second through nf_conntrack_in() and confirm
  udp_packets_per_s          + DNS-like datagrams per second through nf_conntrack_in() and confirm
  fuzz_examples_per_s        + hypothesis examples per second of the window property
  conntrack_bytes_per_entry  - Python heap bytes per entry of a 262,144-entry table
  pipeline_packets_per_s     + packets per second through the docker-bridge world (the seed's upload)
  seed_scenario_s            - seconds of the seed incident's simulation, trace on
  replay_packets_per_s       + packets per second through nflab replay's streaming replay
  tui_first_frame_s          - nflab tui on a pty: launch to the first frame
  tui_story_frame_s          - launch to the frame that shows the INVALID late ACK
  tui_key_to_frame_ms        - the slowest of 24 keys, from the key to the frame that answers it
  tui_key_to_frame_median_ms - the median of those keys
  tui_rerun_s                - f or k (the slower): the key to the frame showing the new run
  pcap_packets_per_s         + packets per second of nflab pcap on a real bulk-upload capture
  pcap_vs_tshark             + tshark's wall time over nflab pcap's on that capture
  pcap_peak_rss_mb           - nflab pcap's peak resident memory on it
  pcap_build                   "pure Python" or "compiled" (python tools/compile.py)
"""


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="measure the model's throughput and memory on this machine",
        description="Measure the model, the TUI and the capture reader on this machine (about a "
        "minute; progress on stderr). Every figure is one timed run by the wall clock, so on a "
        "shared or virtual machine compare runs made back to back.",
        epilog=FIGURES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``bench``: the model's figures, then the TUI's and the capture reader's."""
    figures: dict[str, object] = dict(run_all(lambda name: print(f"measuring {name} ...", file=sys.stderr)))
    from tui.bench import measure  # the composition root, as for nflab tui

    print("measuring tui_first_frame_s, tui_key_to_frame_ms ...", file=sys.stderr)
    figures.update(measure())
    from sim.pcap.bench import pcap_figures

    print("measuring pcap_packets_per_s, pcap_vs_tshark ...", file=sys.stderr)
    figures.update(pcap_figures())
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:<28} {value:>14,.1f}" if isinstance(value, float) else f"{name:<28} {value!s:>14}")
    return 0
