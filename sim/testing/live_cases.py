"""Hypothesis strategies of contract v2 cases for ``nflab kernel-check --fuzz N --v2``:
UDP and ICMP conversations between containers and remotes, ICMP errors RELATED to them (or
to nothing), and packets racing the previous one's confirmation.

:func:`live_v2_cases` draws from :func:`v2_cases` (below) and from the model's own
strategies: :func:`sim.testing.strategies.udp_conversations` and
:func:`~sim.testing.strategies.icmp_echo_conversations` (gaps kept under 50 ms for live
runs) and :func:`sim.testing.races.racing_cases` (those without ``nf_conntrack_max``, which
is read-only outside the root namespace, so the live kernel cannot play them).

A case draws its end hosts (``ctr`` and maybe ``ctr2``; ``remote`` and maybe ``remote2``), a
few flows (protocol, client, server, ports from a small set so that two containers collide
on a source port), then a list of steps, each a packet of one flow: the client's datagram or
echo request, the server's answer to the host's address (MASQUERADE keeps a free port), an
ICMP error from the server quoting the flow as the server saw it, an ICMP error about a flow
nobody opened, or a TCP SYN from the client. Any step but the first may race the previous
one. Gaps are the fuzz gap (1 ms), sometimes 2.1 s (past UDP's two-second stream mark) or
past a shortened UDP timeout. Simplest choices come first, so failures shrink to short cases.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from sim.scenario.case import Topology

TOPOLOGY = Topology()
EXTRA_CTR = ("ctr2", "192.0.2.7")
EXTRA_REMOTE = ("remote2", "198.51.100.3")
CLIENT_PORTS = (40000, 40001, 53)
SERVER_PORTS = (53, 9, 443)
ECHO_IDS = (4660, 4661)
FUZZ_GAP_S = 0.001
STREAM_GAP_S = 2.1  # nf_conntrack_udp_packet(): a stream once the entry is older than 2 s
UDP_TIMEOUT_S = 1  # the shortened nf_conntrack_udp_timeout of some cases
EXPIRY_GAP_S = 1.5
MAX_STEPS = 8
STEPS = ("send", "answer", "error", "syn", "stray-error")


def _addr(hosts: dict[str, str], name: str) -> str:
    return {"ctr": TOPOLOGY.ctr_ip, "remote": TOPOLOGY.remote_ip, **hosts}[name]


def _packet(step: str, flow: dict[str, Any], hosts: dict[str, str]) -> dict[str, Any]:
    """One step of ``flow`` as a case packet (without delay and race)."""
    client, server = flow["client"], flow["server"]
    c_ip, s_ip, host = _addr(hosts, client), _addr(hosts, server), TOPOLOGY.host_ip
    c_port, s_port = flow["cport"], flow["sport"]
    if step == "syn":
        return {
            "from": client,
            "src": f"{c_ip}:{c_port}",
            "dst": f"{s_ip}:{s_port}",
            "flags": "S",
            "seq": 1000,
            "ack": 0,
            "win": 29200,
            "len": 0,
        }
    if step == "stray-error":
        inner = {"proto": "udp", "src": f"{host}:{c_port + 1000}", "dst": f"{s_ip}:{s_port}"}
        return {
            "from": server,
            "proto": "icmp",
            "src": s_ip,
            "dst": host,
            "type": 3,
            "code": 3,
            "inner": inner,
        }
    if step == "error":
        inner_proto = "udp" if flow["proto"] == "udp" else "tcp"
        inner = {"proto": inner_proto, "src": f"{host}:{c_port}", "dst": f"{s_ip}:{s_port}"}
        return {
            "from": server,
            "proto": "icmp",
            "src": s_ip,
            "dst": host,
            "type": flow["error"][0],
            "code": flow["error"][1],
            "inner": inner,
        }
    if flow["proto"] == "icmp":
        if step == "send":
            return {
                "from": client,
                "proto": "icmp",
                "src": c_ip,
                "dst": s_ip,
                "type": 8,
                "id": flow["id"],
                "seq": 1,
                "len": 56,
            }
        return {
            "from": server,
            "proto": "icmp",
            "src": s_ip,
            "dst": host,
            "type": 0,
            "id": flow["id"],
            "seq": 1,
            "len": 56,
        }
    if step == "send":
        return {
            "from": client,
            "proto": "udp",
            "src": f"{c_ip}:{c_port}",
            "dst": f"{s_ip}:{s_port}",
            "len": 33,
        }
    return {"from": server, "proto": "udp", "src": f"{s_ip}:{s_port}", "dst": f"{host}:{c_port}", "len": 90}


@st.composite
def v2_cases(draw: st.DrawFn, *, seed: int = 0, max_steps: int = MAX_STEPS) -> dict[str, Any]:
    """A replay-contract v2 case (see the module docstring), named ``fuzz-v2-seed<seed>``."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    hosts: dict[str, str] = {}
    if draw(st.booleans()):
        hosts[EXTRA_CTR[0]] = EXTRA_CTR[1]
    if draw(st.booleans()):
        hosts[EXTRA_REMOTE[0]] = EXTRA_REMOTE[1]
    clients = ["ctr", *(n for n in hosts if n.startswith("ctr"))]
    servers = ["remote", *(n for n in hosts if n.startswith("remote"))]
    flow = st.fixed_dictionaries(
        {
            "proto": st.sampled_from(("udp", "icmp")),
            "client": st.sampled_from(clients),
            "server": st.sampled_from(servers),
            "cport": st.sampled_from(CLIENT_PORTS),
            "sport": st.sampled_from(SERVER_PORTS),
            "id": st.sampled_from(ECHO_IDS),
            "error": st.sampled_from(((3, 3), (3, 1), (11, 0), (3, 4))),
        }
    )
    flows = draw(st.lists(flow, min_size=1, max_size=3))
    expiring = draw(st.integers(0, 4)) == 0
    packets: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, max_steps))):
        f = flows[draw(st.integers(0, len(flows) - 1))]
        step = draw(st.sampled_from(STEPS))
        pkt = _packet(step, f, hosts)
        gap = draw(st.sampled_from((FUZZ_GAP_S,) * 6 + (STREAM_GAP_S, EXPIRY_GAP_S)))
        pkt["delay"] = gap if gap != EXPIRY_GAP_S or expiring else FUZZ_GAP_S
        if i and draw(st.integers(0, 3)) == 0:
            pkt["race"], pkt["delay"] = "prev", 0
        packets.append(pkt)
    case: dict[str, Any] = {
        "name": f"fuzz-v2-seed{seed}",
        "kernel": "6.18",
        "description": f"fuzz v2 seed {seed}",
    }
    if hosts:
        case["hosts"] = hosts
    if expiring:
        case["sysctl"] = {"net.netfilter.nf_conntrack_udp_timeout": UDP_TIMEOUT_S}
    case["packets"] = packets
    return case


def live_v2_cases(*, seed: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Every v2 strategy the live kernel can play, each case named ``fuzz-v2-seed<seed>``."""
    from sim.testing.races import racing_cases
    from sim.testing.strategies import icmp_echo_conversations, udp_conversations

    name = f"fuzz-v2-seed{seed}"

    def named(case: dict[str, Any]) -> dict[str, Any]:
        return {**case, "name": name, "description": f"fuzz v2 seed {seed}"}

    return st.one_of(
        v2_cases(seed=seed),
        udp_conversations(max_datagrams=6, max_length=200, max_delay=0.05).map(lambda c: named(c.to_case())),
        icmp_echo_conversations(max_datagrams=6, max_length=200, max_delay=0.05).map(
            lambda c: named(c.to_case())
        ),
        racing_cases().filter(lambda c: "sysctl" not in c).map(named),
    )
