"""(d) The packet flow of one host for the lecture: the five IPv4 hooks with the ops the model
registers on each (``net->nf.hooks_ipv4``, :func:`sim.netfilter.ops.register_host_ops`), in
priority order, the routing decision and the local stack, and the late ACK's path through them."""

from __future__ import annotations

from sim.net.world import World
from sim.netfilter.hooks import Priority
from sim.report.figures.seed import seed_scenario
from sim.report.figures.svg import Svg
from sim.skb import Hook
from sim.topology.docker_bridge import docker_bridge

WIDTH, HEIGHT = 920, 580
BOX_W, LINE_H = 220.0, 22.0
# where each hook's box goes (x, y): the classic picture, forward path on top, local below
PLACES = {
    Hook.PRE_ROUTING: (20.0, 90.0),
    Hook.FORWARD: (420.0, 90.0),
    Hook.POST_ROUTING: (668.0, 90.0),
    Hook.LOCAL_IN: (205.0, 330.0),
    Hook.LOCAL_OUT: (668.0, 330.0),
}
CHAIN = {
    Hook.PRE_ROUTING: "PREROUTING",
    Hook.LOCAL_IN: "INPUT",
    Hook.FORWARD: "FORWARD",
    Hook.LOCAL_OUT: "OUTPUT",
    Hook.POST_ROUTING: "POSTROUTING",
}
ROUTE = (260.0, 120.0, 110.0, 56.0)  # the routing decision's box
STACK = (462.0, 350.0, 176.0, 76.0)  # the local stack's box


def _entry(priority: int, name: str) -> tuple[str, str]:
    """``("-200", "conntrack")``: one op as the figure lists it (the NAT kind by its priority)."""
    shown = "INT_MAX" if priority == Priority.CONNTRACK_CONFIRM else str(priority)
    if name == "nat":
        name = "nat (DNAT)" if priority == Priority.NAT_DST else "nat (SNAT)"
    elif name == "confirm":
        name = "conntrack confirm"
    return shown, name


def _box_height(n: int) -> float:
    return 34 + n * LINE_H


def _paths(svg: Svg, boxes: dict[Hook, tuple[float, float, float]]) -> None:
    """The arrows between the boxes (drawn first, so the boxes cover their ends) and, in red,
    the late ACK's path and the RST's."""
    rx, ry, rw, rh = ROUTE
    sy = STACK[1]
    pre_y = boxes[Hook.PRE_ROUTING][1]
    inp_x, inp_y, _ = boxes[Hook.LOCAL_IN]
    out_x, out_y, _ = boxes[Hook.LOCAL_OUT]
    post_x, post_y, post_h = boxes[Hook.POST_ROUTING]
    top = pre_y + 30  # the forward path's height
    mid = rx + rw / 2
    svg.line(0, top, WIDTH, top, "link")
    svg.line(mid, ry + rh, mid, inp_y, "link")
    svg.line(inp_x + BOX_W, sy + 30, out_x, sy + 30, "link")
    svg.line(out_x + BOX_W / 2, out_y, post_x + BOX_W / 2, post_y + post_h, "link")
    svg.text(2, top - 8, "in", "small")
    svg.text(WIDTH - 2, top - 8, "out", "small", anchor="end")
    svg.text(mid + 8, (ry + rh + inp_y) / 2 + 4, "local", "small")
    # the late ACK (3.10): INVALID at -200, nat skipped, LOCAL, no socket, RST out through OUTPUT
    svg.path([(0.0, top + 8), (mid - 8, top + 8), (mid - 8, inp_y + 20)], "rst")
    svg.path([(inp_x + BOX_W, sy + 50), (out_x, sy + 50)], "rst")
    svg.path([(out_x + BOX_W / 2 + 8, out_y), (post_x + BOX_W / 2 + 8, post_y + post_h)], "rst")
    svg.path([(post_x + BOX_W, top + 8), (float(WIDTH), top + 8)], "rst")


def packet_flow_svg(world: World | None = None) -> str:
    """Figure (d): the host's hooks as the model registers them, with the late ACK's path."""
    if world is None:
        world = docker_bridge(seed_scenario().topology)
    entries = world.namespaces["host"].hooks.entries
    svg = Svg(WIDTH, HEIGHT, "netfilter packet flow on the Docker host")
    svg.text(20, 30, "Netfilter on the Docker host: hooks, tables, priorities", "title")
    svg.text(
        20, 54, "each box runs its entries top to bottom, lowest priority first (the model's hooks)", "small"
    )
    boxes = {hook: (x, y, _box_height(len(entries.get(hook, [])))) for hook, (x, y) in PLACES.items()}
    rx, ry, rw, rh = ROUTE
    sx, sy, sw, sh = STACK
    _paths(svg, boxes)
    for hook, (x, y, h) in boxes.items():
        svg.rect(x, y, BOX_W, h, "ns", rx=6.0)
        svg.text(x + 10, y + 22, CHAIN[hook], "title")
        for i, op in enumerate(entries.get(hook, [])):
            cls = "mono red" if hook is Hook.PRE_ROUTING and op.name == "conntrack" else "mono"
            priority, name = _entry(op.priority, op.name)
            svg.text(x + 76, y + 46 + i * LINE_H, priority, cls, anchor="end")
            svg.text(x + 84, y + 46 + i * LINE_H, name, cls)
    svg.rect(rx, ry, rw, rh, "bridge", rx=6.0)
    svg.text(rx + rw / 2, ry + 24, "routing", anchor="middle")
    svg.text(rx + rw / 2, ry + 44, "decision", anchor="middle")
    svg.rect(sx, sy, sw, sh, "dev", rx=6.0)
    svg.text(sx + sw / 2, sy + 24, "local stack", anchor="middle")
    svg.text(sx + sw / 2, sy + 46, "tcp_v4_rcv()", "mono", anchor="middle")
    svg.text(sx + sw / 2, sy + 66, "sockets", "small", anchor="middle")
    svg.text(
        20, 500, "red: the late ACK of lesson 5 (3.10). conntrack calls it INVALID at PREROUTING -200,", "red"
    )
    svg.text(
        20,
        520,
        "nat skips it (no entry), routing says LOCAL, tcp_v4_rcv() finds no socket and answers",
        "red",
    )
    svg.text(
        20,
        540,
        "with a RST, which leaves through OUTPUT and POSTROUTING. Fix 1: DROP in filter INPUT 0;",
        "red",
    )
    svg.text(20, 560, "fix 2: be_liberal, at conntrack -200. A FORWARD rule never sees the late ACK.", "red")
    return svg.render()
