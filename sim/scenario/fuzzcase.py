"""Hypothesis conversations -> case files for ``nflab kernel-check --fuzz``.

A conversation (:mod:`sim.testing.strategies`) is a list of segments between a client
("c", conntrack's ORIGINAL direction) and a server ("s"). In the docker-bridge world the
client is the container and the server is the remote; the container writes to
``remote_ip:remote_port`` and the remote answers ``host_ip:ctr_port``, because MASQUERADE
keeps the container's source port when it is free.

This module is pure (no hypothesis import, no kernel): segments in, a case dict out, in the
schema :func:`sim.kernel.testbed.parse_case` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sim.netfilter.profiles import DEFAULT_PROFILE
from sim.packet import TcpOptions, format_flags
from sim.scenario import fixes
from sim.scenario.case import Case, Topology, options_json

# The fixes a fuzzed case may carry, simplest first (hypothesis shrinks towards "none").
FIXES = fixes.WINDOW_FIXES  # a TCP conversation takes the window fixes only
MAX_PAYLOAD = 1400  # the largest "len" the harness's packet_from_case accepts
CTR_PORT = 40000
REMOTE_PORT = 443


class SegmentLike(Protocol):
    """What the conversion reads from a :class:`sim.testing.strategies.Segment`."""

    @property
    def frm(self) -> str: ...
    @property
    def flags(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def ack(self) -> int: ...
    @property
    def win(self) -> int: ...
    @property
    def length(self) -> int: ...
    @property
    def options(self) -> TcpOptions: ...


class ConversationLike(Protocol):
    """What the conversion reads from a :class:`sim.testing.strategies.Conversation`."""

    @property
    def segments(self) -> Sequence[SegmentLike]: ...


def conversation_to_case(
    conversation: ConversationLike | Sequence[SegmentLike],
    *,
    name: str,
    kernel: str = DEFAULT_PROFILE,
    sysctl: Mapping[str, int] | None = None,
    fix: str = "none",
    topology: Topology | None = None,
    ctr_port: int = CTR_PORT,
    remote_port: int = REMOTE_PORT,
    description: str = "",
    delay: float | None = None,
) -> dict[str, Any]:
    """One conversation (or its segments) as a replay case: client = ctr, server = remote.

    ``kernel`` is written as the case's ``kernel``; ``sysctl`` (``net.netfilter.*`` names,
    full or short) as its host sysctls; ``fix`` adds the INVALID DROP rule in the host's
    INPUT chain or sets be_liberal. ``delay`` (seconds) is written on every packet when
    given; without it the contract's default gap (0.05 s) applies. Raises ValueError (one
    line) for an unknown fix, an unknown sender or a payload the harness cannot send.
    """
    segments = conversation if isinstance(conversation, Sequence) else conversation.segments
    if fix not in FIXES:
        raise ValueError(f"unknown fix {fix!r}: expected one of {', '.join(FIXES)}")
    t = topology or Topology()
    ctr = f"{t.ctr_ip}:{ctr_port}"
    remote = f"{t.remote_ip}:{remote_port}"
    host = f"{t.host_ip}:{ctr_port}"
    packets: list[dict[str, Any]] = []
    for i, seg in enumerate(segments):
        if seg.frm == "c":
            side, src, dst = "ctr", ctr, remote
        elif seg.frm == "s":
            side, src, dst = "remote", remote, host
        else:
            raise ValueError(f"segment {i}: sender must be 'c' or 's', not {seg.frm!r}")
        if seg.length > MAX_PAYLOAD:
            raise ValueError(f"segment {i}: {seg.length} payload bytes, the harness sends <= {MAX_PAYLOAD}")
        pkt: dict[str, Any] = {
            "from": side,
            "src": src,
            "dst": dst,
            "flags": format_flags(seg.flags),
            "seq": seg.seq,
            "ack": seg.ack,
            "win": seg.win,
        }
        if seg.length:
            pkt["len"] = seg.length
        if delay is not None:
            pkt["delay"] = delay
        opts = options_json(seg.options)
        if opts is not None:
            pkt["options"] = opts
        packets.append(pkt)
    case: dict[str, Any] = {"name": name, "kernel": kernel}
    if description:
        case["description"] = description
    if topology is not None:
        case["topology"] = {
            "ctr_ip": t.ctr_ip,
            "bridge_ip": t.bridge_ip,
            "host_ip": t.host_ip,
            "remote_ip": t.remote_ip,
        }
    sysctls = {_full_sysctl(key): value for key, value in (sysctl or {}).items()}
    if sysctls:
        case["sysctl"] = sysctls
    case["packets"] = packets
    return Case(case).with_fix(fix).data


def _full_sysctl(key: str) -> str:
    """``tcp_be_liberal`` -> ``net.netfilter.nf_conntrack_tcp_be_liberal`` (full names kept)."""
    if key.startswith("net."):
        return key
    return "net.netfilter." + (key if key.startswith("nf_conntrack_") else f"nf_conntrack_{key}")
