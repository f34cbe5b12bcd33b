"""libxt_udp.c: ``-p udp`` / ``-m udp`` options (``udp_parse()``) and their text (``udp_print()``,
``udp_save()``)."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, port_options, print_ports, save_ports
from sim.netfilter.xtables import UdpMatch


def _build_udp(opts: Opts) -> UdpMatch:
    """``udp_parse()`` (libxt_udp.c): ``--sport``/``--dport``, each at most once."""
    return UdpMatch(**port_options(opts))  # type: ignore[arg-type]


def udp_print(m: UdpMatch) -> str:
    """``udp_print()`` with numeric output."""
    return " udp" + print_ports((m.spts, m.inv_src, m.dpts, m.inv_dst))


def udp_save(m: UdpMatch) -> str:
    """``-m udp`` and ``udp_save()``."""
    return " -m udp" + save_ports((m.spts, m.inv_src, m.dpts, m.inv_dst))
