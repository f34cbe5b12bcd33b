"""The ``conntrack`` command of conntrack-tools 1.4.7 (src/conntrack.c) against one table:
``-L`` (list), ``-D`` (delete, with the original-tuple filters ``-s``, ``-d``, ``-p``,
``--sport``, ``--dport``), ``-F`` (flush) and ``-S`` (statistics).

The kernel side is ctnetlink (``ctnetlink_del_conntrack()``/``ctnetlink_flush_conntrack()``:
``nf_ct_delete()`` of each matching entry). The tool's summary lines, as it prints them on
stderr, were recorded from conntrack v1.4.7 in a fresh network namespace.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from sim.include.nf_conntrack import Conn
from sim.netfilter.conntrack import ConntrackTable, format_conntrack, format_stats
from sim.packet import IpProto

VERSION = "conntrack v1.4.7 (conntrack-tools)"


class ConntrackToolError(ValueError):
    """A command line the tool refuses; the message is one line."""


@dataclass(frozen=True, slots=True)
class Filter:
    """The original-tuple filters of ``-L``/``-D`` (None: any)."""

    src: str | None = None
    dst: str | None = None
    proto: str | None = None
    sport: int | None = None
    dport: int | None = None

    def matches(self, ct: Conn) -> bool:
        src, sport, dst, dport, proto = ct.tuples[0]
        return (
            (self.src is None or self.src == src)
            and (self.dst is None or self.dst == dst)
            and (self.sport is None or self.sport == sport)
            and (self.dport is None or self.dport == dport)
            and (self.proto is None or self.proto == IpProto(proto).name.lower())
        )


_OPTS = {"-s": "src", "--src": "src", "-d": "dst", "--dst": "dst", "-p": "proto", "--proto": "proto"}
_PORTS = {"--sport": "sport", "--orig-port-src": "sport", "--dport": "dport", "--orig-port-dst": "dport"}


def parse(args: str) -> tuple[str, Filter]:
    """The command (``-L``, ``-D``, ``-F``, ``-S``) and its filter."""
    words = shlex.split(args)
    if words and words[0] == "conntrack":
        words = words[1:]
    if not words or words[0] not in ("-L", "-D", "-F", "-S"):
        raise ConntrackToolError(f"conntrack {args!r}: expected -L, -D, -F or -S first")
    cmd, rest = words[0], words[1:]
    names: dict[str, str] = {}
    ports: dict[str, int] = {}
    while rest:
        opt = rest.pop(0)
        name = _OPTS.get(opt) or _PORTS.get(opt)
        if name is None or cmd in ("-F", "-S") or not rest:
            raise ConntrackToolError(f"conntrack {args!r}: option {opt!r} not understood here")
        value = rest.pop(0)
        if opt in _PORTS:
            if not value.isdigit() or not 0 <= int(value) <= 65535:
                raise ConntrackToolError(f"conntrack {args!r}: bad port {value!r}")
            ports[name] = int(value)
        else:
            names[name] = value
    flt = Filter(
        names.get("src"), names.get("dst"), names.get("proto"), ports.get("sport"), ports.get("dport")
    )
    return cmd, flt


def run(table: ConntrackTable, args: str, now: float) -> tuple[list[str], int]:
    """Run ``conntrack ARGS``: the lines it prints (stdout, then its stderr summary) and its
    exit status (``-D`` that deleted nothing exits 1, as the tool does)."""
    cmd, flt = parse(args)
    if cmd == "-S":
        return [format_stats(table.stats, table.profile)], 0
    if cmd == "-F":
        table.flush()
        return [f"{VERSION}: connection tracking table has been emptied."], 0
    chosen = [ct for ct in table.entries(now) if flt.matches(ct)]
    lines = [format_conntrack(ct, now) for ct in chosen]
    if cmd == "-L":
        return [*lines, f"{VERSION}: {len(chosen)} flow entries have been shown."], 0
    for ct in chosen:
        table.delete(ct)
    return [*lines, f"{VERSION}: {len(chosen)} flow entries have been deleted."], 0 if chosen else 1
