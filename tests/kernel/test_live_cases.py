"""The v2 case strategy of ``nflab kernel-check --fuzz N --v2`` (no kernel needed)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from sim.scenario.case import parse_case
from sim.testing.live_cases import live_v2_cases, v2_cases


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(v2_cases(seed=5))
def test_every_generated_case_is_a_valid_v2_case(case) -> None:
    topology, sysctls, _lines, packets = parse_case(case)
    assert case["name"] == "fuzz-v2-seed5"
    assert packets[0].race is None  # the loader refuses a race on the first packet
    assert {p.side for p in packets} <= {"ctr", "remote", *dict(topology.hosts)}
    assert set(sysctls) <= {"net.netfilter.nf_conntrack_udp_timeout"}
    assert all(p.delay == 0 for p in packets if p.race is not None)


def test_max_steps_is_checked_up_front() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        v2_cases(max_steps=0).example()


@settings(suppress_health_check=list(HealthCheck))
@given(live_v2_cases(seed=2))
def test_live_cases_are_valid_and_playable_without_the_root_namespace(case) -> None:
    parse_case(case)
    assert case["name"] == "fuzz-v2-seed2"
    assert "net.netfilter.nf_conntrack_max" not in case.get("sysctl", {})  # read-only in a netns
    assert all(p.get("delay", 0.05) <= 2.1 for p in case["packets"])
