"""``iptables -nvL`` and ``iptables-save`` text, against lines printed by the real tools."""

from __future__ import annotations

import pytest

from sim.include.netfilter import TableName
from sim.netfilter.iptables.cmd import iptables
from sim.netfilter.iptables.restore import iptables_restore
from sim.netfilter.iptables.save import iptables_save, list_table, rule_line, save_table, xtables_print_num
from sim.netfilter.xtables import Ruleset


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "    0 "),
        (99999, "99999 "),
        (100000, " 100K "),
        (1580123, "1580K "),
        (9999499, "9999K "),
        (9999500, "  10M "),
        (304_000_000, " 304M "),
        (12_345_678_901, "  12G "),
    ],
)
def test_xtables_print_num(n: int, text: str) -> None:
    # libxtables/xtables.c xtables_print_num(): (n + 500) / 1000 per step, "%4lluK ".
    assert xtables_print_num(n) == text


def test_masquerade_line_from_design_doc() -> None:
    # DESIGN.md, as printed by `iptables -t nat -nvL` (iptables 1.8.x prints trailing padding).
    rs = Ruleset()
    iptables_restore(
        rs,
        "*nat\n:POSTROUTING ACCEPT [0:0]\n"
        "[18158:1580000] -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\nCOMMIT\n",
    )
    rule = rs.tables[TableName.NAT].chains["POSTROUTING"].rules[0]
    assert (
        rule_line(rule).rstrip()
        == "18158 1580K MASQUERADE  all  --  *      !docker0  172.17.0.0/16        0.0.0.0/0"
    )
    assert rule_line(rule).endswith("0.0.0.0/0           ")


def test_filter_listing_matches_real_output() -> None:
    # Lines from a real `iptables -nvL` on a Docker host (The-XYZ-Company/container-research README)
    # and moby's iptablesdoc generated new-daemon.md (27.x, there with --line-numbers).
    rs = Ruleset()
    for c in (
        "-P FORWARD DROP",
        "-N DOCKER-USER",
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
        "-A DOCKER-USER -j RETURN",
    ):
        iptables(rs, c)
    rs.tables[TableName.FILTER].chains["INPUT"].pkts = 1_096_000
    rs.tables[TableName.FILTER].chains["INPUT"].bytes = 304_000_000
    text = list_table(rs.tables[TableName.FILTER])
    assert text.splitlines()[:2] == [
        "Chain INPUT (policy ACCEPT 1096K packets, 304M bytes)",
        " pkts bytes target     prot opt in     out     source               destination         ",
    ]
    assert (
        "    0     0 DOCKER-USER  all  --  *      *       0.0.0.0/0            0.0.0.0/0           \n" in text
    )
    assert (
        "    0     0 ACCEPT     all  --  *      docker0  0.0.0.0/0            0.0.0.0/0            "
        "ctstate RELATED,ESTABLISHED\n"
    ) in text
    assert (
        "    0     0 ACCEPT     all  --  docker0 !docker0  0.0.0.0/0            0.0.0.0/0           \n"
        in text
    )
    assert "\n\nChain DOCKER-USER (1 references)\n" in text
    numbered = list_table(rs.tables[TableName.FILTER], line_numbers=True)
    assert (
        "num   pkts bytes target     prot opt in     out     source               destination         "
        in numbered
    )
    assert (
        "1        0     0 DOCKER-USER  all  --  *      *       0.0.0.0/0            0.0.0.0/0           "
        in numbered
    )


@pytest.mark.parametrize(
    ("cmd", "saved", "listed"),
    [
        # Save strings from real dumps (moby golden file, the hassio 2024 dump); -L text from
        # libxt_*.c print functions with numeric=1.
        (
            "-t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
            "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
            "tcp dpt:8080 to:172.17.0.2:80",
        ),
        (
            "-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
            "ADDRTYPE match dst-type LOCAL",
        ),
        (
            "-A INPUT -m conntrack --ctstate INVALID -m limit --limit 1/sec"
            ' -j LOG --log-prefix "invalid: " --log-level 7',
            "-A INPUT -m conntrack --ctstate INVALID -m limit --limit 1/sec"
            ' -j LOG --log-prefix "invalid: " --log-level 7',
            'ctstate INVALID limit: avg 1/sec burst 5 LOG flags 0 level 7 prefix "invalid: "',
        ),
        (
            "-A INPUT -p tcp ! --syn -m state --state NEW -j DROP",
            "-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW -j DROP",
            "tcp flags:!0x17/0x02 state NEW",
        ),
        (
            "-A INPUT -p tcp --sport 1:1023 -m conntrack ! --ctstate ESTABLISHED,RELATED"
            " -j REJECT --reject-with tcp-reset",
            "-A INPUT -p tcp -m tcp --sport 1:1023 -m conntrack ! --ctstate RELATED,ESTABLISHED"
            " -j REJECT --reject-with tcp-reset",
            "tcp spts:1:1023 ! ctstate RELATED,ESTABLISHED reject-with tcp-reset",
        ),
        (  # Docker's published UDP port; libxt_udp.c prints " udp dpt:%u", saves " -m udp --dport"
            "-t nat -A DOCKER ! -i docker0 -p udp -m udp --dport 5060"
            " -j DNAT --to-destination 192.0.2.2:5060",
            "-A DOCKER ! -i docker0 -p udp -m udp --dport 5060 -j DNAT --to-destination 192.0.2.2:5060",
            "udp dpt:5060 to:192.0.2.2:5060",
        ),
        (
            "-A INPUT -p udp ! --sport 1:1023 -j DROP",
            "-A INPUT -p udp -m udp ! --sport 1:1023 -j DROP",
            "udp spts:!1:1023",
        ),
        (
            "-t nat -A POSTROUTING -p tcp -j MASQUERADE --to-ports 1024-65535 --random",
            "-A POSTROUTING -p tcp -j MASQUERADE --to-ports 1024-65535 --random",
            "masq ports: 1024-65535 random",
        ),
        # The port-choice flags, as iptables v1.8.9 saves (-S) and lists (-nL) them (recorded
        # in a fresh network namespace)
        (
            "-t nat -A POSTROUTING -s 192.0.2.0/24 ! -o docker0 -j MASQUERADE --random-fully",
            "-A POSTROUTING -s 192.0.2.0/24 ! -o docker0 -j MASQUERADE --random-fully",
            "random-fully",
        ),
        (
            "-t nat -A POSTROUTING -p tcp -s 192.0.2.7/32 -j SNAT"
            " --to-source 198.51.100.1:40000-40010 --random",
            "-A POSTROUTING -s 192.0.2.7/32 -p tcp -j SNAT --to-source 198.51.100.1:40000-40010 --random",
            "to:198.51.100.1:40000-40010 random",
        ),
        (
            "-t nat -A POSTROUTING -p udp -s 192.0.2.8/32 -j MASQUERADE"
            " --to-ports 1024-2047 --random --random-fully",
            "-A POSTROUTING -s 192.0.2.8/32 -p udp -j MASQUERADE"
            " --to-ports 1024-2047 --random --random-fully",
            "masq ports: 1024-2047 random random-fully",
        ),
        (
            "-A INPUT -m limit --limit 10/hour --limit-burst 3 -j LOG --log-prefix abc",
            "-A INPUT -m limit --limit 10/hour --limit-burst 3 -j LOG --log-prefix abc",
            'limit: avg 10/hour burst 3 LOG flags 0 level 4 prefix "abc"',
        ),
        (  # no -j: print_rule4() prints no target, print_firewall() an empty target column
            "-A INPUT -m conntrack --ctstate INVALID",
            "-A INPUT -m conntrack --ctstate INVALID",
            "    0     0            all  --  *      *       0.0.0.0/0            0.0.0.0/0"
            "            ctstate INVALID",
        ),
    ],
)
def test_save_and_list_text(cmd: str, saved: str, listed: str) -> None:
    rs = Ruleset()
    table = TableName.NAT if cmd.startswith("-t nat") else TableName.FILTER
    if "DOCKER" in cmd:
        iptables(rs, f"-t {table.value} -N DOCKER")
    iptables(rs, cmd)
    t = rs.tables[table]
    chain = next(c for c in t.chains.values() if c.rules)
    assert save_table(t, counters=False).splitlines()[-2] == saved
    assert rule_line(chain.rules[0]).endswith(listed)
    # Round trip: the saved text loads back to the same text.
    again = Ruleset()
    iptables_restore(again, save_table(t))
    assert save_table(again.tables[table]) == save_table(t)


def test_save_header_and_table_order() -> None:
    # iptables-save.c do_output(): "# Generated by iptables-save v... on <ctime>", *table, chains, COMMIT.
    rs = Ruleset()
    iptables(rs, "-A INPUT -j ACCEPT")
    iptables(rs, "-t nat -N DOCKER")
    out = iptables_save(rs, counters=True, stamp="v1.8.7 (legacy) on Sat Jun  1 23:43:50 2019")
    assert out.splitlines()[:3] == [
        "# Generated by iptables-save v1.8.7 (legacy) on Sat Jun  1 23:43:50 2019",
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
    ]
    assert "[0:0] -A INPUT -j ACCEPT\nCOMMIT\n# Completed on Sat Jun  1 23:43:50 2019\n" in out
    assert ":DOCKER - [0:0]" in out
