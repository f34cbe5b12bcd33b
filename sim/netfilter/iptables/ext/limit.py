"""libxt_limit.c: ``--limit`` and ``--limit-burst`` (``parse_rate()``) and their text
(``limit_print()``, ``limit_save()``)."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError
from sim.netfilter.xtables import (
    XT_LIMIT_AVG,
    XT_LIMIT_BURST,
    XT_LIMIT_SCALE,
    LimitMatch,
)

_RATE_UNITS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))


def _rate(opt: str, text: str) -> int:
    """``parse_rate()`` (libxt_limit.c): ``N[/second|/minute|/hour|/day]``, unit by prefix."""
    number, _, unit = text.partition("/")
    mult = 1
    if unit:
        mult = next((m for name, m in _RATE_UNITS if name.startswith(unit.lower())), 0)
    if not number.isdigit() or int(number) == 0 or mult == 0 or (unit == "" and "/" in text):
        raise RuleError(f"{opt} {text!r}: bad rate")
    avg = XT_LIMIT_SCALE * mult // int(number)
    if avg == 0:
        raise RuleError(f"{opt} {text!r}: Rate too fast")
    return avg


def _build_limit(opts: Opts) -> LimitMatch:
    """``limit_parse()``: no inversion, burst 0..10000."""
    avg, burst = XT_LIMIT_AVG, XT_LIMIT_BURST
    for opt in ("--limit", "--limit-burst"):
        if opt in opts and opts[opt][0]:
            raise RuleError(f"! {opt}: limit does not support invert")
    if "--limit" in opts:
        avg = _rate("--limit", opts.pop("--limit")[1][0])
    if "--limit-burst" in opts:
        value = opts.pop("--limit-burst")[1][0]
        if not value.isdigit() or int(value) > 10000:
            raise RuleError(f"--limit-burst {value!r}: must be a number from 0 to 10000")
        burst = int(value)
    try:
        return LimitMatch(avg, burst)
    except ValueError as exc:
        raise RuleError(f"-m limit: {exc}") from None


_RATES = (
    ("day", XT_LIMIT_SCALE * 86400),
    ("hour", XT_LIMIT_SCALE * 3600),
    ("min", XT_LIMIT_SCALE * 60),
    ("sec", XT_LIMIT_SCALE),
)


def print_rate(period: int) -> str:
    """``print_rate()``."""
    i = 1
    while i < len(_RATES):
        mult = _RATES[i][1]
        if period > mult or mult // period < mult % period:
            break
        i += 1
    name, mult = _RATES[i - 1]
    return f"{mult // period}/{name}"


def limit_print(m: LimitMatch) -> str:
    """``limit_print()``."""
    return f" limit: avg {print_rate(m.avg)} burst {m.burst}"


def limit_save(m: LimitMatch) -> str:
    """``-m limit`` and ``limit_save()``: the burst only when not the default."""
    burst = f" --limit-burst {m.burst}" if m.burst != XT_LIMIT_BURST else ""
    return f" -m limit --limit {print_rate(m.avg)}{burst}"
