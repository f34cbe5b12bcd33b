"""What a match or a target is handed and what a target answers (include/linux/netfilter/x_tables.h,
include/uapi/linux/netfilter/x_tables.h).

``struct xt_action_param`` becomes the :class:`XtContext` the caller supplies; a target
function's verdict is ``XT_CONTINUE`` (:class:`XtCode`) or the :class:`XtResult` that ends the
walk (the standard target's verdicts, RETURN and jumps included, never reach a function).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple, Protocol

from sim.include.netfilter import NatRequest, RejectRequest, TableName
from sim.netfilter.hooks import NfVerdict

if TYPE_CHECKING:
    from sim.skb import Skb

# A table's verdict is NF_DROP or NF_ACCEPT: the netfilter verdicts of hooks.py.
Verdict = NfVerdict


class XtCode(Enum):
    """A target function's answer that does not end the walk: ``XT_CONTINUE`` (LOG: go on with
    the next rule). ``XT_RETURN`` and jumps are the standard target's verdicts, which
    ``ipt_do_table`` handles without a target function."""

    CONTINUE = "XT_CONTINUE"


class RuleAt(NamedTuple):
    """Where a target runs: the table, the chain and the rule's number (from 1)."""

    table: TableName
    chain: str
    rulenum: int


class XtContext(Protocol):
    """What the caller (the namespace's hook code) supplies to :func:`ipt_do_table`."""

    @property
    def now(self) -> float:
        """Virtual time in seconds (xt_limit turns it into jiffies)."""
        ...

    @property
    def local_addrs(self) -> Container[str]:
        """Addresses configured on this namespace (``inet_addr_type() == RTN_LOCAL``)."""
        ...

    def mac_header(self, skb: Skb) -> str:
        """The link-layer header as ``dump_mac_header()`` prints it (``aa:bb:...``), or ``""``."""
        ...

    def log(self, level: int, line: str, skb: Skb, at: RuleAt) -> None:
        """Record one kernel log line about ``skb`` (``printk`` level 0-7, text without the
        trailing newline) that the LOG rule ``at`` wrote."""
        ...


@dataclass(frozen=True, slots=True)
class XtResult:
    """The outcome of :func:`ipt_do_table`: the verdict, which rule decided (``rulenum`` 0 is
    the chain policy) and at most one request for the caller."""

    verdict: Verdict
    chain: str
    rulenum: int
    nat: NatRequest | None = None
    reject: RejectRequest | None = None
