"""Command-line and iptables-restore parsing; every error is one line naming the place."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.include.netfilter import CtState, TableName
from sim.netfilter.iptables.cmd import iptables
from sim.netfilter.iptables.parse import RuleError, _split
from sim.netfilter.iptables.restore import iptables_restore
from sim.netfilter.iptables.save import save_table
from sim.netfilter.xtables import ConntrackMatch, LimitMatch, Ruleset, TcpMatch


def filt(rs: Ruleset) -> str:
    return save_table(rs.tables[TableName.FILTER], counters=False)


def test_insert_delete_by_number_and_by_spec() -> None:
    rs = Ruleset()
    iptables(rs, "iptables -A INPUT -s 10.0.0.1 -j ACCEPT")
    iptables(rs, "-I INPUT -s 10.0.0.2 -j DROP")
    iptables(rs, "-I INPUT 2 -s 10.0.0.3 -j DROP")
    chain = rs.tables[TableName.FILTER].chains["INPUT"]
    assert [r.ip.src & 0xFF for r in chain.rules] == [2, 3, 1]
    iptables(rs, "-D INPUT -s 10.0.0.3/32 -j DROP")
    iptables(rs, "-D INPUT 1")
    assert [r.ip.src & 0xFF for r in chain.rules] == [1]


def test_syn_is_the_tcp_flags_pair_and_limit_default_burst() -> None:
    # libxt_tcp.c: --syn == --tcp-flags SYN,RST,ACK,FIN SYN; libxt_limit.c: burst default 5,
    # avg = XT_LIMIT_SCALE * mult / rate.
    rs = Ruleset()
    iptables(rs, "-A INPUT -p tcp --syn -m limit --limit 3/min -j ACCEPT")
    tcp, limit = rs.tables[TableName.FILTER].chains["INPUT"].rules[0].matches
    assert isinstance(tcp, TcpMatch) and (tcp.flg_mask, tcp.flg_cmp) == (0x17, 0x02)
    assert isinstance(limit, LimitMatch) and (limit.avg, limit.burst) == (200000, 5)


def test_state_list_is_case_insensitive() -> None:
    rs = Ruleset()
    iptables(rs, "-A FORWARD -m conntrack --ctstate related,Established -j ACCEPT")
    m = rs.tables[TableName.FILTER].chains["FORWARD"].rules[0].matches[0]
    assert isinstance(m, ConntrackMatch) and m.state_mask == CtState.RELATED | CtState.ESTABLISHED


def test_address_is_masked_as_iptables_does() -> None:
    rs = Ruleset()
    iptables(rs, "-A INPUT -s 10.1.2.3/8 -j DROP")
    assert "-A INPUT -s 10.0.0.0/8 -j DROP" in filt(rs)


def test_chain_management() -> None:
    rs = Ruleset()
    iptables(rs, "-N MY")
    iptables(rs, "-A INPUT -j MY")
    with pytest.raises(RuleError, match=r"^-X MY: Too many links"):
        iptables(rs, "-X MY")
    iptables(rs, "-F INPUT")
    iptables(rs, "-X MY")
    iptables(rs, "-P FORWARD DROP")
    assert ":FORWARD DROP" in filt(rs) and "MY" not in filt(rs)


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        ("-A INPUT --dport 80 -j ACCEPT", "--dport: unknown option"),
        ("-A INPUT -p tcp --dport 80:70 -j ACCEPT", "--dport '80:70': invalid portrange (min > max)"),
        ("-A INPUT -p tcp --dport http -j ACCEPT", "--dport 'http': invalid port/service specified"),
        ("-A INPUT -s 10.0.0.256 -j ACCEPT", "--source '10.0.0.256': host/network not found"),
        ("-A INPUT -m conntrack --ctstate NEW,FOO -j DROP", "--ctstate 'NEW,FOO': Bad ctstate \"FOO\""),
        ("-A INPUT -m state --state SNAT -j DROP", "--state 'SNAT': Bad state \"SNAT\""),
        ("-A INPUT -m limit --limit 0/sec -j DROP", "--limit '0/sec': bad rate"),
        ("-A INPUT -m limit ! --limit 1/sec -j DROP", "! --limit: limit does not support invert"),
        ("-A INPUT -m nosuch -j DROP", "-m nosuch: match not modelled"),
        ("-A INPUT -j NOWHERE", "--jump NOWHERE: Couldn't load target `NOWHERE'"),
        ("-A INPUT -j ACCEPT --log-prefix x", "--log-prefix: unknown option"),
        ("-A INPUT -j LOG --log-level 9", "--log-level '9': log level"),
        (
            "-A INPUT -j REJECT --reject-with tcp-reset",
            "--reject-with tcp-reset: TCP_RESET invalid for non-tcp",
        ),
        ("-A INPUT -j REJECT --reject-with bogus", "--reject-with 'bogus': unknown reject type"),
        ("-A INPUT -j MASQUERADE", "-j MASQUERADE: only valid in nat table, not filter"),
        ("-t nat -A PREROUTING -j MASQUERADE", "-j MASQUERADE: not usable from chain PREROUTING"),
        ("-t nat -A PREROUTING -j DNAT --to-destination 1.2.3.4:80", "-j DNAT: Need TCP, UDP"),
        ("-t nat -A PREROUTING -p tcp -j DNAT", "-j DNAT: --to-destination is required"),
        ("-A OUTPUT -i eth0 -j DROP", "-i eth0: Can't use -i with OUTPUT"),
        ("-A INPUT -o eth0 -j DROP", "-o eth0: Can't use -o with INPUT"),
        ("-t bogus -A INPUT -j DROP", "-t bogus: table does not exist"),
        ("-A INPUT -s", "--source: option requires an argument"),
        ("-A INPUT -x -j DROP", "-x: unknown option"),
        ("-N DROP", "-N DROP: Invalid chain name `DROP'"),
        ("-P INPUT RETURN", "-P INPUT RETURN: Bad policy name"),
        ("-D INPUT 3", "INPUT 3: Index of deletion too big"),
        ("-A INPUT -p tcp -m tcp ! -p udp -j DROP", "--protocol: multiple --protocol flags not allowed"),
        ("-A INPUT -p tcp -m udp --dport 53 -j DROP", "-m udp: needs `-p udp'"),
        ("-A INPUT -p udp --syn -j DROP", "--syn: unknown option"),
        # digits are ASCII digits (xtables_strtoul() uses strtoul(), not Unicode digits)
        ("-A INPUT -s \u0661\u0669\u0662.0.2.1 -j DROP", "--source '\u0661\u0669\u0662.0.2.1': host/network"),
        ("-A INPUT -p tcp --dport \u0663 -j DROP", "--dport '\u0663': invalid port/service specified"),
        ("-I OUTPUT \u00b2", "OUTPUT \u00b2: Index of insertion too big"),
        # xshared.c do_parse(): 'The "nat" table is not intended for filtering, the use of DROP
        # is therefore inhibited.' -- for -j DROP, -g DROP and -P CHAIN DROP alike
        ("-t nat -A PREROUTING -p tcp -j DROP", '-t nat: The "nat" table is not intended for filtering'),
        ("-t nat -A POSTROUTING -g DROP", '-t nat: The "nat" table is not intended for filtering'),
        ("-t nat -P OUTPUT DROP", '-t nat: The "nat" table is not intended for filtering'),
    ],
)
def test_errors_are_one_line_and_name_the_option(cmd: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        iptables(Ruleset(), cmd)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message)


def test_restore_with_counters_and_error_line_numbers() -> None:
    rs = Ruleset()
    iptables_restore(rs, "*filter\n:INPUT DROP [5:300]\n:X - [0:0]\n[3:120] -A INPUT -j X\nCOMMIT\n")
    t = rs.tables[TableName.FILTER]
    assert (t.chains["INPUT"].pkts, t.chains["INPUT"].bytes) == (5, 300)
    assert (t.chains["INPUT"].rules[0].pkts, t.chains["INPUT"].rules[0].bytes) == (3, 120)
    bad = "*filter\n:INPUT ACCEPT [0:0]\n\n-A INPUT -p tcp --dport 0x -j DROP\nCOMMIT\n"
    with pytest.raises(RuleError, match=r"^line 4: --dport '0x': invalid port"):
        iptables_restore(rs, bad)
    assert t is rs.tables[TableName.FILTER]  # a failed restore changes nothing
    with pytest.raises(RuleError, match=r"^line 2: table filter has no COMMIT"):
        iptables_restore(rs, "*filter\n:INPUT ACCEPT [0:0]\n")
    with pytest.raises(RuleError, match=r"^line 1: -A: no table specified"):
        iptables_restore(rs, "-A INPUT -j DROP\n")
    with pytest.raises(RuleError, match=r"^line 2: :PREROUTING ACCEPT: PREROUTING is not a built-in chain"):
        iptables_restore(rs, "*filter\n:PREROUTING ACCEPT\nCOMMIT\n")


@given(st.text(alphabet=st.characters(max_codepoint=127)) | st.text())
def test_split_is_shlex_split(line: str) -> None:
    """The fast path of _split() gives exactly the words shlex.split() gives."""
    try:
        expected: list[str] | None = shlex.split(line)
    except ValueError:
        expected = None
    try:
        got: list[str] | None = _split(line)
    except RuleError:
        got = None
    assert got == expected
