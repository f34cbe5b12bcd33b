"""The established flow the conntrack unit tests start from (driven by sim.testing.Tracker)."""

from __future__ import annotations

from sim.testing import Tracker


def established(profile: str, **sysctls: int) -> Tracker:
    """Handshake, then the client sends 120 x 1000 bytes, acked at 61001 and 121001.

    Hand-derived tracker state afterwards (see tests for the arithmetic):
    client (ORIGINAL): td_end 121001, td_maxwin 65535, td_maxend 186536
    server (REPLY):    td_end 5001,   td_maxwin 65535, td_maxend 70536
    """
    f = Tracker(profile, sysctl=sysctls)
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
