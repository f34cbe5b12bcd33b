"""``conntrack -L`` text for a traced entry (:class:`sim.trace.CtEntry`), rendered when a reader
asks for it rather than while the packet is traced."""

from __future__ import annotations

from sim.trace import CtEntry


def conntrack_line(entry: CtEntry, now: float) -> str:
    """One line of ``conntrack -L`` as it read at ``now`` (libnetfilter_conntrack's default
    output format, as :func:`sim.netfilter.conntrack.format_conntrack` prints a live entry)."""
    o_src, o_sport, o_dst, o_dport = entry.original
    r_src, r_sport, r_dst, r_dport = entry.reply
    remaining = max(int(entry.expires - now), 0)
    return "".join(
        (
            f"tcp      6 {remaining} {entry.state} ",
            f"src={o_src} dst={o_dst} sport={o_sport} dport={o_dport} ",
            "" if entry.seen_reply else "[UNREPLIED] ",
            f"src={r_src} dst={r_dst} sport={r_sport} dport={r_dport} ",
            "[ASSURED] " if entry.assured else "",
            f"mark={entry.mark} use=1",
        )
    )
