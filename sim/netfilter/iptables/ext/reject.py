"""libipt_REJECT.c: ``-j REJECT --reject-with`` and its text (``REJECT_print()``, ``REJECT_save()``)."""

from __future__ import annotations

from sim.include.netfilter import RejectWith
from sim.netfilter.iptables.parse import Opts, RuleError
from sim.netfilter.reject import RejectTarget

REJECT_NAMES = {
    RejectWith.ICMP_NET_UNREACHABLE: ("icmp-net-unreachable", "net-unreach"),
    RejectWith.ICMP_HOST_UNREACHABLE: ("icmp-host-unreachable", "host-unreach"),
    RejectWith.ICMP_PROT_UNREACHABLE: ("icmp-proto-unreachable", "proto-unreach"),
    RejectWith.ICMP_PORT_UNREACHABLE: ("icmp-port-unreachable", "port-unreach"),
    RejectWith.ICMP_NET_PROHIBITED: ("icmp-net-prohibited", "net-prohib"),
    RejectWith.ICMP_HOST_PROHIBITED: ("icmp-host-prohibited", "host-prohib"),
    RejectWith.TCP_RESET: ("tcp-reset", "tcp-rst"),
    RejectWith.ICMP_ADMIN_PROHIBITED: ("icmp-admin-prohibited", "admin-prohib"),
}


def _reject_with(opt: str, text: str) -> RejectWith:
    """``REJECT_parse()``: the first name or alias that ``text`` is a prefix of."""
    for with_, names in REJECT_NAMES.items():
        if text and any(name.startswith(text.lower()) for name in names):
            return with_
    raise RuleError(f"{opt} {text!r}: unknown reject type")


def _build_reject(opts: Opts) -> RejectTarget:
    if "--reject-with" in opts:
        return RejectTarget(_reject_with("--reject-with", opts.pop("--reject-with")[1][0]))
    return RejectTarget()


def reject_print(t: RejectTarget) -> str:
    """``REJECT_print()``."""
    return f" reject-with {REJECT_NAMES[t.with_][0]}"


def reject_save(t: RejectTarget) -> str:
    """``REJECT_save()``."""
    return f" --reject-with {REJECT_NAMES[t.with_][0]}"
