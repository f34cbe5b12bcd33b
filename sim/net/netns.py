"""A network namespace: devices, addresses, routes, sysctls, netfilter state, sockets
(include/net/net_namespace.h, net/ipv4/fib_*.c for the route lookup)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from sim.netfilter.conntrack import ConntrackTable
from sim.netfilter.core import NfHooks
from sim.netfilter.xtables import Ruleset
from sim.packet import in_subnet

if TYPE_CHECKING:
    pass


class DevKind(Enum):
    VETH = "veth"
    BRIDGE = "bridge"


@dataclass(slots=True)
class Device:
    """A net_device. A veth has a ``peer`` (namespace, device); a bridge port a ``master``."""

    name: str
    kind: DevKind
    mac: str
    addr: str | None = None
    prefix: int = 32
    peer: tuple[str, str] | None = None
    master: str | None = None
    # further stations on the same Ethernet segment, by address (several remotes on the uplink);
    # ``peer`` is the one frames for any other address go to
    stations: dict[str, tuple[str, str]] = field(default_factory=dict)
    # link impairments on the way out of this device (seconds, probabilities)
    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0


class RouteType(Enum):
    """``RTN_LOCAL`` / ``RTN_UNICAST`` / ``RTN_UNREACHABLE`` as the fib lookup answers."""

    LOCAL = "LOCAL"
    UNICAST = "UNICAST"
    UNREACHABLE = "UNREACHABLE"


# The route types under their kernel names, for the per-packet paths:
# on Python 3.11 reading a member as a class attribute goes through EnumType.__getattr__'s
# slow hook (about 900 machine instructions; a module global costs a few).
RTN_LOCAL, RTN_UNICAST, RTN_UNREACHABLE = RouteType.LOCAL, RouteType.UNICAST, RouteType.UNREACHABLE


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the main table: ``ip route add NET/PREFIX [via GW] dev DEV``."""

    net: str
    prefix: int
    dev: str
    via: str | None = None


@dataclass(frozen=True, slots=True)
class FibResult:
    type: RouteType
    dev: str | None = None
    nexthop: str | None = None  # the neighbour to hand the frame to
    route: Route | None = None


_FIB_LOCAL, _FIB_UNREACHABLE = FibResult(RTN_LOCAL), FibResult(RTN_UNREACHABLE)


@dataclass(slots=True)
class Namespace:
    """One network namespace. ``passive`` end hosts capture what reaches them and never answer
    (the crafted-packet contract); others hand TCP to their sockets."""

    name: str
    devices: dict[str, Device] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    ip_forward: bool = False
    passive: bool = False
    # tcp_v4_send_reset for segments without a socket; False models a stateful firewall in
    # front of the stack that silently drops segments of connections it does not know
    reset_unknown: bool = True
    conntrack: ConntrackTable | None = None
    ruleset: Ruleset = field(default_factory=Ruleset)
    hooks: NfHooks = field(default_factory=NfHooks)
    sockets: dict[tuple[str, int, str, int], Any] = field(default_factory=dict)
    listeners: dict[int, Any] = field(default_factory=dict)
    local_addrs: set[str] = field(default_factory=set)
    log: list[tuple[float, str]] = field(default_factory=list)  # the kernel log: (time, text)

    def add_device(self, dev: Device) -> Device:
        if dev.name in self.devices:
            raise ValueError(f"{self.name}: device {dev.name} exists")
        self.devices[dev.name] = dev
        if dev.addr is not None:
            self.local_addrs.add(dev.addr)
            self.routes.append(Route(dev.addr, dev.prefix, dev.name))  # the connected route
        return dev

    def fib_lookup(self, dst: str) -> FibResult:
        """``fib_lookup()``: local addresses first (the local table), then the longest prefix."""
        if dst in self.local_addrs or dst.startswith("127."):
            return _FIB_LOCAL
        best: Route | None = None
        for r in self.routes:
            if in_subnet(dst, r.net, r.prefix) and (best is None or r.prefix > best.prefix):
                best = r
        if best is None:
            return _FIB_UNREACHABLE
        return FibResult(RTN_UNICAST, best.dev, best.via or dst, best)

    def dev_addr(self, dev: str) -> str | None:
        """``inet_select_addr()``: the device's primary address (MASQUERADE's new source)."""
        return self.devices[dev].addr


def dmesg(log: list[tuple[float, str]]) -> list[str]:
    """The kernel log as ``dmesg`` prints it: ``[seconds.micros] text``."""
    return [f"[{t:12.6f}] {text}" for t, text in log]
