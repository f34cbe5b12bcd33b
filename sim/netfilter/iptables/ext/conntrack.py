"""libxt_conntrack.c and libxt_state.c: ``--ctstate`` and ``--state``."""

from __future__ import annotations

from sim.netfilter.iptables.parse import Opts, RuleError
from sim.netfilter.xtables import (
    ConntrackMatch,
    CtState,
)

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
