"""libxt_statistic.c: ``-m statistic --mode nth --every N [--packet P]`` (``statistic_parse()``,
``statistic_check()``) and its text (``statistic_print()``, ``statistic_save()``). The random
mode (kube-proxy's ``--mode random --probability``) is not modelled."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError
from sim.netfilter.xtables import StatisticMatch


def _number(opt: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise RuleError(f"{opt} {text!r}: expected a number")
    return int(text)


def _build_statistic(opts: Opts) -> StatisticMatch:
    """``statistic_parse()`` and ``statistic_check()``: ``--every`` n >= 1 (stored as n - 1)
    with ``--packet`` p, 0 <= p <= n - 1, both only in nth mode; ``! --mode`` inverts. As
    kube-proxy writes it (``--every 2 --packet 0``); iptables 1.8.9 refuses ``--every`` alone."""
    if "--mode" not in opts:
        raise RuleError("-m statistic: no mode specified")
    invert, (mode,) = opts.pop("--mode")
    if mode != "nth":
        raise RuleError(f"--mode {mode!r}: only the nth mode is modelled")
    if "--every" not in opts:
        raise RuleError("--every: nth mode needs --every")
    if "--packet" not in opts:  # iptables 1.8.9 refuses it (checked live): F_EVERY's .also
        raise RuleError('statistic: option "--every" also requires "--packet".')
    every = _number("--every", opts.pop("--every")[1][0])
    if every == 0:
        raise RuleError("--every 0: cannot be 0")
    packet = _number("--packet", opts.pop("--packet")[1][0])
    if packet > every - 1:
        raise RuleError("--packet: the --packet p must be 0 <= p <= n-1")
    return StatisticMatch(every - 1, packet, invert)


def _text(m: StatisticMatch, prefix: str) -> str:
    """``print_match()``: the mode, ``!`` after it when inverted, every, and packet when not 0
    or when saving (iptables 1.8.9, checked live: ``-nvL`` prints ``statistic mode nth every
    2``, ``iptables-save`` ``-m statistic --mode nth --every 2 --packet 0``)."""
    out = f" {prefix}mode nth{' !' if m.invert else ''} {prefix}every {m.every + 1}"
    return out + (f" {prefix}packet {m.packet}" if m.packet or prefix else "")


def statistic_print(m: StatisticMatch) -> str:
    """``statistic_print()``."""
    return " statistic" + _text(m, "")


def statistic_save(m: StatisticMatch) -> str:
    """``-m statistic`` and ``statistic_save()``."""
    return " -m statistic" + _text(m, "--")
