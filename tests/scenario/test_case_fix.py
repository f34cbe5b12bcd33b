"""Case.with_fix: the one way to put a fix on a crafted case (the TUI, nflab kernels and the
fuzzed kernel-check cases all use it)."""

from __future__ import annotations

import pytest

from sim.scenario.case import Case, load_case
from sim.scenario.replay import replay_case

DROP = "iptables -A INPUT -m conntrack --ctstate INVALID -j DROP"
LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal"
LOG = "-A INPUT -m conntrack --ctstate INVALID -j LOG --log-prefix 'invalid: '"


def test_a_fix_keeps_every_other_rule_of_every_namespace() -> None:
    # The TUI's old copy rebuilt ``iptables`` as {"host": ...} and dropped the other
    # namespaces' rules (the scenario contract holds iptables per namespace).
    case = Case({"iptables": {"host": [LOG], "ctr": ["-A OUTPUT -j ACCEPT"]}, "packets": []})
    assert case.with_fix("drop-invalid").data["iptables"] == {
        "host": [LOG, DROP],
        "ctr": ["-A OUTPUT -j ACCEPT"],
    }
    assert case.with_fix("be-liberal").data["iptables"] == {"host": [LOG], "ctr": ["-A OUTPUT -j ACCEPT"]}
    assert case.with_fix("be-liberal").data["sysctl"] == {LIBERAL: 1}


def test_a_fix_replaces_the_other_and_none_takes_both_out() -> None:
    dropped = Case({"sysctl": {LIBERAL: 1, "net.netfilter.nf_conntrack_tcp_loose": 0}, "packets": []})
    assert dropped.fix == "be-liberal"
    swapped = dropped.with_fix("drop-invalid")
    assert swapped.data["sysctl"] == {"net.netfilter.nf_conntrack_tcp_loose": 0}
    assert swapped.data["iptables"] == {"host": [DROP]} and swapped.fix == "drop-invalid"
    plain = swapped.with_fix("none")
    assert plain.data == {"sysctl": {"net.netfilter.nf_conntrack_tcp_loose": 0}, "packets": []}
    assert plain.fix == "none"


def test_only_the_rules_of_a_namespace_that_had_only_the_fix_go() -> None:
    case = Case({"iptables": {"host": [DROP], "ctr": ["-A OUTPUT -j ACCEPT"]}, "packets": []})
    assert case.with_fix("none").data == {"iptables": {"ctr": ["-A OUTPUT -j ACCEPT"]}, "packets": []}


def test_unknown_fix_is_a_one_line_value_error() -> None:
    names = (
        "none, drop-invalid, be-liberal, kube-forward-drop, random-fully, bigger-table, notrack, "
        "single-request-reopen, conntrack-delete"
    )
    with pytest.raises(ValueError, match=f"expected one of {names}, got 'both'"):
        Case({"packets": []}).with_fix("both")


def test_the_fixes_change_what_the_late_ack_does_on_310() -> None:
    # late-ack on 3.10: INVALID, NAT skipped, the host answers with its own RST; with the DROP
    # rule it is dropped in INPUT (no RST); with be_liberal it is ACCEPTed and NATed.
    late = load_case("late-ack").with_kernel("3.10")
    plain, drop, liberal = (
        replay_case(late.with_fix(f).data)[-1] for f in ("none", "drop-invalid", "be-liberal")
    )
    assert (plain["window"], plain["fate"], [e["flags"] for e in plain["emitted"]]) == (
        "INVALID",
        "local:host",
        ["R"],
    )
    assert (drop["window"], drop["fate"], drop["emitted"]) == ("INVALID", "dropped:host", [])
    assert (liberal["window"], liberal["fate"]) == ("ACCEPT", "delivered:ctr")
