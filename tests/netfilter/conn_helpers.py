"""A tiny driver for conntrack unit tests: one client, one server, packets by direction."""

from __future__ import annotations

from sim.netfilter.conntrack import ConntrackResult, ConntrackTable
from sim.packet import Packet, TcpOptions, parse_flags
from sim.skb import Skb

CLIENT = ("192.0.2.2", 40000)
SERVER = ("203.0.113.9", 443)


class Flow:
    def __init__(self, profile: str, **sysctls: int) -> None:
        self.table = ConntrackTable(profile)
        for name, value in sysctls.items():
            self.table.sysctl.set(name, value, self.table.profile)
        self.now = 0.0

    def send(
        self,
        frm: str,
        flags: str,
        seq: int,
        ack: int = 0,
        win: int = 65535,
        length: int = 0,
        options: TcpOptions | None = None,
        dt: float = 0.0,
    ) -> ConntrackResult:
        self.now += dt
        src, dst = (CLIENT, SERVER) if frm == "c" else (SERVER, CLIENT)
        pkt = Packet(
            src[0], dst[0], src[1], dst[1], seq, ack, parse_flags(flags), win, length, options or TcpOptions()
        )
        skb = Skb(pkt)
        res = self.table.nf_conntrack_in(skb, self.now, explain=True)
        self.table.nf_conntrack_confirm(skb, self.now)
        return res

    @property
    def ct(self):  # the one connection under test
        (ct,) = self.table.entries(self.now)
        return ct


def established(profile: str, **sysctls: int) -> Flow:
    """Handshake, then the client sends 120 x 1000 bytes, acked at 61001 and 121001.

    Hand-derived tracker state afterwards (see tests for the arithmetic):
    client (ORIGINAL): td_end 121001, td_maxwin 65535, td_maxend 186536
    server (REPLY):    td_end 5001,   td_maxwin 65535, td_maxend 70536
    """
    f = Flow(profile, **sysctls)
    f.send("c", "S", 1000)
    f.send("s", "SA", 5000, 1001)
    f.send("c", "A", 1001, 5001)
    seq = 1001
    for burst_end in (61001, 121001):
        while seq < burst_end:
            f.send("c", "A", seq, 5001, length=1000)
            seq += 1000
        f.send("s", "A", 5001, burst_end)
    return f
