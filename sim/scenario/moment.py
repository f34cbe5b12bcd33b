"""The lines a story's run tells (sim/scenario/story.py), and what the workloads that send its
packets (the glibc resolver, TCP clients) are given to send them with.

A :class:`Moment` is one line: a packet with its observation (the replay contract's JSON,
sim/scenario/replay.py), an action's output, or a workload's conclusion. A :class:`Runner`
sends packets into the story's world and records them as moments; each comes back as a
:class:`Sent`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from sim.net.world import World
from sim.packet import Packet
from sim.scenario.case import CasePacket
from sim.trace import Step


@dataclass(slots=True)
class Moment:
    """One line of the story: a packet (its observation), an action's output, or a workload's
    conclusion; ``failed`` names an expectation that did not hold."""

    t: float
    text: str
    pid: int | None = None
    obs: dict[str, Any] | None = None
    failed: str = ""
    output: list[str] = field(default_factory=list)


class Sent(NamedTuple):
    """A packet the story sent: its id and observation, and the observation of the answer an
    answering host sent back with that answer as it arrived (``None`` when none came)."""

    pid: int
    obs: dict[str, Any]
    reply: dict[str, Any] | None
    arrived: Packet | None


class Runner(Protocol):
    """A story being run, as its workloads see it: the world, the moments told so far, and
    ``send``, which sends packets (the later ones may race the first), answers them from the
    story's answering hosts and tells each packet and answer as a moment."""

    w: World
    moments: list[Moment]

    def send(self, packets: list[CasePacket], says: list[str] | None = None) -> list[Sent]: ...


def delivered(obs: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(the end host, ``delivered_as``) of a packet an end host received, else None."""
    fate = obs.get("fate") or ""
    if fate.startswith("delivered:") and obs.get("delivered_as"):
        return fate.split(":", 1)[1], obs["delivered_as"]
    return None


def arrived(w: World, pid: int) -> Packet | None:
    """Packet ``pid`` as it reached its end host (after the host's NAT), if it did."""
    return next((e.before for e in w.trace.for_packet(pid) if e.step is Step.DELIVER), None)
