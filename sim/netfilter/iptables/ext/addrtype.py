"""libxt_addrtype.c: ``--src-type`` / ``--dst-type`` (LOCAL only) and their text
(``addrtype_print_v1()``, ``addrtype_save_v1()``)."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError
from sim.netfilter.xtables import (
    AddrType,
    AddrTypeMatch,
)


def _build_addrtype(opts: Opts) -> AddrTypeMatch:
    """``addrtype_parse_v1()``; only the LOCAL type is modelled."""
    kw: dict[str, object] = {}
    for opt, key in (("--src-type", "source"), ("--dst-type", "dest")):
        if opt in opts:
            inv, (value,) = opts.pop(opt)
            if value.upper() != "LOCAL":
                raise RuleError(f"{opt} {value!r}: only the LOCAL address type is modelled")
            kw[key], kw[f"invert_{key}"] = AddrType.LOCAL, inv
    if not kw:
        raise RuleError("-m addrtype: you must specify --src-type or --dst-type")
    return AddrTypeMatch(**kw)  # type: ignore[arg-type]


def addrtype_print(m: AddrTypeMatch) -> str:
    """``addrtype_print_v1()``."""
    out = " ADDRTYPE match"
    if m.source:
        out += f" src-type {'!' if m.invert_source else ''}LOCAL"
    if m.dest:
        out += f" dst-type {'!' if m.invert_dest else ''}LOCAL"
    return out


def addrtype_save(m: AddrTypeMatch) -> str:
    """``-m addrtype`` and ``addrtype_save_v1()``."""
    out = " -m addrtype"
    if m.source:
        out += f"{' !' if m.invert_source else ''} --src-type LOCAL"
    if m.dest:
        out += f"{' !' if m.invert_dest else ''} --dst-type LOCAL"
    return out
