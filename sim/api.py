"""The core API the front ends stand on: open a source, apply a kernel or a fix, run it, read
the trace and the captures.

The TUI (``tui/``), ``nflab serve`` and the course's helpers import nflab from here and from
nowhere else in ``sim``::

    setup = load("seed-incident", kernel="3.10", fix="none")  # checked: InputError if bad
    result = setup.run()
    for e in result.events: ...                               # the trace, typed
    result.capture("host", "eth0")                            # what tcpdump saw there

Importing this module is cheap: the model itself (the world, networkx) loads when a source is
loaded or run, so a front end draws its first frame first. The names of :data:`_LAZY` load
on first use, as ``sim``'s own attributes do (``from sim import load`` works too).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.errors import InputError
from sim.include.netfilter import HOOK_CHAIN, CtState, Hook, TableName
from sim.include.nf_conntrack_tcp import TcpState
from sim.netfilter.profiles import KERNEL_HELP, PROFILES, kernel_arg, resolve_kernel
from sim.packet import SEQ_MASK, TCPHDR_RST, Packet, TcpFlag, TcpOptions, format_flags, parse_flags
from sim.report.sentences import say
from sim.report.words import late_words, untracked_words, window_words
from sim.scenario.case import Case, CaseError, load_case
from sim.scenario.fixes import FIXES, HOST_FIXES, WINDOW_FIXES
from sim.scenario.loader import builtin_cases, builtin_scenarios, kind_of
from sim.topology.roles import NsRole
from sim.trace import ConfirmOutcome, ConntrackInfo, CtSysctls, Step, Trace, TraceEvent, TraceVerdict, Why

if TYPE_CHECKING:
    from sim.net.world import World
    from sim.scenario.scenario import Run, Scenario
    from sim.scenario.story import Story, StoryRun

KERNELS = tuple(PROFILES)  # the kernel profiles, oldest first
DEFAULT_KERNEL = "6.1"  # for a case or capture that names none
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")

# Heavy names, imported on first use (module __getattr__ below).
_LAZY = {
    "World": "sim.net.world",
    "Run": "sim.scenario.scenario",
    "Scenario": "sim.scenario.scenario",
    "Story": "sim.scenario.story",
    "StoryRun": "sim.scenario.story",
    "ScenarioError": "sim.scenario.scenario",
    "load_scenario": "sim.scenario.scenario",
    "run_scenario": "sim.scenario.scenario",
    "replay_case": "sim.scenario.replay",
    "run_world": "sim.scenario.replay",
    "DockerBridge": "sim.topology.docker_bridge",
    "docker_bridge": "sim.topology.docker_bridge",
    "PublishedPort": "sim.topology.docker_rules",
    "format_entry": "sim.netfilter.conntrack",
    "tcpdump_line": "sim.report.capture",
    "write_pcap": "sim.report.capture",
    "read_frames": "sim.pcap.reader",
    "Frame": "sim.pcap.reader",
    "CaptureError": "sim.pcap.reader",
    "capture_case": "sim.pcap.tocase",
    "key_moment": "sim.report.story",
    "key_event": "sim.report.story",
    "why_words": "sim.report.story",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sim.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


# ---------------------------------------------------------------- sources


class SourceKind(StrEnum):
    """What a source is."""

    SCENARIO = "scenario"  # a built-in scenario name or a scenario file (TOML/JSON)
    CASE = "case"  # a built-in case name or a crafted-packet case file (JSON/TOML)
    CAPTURE = "capture"  # a pcap/pcapng file, its connection replayed as a case


@dataclass(frozen=True, slots=True)
class Source:
    """What to open, and what kind of thing it is."""

    ref: str
    kind: SourceKind


def open_source(ref: str) -> Source:
    """Decide what ``ref`` is: a capture (by its suffix), a built-in scenario or case name, or a
    scenario or case file (a case has ``packets``). InputError (one line) when it is none."""
    path = Path(ref)
    if path.suffix in CAPTURE_SUFFIXES:
        try:
            path.open("rb").close()
        except OSError as e:
            raise InputError(f"{ref}: {e.strerror}") from None
        return Source(ref, SourceKind.CAPTURE)
    if ref in builtin_cases() and not path.exists():
        return Source(ref, SourceKind.CASE)
    return Source(ref, SourceKind(kind_of(ref)))


# ---------------------------------------------------------------- loading and running


@dataclass(frozen=True, slots=True)
class Setup:
    """A source loaded and checked, on a kernel with a fix: what :meth:`run` runs. Exactly one
    of ``scenario`` and ``case`` is set (a capture is loaded as a case)."""

    source: Source
    title: str
    scenario: Scenario | None = None
    case: Case | None = None
    story: Story | None = None  # a story scenario (sim/scenario/story.py)

    @property
    def kernel(self) -> str:
        if self.story is not None:
            return self.story.kernel
        return self.scenario.kernel if self.scenario is not None else self._case.kernel

    @property
    def fix(self) -> str:
        if self.story is not None:
            return self.story.fix
        return self.scenario.fix if self.scenario is not None else self._case.fix

    @property
    def _case(self) -> Case:
        assert self.case is not None
        return self.case

    @property
    def fixes(self) -> tuple[str, ...]:
        """The fixes this source can take: a story's own, else the host rules and sysctls."""
        if self.story is not None:
            return ("none", *(f for f in self.story.fixes if f != "none"))
        return HOST_FIXES

    def with_kernel(self, kernel: str) -> Setup:
        """The same source on ``kernel`` (a profile name or a release); InputError if unknown."""
        try:
            name = resolve_kernel(kernel).name
        except ValueError as e:
            raise InputError(str(e)) from None
        if self.story is not None:
            return replace(self, story=self.story.with_kernel(name))
        if self.scenario is not None:
            return replace(self, scenario=self.scenario.with_kernel(name))
        return replace(self, case=self._case.with_kernel(name))

    def with_fix(self, fix: str) -> Setup:
        """The same source with exactly ``fix`` (one of :data:`FIXES`); InputError if unknown."""
        if fix not in FIXES:
            raise InputError(f"fix: expected one of {', '.join(FIXES)}, got {fix!r}")
        if self.story is not None:
            try:
                return replace(self, story=self.story.with_fix(fix))
            except ValueError as e:
                raise InputError(str(e)) from None
        if self.scenario is not None:
            return replace(self, scenario=self.scenario.with_fix(fix))
        return replace(self, case=self._case.with_fix(fix))

    def run(self) -> Result:
        """Run the model: a scenario or story to its end, a case packet by packet (each until
        quiet)."""
        if self.story is not None:
            from sim.scenario.story import run_story

            story_run = run_story(self.story)
            return Result(self, story_run.world, None, [], story_run)
        if self.scenario is not None:
            from sim.scenario.scenario import run_scenario

            run = run_scenario(self.scenario)
            return Result(self, run.world, run, [])
        from sim.scenario.replay import run_world

        world, observations = run_world(self._case.data)
        return Result(self, world, None, observations)


def load(ref: str | Source, kernel: str | None = None, fix: str | None = None) -> Setup:
    """Open ``ref`` and load it, on ``kernel`` with ``fix`` (None keeps what the source says;
    a capture replays on :data:`DEFAULT_KERNEL`). Bad input raises InputError here, before
    anything runs."""
    source = ref if isinstance(ref, Source) else open_source(ref)
    if kernel is not None and kernel not in KERNELS:
        raise InputError(f"kernel: expected one of {', '.join(KERNELS)}, got {kernel!r}")
    if fix is not None and fix not in FIXES:
        raise InputError(f"fix: expected one of {', '.join(FIXES)}, got {fix!r}")
    if source.kind is SourceKind.SCENARIO:
        from sim.scenario.scenario import load_any
        from sim.scenario.story import Story

        loaded = load_any(source.ref)
        if isinstance(loaded, Story):
            setup = Setup(source, loaded.name, story=loaded)
        else:
            setup = Setup(source, loaded.name, scenario=loaded)
    else:
        if source.kind is SourceKind.CAPTURE:  # the capture's connection as a case (nflab pcap --to-case)
            from sim.pcap.tocase import capture_case

            try:
                case = Case(capture_case(source.ref, kernel=kernel or DEFAULT_KERNEL))
            except ValueError as e:  # CaptureError, CaseError; a ValueError of the conversion
                raise InputError(f"{source.ref}: {e}" if source.ref not in str(e) else str(e)) from None
        else:
            case = load_case(source.ref)
        if "kernel" not in case.data:
            case = case.with_kernel(DEFAULT_KERNEL)
        setup = Setup(source, case.name or Path(source.ref).stem, case=case)
    if kernel is not None:
        setup = setup.with_kernel(kernel)
    return setup.with_fix(fix) if fix is not None and fix != setup.fix else setup


@dataclass(frozen=True, slots=True)
class Result:
    """A run: its world's trace and captures, the scenario's run (None for a case) and, for a
    case, one replay-contract observation per input packet; a story's run in ``story``."""

    setup: Setup
    world: World
    run: Run | None
    observations: list[dict[str, Any]]
    story: StoryRun | None = None

    @property
    def events(self) -> list[TraceEvent]:
        """Every trace event, in the order they happened."""
        return self.world.trace.events

    def capture(self, ns: str, dev: str) -> list[tuple[float, str, Packet, int]]:
        """What a capture on ``dev`` in namespace ``ns`` saw: (time, "in"/"out", packet, pid)."""
        cap = self.world.captures.get((ns, dev))
        return list(cap.records) if cap is not None else []

    @property
    def late(self) -> frozenset[int]:
        """The packets a scenario's late-ack trigger held back on the link."""
        if self.run is None:
            return frozenset()
        return frozenset(pid for _t, kind, pid in self.run.fired if kind == "late-ack")

    @property
    def link_delay(self) -> float | None:
        """The scenario's one-way link delay in seconds (None for a case)."""
        return self.run.scenario.topology.link_delay if self.run is not None else None


# ---------------------------------------------------------------- reading the trace


def rule_of(e: TraceEvent) -> tuple[str, int, str] | None:
    """(chain, rule number, the rule as ``iptables -S`` prints it) for a table verdict decided
    by a rule, or for the LOG rule behind a LOG line; None for a chain policy or another step.
    Read off the event alone (the trace records the rule that decided)."""
    if e.step not in (Step.TABLE, Step.LOG) or e.rule_text is None or e.chain is None or not e.rule:
        return None
    return e.chain, e.rule, e.rule_text


__all__ = [
    "CAPTURE_SUFFIXES",
    "DEFAULT_KERNEL",
    "FIXES",
    "HOST_FIXES",
    "WINDOW_FIXES",
    "HOOK_CHAIN",
    "KERNELS",
    "KERNEL_HELP",
    "PROFILES",
    "SEQ_MASK",
    "TCPHDR_RST",
    "Case",
    "CaseError",
    "ConfirmOutcome",
    "ConntrackInfo",
    "CtState",
    "CtSysctls",
    "Hook",
    "InputError",
    "NsRole",
    "Packet",
    "Result",
    "Setup",
    "Source",
    "SourceKind",
    "Step",
    "TableName",
    "TcpState",
    "TcpFlag",
    "TcpOptions",
    "Trace",
    "TraceEvent",
    "TraceVerdict",
    "Why",
    "builtin_cases",
    "builtin_scenarios",
    "format_flags",
    "kernel_arg",
    "late_words",
    "load",
    "load_case",
    "open_source",
    "parse_flags",
    "resolve_kernel",
    "rule_of",
    "say",
    "untracked_words",
    "window_words",
    *_LAZY,
]
