"""The one trace channel: every decision the model makes, with its reason and numbers.

The CLI, the TUI, captures, the tests and the kernel comparison all read these events. Each
packet that enters the world gets a packet id (``pid``); a packet the world creates in answer
(a RST, a REJECT) carries the id of the packet that caused it (``cause``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sim.packet import Packet


class Step(Enum):
    """What kind of decision an event records."""

    SEND = "send"  # a packet enters the world (crafted, or from an endpoint)
    XMIT = "xmit"  # leaves a device onto a link
    RECV = "recv"  # arrives on a device
    BRIDGE = "bridge"  # the bridge passes a frame up or out of a port
    CONNTRACK = "conntrack"  # nf_conntrack_in / confirm
    TABLE = "table"  # an iptables table's verdict
    NAT = "nat"  # a NAT hook: binding, translation, or skipped
    ROUTE = "route"  # fib lookup: LOCAL / FORWARD / UNREACHABLE
    SOCKET = "socket"  # tcp_v4_rcv's socket lookup
    RST = "rst"  # tcp_v4_send_reset / REJECT built a packet
    DELIVER = "deliver"  # handed to a socket or captured by a passive host
    DROP = "drop"  # the packet's life ends here
    LOG = "log"  # a kernel log line (LOG target, conntrack invalid log)


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One decision. ``why`` says it in plain words; ``data`` holds the numbers."""

    t: float
    pid: int
    step: Step
    ns: str
    dev: str | None = None
    hook: str | None = None
    priority: int | None = None
    table: str | None = None
    chain: str | None = None
    rule: int | None = None
    verdict: str | None = None
    before: Packet | None = None
    after: Packet | None = None
    why: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    cause: int | None = None


class Trace:
    """An append-only list of events; switch ``enabled`` off for speed (benchmarks)."""

    __slots__ = ("enabled", "events")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.events: list[TraceEvent] = []

    def add(self, event: TraceEvent) -> None:
        self.events.append(event)

    def for_packet(self, pid: int) -> list[TraceEvent]:
        return [e for e in self.events if e.pid == pid]

    def caused_by(self, pid: int) -> list[int]:
        """Ids of the packets the world sent because of packet ``pid``."""
        return sorted({e.pid for e in self.events if e.cause == pid and e.step is Step.SEND})
