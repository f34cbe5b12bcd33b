"""sim.api, the public API: open a source, apply a kernel or a fix, run it, read the trace and
the captures; every refusal an InputError of one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import api
from sim.api import InputError, SourceKind, Step

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "sim" / "scenario" / "cases"
CAPTURE = ROOT / "tests" / "pcap" / "data" / "late-host.pcap"


def test_every_kind_of_source_is_told_apart() -> None:
    assert api.open_source("seed-incident").kind is SourceKind.SCENARIO
    assert api.open_source("late-ack").kind is SourceKind.CASE  # a built-in case by its name
    assert api.open_source(str(CASES / "late-ack.json")).kind is SourceKind.CASE
    assert api.open_source(str(CAPTURE)).kind is SourceKind.CAPTURE


@pytest.mark.parametrize(
    ("ref", "kernel", "fix", "message"),
    [
        ("no-such-thing", None, None, "no-such-thing: No such file or directory"),
        ("seed-incident", "2.6", None, "kernel: expected one of 3.10, el7"),
        (
            "late-ack",
            None,
            "both",
            "fix: expected one of none, drop-invalid, be-liberal, kube-forward-drop, random-fully, "
            "bigger-table, notrack, single-request-reopen, conntrack-delete, got 'both'",
        ),
        ("missing.pcap", None, None, "missing.pcap: No such file or directory"),
    ],
)
def test_bad_sources_are_one_input_error(ref: str, kernel: str | None, fix: str | None, message: str) -> None:
    with pytest.raises(InputError) as err:
        api.load(ref, kernel, fix)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_seed_incident_on_310_sends_one_host_rst_and_its_fix_none() -> None:
    # README: on 3.10 the late ACK is INVALID, skips NAT, and the host answers with a RST that
    # only the remote sees (host-eth0.pcap shows one RST, ctr-eth0.pcap none).
    setup = api.load("seed-incident", kernel="3.10")
    assert (setup.kernel, setup.fix, setup.source.kind) == ("3.10", "none", SourceKind.SCENARIO)
    result = setup.run()
    host = [p for _t, way, p, _pid in result.capture("host", "eth0") if way == "out"]
    ctr = [p for _t, _way, p, _pid in result.capture("ctr", "eth0")]
    assert sum(1 for p in host if p.flags & api.TCPHDR_RST) == 1
    assert not any(p.flags & api.TCPHDR_RST for p in ctr)
    invalid = [
        e for e in result.events if e.step is Step.CONNTRACK and e.ct and e.ct.ctstate is api.CtState.INVALID
    ]
    assert invalid and invalid[0].ns == "host"
    assert result.late  # the late-ack trigger fired


def test_a_fix_changes_the_setup_and_the_run() -> None:
    setup = api.load("seed-incident", kernel="3.10").with_fix("drop-invalid")
    assert setup.fix == "drop-invalid" and setup.with_fix("none").fix == "none"
    host = setup.run().capture("host", "eth0")
    assert not any(p.flags & api.TCPHDR_RST for _t, way, p, _pid in host if way == "out")


def test_a_case_runs_packet_by_packet_with_one_observation_each() -> None:
    setup = api.load("late-ack", kernel="3.10", fix="be-liberal")
    assert (setup.kernel, setup.fix, setup.source.kind) == ("3.10", "be-liberal", SourceKind.CASE)
    result = setup.run()
    assert result.run is None and len(result.observations) == len(setup.case.data["packets"])
    assert result.observations[-1]["window"] == "ACCEPT"


def test_a_capture_is_replayed_as_a_case() -> None:
    setup = api.load(str(CAPTURE))
    assert setup.source.kind is SourceKind.CAPTURE and setup.case is not None
    assert setup.kernel == api.DEFAULT_KERNEL
    assert len(setup.run().observations) == len(setup.case.data["packets"])
