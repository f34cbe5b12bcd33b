"""The real-kernel harness behind ``nflab kernel-check``: the docker-bridge world in namespaces.

Public API::

    skip_reason() -> str | None            why the harness cannot run here (not root, no tools)
    Topology(ctr_ip, bridge_ip, host_ip, remote_ip, hosts)
    Testbed(topology).open()/close()/reset()/send(side, packet)   (also a context manager)
    run_case(case, testbed=None) -> list[dict]   one observation per crafted packet (contract
                                           v1 and v2: UDP, ICMP, extra hosts, race: "prev")
    CaseError                              a refused case (one-line message)

Everything runs in namespaces named ``nflab-<pid>-<random>-{ctr,host,remote,xa,xb,…}`` (the
``x…`` ones are the case's extra hosts); nothing is changed in the root namespace. See
:mod:`sim.kernel.testbed` for the world and the race holds, :mod:`sim.kernel.observe` for
what each observation field is read from, :mod:`sim.kernel.craft` for UDP/ICMP on the wire and
:mod:`sim.testing.live_cases` for ``kernel-check --fuzz N --v2``.
"""

from sim.kernel.netns import NetnsError, skip_reason
from sim.kernel.nflog import NetlinkError
from sim.kernel.testbed import Testbed, run_case
from sim.scenario.case import CaseError, Topology, parse_case

__all__ = [
    "CaseError",
    "NetlinkError",
    "NetnsError",
    "Testbed",
    "Topology",
    "parse_case",
    "run_case",
    "skip_reason",
]
