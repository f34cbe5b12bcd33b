"""What the device layer and the IPv4/TCP paths ask of the world around them (the role of
``struct net`` and the ``packet_type`` handlers in the kernel).

:mod:`sim.net.dev`, :mod:`sim.net.ipv4` and :mod:`sim.net.tcp_ipv4` take one of these
protocols, never the concrete :class:`sim.net.world.World`, which implements both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Sequence

    from sim.clock import Clock
    from sim.include.netfilter import Hook
    from sim.net.netns import Namespace
    from sim.netfilter.core import Net, NfHookState
    from sim.packet import Packet
    from sim.skb import Skb
    from sim.trace import Trace, Why


class LinkDelay(Protocol):
    """Something that holds a packet on a link a while longer (a scenario's trigger)."""

    def delay(self, ns: str, dev: str, pkt: Packet, pid: int) -> float:
        """Extra seconds packet ``pid`` spends on the link out of ``ns``/``dev`` (0: none)."""
        ...


@dataclass(slots=True)
class Capture:
    """What a capture point saw: (time, direction "in"/"out", packet, packet id)."""

    records: list[tuple[float, str, Packet, int]] = field(default_factory=list)


class NetDev(Protocol):
    """What the device layer (:mod:`sim.net.dev`) asks of the world."""

    crossings: int  # packets counted once per namespace they pass (bench)

    @property
    def clock(self) -> Clock: ...

    @property
    def rng(self) -> random.Random:
        """Link loss, duplication, jitter and reordering draw from it."""
        ...

    @property
    def namespaces(self) -> dict[str, Namespace]: ...

    @property
    def trace(self) -> Trace: ...

    @property
    def triggers(self) -> Sequence[LinkDelay]: ...

    @property
    def capturing(self) -> bool: ...

    @property
    def captures(self) -> dict[tuple[str, str], Capture]:
        """Capture points by (namespace, device); a missing one is made on first use."""
        ...

    def note(
        self, why: Why, ns: Namespace, skb: Skb, *, dev: str | None = None, detail: str | None = None
    ) -> None: ...

    def note_dev(
        self,
        why: Why,
        ns: Net,
        dev: str | None,
        pkt: Packet | None,
        pid: int,
        *,
        detail: str | None = None,
        cause: int | None = None,
        rule_text: str | None = None,
        sent: bool = False,
    ) -> None: ...

    # The IPv4 ``packet_type`` handler (``ip_packet_type.func``): a frame for IP goes up to
    # ``ip_rcv()``. The world registers it, as ``dev_add_pack()`` does.
    ip_rcv: Callable[[Namespace, Skb], None]


class Ipv4Stack(NetDev, Protocol):
    """What the IPv4 paths and TCP, UDP and ICMP receive ask of the world, besides the device
    layer."""

    hold_pid: int | None  # the packet a race holds in a queue before its confirmation

    def hook_state(self, ns: Namespace, hook: Hook) -> NfHookState:
        """The ``nf_hook_state`` netfilter runs ``hook`` of ``ns`` with."""
        ...

    def deliver_to_socket(self, ns: Namespace, sk: Any, pkt: Packet, pid: int) -> None:
        """Hand a segment to its socket and send what the socket answers."""
        ...

    def emit_local(self, net: Net, pkt: Packet, cause: int, why: Why) -> int:
        """Send a packet the kernel builds itself (a RST) through ``ip_local_out``."""
        ...
