"""-j NOTRACK and -j CT --notrack: libxt_CT.c's parse/print/save (the text checked against
iptables v1.8.9 (nf_tables) in a namespace of the live 6.18 kernel) and xt_CT.c's effect: no
entry, ctinfo IP_CT_UNTRACKED, so nf_conntrack_in() ignores the packet and NAT never sees it."""

from __future__ import annotations

import pytest

from sim.include.netfilter import TableName
from sim.netfilter.iptables.cmd import iptables
from sim.netfilter.iptables.parse import RuleError
from sim.netfilter.iptables.save import iptables_save, list_table
from sim.netfilter.xtables import Ruleset
from sim.scenario.replay import replay_case

RULES = (
    "-t raw -A PREROUTING -p udp --dport 53 -j NOTRACK",
    "-t raw -A PREROUTING -p udp --dport 54 -j CT --notrack",
    "-t raw -A PREROUTING -j CT",
    "-t raw -A OUTPUT -p udp --dport 55 -j CT --notrack",
)


def raw_ruleset() -> Ruleset:
    rs = Ruleset()
    for line in RULES:
        iptables(rs, line)
    return rs


def test_iptables_save_writes_the_alias_back_as_notrack() -> None:
    # iptables-save v1.8.9 after the four commands above (live): CT_save() prints nothing for
    # XT_CT_NOTRACK_ALIAS and CT_print_name_alias() names it NOTRACK
    assert iptables_save(raw_ruleset(), counters=False) == (
        "*raw\n"
        ":PREROUTING ACCEPT [0:0]\n"
        ":OUTPUT ACCEPT [0:0]\n"
        "-A PREROUTING -p udp -m udp --dport 53 -j NOTRACK\n"
        "-A PREROUTING -p udp -m udp --dport 54 -j CT --notrack\n"
        "-A PREROUTING -j CT\n"
        "-A OUTPUT -p udp -m udp --dport 55 -j CT --notrack\n"
        "COMMIT\n"
    )


def test_iptables_list_shows_the_ct_target_and_its_print_text() -> None:
    # iptables -t raw -nvL (live): target column "CT" for both; CT_print() " NOTRACK" / " CT notrack"
    # (iptables 1.8.9 prints the protocol column as a number there; the model prints names)
    rows = [line for line in list_table(raw_ruleset().tables[TableName.RAW]).splitlines() if " CT " in line]
    assert [r.split()[2] for r in rows] == ["CT", "CT", "CT", "CT"]
    assert rows[0].endswith("udp dpt:53 NOTRACK")
    assert rows[1].endswith("udp dpt:54 CT notrack")
    assert rows[2].endswith("0.0.0.0/0            CT")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # live: "RULE_APPEND failed (Invalid argument): rule in chain INPUT" (xt_CT: .table = "raw")
        ("-A INPUT -j NOTRACK", "only valid in raw table"),
        ("-A INPUT -j CT --notrack", "only valid in raw table"),
        # live: iptables v1.8.9: unknown option "--zone" (the NOTRACK alias takes no options)
        ("-t raw -A PREROUTING -j NOTRACK --zone 1", "--zone"),
        ("-t raw -A PREROUTING -j CT --zone 1", "not modelled"),
    ],
)
def test_bad_ct_rules_are_one_line_errors(line: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        iptables(Ruleset(), line)


def _case(kernel: str) -> dict:
    return {
        "kernel": kernel,
        "iptables": {"host": ["-t raw -A PREROUTING -p udp --dport 53 -j NOTRACK"]},
        "packets": [
            {"from": "ctr", "proto": "udp", "src": "192.0.2.2:42000", "dst": "198.51.100.2:53", "len": 33},
            {"from": "ctr", "proto": "udp", "src": "192.0.2.2:42001", "dst": "198.51.100.2:123", "len": 48},
        ],
    }


@pytest.mark.parametrize(
    ("kernel", "ignored"),
    [
        # nf_conntrack_in(): "Previously seen (loopback or untracked)?  Ignore." with
        # NF_CT_STAT_INC_ATOMIC(net, ignore) in 3.10.0-1160.el7 and 4.19.1; 5.10 has no ignore counter
        ("3.10", {"ignore": 1}),
        ("el7", {"ignore": 1}),
        ("4.19", {"ignore": 1}),
        ("5.10", {}),
        ("6.18", {}),
    ],
)
def test_an_untracked_packet_has_no_entry_and_skips_masquerade(kernel: str, ignored: dict) -> None:
    untracked, tracked = replay_case(_case(kernel))
    assert untracked["ctstate"] == "UNTRACKED" and untracked["ct_status"] is None
    assert untracked["ct_stats"] == ignored
    # nf_nat_inet_fn(): no ct -> NF_ACCEPT, so Docker's MASQUERADE never applies
    assert untracked["delivered_as"] == {"src": "192.0.2.2:42000", "dst": "198.51.100.2:53"}
    assert tracked["ctstate"] == "NEW" and tracked["delivered_as"]["src"] == "198.51.100.1:42001"
