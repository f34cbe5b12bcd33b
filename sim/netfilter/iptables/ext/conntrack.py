"""libxt_conntrack.c and libxt_state.c: ``--ctstate`` and ``--state``, and their text
(``conntrack3_mt_print()``/``_save()``, ``state_print()``/``_save()``)."""

from __future__ import annotations

from sim.include.netfilter import CtState
from sim.netfilter.iptables.parse import Opts, RuleError
from sim.netfilter.xtables import ConntrackMatch

_STATE_NAMES = {
    "INVALID": CtState.INVALID,
    "NEW": CtState.NEW,
    "ESTABLISHED": CtState.ESTABLISHED,
    "RELATED": CtState.RELATED,
    "UNTRACKED": CtState.UNTRACKED,
}
_CTSTATE_NAMES = {**_STATE_NAMES, "SNAT": CtState.SNAT, "DNAT": CtState.DNAT}


def _states(opt: str, text: str, names: dict[str, CtState]) -> CtState:
    """``conntrack_ps_states()`` / ``state_parse_states()``."""
    mask = CtState(0)
    for name in text.split(","):
        if name.upper() not in names:
            raise RuleError(f'{opt} {text!r}: Bad {opt.lstrip("-")} "{name}"')
        mask |= names[name.upper()]
    return mask


def _build_conntrack(opts: Opts) -> ConntrackMatch:
    if "--ctstate" not in opts:
        raise RuleError("-m conntrack: this model supports only --ctstate; it is required")
    inv, (value,) = opts.pop("--ctstate")
    return ConntrackMatch(_states("--ctstate", value, _CTSTATE_NAMES), inv)


def _build_state(opts: Opts) -> ConntrackMatch:
    if "--state" not in opts:
        raise RuleError("-m state: --state is required")
    inv, (value,) = opts.pop("--state")
    return ConntrackMatch(_states("--state", value, _STATE_NAMES), inv, alias_state=True)


# print_state()'s order
_PRINT_ORDER = (
    CtState.INVALID,
    CtState.NEW,
    CtState.RELATED,
    CtState.ESTABLISHED,
    CtState.UNTRACKED,
    CtState.SNAT,
    CtState.DNAT,
)


def print_state(mask: CtState) -> str:
    """``print_state()``: fixed order, comma-separated."""
    return ",".join(s.name for s in _PRINT_ORDER if mask & s and s.name)


def conntrack_print(m: ConntrackMatch) -> str:
    """``conntrack3_mt_print()`` / ``state_print()``."""
    return f"{' !' if m.invert else ''} {'state' if m.alias_state else 'ctstate'} {print_state(m.state_mask)}"


def conntrack_save(m: ConntrackMatch) -> str:
    """``-m conntrack`` and ``conntrack3_mt_save()`` (``-m state`` and ``state_save()``)."""
    name, opt = ("state", "--state") if m.alias_state else ("conntrack", "--ctstate")
    return f" -m {name}{' !' if m.invert else ''} {opt} {print_state(m.state_mask)}"
