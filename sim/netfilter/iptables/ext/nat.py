"""libxt_NAT.c and libxt_MASQUERADE.c: ``--to-source``, ``--to-destination``, ``--to-ports`` and
the port-choice flags (``parse_to()``, ``parse_ports()``), and their text (``__NAT_print()``)."""

from __future__ import annotations

from sim.include.netfilter import NatKind, NatRange, NatRangeFlag, NatRequest
from sim.netfilter.iptables.parse import Opts, RuleError, _ip, _port
from sim.netfilter.xtables import NatTarget


def _nat_ports(opt: str, text: str, rng: NatRange) -> NatRange:
    """``parse_ports()`` (libxt_NAT.c): ``p`` or ``a-b``."""
    lo, dash, hi = text.partition("-")
    if ":" in text:
        raise RuleError(f"{opt} {text!r}: Invalid port:port syntax - use dash")
    first = _port(opt, lo)
    last = _port(opt, hi) if dash else first
    if last < first:
        raise RuleError(f"{opt} {text!r}: Port range `{text}' funky")
    return NatRange(rng.flags | NatRangeFlag.PROTO_SPECIFIED, rng.min_addr, rng.max_addr, first, last)


def _nat_to(opt: str, text: str) -> NatRange:
    """``parse_to()`` (libxt_NAT.c): ``ip[-ip][:port[-port]]``."""
    addrs, colon, ports = text.partition(":")
    rng = NatRange()
    if colon:
        rng = _nat_ports(opt, ports, rng)
    if addrs:
        lo, _, hi = addrs.partition("-")
        _ip(opt, lo)
        if hi:
            _ip(opt, hi)
        rng = NatRange(rng.flags | NatRangeFlag.MAP_IPS, lo, hi or lo, rng.min_port, rng.max_port)
    return rng


def _nat_flags(opts: Opts, rng: NatRange, allowed: tuple[str, ...]) -> NatRange:
    flags = rng.flags
    for opt, bit in (
        ("--random", NatRangeFlag.PROTO_RANDOM),
        ("--random-fully", NatRangeFlag.PROTO_RANDOM_FULLY),
        ("--persistent", NatRangeFlag.PERSISTENT),
    ):
        if opt in allowed and opts.pop(opt, None) is not None:
            flags |= bit
    return NatRange(flags, rng.min_addr, rng.max_addr, rng.min_port, rng.max_port)


def _build_nat(kind: NatKind, opts: Opts) -> NatTarget:
    if kind is NatKind.MASQUERADE:
        rng = NatRange()
        if "--to-ports" in opts:
            rng = _nat_ports("--to-ports", opts.pop("--to-ports")[1][0], rng)
        rng = _nat_flags(opts, rng, ("--random", "--random-fully"))
    else:
        opt = "--to-source" if kind is NatKind.SNAT else "--to-destination"
        if opt not in opts:
            raise RuleError(f"-j {kind.value}: {opt} is required")
        rng = _nat_to(opt, opts.pop(opt)[1][0])
        rng = _nat_flags(opts, rng, ("--random", "--random-fully", "--persistent"))
    return NatTarget(NatRequest(kind, rng))


def sprint_range(rng: NatRange) -> str:
    """``sprint_range()``."""
    text = ""
    if rng.flags & NatRangeFlag.MAP_IPS:
        text = rng.min_addr if rng.min_addr == rng.max_addr else f"{rng.min_addr}-{rng.max_addr}"
    if rng.flags & NatRangeFlag.PROTO_SPECIFIED:
        text += f":{rng.min_port}" + (f"-{rng.max_port}" if rng.max_port != rng.min_port else "")
    return text


def nat_print(target: NatTarget, *, save: bool) -> str:
    """``__NAT_print()`` with the rangeopt of SNAT/DNAT/MASQUERADE's PSX_GEN() lines: the
    ``-L`` text, or with ``save`` the iptables-save text."""
    kind, rng = target.request.kind, target.request.range
    text = sprint_range(rng)
    out = ""
    if text:
        if kind is NatKind.MASQUERADE:
            out = f" {'--to-ports ' if save else 'masq ports: '}{text[1:]}"
        else:
            opt = "--to-source " if kind is NatKind.SNAT else "--to-destination "
            out = f" {opt if save else 'to:'}{text}"
    pfx = "--" if save else ""
    for flag, name in (
        (NatRangeFlag.PROTO_RANDOM, "random"),
        (NatRangeFlag.PROTO_RANDOM_FULLY, "random-fully"),
        (NatRangeFlag.PERSISTENT, "persistent"),
    ):
        if rng.flags & flag:
            out += f" {pfx}{name}"
    return out
