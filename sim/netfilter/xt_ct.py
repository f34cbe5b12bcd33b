"""net/netfilter/xt_CT.c: the CT target with ``--notrack`` and its old name NOTRACK
(``xt_ct_target()``, ``notrack_tg()``), restricted to the raw table (``.table = "raw"``).

An untracked packet leaves the raw table with no entry and ``ctinfo`` ``IP_CT_UNTRACKED``
(``nf_ct_set(skb, NULL, IP_CT_UNTRACKED)``; el7 and 4.12+). Upstream 3.10 attaches the shared
untracked template instead; every consumer treats both alike: ``nf_conntrack_in()`` ignores the
packet ("Previously seen (loopback or untracked)?  Ignore.", counting ``ignore`` until 5.10),
NAT and confirmation skip it, and ``--ctstate UNTRACKED`` matches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.include.nf_conntrack import CtInfo
from sim.netfilter.x_tables import RuleAt, XtCode, XtContext

if TYPE_CHECKING:
    from sim.skb import Skb


@dataclass(frozen=True, slots=True)
class CtTarget:
    """``struct xt_ct_target_info``: ``notrack`` is ``XT_CT_NOTRACK``, ``alias`` is
    ``XT_CT_NOTRACK_ALIAS`` (the rule was written ``-j NOTRACK``). Zones, helpers, events and
    timeout policies are not modelled, so a CT without ``--notrack`` is a template that changes
    nothing (``nf_conntrack_in()`` drops a template and tracks the packet as usual)."""

    notrack: bool = False
    alias: bool = False

    def target(self, skb: Skb, ctx: XtContext, at: RuleAt) -> XtCode:
        """``xt_ct_target()`` / ``notrack_tg()``: "Previously seen (loopback)? Ignore." (the skb
        already carries an entry or a ctinfo), else mark it untracked; always XT_CONTINUE."""
        if skb.ct is None and skb.ctinfo is None and self.notrack:
            skb.ctinfo = CtInfo.UNTRACKED
        return XtCode.CONTINUE
