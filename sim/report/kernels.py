"""``nflab kernels``: the kernel profiles, their changelog, and what each does with each
packet class.

The matrix is computed, never typed in: every packet class is a crafted case (the built-in
``sim/scenario/cases``), replayed through the model's docker-bridge world
(:func:`sim.scenario.replay.replay_case`)
once per profile and fix. A cell is the tracker's verdict for the case's last packet (the one
the class is about) and whether the host answered it with a RST of its own
(``tcp_v4_send_reset``), which is the incident.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sim.netfilter.changes import CHANGES, CHANGES_BY_KEY, Change
from sim.netfilter.profiles import PROFILES, KernelProfile
from sim.scenario.case import Case, load_case
from sim.scenario.fixes import WINDOW_FIXES

WIDTH = 100  # the matrix fits a 100-column terminal
MATRIX_FIXES = WINDOW_FIXES  # the fixes a packet class can take

# The behaviours the story scenarios turn on, each the CHANGES whose switch it names (the rows
# are the changes themselves, with each profile's yes or no read from profile.changes).
TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("clash handling at confirmation", ("clash_", "tuple_taken", "chaintoolong")),
    ("NAT port search", ("nat_",)),
    ("table full and early_drop", ("early_drop", "core_pr_fmt", "table_full", "buckets_eq_max")),
)

# A server SYN after both sides closed (appended to fin-to-time-wait): the REPLY syn row's
# TIME_WAIT cell, sIV in upstream 3.10, sSS (reopen) where "allow server to become a client
# in TW handling" is in (and backported to CentOS 7).
SERVER_SYN = {
    "from": "remote",
    "src": "198.51.100.2:443",
    "dst": "198.51.100.1:40000",
    "flags": "S",
    "seq": 6000000,
    "ack": 0,
    "win": 65160,
    "options": {"mss": 1460},
}

# Packet classes, in the order the matrix shows them: (label, built-in case, packets added
# after it). Each case sets up a connection with ordinary packets and ends with the packet of
# its class.
PACKET_CLASSES: tuple[tuple[str, str, tuple[dict[str, Any], ...]], ...] = (
    ("late ACK (the incident)", "late-ack", ()),
    ("ACK over upper bound", "ack-over-upper-bound", ()),
    ("data beyond the window", "data-beyond-window", ()),
    ("small overshoot", "small-overshoot", ()),
    ("ACKed data retransmitted", "seq-under-lower-bound", ()),
    ("SACK over td_end", "sack-right-edge-over-td-end", ()),
    ("old RST (container)", "old-rst-from-ctr", ()),
    ("RST out of window", "rst-out-of-window", ()),
    ("RST in window, inexact", "rst-in-window-inexact", ()),
    ("SYN in ESTABLISHED", "syn-on-established-remote", ()),
    ("SYN+FIN", "syn-fin", ()),
    ("no flags", "no-flags", ()),
    ("server SYN in TIME_WAIT", "fin-to-time-wait", (SERVER_SYN,)),
)


@dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """One behaviour change a profile carries.

    ``switch`` is the :class:`KernelProfile` field the change sets; ``commit``, ``subject``
    and ``release`` (first upstream release with it) are "" where the profile does not say.
    """

    switch: str
    commit: str = ""
    subject: str = ""
    release: str = ""


def changelog(profile: KernelProfile) -> tuple[ChangelogEntry, ...]:
    """The behaviour changes ``profile`` carries (:data:`CHANGES` entries named by the
    profile, oldest first), each with the switch it sets, its upstream commit, subject and
    first release. This is the one place that reads how a profile records its changes."""
    return tuple(
        ChangelogEntry(c.switch, c.commit, c.subject, c.release)
        for c in (CHANGES_BY_KEY[key] for key in profile.changes)
    )


def profiles() -> list[KernelProfile]:
    """Every profile, oldest first (:data:`PROFILES` order)."""
    return list(PROFILES.values())


def render_list(profs: Iterable[KernelProfile]) -> str:
    """``nflab kernels``: each profile and its description, then its changelog as a diff
    against the profile before it (``+`` an entry it adds, ``-`` one it lacks); the first
    profile lists all of its entries."""
    lines = []
    before: tuple[ChangelogEntry, ...] | None = None
    for p in profs:
        entries = changelog(p)
        lines.append(f"{p.name:<8}{p.description}"[:WIDTH])
        if before is None:
            marked = [("+", e) for e in entries]
            if not entries:
                lines.append(f"{'':<8}  (the baseline: no changes)")
        else:
            marked = [("+", e) for e in entries if e not in before]
            marked += [("-", e) for e in before if e not in entries]
            if not marked:
                lines.append(f"{'':<8}  (the same changes as the profile above)")
        for sign, e in marked:
            # "+ 6.1    6e250dcbff1d  window_ignore", then the subject on its own line(s)
            commit = e.commit[:12] or "(no id)"
            lines.append(f"{'':<8}{sign} {e.release:<6} {commit:<12}  {e.switch}")
            indent = " " * 12
            lines.extend(textwrap.wrap(e.subject, WIDTH, initial_indent=indent, subsequent_indent=indent))
        before = entries
    return "\n".join(lines)


def list_json(profs: Iterable[KernelProfile]) -> list[dict[str, Any]]:
    """``nflab kernels --json``: per profile its name, description and entries."""
    return [
        {"name": p.name, "description": p.description, "changes": [asdict(e) for e in changelog(p)]}
        for p in profs
    ]


# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True, slots=True)
class Cell:
    """What one profile with one fix does with one packet class."""

    packet_class: str
    case: str
    profile: str
    fix: str
    window: str | None  # the tracker's verdict for the class packet
    reason: str | None
    tcp_state: str | None
    fate: str | None
    host_rst: bool  # the host answered the class packet with a RST of its own
    setup_accepted: bool  # every packet before it was ACCEPT (else the class is not reached)

    @property
    def text(self) -> str:
        """The cell as the table prints it: verdict, ``*`` for a host RST, ``?`` when the
        set-up did not go as on the kernel the case was written for."""
        verdict = self.window or "-"
        return verdict + ("*" if self.host_rst else "") + ("" if self.setup_accepted else "?")


def compute_matrix(
    profs: Sequence[KernelProfile],
    classes: Sequence[tuple[str, str, tuple[dict[str, Any], ...]]] = PACKET_CLASSES,
    fixes: Sequence[str] = MATRIX_FIXES,
    progress: Callable[[int, int], None] | None = None,
) -> list[Cell]:
    """Replay every class's case on every profile with every fix; one :class:`Cell` each,
    class by class, then fix, then profile."""
    from sim.scenario.replay import replay_case

    cells = []
    total, done = len(classes) * len(fixes) * len(profs), 0
    for label, name, extra in classes:
        builtin = load_case(name)
        case = Case({**builtin.data, "packets": [*builtin.data["packets"], *extra]})
        for fix in fixes:
            for p in profs:
                obs = replay_case(case.with_kernel(p.name).with_fix(fix).data)
                last = obs[-1]
                cells.append(
                    Cell(
                        label,
                        name,
                        p.name,
                        fix,
                        last["window"],
                        last["reason"],
                        last["tcp_state"],
                        last["fate"],
                        any("R" in e["flags"] and e["to"] == "remote" for e in last["emitted"]),
                        all(o["window"] == "ACCEPT" for o in obs[:-1]),
                    )
                )
                done += 1
                if progress is not None:
                    progress(done, total)
    return cells


def render_matrix(cells: Sequence[Cell], width: int = WIDTH) -> str:
    """One block per fix: packet classes by profile. Profiles are split over several tables
    when they do not fit in ``width`` columns."""
    labels = list(dict.fromkeys(c.packet_class for c in cells))
    profs = list(dict.fromkeys(c.profile for c in cells))
    fixes = list(dict.fromkeys(c.fix for c in cells))
    by_key = {(c.packet_class, c.profile, c.fix): c for c in cells}
    first = max(len(x) for x in labels) + 4  # two to indent, two to separate
    col = max(len(x) for x in [*(c.text for c in cells), *profs]) + 1
    per_table = max(1, (width - first) // col)
    out: list[str] = []
    for start in range(0, len(profs), per_table):
        chunk = profs[start : start + per_table]
        for fix in fixes:
            title = "no fix" if fix == "none" else f"fix: {fix}"
            out.append(f"{title:<{first}}" + "".join(f"{p:<{col}}" for p in chunk).rstrip())
            for label in labels:
                row = "".join(f"{by_key[(label, p, fix)].text:<{col}}" for p in chunk)
                out.append(f"  {label:<{first - 2}}{row}".rstrip())
            out.append("")
    out.append("verdict of conntrack's TCP tracker for the class packet; * the host answers it with a")
    out.append("RST of its own (tcp_v4_send_reset: the incident). Cases: sim/scenario/cases/<case>.json.")
    if any(not c.setup_accepted for c in cells):
        out.append("? a packet before the class packet was not ACCEPT on that profile.")
    return "\n".join(out)


def matrix_json(cells: Sequence[Cell]) -> dict[str, Any]:
    """``nflab kernels --matrix --json``."""
    return {
        "profiles": list(dict.fromkeys(c.profile for c in cells)),
        "fixes": list(dict.fromkeys(c.fix for c in cells)),
        "cells": [asdict(c) for c in cells],
    }


# ---------------------------------------------------------------- rows that differ by kernel


def topic_changes(prefixes: tuple[str, ...]) -> list[Change]:
    """The CHANGES whose switch starts with one of ``prefixes``, oldest first."""
    return [c for c in CHANGES if c.switch.startswith(prefixes)]


def render_topics(profs: Sequence[KernelProfile]) -> str:
    """Per topic, one row per change: ``+`` where the profile carries it (its own version or a
    backport), ``.`` where it does not."""
    names = [p.name for p in profs]
    out = []
    for topic, prefixes in TOPICS:
        out.append(f"{topic:<34}" + "".join(f"{n:<6}" for n in names).rstrip())
        for c in topic_changes(prefixes):
            cells = "".join(f"{'+' if c.key in p.changes else '.':<6}" for p in profs)
            out.append(f"  {c.release:<5} {c.key:<26}{cells}".rstrip())
        out.append("")
    return "\n".join(out)


def story_events(profs: Sequence[KernelProfile]) -> dict[str, dict[str, str]]:
    """Each story scenario run on each profile without a fix: ``ok`` or its decisive event."""
    from sim.scenario.scenario import load_any
    from sim.scenario.story import Story, run_story

    out: dict[str, dict[str, str]] = {}
    for name in STORY_NAMES:
        st = load_any(name)
        assert isinstance(st, Story)
        out[name] = {p.name: run_story(st.with_kernel(p.name)).event for p in profs}
    return out


STORY_NAMES = (
    "dns-race",
    "snat-port-clash",
    "stale-udp-entry",
    "conntrack-table-full",
    "pod-ip-leak",
    "published-port-invalid",
    "kube-clusterip-invalid",
    "kube-nodeport-invalid",
    "mid-stream-pickup",
    "one-sided-wscale",
)


def render_story_events(events: dict[str, dict[str, str]]) -> str:
    """The stories by profile, the profiles split over tables that fit ``WIDTH``."""
    profs = list(next(iter(events.values())))
    col = max(len(x) for row in events.values() for x in [*row.values(), *profs]) + 1
    first = max(len(n) for n in events) + 4
    per = max(1, (WIDTH - first) // col)
    out = []
    for start in range(0, len(profs), per):
        chunk = profs[start : start + per]
        out.append(f"{'story (nflab run NAME)':<{first}}" + "".join(f"{p:<{col}}" for p in chunk).rstrip())
        for name, row in events.items():
            out.append(f"  {name:<{first - 2}}" + "".join(f"{row[p]:<{col}}" for p in chunk).rstrip())
        out.append("")
    out.append("ok: the story succeeds without a fix; else its decisive event (nflab run NAME --kernel K).")
    return "\n".join(out)


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``kernels`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "kernels",
        help="the kernel profiles and their changelog; --matrix: what each does with each packet class",
    )
    p.add_argument(
        "--matrix",
        action="store_true",
        help="replay a crafted case per packet class on every profile, with each fix, and tabulate",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``kernels`` with parsed arguments."""
    profs = profiles()
    if not args.matrix:
        print(json.dumps(list_json(profs)) if args.json else render_list(profs))
        return 0

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rreplaying {done}/{total} cases\x1b[K" if done < total else "\r\x1b[K")
        sys.stderr.flush()

    cells = compute_matrix(profs, progress=progress if sys.stderr.isatty() else None)
    events = story_events(profs)
    if args.json:
        print(json.dumps({**matrix_json(cells), "stories": events}))
    else:
        print(render_matrix(cells))
        print()
        print(render_story_events(events))
        print()
        print(render_topics(profs))
    return 0
