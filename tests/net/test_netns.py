"""sim.net.netns: the fib lookup (local table first, then the longest prefix, as fib_lookup()
consults RT_TABLE_LOCAL before RT_TABLE_MAIN) and device bookkeeping."""

from __future__ import annotations

import pytest

from sim.net.netns import Device, DevKind, Namespace, Route, RouteType


def _host() -> Namespace:
    ns = Namespace("host")
    ns.add_device(Device("docker0", DevKind.BRIDGE, "02:42:00:00:00:01", "172.17.0.1", 16))
    ns.add_device(Device("eth0", DevKind.VETH, "52:54:00:00:00:01", "10.21.17.99", 24))
    ns.routes.append(Route("0.0.0.0", 0, "eth0", via="10.21.17.1"))
    return ns


@pytest.mark.parametrize(
    ("dst", "kind", "dev", "nexthop"),
    [
        ("10.21.17.99", RouteType.LOCAL, None, None),  # an address of the namespace
        ("127.0.0.1", RouteType.LOCAL, None, None),  # the loopback net is local
        ("172.17.0.2", RouteType.UNICAST, "docker0", "172.17.0.2"),  # connected: on-link
        ("10.21.17.5", RouteType.UNICAST, "eth0", "10.21.17.5"),  # /24 beats the default route
        ("36.110.213.207", RouteType.UNICAST, "eth0", "10.21.17.1"),  # default route, via gateway
    ],
)
def test_fib_lookup(dst, kind, dev, nexthop):
    res = _host().fib_lookup(dst)
    assert (res.type, res.dev, res.nexthop) == (kind, dev, nexthop)


def test_no_route_is_unreachable():
    ns = Namespace("ctr")
    ns.add_device(Device("eth0", DevKind.VETH, "02:42:ac:11:00:02", "172.17.0.2", 16))
    assert ns.fib_lookup("8.8.8.8").type is RouteType.UNREACHABLE


def test_devices_are_unique_and_give_their_address():
    ns = _host()
    assert ns.dev_addr("eth0") == "10.21.17.99"
    with pytest.raises(ValueError, match="eth0 exists"):
        ns.add_device(Device("eth0", DevKind.VETH, "52:54:00:00:00:02"))
