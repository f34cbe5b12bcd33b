"""The model's UDP tracker against each kernel's own nf_conntrack_proto_udp.c.

``tests/kernel/observed-udp/<build>.json`` holds generated flows and, per datagram, what the
file of that tree (compiled unmodified in userspace: ``tools/kjudge/build-udp.sh``, recorded by
``tools/kjudge/udp_judge.py``) answered: the verdict, the entry's status bits and the timeout
it asked for, and its log text. Here the same flows go through the model's ``nf_conntrack_in()`` and
``nf_conntrack_confirm()`` on the build's profile and every datagram is compared.

The model builds only well-formed datagrams, so a recorded datagram whose length field does
not fit (or that is shorter than a header) is not replayed; the kernel refused each of them
with no change to the entry (checked), and the flow goes on. A zero checksum field ("no
checksum", accepted unchecked) is replayed as a correct checksum, which every kernel also
accepts without a log.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sim.include.nf_conntrack import IPS_NAT_CLASH
from sim.netfilter.conntrack import ConntrackTable
from sim.netfilter.profiles import PROFILES
from sim.packet import udp_packet
from sim.skb import Skb

OBSERVED = Path(__file__).parents[1] / "kernel" / "observed-udp"
PROFILE_OF_BUILD = {"3.10.99": "3.10"}  # build name -> profile name, where they differ
A, B = "192.0.2.1", "198.51.100.2"
PAYLOAD = 33
STATUS_BITS = ("SEEN_REPLY", "ASSURED", "CONFIRMED", "NAT_CLASH")


def recordings() -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem, json.loads(p.read_text())) for p in sorted(OBSERVED.glob("*.json"))]


def _status(table: ConntrackTable, now: float) -> list[str]:
    entries = table.entries(now)
    if not entries:
        return []
    (ct,) = entries
    names = {
        "SEEN_REPLY": ct.seen_reply,
        "ASSURED": ct.assured,
        "CONFIRMED": ct.confirmed,
        "NAT_CLASH": bool(ct.status & IPS_NAT_CLASH),
    }
    return [n for n in STATUS_BITS if names[n]]


def replay_flow(profile: str, flow: list[dict[str, Any]]) -> list[str]:
    """The differences between the model and one recorded flow, as lines."""
    table = ConntrackTable(profile)
    now = 0.0
    out: list[str] = []
    for i, step in enumerate(flow):
        now += step["gap_ms"] / 1000
        alive = table.entries(now)  # an expired entry is not found (nf_ct_is_expired())
        if step["clash"]:
            for ct in alive:
                ct.status |= IPS_NAT_CLASH
        if step["len"] != step["avail"] or step["avail"] < 8:
            if step["verdict"] != -1:
                out.append(f"step {i}: the kernel accepted a malformed datagram")
            continue
        # directions are the entry's: with no entry, any datagram opens one as its original
        reply = step["dir"] == "r" and bool(alive)
        pkt = udp_packet(B, 53, A, 45123) if reply else udp_packet(A, 45123, B, 53, PAYLOAD)
        skb = Skb(replace(pkt, bad_checksum=step["csum"] == "bad"))
        res = table.nf_conntrack_in(skb, now, prerouting=step["hook"] == "pre")
        if res.ct is not None:
            table.nf_conntrack_confirm(skb, now)
        verdict = 1 if res.ct is not None else -1
        model = {"verdict": verdict, "status": _status(table, now), "log": res.reason or ""}
        # the log text without 3.10's "nf_ct_udp: " prefix and trailing blank
        kernel = {
            "verdict": step["verdict"],
            "status": step["status"],
            "log": step["log"].removeprefix("nf_ct_udp: ").strip(),
        }
        if verdict == 1:
            (ct,) = table.entries(now)
            model["timeout"] = round((ct.timeout - now) * 1000)
            kernel["timeout"] = step["timeout"]
        if model != kernel:
            what = f"{step['dir']} +{step['gap_ms']} ms {step['csum']} {step['hook']}"
            out.append(f"step {i} ({what}): model {model}, kernel {kernel}")
    return out


def test_every_profile_has_a_udp_recording() -> None:
    builds = {PROFILE_OF_BUILD.get(b, b) for b, _ in recordings()}
    assert builds == set(PROFILES)
    for build, body in recordings():
        assert body["judge"]["tree"] == PROFILES[PROFILE_OF_BUILD.get(build, build)].source


@pytest.mark.parametrize(("build", "body"), recordings(), ids=[b for b, _ in recordings()])
def test_model_udp_tracker_matches_the_kernels_own_file(build: str, body: dict[str, Any]) -> None:
    profile = PROFILE_OF_BUILD.get(build, build)
    lines: list[str] = []
    packets = 0
    for n, flow in enumerate(body["flows"]):
        packets += len(flow)
        lines += [f"flow {n} {line}" for line in replay_flow(profile, flow)]
    assert packets >= 1000
    assert lines == [], f"{len(lines)} differences in {packets} datagrams:\n" + "\n".join(lines[:30])
