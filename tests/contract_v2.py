"""What the model supports of the replay contract v2 (DESIGN.md), for the tests that compare it
with recordings of v2 cases.

Until the model's v2 loader, trackers and outputs land (branches ``udp`` and ``confirm``), a
case using them is an expected failure whose reason names the missing features. The marks are
conditional on what the model actually does, so they lift themselves as soon as the model
replays the case and prints the v2 outputs: from then on a disagreement fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from sim.kernel.check import V2_FIELDS

# feature -> where it comes from (the helpers' lanes of issue 18)
FEATURES = {
    "hosts": "extra end hosts (contract v2 `hosts`, branch udp)",
    "udp": "the UDP tracker, nf_conntrack_proto_udp.c (branch udp)",
    "icmp": "the ICMP tracker and RELATED errors with inner NAT, nf_conntrack_proto_icmp.c (branch udp)",
    "race": 'race: "prev" and confirmation clash handling, __nf_conntrack_confirm() (branch confirm)',
    "outputs": "the v2 outputs proto, ct_status and ct_stats (branches udp and confirm)",
}


def is_v2(case: dict[str, Any]) -> bool:
    """True when a case uses a contract v2 field."""
    return "hosts" in case or any(
        isinstance(p, dict) and ({"proto", "race"} & set(p)) for p in case.get("packets", [])
    )


def features(case: dict[str, Any]) -> list[str]:
    """The v2 features a case needs, in :data:`FEATURES` order."""
    packets = [p for p in case.get("packets", []) if isinstance(p, dict)]
    need = {"outputs"}
    if "hosts" in case:
        need.add("hosts")
    need |= {p["proto"] for p in packets if p.get("proto") in ("udp", "icmp")}
    if any("race" in p for p in packets):
        need.add("race")
    return [f for f in FEATURES if f in need]


def model_gap(case: dict[str, Any]) -> str | None:
    """Why the model cannot replay ``case`` as contract v2 asks yet, or None when it can:
    it refuses the case, or its observations lack a v2 output."""
    from sim.scenario.replay import replay_case

    try:
        obs = replay_case({**case, "kernel": "6.18"})
    except Exception as e:  # the model refusing a valid case is the gap itself
        return f"the model refuses it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    missing = [f for f in V2_FIELDS if any(f not in o for o in obs)]
    return f"the model prints no {', '.join(missing)}" if missing else None


def xfail_until_model_has(case: dict[str, Any]) -> pytest.MarkDecorator:
    """An xfail mark naming the missing features, active only while :func:`model_gap` says so."""
    gap = model_gap(case)
    reason = f"needs {'; '.join(FEATURES[f] for f in features(case))}: {gap}"
    return pytest.mark.xfail(gap is not None, reason=reason, strict=True)
