"""The conntrack command (conntrack-tools 1.4.7): -L, -D with filters, -F, -S.

The summary lines and the exit status of a -D that deleted nothing were recorded from
conntrack v1.4.7 in a fresh network namespace of this machine's 6.18 kernel."""

from __future__ import annotations

import pytest

from sim.netfilter import conntrack_tool
from sim.netfilter.conntrack import ConntrackTable
from sim.packet import Packet, parse_flags
from sim.skb import Skb


def _table() -> ConntrackTable:
    table = ConntrackTable("6.18")
    for i in (2, 3):
        skb = Skb(Packet(f"192.0.2.{i}", "198.51.100.2", 40000, 443, 1, 0, parse_flags("S"), 64240))
        table.nf_conntrack_in(skb, 0.0)
        table.nf_conntrack_confirm(skb, 0.0)
    return table


def test_flush_empties_the_table():
    table = _table()
    assert conntrack_tool.run(table, "conntrack -F", 1.0) == (
        ["conntrack v1.4.7 (conntrack-tools): connection tracking table has been emptied."],
        0,
    )
    assert len(table) == 0


def test_delete_by_source_prints_the_entry_and_the_count():
    table = _table()
    lines, status = conntrack_tool.run(table, "-D -s 192.0.2.2 -p tcp --dport 443", 1.0)
    assert status == 0 and len(table) == 1
    assert lines[0].startswith("tcp      6 119 SYN_SENT src=192.0.2.2 ")
    assert lines[1] == "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted."
    assert conntrack_tool.run(table, "-D -s 192.0.2.9", 1.0) == (
        ["conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted."],
        1,
    )


def test_list_counts_what_it_shows():
    lines, _ = conntrack_tool.run(_table(), "-L", 1.0)
    assert len(lines) == 3 and lines[-1].endswith("2 flow entries have been shown.")


@pytest.mark.parametrize("bad", ["", "-X", "-F -s 192.0.2.2", "-D --sport x", "-D -s"])
def test_bad_command_lines_are_one_line_errors(bad):
    with pytest.raises(conntrack_tool.ConntrackToolError) as e:
        conntrack_tool.parse(bad)
    assert "\n" not in str(e.value)


def test_a_scenario_trigger_runs_conntrack_on_the_host():
    """conntrack -F in the middle of the seed upload: the table is emptied then, and the
    remote's next segment is picked up as a NEW connection of its own (no DNAT for it), so
    it is delivered to the host's stack, which answers with a RST."""
    from dataclasses import replace

    from sim.scenario.scenario import Trigger, load_scenario, run_scenario

    sc = load_scenario("seed-incident")
    run = run_scenario(replace(sc, triggers=[Trigger("conntrack", 510_000, command="-F")]))
    assert [kind for _, kind, _ in run.fired] == ["conntrack"]
    flushed_at = run.fired[0][0]
    picked = [
        e
        for e in run.world.trace.events
        if e.t >= flushed_at and e.ct is not None and e.ns == "host" and e.ct.created
    ]
    assert picked and picked[0].before is not None
    assert run.rsts  # the host's own RSTs answer the remote's picked-up segments


def test_a_bad_trigger_command_is_a_one_line_scenario_error():
    from sim.scenario.scenario import ScenarioError, parse_scenario

    with pytest.raises(ScenarioError, match="command"):
        parse_scenario(
            {"upload": {"bytes": 1000}, "trigger": [{"kind": "conntrack", "command": "-X"}]}, "t.toml"
        )
