"""libxt_tcp.c: ``-p tcp`` / ``-m tcp`` options (``tcp_parse()``) and their text (``tcp_print()``,
``tcp_save()``)."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError, _ports
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
    for name, (lo, hi), inv in (("spt", m.spts, m.inv_src), ("dpt", m.dpts, m.inv_dst)):
        if (lo, hi) != (0, 0xFFFF) or inv:
            bang = "!" if inv else ""
            out += f" {name}:{bang}{lo}" if lo == hi else f" {name}s:{bang}{lo}:{hi}"
    if m.flg_mask or m.inv_flags:
        out += f" flags:{'!' if m.inv_flags else ''}0x{m.flg_mask:02X}/0x{m.flg_cmp:02X}"
    return out


def tcp_save(m: TcpMatch) -> str:
    """``-m tcp`` and ``tcp_save()``."""
    out = " -m tcp"
    for opt, (lo, hi), inv in (("--sport", m.spts, m.inv_src), ("--dport", m.dpts, m.inv_dst)):
        if (lo, hi) != (0, 0xFFFF) or inv:
            out += f"{' !' if inv else ''} {opt} {lo}" + (f":{hi}" if hi != lo else "")
    if m.flg_mask or m.inv_flags:
        out += f"{' !' if m.inv_flags else ''} --tcp-flags {print_tcpf(m.flg_mask)} {print_tcpf(m.flg_cmp)}"
    return out
