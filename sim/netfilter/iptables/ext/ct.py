"""libxt_CT.c: ``-j CT [--notrack]`` and ``-j NOTRACK`` (``CT_parse()``, ``NOTRACK_ct_tg_init()``)
and their text (``CT_print()``, ``CT_save()``, ``CT_print_name_alias()``).

iptables 1.8.9 on the live 6.18 kernel, checked in a namespace: ``-j NOTRACK`` saves as
``-j NOTRACK`` and lists as target ``CT`` with `` NOTRACK``; ``-j CT --notrack`` saves as
``-j CT --notrack`` and lists `` CT notrack``; outside the raw table the kernel refuses both.
"""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError
from sim.netfilter.xt_ct import CtTarget

# ct_opts[] other than "notrack": accepted by iptables, not modelled here
CT_UNMODELLED = (
    "--zone",
    "--ctevents",
    "--expevents",
    "--helper",
    "--timeout",
    "--zone-orig",
    "--zone-reply",
)
CT_OPTIONS = frozenset({"--notrack", *CT_UNMODELLED})


def _build_ct(opts: Opts) -> CtTarget:
    """``CT_parse()``: ``--notrack`` sets XT_CT_NOTRACK; the other options are refused."""
    for opt in CT_UNMODELLED:
        if opt in opts:
            raise RuleError(f"-j CT {opt}: not modelled (only --notrack is)")
    notrack = "--notrack" in opts
    if notrack:
        opts.pop("--notrack")
    return CtTarget(notrack=notrack)


def _build_notrack(opts: Opts) -> CtTarget:
    """``NOTRACK_ct_tg_init()`` (revision 2): XT_CT_NOTRACK | XT_CT_NOTRACK_ALIAS."""
    return CtTarget(notrack=True, alias=True)


def ct_name(t: CtTarget) -> str:
    """``CT_print_name_alias()``: the name iptables-save writes after ``-j``."""
    return "NOTRACK" if t.alias else "CT"


def ct_print(t: CtTarget) -> str:
    """``CT_print()``: `` NOTRACK`` for the alias, else `` CT`` and ``CT_show("")``."""
    if t.alias:
        return " NOTRACK"
    return " CT" + (" notrack" if t.notrack else "")


def ct_save(t: CtTarget) -> str:
    """``CT_save()``: nothing for the alias, else ``CT_show("--")``."""
    return "" if t.alias or not t.notrack else " --notrack"
