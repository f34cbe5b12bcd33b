"""The runs the figures draw: the built-in seed incident, by default on the article's kernel."""

from __future__ import annotations

from sim.packet import SEQ_MASK
from sim.scenario.scenario import Scenario, load_scenario

SCENARIO = "seed-incident"
KERNEL = "3.10"  # the article's kernel: the late ACK itself is INVALID


class FigureError(ValueError):
    """A figure cannot be drawn from this run (the message is one line)."""


def seed_scenario(kernel: str = KERNEL, fix: str = "none") -> Scenario:
    """The built-in seed incident on ``kernel`` with ``fix``."""
    return load_scenario(SCENARIO).with_kernel(kernel).with_fix(fix)


def rel(x: int, base: int) -> int:
    """``x - base`` in sequence space (mod 2**32), as a signed offset."""
    d = (x - base) & SEQ_MASK
    return d - (SEQ_MASK + 1) if d > SEQ_MASK // 2 else d
