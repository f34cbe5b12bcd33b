"""libxt_udp.c: ``-p udp`` / ``-m udp`` options (``udp_parse()``) and their text (``udp_print()``,
``udp_save()``)."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError, _ports
from sim.netfilter.xtables import UdpMatch


def _build_udp(opts: Opts) -> UdpMatch:
    """``udp_parse()`` (libxt_udp.c): ``--sport``/``--dport``, each at most once."""
    kw: dict[str, object] = {}
    for names, key, inv_key in (
        (("--sport", "--source-port"), "spts", "inv_src"),
        (("--dport", "--destination-port"), "dpts", "inv_dst"),
    ):
        given = [n for n in names if n in opts]
        if len(given) > 1:
            raise RuleError(f"{given[1]}: Only one `{names[1]}' allowed")
        if given:
            inv, (value,) = opts.pop(given[0])
            kw[key], kw[inv_key] = _ports(given[0], value), inv
    return UdpMatch(**kw)  # type: ignore[arg-type]


def udp_print(m: UdpMatch) -> str:
    """``udp_print()`` with numeric output."""
    out = " udp"
    for name, (lo, hi), inv in (("spt", m.spts, m.inv_src), ("dpt", m.dpts, m.inv_dst)):
        if (lo, hi) != (0, 0xFFFF) or inv:
            bang = "!" if inv else ""
            out += f" {name}:{bang}{lo}" if lo == hi else f" {name}s:{bang}{lo}:{hi}"
    return out


def udp_save(m: UdpMatch) -> str:
    """``-m udp`` and ``udp_save()``."""
    out = " -m udp"
    for opt, (lo, hi), inv in (("--sport", m.spts, m.inv_src), ("--dport", m.dpts, m.inv_dst)):
        if (lo, hi) != (0, 0xFFFF) or inv:
            out += f"{' !' if inv else ''} {opt} {lo}" + (f":{hi}" if hi != lo else "")
    return out
