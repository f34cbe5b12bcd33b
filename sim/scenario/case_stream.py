"""Reading a crafted-packet case for ``nflab replay`` without holding its packets: memory flat
in their number (issue 21).

A JSON case is read twice, one packet at a time (:func:`sim.scenario.loader.json_members`):
a first pass checks every packet as :func:`sim.scenario.case.parse_case` does and counts
them, so that a bad case is refused before anything runs, exactly as when it is read whole;
the replay then reads the packets again as it sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.scenario.case import (
    CaseError,
    CasePacket,
    Topology,
    load_case_file,
    packet_from_case,
    parse_head,
    strip_comments,
)
from sim.scenario.loader import NotStreamable, json_members


@dataclass(frozen=True, slots=True)
class CaseStream:
    """A checked case whose packets are read again, one at a time, each time they are needed
    (``nflab replay`` in memory flat in the number of packets): ``head`` is the case without
    its ``packets``, ``count`` their number, ``entries`` reads them from the start."""

    head: dict[str, Any]
    count: int
    entries: Callable[[], Iterator[object]]

    @classmethod
    def of(cls, case: dict[str, Any]) -> CaseStream:
        """A case already in memory (checked)."""
        packets = case["packets"]
        return cls({k: v for k, v in case.items() if k != "packets"}, len(packets), lambda: iter(packets))

    def packets(self) -> Iterator[CasePacket]:
        """The packets, each checked as :func:`sim.scenario.case.parse_case` checks it;
        CaseError when the file no longer holds what :func:`open_case_file` checked."""
        hosts = parse_head(self.head)[0].host_names
        n = 0
        for n, entry in enumerate(self.entries(), 1):
            yield packet_from_case(strip_comments(entry), n - 1, hosts)
        if n != self.count:
            raise CaseError(f"the file changed during the replay: {n} packets, not {self.count}")


def open_case_file(path: str | Path) -> CaseStream:
    """:func:`sim.scenario.case.load_case_file` without holding the packets: a JSON case is
    checked in one pass that reads one packet at a time (:func:`sim.scenario.loader.json_members`)
    and its packets are read again as they are replayed. A TOML case is read whole (tomllib parses whole
    documents only), as is a JSON file the pass refuses or cannot judge alone (not an object,
    bad syntax or UTF-8, a bad field, ``packets`` given twice, ``hosts`` after the packets
    that name them): :func:`load_case_file` then names the file and the place exactly as
    before, or reads the case it accepts."""
    path = Path(path)
    if path.suffix != ".toml":
        try:
            head, count = _scan(path)
        except (NotStreamable, CaseError, OSError):
            pass
        else:
            return CaseStream(head, count, lambda: _entries(path))
    return CaseStream.of(load_case_file(path))


def _scan(path: Path) -> tuple[dict[str, Any], int]:
    """The first pass of :func:`open_case_file`: the case without its packets, and their number,
    every packet checked and forgotten."""
    head: dict[str, Any] = {}
    count = streamed = 0
    hosts = Topology().host_names
    for key, value, element in json_members(path, "packets"):
        if element:
            packet_from_case(strip_comments(value), count, hosts)
            count += 1
        elif key == "packets":
            streamed += 1
            if not isinstance(value, list):
                raise NotStreamable
        else:
            head[key] = value
            if key == "hosts" and isinstance(value, dict):  # parse_head checks the names
                hosts = {**Topology().host_names, **value}
    if streamed != 1 or not count:
        raise NotStreamable  # no packets, or two lists: json.loads keeps the last
    parse_head(head)
    return head, count


def _entries(path: Path) -> Iterator[object]:
    """The packets of the case file ``path``, read one at a time."""
    try:
        for _key, value, element in json_members(path, "packets"):
            if element:
                yield value
    except (NotStreamable, OSError):
        raise CaseError("the file changed during the replay: it no longer reads as a case") from None
