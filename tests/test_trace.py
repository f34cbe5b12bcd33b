"""sim.trace: the per-packet index answers what a scan of the ordered events would."""

from __future__ import annotations

from dataclasses import replace

from sim.include.netfilter import TableName
from sim.scenario.scenario import load_scenario, run_scenario
from sim.trace import Step, Trace, TraceEvent, TraceVerdict, Why


def _ev(pid: int, step: Step, cause: int | None = None) -> TraceEvent:
    return TraceEvent(t=0.0, pid=pid, step=step, why=Why.XMIT, ns="host", cause=cause)


def _trace(keep: bool = True) -> Trace:
    tr = Trace(keep=keep)
    for e in (
        _ev(1, Step.SEND),
        _ev(1, Step.RECV),
        _ev(2, Step.SEND),
        _ev(1, Step.RST),
        _ev(3, Step.SEND, cause=1),  # the RST packet 1 caused
        _ev(2, Step.DROP),
        _ev(3, Step.XMIT),
        _ev(4, Step.SEND, cause=3),
        _ev(5, Step.SEND, cause=1),
    ):
        tr.add(e)
    return tr


def test_index_agrees_with_a_scan():
    tr = _trace()
    for pid in range(1, 7):
        assert tr.for_packet(pid) == [e for e in tr.events if e.pid == pid]
        assert tr.caused_by(pid) == sorted(
            {e.pid for e in tr.events if e.cause == pid and e.step is Step.SEND}
        )
    assert [e.step for e in tr.for_packet(1)] == [Step.SEND, Step.RECV, Step.RST]
    assert tr.caused_by(1) == [3, 5]


def test_forget_drops_a_packet_and_what_it_caused():
    tr = _trace(keep=False)
    assert tr.events == []
    tr.forget(1)
    assert tr.for_packet(1) == tr.for_packet(3) == tr.for_packet(4) == tr.for_packet(5) == []
    assert tr.caused_by(1) == tr.caused_by(3) == []
    assert [e.step for e in tr.for_packet(2)] == [Step.SEND, Step.DROP]


def test_every_verdict_of_a_run_is_typed():
    """The seed run's events carry TraceVerdict members, never bare strings."""
    events = run_scenario(load_scenario("seed-incident")).world.trace.events
    assert [e for e in events if not isinstance(e.verdict, TraceVerdict)] == []


def test_an_event_carries_the_rule_and_the_sysctls_that_decided_it():
    # The article's fix drops the INVALID segment in filter INPUT; the event says the rule as
    # iptables -S prints it (iptables-save's print_rule4()), and a policy verdict the policy.
    fixed = run_scenario(load_scenario("seed-incident").with_kernel("3.10").with_fix("drop-invalid"))
    tables = [e for e in fixed.world.trace.events if e.step is Step.TABLE]
    drops = [e for e in tables if e.table is TableName.FILTER and e.verdict is TraceVerdict.DROP]
    assert drops and {(e.chain, e.rule_text) for e in drops} == {
        ("INPUT", "-A INPUT -m conntrack --ctstate INVALID -j DROP")
    }
    policy = next(e for e in tables if e.rule == 0 and e.table is TableName.NAT and e.chain == "PREROUTING")
    assert policy.rule_text == "-P PREROUTING ACCEPT"
    # net.netfilter.nf_conntrack_tcp_be_liberal as conntrack read it: 0 by default, 1 with the fix
    for fix, liberal in (("none", 0), ("be-liberal", 1)):
        r = run_scenario(load_scenario("seed-incident").with_kernel("3.10").with_fix(fix))
        seen = {e.ct.sysctls.tcp_be_liberal for e in r.world.trace.events if e.ct is not None}
        assert seen == {liberal}


def test_a_log_line_carries_the_log_rule_that_wrote_it():
    # LOG goes on (XT_CONTINUE), so the table's verdict event names another rule; the LOG
    # event itself says which rule logged, as iptables -S prints it (libxt_LOG's save()). The
    # seed's ruleset logs INVALID packets already; a second LOG rule goes in before it.
    sc = load_scenario("seed-incident").with_kernel("3.10")
    rule = "iptables -I INPUT -m conntrack --ctstate INVALID -j LOG --log-prefix 'inv: '"
    r = run_scenario(replace(sc, rules=[*sc.rules, rule]))
    said = {}
    for e in r.world.trace.events:
        if e.step is Step.LOG:
            said[(e.detail or "").split(" IN=")[0]] = e.rule_text or ""
    assert set(said) == {"inv:", "invalid:"}
    assert said["inv:"] == '-A INPUT -m conntrack --ctstate INVALID -j LOG --log-prefix "inv: "'
    assert said["invalid:"].startswith("-A INPUT ") and '-j LOG --log-prefix "invalid: "' in said["invalid:"]
