"""The seed incident at the connection-tracking level: the packets that matter, in order.

A container (172.17.0.2:39700) uploads to 36.110.213.207:443 through a host that
MASQUERADEs it as 10.21.17.99:39700 (the article's addresses). After the handshake the
container sends, the remote acknowledges 532704, then the late ACK for 530104 arrives.
Conntrack sees the connection by its original tuple; each step shows its verdict and, for the
late ACK, the four bounds with their numbers. The full world (NAT, routing, the host's RST)
builds on this in ``nflab run seed-incident``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from sim.include.netfilter import Hook
from sim.netfilter.conntrack import ConntrackTable, format_conntrack, l4proto_log_prefix
from sim.netfilter.profiles import KERNEL_HELP, kernel_arg
from sim.netfilter.proto_tcp import TcpAction
from sim.packet import SEQ_MASK, IpProto, Packet, TcpFlag, TcpOptions
from sim.report.words import bound_words
from sim.skb import Skb
from sim.topology.roles import NsRole
from sim.trace import Step as TraceStep
from sim.trace import WindowCheck

CONTAINER = ("172.17.0.2", 39700)
REMOTE = ("36.110.213.207", 443)
LATE_ACK = 530104
ACKED = 532704
SEGMENT = 1300


@dataclass(frozen=True, slots=True)
class Step:
    label: str
    pkt: Packet
    window: TcpAction | None
    reason: str | None
    attached: bool  # the entry stayed on the packet, so NAT will translate it
    check: WindowCheck | None
    state: str


def _packets() -> list[tuple[str, Packet]]:
    c, r = CONTAINER, REMOTE
    ack = int(TcpFlag.ACK)
    isn_c, isn_r = 0, 0  # relative numbers, as the article's capture shows them
    out = [
        (
            "SYN from the container",
            Packet(
                c[0],
                r[0],
                c[1],
                r[1],
                isn_c,
                0,
                int(TcpFlag.SYN),
                29200,
                0,
                TcpOptions(mss=1460, wscale=7, sack_perm=True),
            ),
        ),
        (
            "SYN/ACK from the remote",
            Packet(
                r[0],
                c[0],
                r[1],
                c[1],
                isn_r,
                1,
                int(TcpFlag.SYN | TcpFlag.ACK),
                28960,
                0,
                TcpOptions(mss=1460, wscale=7, sack_perm=True),
            ),
        ),
        ("ACK from the container", Packet(c[0], r[0], c[1], r[1], 1, 1, ack, 229)),
    ]
    # The container fills the remote's window (raw 500 << 7 = 64000 bytes); the remote's
    # cumulative ACKs stop at 532704, so the container ends 64000 bytes past it.
    seq, acked, window = 1, 1, 500 << 7
    while seq + SEGMENT <= acked + window:
        out.append(
            ("data", Packet(c[0], r[0], c[1], r[1], seq, 1, int(TcpFlag.ACK | TcpFlag.PSH), 229, SEGMENT))
        )
        seq += SEGMENT
        if acked < ACKED and (seq - 1) // SEGMENT % 2 == 0:
            acked = min(seq, ACKED)
            out.append(("ACK from the remote", Packet(r[0], c[0], r[1], c[1], 1, acked, ack, 500)))
    out.append(("the late ACK", Packet(r[0], c[0], r[1], c[1], 1, LATE_ACK, ack, 187)))
    return out


def walkthrough(profile: str, be_liberal: bool = False) -> tuple[list[Step], ConntrackTable]:
    """Run the incident's packets through one conntrack table; return every step."""
    table = ConntrackTable(profile)
    if be_liberal:
        table.sysctl.set("nf_conntrack_tcp_be_liberal", 1, table.profile)
    steps = []
    for i, (label, pkt) in enumerate(_packets()):
        skb = Skb(pkt)
        res = table.nf_conntrack_in(skb, i * 0.001, explain=True)
        table.nf_conntrack_confirm(skb, i * 0.001)
        steps.append(
            Step(
                label,
                pkt,
                res.window,
                res.reason,
                skb.ct is not None,
                res.tcp.window if res.tcp else None,
                res.tcp.new_state.name if res.tcp else "-",
            )
        )
    return steps, table


def _versus_run(late: Step, profile: str, be_liberal: bool) -> list[str]:
    """Why these numbers are not ``nflab run seed-incident``'s, with that run's own numbers."""
    from sim.scenario.scenario import load_scenario, run_scenario

    out = ["why these numbers differ from `nflab run seed-incident`:"]
    if late.check is not None:
        failed = [b for b in late.check.bounds if not b.passed]
        out += [f"  in words: {bound_words(b, late.check)} (bound {b.name})." for b in failed]
    out.append(
        "  This view replays the article's capture through the connection tracker alone: relative "
        f"sequence numbers (both ISNs 0), the late ACK {LATE_ACK} after {ACKED}, and no NAT, so replies "
        f"are written to the container's address {CONTAINER[0]} and so is the entry's reply tuple."
    )
    sc = load_scenario("seed-incident").with_kernel(profile)
    run = run_scenario(sc.with_fix("be-liberal") if be_liberal else sc)
    events = run.world.trace.events
    isn = next(
        e.before.seq for e in events if e.step is TraceStep.SEND and e.ns == NsRole.CONTAINER and e.before
    )
    host = [
        e
        for e in events
        if e.step is TraceStep.CONNTRACK and e.ns == NsRole.HOST and e.hook is Hook.PRE_ROUTING
    ]
    found = next(((k, e) for k, e in enumerate(host) if e.ct and e.ct.check and e.ct.check.failed), None)
    if found is None:  # no window check failed in the run: nothing to compare
        return out
    k, held = found
    info = held.ct
    assert info is not None and info.check is not None
    acked = max(
        ((e.before.ack - isn) & SEQ_MASK for e in host[:k] if e.before and e.before.sport == sc.dport),
        default=0,
    )
    p = held.before
    assert p is not None
    out.append(
        f"  `nflab run seed-incident --kernel {profile}` runs the whole docker-bridge world: seeded ISNs "
        f"(the container's is {isn}), MASQUERADE (replies come to {p.dst}:{p.dport}), and its held-back "
        f"ACK is ack {p.ack}, relative {(p.ack - isn) & SEQ_MASK}, after the remote had acknowledged "
        f"{acked} (relative). There conntrack says {info.window}: "
        + "; ".join(bound_words(b, info.check) for b in info.check.bounds if not b.passed)
        + "."
    )
    return out


def render(profile: str, be_liberal: bool = False) -> str:
    """The walkthrough as text: the handshake, a summary of the upload, the late ACK."""
    steps, table = walkthrough(profile, be_liberal)
    lines = [
        f"kernel profile {table.profile.name}: {table.profile.description}"
        + ("; nf_conntrack_tcp_be_liberal=1" if be_liberal else "")
    ]
    data = [s for s in steps if s.label in ("data", "ACK from the remote")]
    for s in steps:
        if s in data:
            continue
        lines.append(f"{s.label:<26} {s.pkt.describe()}")
        verdict = s.window.name if s.window is not None else "-"
        lines.append(
            f"{'':<26} conntrack: {verdict}, state {s.state}"
            + (f', "{l4proto_log_prefix(table.profile, IpProto.TCP)}{s.reason}"' if s.reason else "")
        )
        if s.label == "ACK from the container":
            accepted = sum(1 for d in data if d.window == TcpAction.ACCEPT)
            lines.append(f"... {len(data)} upload segments and ACKs, {accepted} ACCEPT; remote acked {ACKED}")
    late = steps[-1]
    if late.check is not None:
        lines.append("the four bounds for the late ACK (sender = remote, receiver = container):")
        for b in late.check.bounds:
            lines.append(
                f"  {b.name:<3} {b.rule:<50} limit {b.limit:>7}  packet {b.value:>7}  "
                + ("pass" if b.passed else "FAIL")
            )
    if late.attached:
        lines.append(
            "=> the entry stays attached: NAT translates the ACK back to the container, "
            "which ignores it (RFC 793). No RST."
        )
    else:
        lines.append(
            "=> INVALID: the packet loses its conntrack entry and NAT skips it; on the Docker host, where "
            "this ACK arrives addressed to 10.21.17.99:39700, the host's own stack finds no socket for it "
            f"and tcp_v4_send_reset() answers with a RST (seq {LATE_ACK}) that only the remote sees."
        )
    lines.extend(_versus_run(late, table.profile.name, be_liberal))
    now = len(steps) * 0.001
    lines.append("conntrack -L:")
    lines.extend(format_conntrack(ct, now) for ct in table.entries(now))
    return "\n".join(lines)


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``walkthrough`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "walkthrough", help="the seed incident at the conntrack level, step by step"
    )
    p.add_argument("--kernel", type=kernel_arg, default="el7", help=f"{KERNEL_HELP} (default el7)")
    p.add_argument(
        "--be-liberal", action="store_true", help="set net.netfilter.nf_conntrack_tcp_be_liberal=1"
    )
    return p


def main(args: argparse.Namespace) -> int:
    """Run ``walkthrough`` with parsed arguments."""
    print(render(args.kernel, args.be_liberal))
    return 0
