"""How ``nflab bench`` measures memory: the objects a build leaves alive, by sys.getsizeof,
compared with tracemalloc (which the figure used before: 224 s for 262,144 entries).

Each comparison runs in a fresh interpreter: threads left running by other tests (the TUI's
workers) allocate while a measurement is open and would blur a comparison at the 1 KiB level."""

from __future__ import annotations

import re
import subprocess
import sys

MEASURE = """
import gc, sys, tracemalloc
from sim.bench import heap_bytes_left_by

def traced_bytes_left_by(build):
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del kept
    return used

{build}
build()  # warm the free lists and caches, as a second run would find them
print(heap_bytes_left_by(build), traced_bytes_left_by(build))
"""


def heap_and_traced(build_source: str) -> tuple[int, int]:
    """(bytes by the walk, bytes by tracemalloc) for ``build()`` defined by ``build_source``."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE.format(build=build_source)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1])


def test_walk_counts_what_tracemalloc_counts():
    # str keys (dict_traverse() skips them), tuples, lists, floats, strs
    heap, traced = heap_and_traced(
        "def build():\n    return {f'key{i}': (str(i) * 3, [None] * (i % 7), float(i)) for i in range(5000)}"
    )
    # the same bytes for each of the 25,000 objects (one byte each would be 25,000 off); what
    # else the process allocates meanwhile (a cache entry, a free list block) stays under 1 KiB
    assert abs(heap - traced) < 1024


def test_walk_misses_only_the_spare_digit_of_ints_made_by_addition():
    # longobject.c x_add() allocates size_a + 1 digits; long_normalize() shrinks ob_size, not
    # the block: tracemalloc sees 24 + 2 * 4 bytes, sys.getsizeof() 24 + 1 * 4.
    heap, traced = heap_and_traced("def build():\n    return [i + 100_000 for i in range(5000)]")
    assert abs(traced - heap - 5000 * 4) < 1024


def test_the_udp_figure_tracks_dns_like_flows_into_streams():
    """``udp_packets_per_s`` measures real UDP tracking: 50 flows, each answered, and (10 ms
    apart, so every flow comes round every 1 s) ASSURED once a packet is more than 2 s after the
    entry was created (6.18's nf_conntrack_udp_packet(): stream_ts = creation + 2 * HZ)."""
    from sim.bench import udp_flow
    from sim.netfilter.conntrack import ConntrackTable
    from sim.skb import Skb

    flow = udp_flow()
    assert len(flow) == 2000
    table = ConntrackTable("6.18")
    for i, pkt in enumerate(flow):
        skb = Skb(pkt)
        table.nf_conntrack_in(skb, i * 0.01)
        table.nf_conntrack_confirm(skb, i * 0.01)
    entries = list(table)
    assert len(entries) == 50 and all(ct.assured and ct.seen_reply for ct in entries)


def test_bench_help_names_every_figure_once():
    """``nflab bench --help`` explains each figure the run prints (the TUI's are checked against
    a real measurement in tests/tui/test_bench.py)."""
    from sim.bench import FIGURES_HELP, MODEL_FIGURES

    named = re.findall(r"^  (\w+) ", FIGURES_HELP, re.M)
    assert len(named) == len(set(named))
    assert {name for name, _ in MODEL_FIGURES} | {"pcap_packets_per_s", "pcap_vs_tshark"} <= set(named)
