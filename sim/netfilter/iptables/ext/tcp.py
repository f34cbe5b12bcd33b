"""libxt_tcp.c: ``-p tcp`` / ``-m tcp`` options (``tcp_parse()``) and their text (``tcp_print()``,
``tcp_save()``)."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError, port_options, print_ports, save_ports
from sim.netfilter.xtables import (
    TcpMatch,
)
from sim.packet import TcpFlag

# libxt_tcp.c tcp_flag_names[]: the six flags iptables knows by name, ALL and NONE
TCP_FLAG_NAMES = {
    **{flag.name or "": int(flag) for flag in TcpFlag if flag <= TcpFlag.URG},
    "ALL": 0x3F,
    "NONE": 0,
}


def _tcp_flags(opt: str, text: str) -> int:
    """``parse_tcp_flag()``: comma-separated names, case-insensitive."""
    bits = 0
    for name in text.split(","):
        if name.upper() not in TCP_FLAG_NAMES:
            raise RuleError(f"{opt} {text!r}: Unknown TCP flag `{name}'")
        bits |= TCP_FLAG_NAMES[name.upper()]
    return bits


def _build_tcp(opts: Opts) -> TcpMatch:
    """``tcp_parse()`` (libxt_tcp.c)."""
    kw = port_options(opts)
    if "--syn" in opts and "--tcp-flags" in opts:
        raise RuleError("--syn: Only one of `--syn' or `--tcp-flags'  allowed")
    if "--syn" in opts:
        inv, _ = opts.pop("--syn")
        kw.update(flg_mask=0x17, flg_cmp=0x02, inv_flags=inv)  # "SYN,RST,ACK,FIN" "SYN"
    if "--tcp-flags" in opts:
        inv, (mask, comp) = opts.pop("--tcp-flags")
        kw.update(
            flg_mask=_tcp_flags("--tcp-flags", mask), flg_cmp=_tcp_flags("--tcp-flags", comp), inv_flags=inv
        )
    return TcpMatch(**kw)  # type: ignore[arg-type]


def print_tcpf(flags: int) -> str:
    """``print_tcpf()``: each set flag's name in ``tcp_flag_names[]`` order, or NONE."""
    names = []
    while flags:
        name, bit = next((n, b) for n, b in TCP_FLAG_NAMES.items() if flags & b)
        names.append(name)
        flags &= ~bit
    return ",".join(names) or "NONE"


def tcp_print(m: TcpMatch) -> str:
    """``tcp_print()`` with numeric output."""
    out = " tcp"
    out += print_ports((m.spts, m.inv_src, m.dpts, m.inv_dst))
    if m.flg_mask or m.inv_flags:
        out += f" flags:{'!' if m.inv_flags else ''}0x{m.flg_mask:02X}/0x{m.flg_cmp:02X}"
    return out


def tcp_save(m: TcpMatch) -> str:
    """``-m tcp`` and ``tcp_save()``."""
    out = " -m tcp"
    out += save_ports((m.spts, m.inv_src, m.dpts, m.inv_dst))
    if m.flg_mask or m.inv_flags:
        out += f"{' !' if m.inv_flags else ''} --tcp-flags {print_tcpf(m.flg_mask)} {print_tcpf(m.flg_cmp)}"
    return out
