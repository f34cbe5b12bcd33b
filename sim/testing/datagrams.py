"""``nflab diff-kernels A B --datagrams``: UDP and ICMP echo exchanges that two kernel profiles
end differently, each shrunk by hypothesis to a minimal case file.

A case is a :func:`~sim.testing.strategies.udp_conversations` or
:func:`~sim.testing.strategies.icmp_echo_conversations` exchange through the host, with gaps up
to 200 seconds, so that the UDP timeouts of each kernel (30 s unreplied; 180 s or 120 s as a
stream) show in what reaches whom. Two profiles differ on it when some packet's fate or
ctstate differs, or the status bits of its entry (ASSURED) do. The search and the files are
:func:`sim.testing.races.diff_races`'s.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from sim.testing.races import Signature
from sim.testing.strategies import icmp_echo_conversations, udp_conversations


def datagram_cases(*, kernel: str = "6.18", max_datagrams: int = 6) -> st.SearchStrategy[dict[str, Any]]:
    """UDP (first, so failures shrink to UDP) or ICMP echo exchanges as contract v2 cases."""
    udp = udp_conversations(max_datagrams=max_datagrams, max_length=64, max_delay=200.0)
    echo = icmp_echo_conversations(max_datagrams=max_datagrams, max_length=64, max_delay=60.0)
    return st.one_of(udp, echo).map(lambda conv: conv.to_case(kernel=kernel))


def first_datagram_divergence(case: dict[str, Any], a: str, b: str) -> Signature | None:
    """The signature of the first packet ``a`` and ``b`` end differently, or None: (protocol,
    sender, both fates, both ctstates and entry status bits)."""
    from sim.scenario.replay import replay_case

    outs = [replay_case({**case, "kernel": k}) for k in (a, b)]
    for i, (oa, ob) in enumerate(zip(*outs, strict=True)):
        ka, kb = (
            (("ctstate", o["ctstate"]), ("ct_status", " ".join(o["ct_status"] or ["none"]))) for o in (oa, ob)
        )
        if oa["fate"] != ob["fate"] or ka != kb:
            sender = "container" if case["packets"][i]["from"] == "ctr" else "remote"
            return (oa["proto"], sender, oa["fate"], ob["fate"], ka, kb)
    return None
