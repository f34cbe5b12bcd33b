"""(a) The docker-bridge world's graph and the host's MASQUERADE rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.net.world import World
from sim.netfilter.iptables.save import iptables_save
from sim.report.figures.seed import seed_scenario
from sim.report.figures.svg import Svg
from sim.topology.docker_bridge import docker_bridge
from sim.topology.roles import NsRole

WIDTH = 740
DEV_W, DEV_H = 170.0, 54.0
NS_PAD = 16.0
ROW_H = 96.0


@dataclass(frozen=True, slots=True)
class _Placed:
    x: float
    y: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x, self.y + DEV_H / 2)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + DEV_W, self.y + DEV_H / 2)


def _edges(graph: Any, kind: str) -> list[tuple[str, str]]:
    """The edges of one kind, each with its ends in name order (an undirected graph's edge has
    no direction; its ends come in the order the nodes were met)."""
    return [(min(str(a), str(b)), max(str(a), str(b))) for a, b, k in graph.edges(data="kind") if k == kind]


def _topology_columns(graph: Any) -> tuple[list[str], list[str], list[str], list[str]]:
    """Containers (namespaces whose device is linked to a bridge port), the host's bridge ports,
    the host's bridges and the rest: one column each, left to right."""
    ports = sorted({a if graph.nodes[a]["kind"] != "bridge" else b for a, b in _edges(graph, "port")})
    bridges = sorted(n for n, k in graph.nodes(data="kind") if k == "bridge")
    linked = {b if a in ports else a for a, b in _edges(graph, "link") if a in ports or b in ports}
    containers = sorted({str(n).split("/")[0] for n in linked})
    return containers, ports, bridges, sorted({str(n).split("/")[0] for n in graph.nodes} - {NsRole.HOST})


def _device(svg: Svg, node: str, attrs: dict[str, Any], at: _Placed, prefix: int | None) -> None:
    kind = str(attrs.get("kind"))
    svg.rect(at.x, at.y, DEV_W, DEV_H, "bridge" if kind == "bridge" else "dev", rx=5.0)
    svg.text(at.x + DEV_W / 2, at.y + 18, f"{node.split('/')[1]} ({kind})", anchor="middle")
    addr = attrs.get("addr")
    shown = f"{addr}/{prefix}" if addr else "no address"
    svg.text(at.x + DEV_W / 2, at.y + 38, shown, "mono", anchor="middle")


def _prefix(world: World, node: str) -> int | None:
    ns, dev = node.split("/")
    return world.namespaces[ns].devices[dev].prefix


def _place(graph: Any) -> tuple[dict[str, _Placed], dict[str, tuple[float, float, float, float]]]:
    """Device positions and namespace boxes (x, y, w, h), in two rows so that the figure stays
    narrow enough to read inline: containers, bridge ports and bridges on top; below the bridge
    the host's uplink, and to its left the remote(s), the way the packets turn."""
    containers, ports, bridges, others = _topology_columns(graph)
    remotes = [n for n in others if n not in containers]
    top = 70.0
    cols = {"ctr": 24.0, "port": 270.0, "bridge": 536.0}
    pos: dict[str, _Placed] = {}
    for i, node in enumerate(ports):
        pos[node] = _Placed(cols["port"], top + 40 + i * ROW_H)
    for i, node in enumerate(bridges):
        pos[node] = _Placed(cols["bridge"], top + 40 + i * ROW_H)
    for i, ns in enumerate(containers):
        for node in sorted(graph.neighbors(ns)):
            pos[node] = _Placed(cols["ctr"], top + 40 + i * ROW_H)
    upper = max(len(containers), len(ports), len(bridges), 1)
    below = top + 40 + upper * ROW_H + 70  # the uplink row, under the routing arrow
    host_rest = sorted(n for n in graph.neighbors(NsRole.HOST) if n not in pos)
    for i, node in enumerate(host_rest):
        pos[node] = _Placed(cols["bridge"], below + i * ROW_H)
    for i, ns in enumerate(remotes):
        for node in sorted(graph.neighbors(ns)):
            pos[node] = _Placed(cols["ctr"], below + i * ROW_H)
    host_x = cols["port"] - NS_PAD
    bottom = below + max(len(host_rest), len(remotes), 1) * ROW_H - 30
    boxes: dict[str, tuple[float, float, float, float]] = {
        NsRole.HOST: (host_x, top, cols["bridge"] + DEV_W + NS_PAD - host_x, bottom - top)
    }
    for column, names, y0 in (("ctr", containers, top), ("ctr", remotes, below - 40)):
        for i, ns in enumerate(names):
            boxes[ns] = (cols[column] - NS_PAD, y0 + 14 + i * ROW_H, DEV_W + 2 * NS_PAD, ROW_H - 12)
    return pos, boxes


def _masquerade_line(world: World) -> str:
    lines = iptables_save(world.namespaces[NsRole.HOST].ruleset, counters=False).splitlines()
    return next((line for line in lines if "MASQUERADE" in line), "(no MASQUERADE rule)")


def topology_svg(world: World | None = None) -> str:
    """Figure (a): the docker-bridge world as the model builds it (``world.graph``)."""
    if world is None:
        world = docker_bridge(seed_scenario().topology)
    graph = world.graph
    pos, boxes = _place(graph)
    height = int(max(y + h for _, y, _, h in boxes.values()) + 120)
    svg = Svg(WIDTH, height, "docker-bridge topology")
    svg.text(20, 28, "The docker-bridge world (seed-incident addresses)", "title")
    svg.text(
        20, 48, "namespaces are boxes, devices carry their addresses (sim.topology.docker_bridge)", "small"
    )
    for ns, (x, y, w, h) in sorted(boxes.items()):
        svg.rect(x, y, w, h, "ns", rx=8.0)
        svg.text(x + 8, y + 16, f"netns {ns}", "small")
    for a, b in sorted(_edges(graph, "link")):
        left, right = sorted((pos[a], pos[b]), key=lambda p: p.x)
        svg.line(*left.right, *right.left, "link")
        label = "veth pair" if _is_port(graph, a) or _is_port(graph, b) else "wire"
        svg.text((left.right[0] + right.left[0]) / 2, left.right[1] - 8, label, "small", anchor="middle")
    for a, b in sorted(_edges(graph, "port")):
        left, right = sorted((pos[a], pos[b]), key=lambda p: p.x)
        svg.line(*left.right, *right.left, "port")
        svg.text(
            (left.right[0] + right.left[0]) / 2, left.right[1] - 8, "bridge port", "small", anchor="middle"
        )
    _routing(svg, world, pos)
    for node, at in sorted(pos.items()):
        _device(svg, node, dict(graph.nodes[node]), at, _prefix(world, node))
    base = height - 70
    svg.text(20, base, "host nat POSTROUTING (Docker's ruleset):", "small")
    svg.text(20, base + 18, _masquerade_line(world), "mono")
    svg.text(20, base + 38, "replies to the masqueraded port come back to the host's eth0 address;", "small")
    svg.text(20, base + 56, "only conntrack's NAT sends them on to the container", "small")
    return svg.render()


def _routing(svg: Svg, world: World, pos: dict[str, _Placed]) -> None:
    """The host's IP forwarding between docker0 and eth0: a path, not a graph edge."""
    bridge, uplink = pos.get("host/docker0"), pos.get("host/eth0")
    if bridge is None or uplink is None:
        return
    x = bridge.x + DEV_W / 2
    svg.line(x, bridge.y + DEV_H, x, uplink.y, "route")
    forward = "ip_forward=1" if world.namespaces[NsRole.HOST].ip_forward else "ip_forward=0"
    mid = (bridge.y + DEV_H + uplink.y) / 2
    svg.text(x - 10, mid - 4, f"routed ({forward}):", "small", anchor="end")
    svg.text(x - 10, mid + 14, "netfilter hooks, conntrack, NAT", "small", anchor="end")


def _is_port(graph: Any, node: str) -> bool:
    return any(node in edge for edge in _edges(graph, "port"))
