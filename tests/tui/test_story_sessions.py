"""The walkthrough opens a story scenario on its decisive packet, at the host's deciding step."""

from __future__ import annotations

import pytest

from sim.include.netfilter import Hook
from sim.trace import Step
from tui.session import open_session

STORIES = (
    "dns-race",
    "snat-port-clash",
    "stale-udp-entry",
    "conntrack-table-full",
    "pod-ip-leak",
    "published-port-invalid",
    "kube-clusterip-invalid",
    "kube-nodeport-invalid",
    "mid-stream-pickup",
    "one-sided-wscale",
)


@pytest.mark.parametrize("kernel", ["el7", "6.18"])
@pytest.mark.parametrize("name", STORIES)
def test_every_story_opens(name: str, kernel: str) -> None:
    s = open_session(name, kernel)
    assert s.title == name and s.kernel == kernel
    assert s.outcome.startswith("the story")


def test_dns_race_on_3_10_opens_on_the_dropped_query_at_confirmation() -> None:
    s = open_session("dns-race", "3.10")
    packet, step = s.focus
    events = s.packet_events(packet)
    e = events[step]  # the confirmation that found the tuple taken, then the drop
    assert e.step is Step.CONNTRACK and e.ns == "host" and e.verdict == "DROP"
    assert e.confirm is not None and "insert_failed" in e.confirm.counters
    assert events[step + 1].step is Step.DROP
    assert e.hook is Hook.POST_ROUTING  # __nf_conntrack_confirm runs last in POSTROUTING
    assert "insert_failed" in s.outcome


def test_a_story_that_succeeds_says_so() -> None:
    assert open_session("dns-race", "6.18").outcome == "the story succeeds"
