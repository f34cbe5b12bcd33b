"""Feed strategy conversations through one ConntrackTable."""

from __future__ import annotations

from sim.netfilter.conntrack import ConntrackResult, ConntrackTable
from sim.packet import Packet
from sim.skb import Skb
from sim.testing.strategies import Conversation

CLIENT = ("192.0.2.2", 40000)
SERVER = ("203.0.113.9", 443)


def run(
    conv: Conversation, profile: str, table: ConntrackTable | None = None, **sysctls: int
) -> tuple[ConntrackTable, list[ConntrackResult]]:
    table = table or ConntrackTable(profile)
    for name, value in sysctls.items():
        table.sysctl.set(name, value, table.profile)
    results = []
    for i, seg in enumerate(conv.segments):
        src, dst = (CLIENT, SERVER) if seg.frm == "c" else (SERVER, CLIENT)
        skb = Skb(
            Packet(
                src[0], dst[0], src[1], dst[1], seg.seq, seg.ack, seg.flags, seg.win, seg.length, seg.options
            )
        )
        res = table.nf_conntrack_in(skb, float(i), explain=True)
        table.nf_conntrack_confirm(skb, float(i))
        results.append(res)
    return table, results
