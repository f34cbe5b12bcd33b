"""nflab: a userspace model of Linux netfilter (conntrack, tcp_in_window, NAT, iptables) around
one production incident: a late reply segment is INVALID in conntrack, skips NAT, and the host's
own stack answers it with a RST only the remote sees.

The layers, each importing only the ones above it:

- ``sim.clock``, ``sim.packet``, ``sim.wire``, ``sim.skb``, ``sim.trace``: virtual time, frozen
  IPv4/TCP packets and their bytes, the per-packet ``sk_buff`` envelope, the one trace channel.
- ``sim.netfilter``: the kernel's netfilter code as data and pure functions -- the hook core
  (``core``: registration and ``nf_hook_slow``; ``hooks``: verdicts and priorities), conntrack
  and its TCP tracker (``conntrack``, ``proto_tcp``, ``tcp_states``, ``profiles``), NAT
  (``nat``), ``ipt_do_table`` with its matches (``xtables``), the REJECT and LOG targets
  (``reject``, ``log``), the iptables tools (``iptables/``) and the ops a namespace registers
  (``ops``). Netfilter sees the stack only through ``core.Stack``.
- ``sim.net``: namespaces, the IPv4 paths, sockets and TCP endpoints, and the world joining
  them by links.
- ``sim.topology``: the docker-bridge preset with Docker's ruleset.
- ``sim.scenario``: the one way in (``loader``), scenario files, crafted-packet cases and their
  replay, the host configuration (``host``) and the two fixes (``fixes``).
- ``sim.report``: what is read off a run -- the trace's sentences (``sentences``), timeline,
  captures, walkthrough, exercises, figures.
- ``sim.pcap``: real captures read, tracked per kernel and explained (``nflab pcap``), beside
  ``sim.report`` (it imports no report module).
- ``sim.kernel``: the same cases against the real kernel in network namespaces.
- ``sim.cli``, ``sim.bench``: the ``nflab`` command.

The public API below is imported on first use, so ``import sim.packet`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.net.world import World
    from sim.packet import Packet, TcpFlag, TcpOptions
    from sim.scenario.case import CaseError, load_case_file, parse_case
    from sim.scenario.replay import replay_case, run_world
    from sim.scenario.scenario import Run, Scenario, ScenarioError, load_scenario, run_scenario
    from sim.topology.docker_bridge import DockerBridge, docker_bridge
    from sim.trace import Step, Trace, TraceEvent

_API = {
    "World": "sim.net.world",
    "Packet": "sim.packet",
    "TcpFlag": "sim.packet",
    "TcpOptions": "sim.packet",
    "CaseError": "sim.scenario.case",
    "load_case_file": "sim.scenario.case",
    "parse_case": "sim.scenario.case",
    "replay_case": "sim.scenario.replay",
    "run_world": "sim.scenario.replay",
    "Run": "sim.scenario.scenario",
    "Scenario": "sim.scenario.scenario",
    "ScenarioError": "sim.scenario.scenario",
    "load_scenario": "sim.scenario.scenario",
    "run_scenario": "sim.scenario.scenario",
    "DockerBridge": "sim.topology.docker_bridge",
    "docker_bridge": "sim.topology.docker_bridge",
    "Step": "sim.trace",
    "Trace": "sim.trace",
    "TraceEvent": "sim.trace",
}
__all__ = [
    "CaseError",
    "DockerBridge",
    "Packet",
    "Run",
    "Scenario",
    "ScenarioError",
    "Step",
    "TcpFlag",
    "TcpOptions",
    "Trace",
    "TraceEvent",
    "World",
    "docker_bridge",
    "load_case_file",
    "load_scenario",
    "parse_case",
    "replay_case",
    "run_scenario",
    "run_world",
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
