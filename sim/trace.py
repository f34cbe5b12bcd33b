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
    """The events in order, indexed by packet id, so a packet's events and the packets it
    caused are found without scanning the trace.

    ``enabled`` off records nothing (benchmarks). ``keep`` off keeps no ordered list, only the
    per-packet index, from which a streaming reader removes each packet once it has read it
    (:meth:`forget`): memory then stays flat however long the run.
    """

    __slots__ = ("_by_pid", "_children", "enabled", "events", "keep")

    def __init__(self, enabled: bool = True, keep: bool = True) -> None:
        self.enabled = enabled
        self.keep = keep
        self.events: list[TraceEvent] = []
        self._by_pid: dict[int, list[TraceEvent]] = {}
        self._children: dict[int, list[int]] = {}

    def add(self, event: TraceEvent) -> None:
        if self.keep:
            self.events.append(event)
        mine = self._by_pid.get(event.pid)
        if mine is None:
            self._by_pid[event.pid] = [event]
        else:
            mine.append(event)
        if event.cause is not None and event.step is Step.SEND:
            self._children.setdefault(event.cause, []).append(event.pid)

    def for_packet(self, pid: int) -> list[TraceEvent]:
        """Packet ``pid``'s events, in the order they happened."""
        return self._by_pid.get(pid, [])

    def caused_by(self, pid: int) -> list[int]:
        """Ids of the packets the world sent because of packet ``pid``, in the order sent."""
        return self._children.get(pid, [])

    def forget(self, pid: int) -> None:
        """Drop packet ``pid`` and everything it caused from the index."""
        self._by_pid.pop(pid, None)
        for child in self._children.pop(pid, ()):
            self.forget(child)
