"""How ``nflab bench`` measures memory: the objects a build leaves alive, by sys.getsizeof,
compared with tracemalloc (which the figure used before: 224 s for 262,144 entries)."""

from __future__ import annotations

import gc
import tracemalloc

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


def test_walk_counts_what_tracemalloc_counts():
    def build():  # str keys (dict_traverse() skips them), tuples, lists, floats, strs
        return {f"key{i}": (str(i) * 3, [None] * (i % 7), float(i)) for i in range(5000)}

    build()  # warm the free lists and caches, as a second run would find them
    # the same bytes for each of the 25,000 objects (one byte each would be 25,000 off); what
    # else the process allocates meanwhile (a cache entry, a free list block) stays under 1 KiB
    assert abs(heap_bytes_left_by(build) - traced_bytes_left_by(build)) < 1024


def test_walk_misses_only_the_spare_digit_of_ints_made_by_addition():
    # longobject.c x_add() allocates size_a + 1 digits; long_normalize() shrinks ob_size, not
    # the block: tracemalloc sees 24 + 2 * 4 bytes, sys.getsizeof() 24 + 1 * 4.
    def build():
        return [i + 100_000 for i in range(5000)]

    build()
    assert abs(traced_bytes_left_by(build) - heap_bytes_left_by(build) - 5000 * 4) < 1024
