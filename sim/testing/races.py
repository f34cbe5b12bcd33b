"""``nflab diff-kernels A B --races``: racing cases (``race: "prev"``) that two kernel profiles
end differently, each shrunk by hypothesis to a minimal case file.

A case is two to six new flows from two containers that share source ports -- TCP SYNs and
UDP queries to one service through Docker's MASQUERADE, some racing the previous packet's
confirmation. Two profiles differ on it when some packet's fate differs, or a conntrack -S
counter both kernels have moves differently (counters only one of them has, such as 3.10's
``new`` or 5.10's ``clash_resolve``, are left out). Differences are grouped by a signature
(the packet's protocol, whether it raced or was held, both fates and both counter changes)
and each is searched and shrunk on its own, as ``diff-kernels`` does for conversations.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from sim.netfilter.conntrack import stat_names
from sim.netfilter.profiles import resolve_kernel

CONTAINERS = {"ctr": "192.0.2.2", "ctr2": "192.0.2.7"}
Signature = tuple[Any, ...]


@st.composite
def racing_cases(draw: st.DrawFn, *, kernel: str = "6.18", max_packets: int = 6) -> dict[str, Any]:
    """Cases of 2..``max_packets`` new flows from ``ctr`` and ``ctr2`` (source ports 40000 or
    40001) to 198.51.100.2, TCP SYNs to port 80 or UDP queries to port 53, each after the
    first racing the previous one or not; ``nf_conntrack_max`` unset or 1..4."""
    n = draw(st.integers(2, max_packets))
    packets = []
    for i in range(n):
        frm = draw(st.sampled_from(sorted(CONTAINERS)))
        udp = draw(st.booleans())
        sport = draw(st.sampled_from([40000, 40001]))
        pkt: dict[str, Any] = {
            "from": frm,
            "src": f"{CONTAINERS[frm]}:{sport}",
            "dst": f"198.51.100.2:{53 if udp else 80}",
            "delay": 0,
        }
        if udp:
            pkt.update(proto="udp", len=33)
        else:
            pkt.update(flags="S", seq=draw(st.integers(0, 2**32 - 1)), ack=0, win=29200, len=0)
        if i and draw(st.booleans()):
            pkt["race"] = "prev"
        packets.append(pkt)
    case: dict[str, Any] = {"kernel": kernel, "hosts": {"ctr2": CONTAINERS["ctr2"]}, "packets": packets}
    limit = draw(st.none() | st.integers(1, 4))
    if limit is not None:
        case["sysctl"] = {"net.netfilter.nf_conntrack_max": limit}
    return case


def first_race_divergence(case: dict[str, Any], a: str, b: str) -> Signature | None:
    """The signature of the first packet ``a`` and ``b`` end differently, or None."""
    from sim.scenario.replay import replay_case

    common = set(stat_names(resolve_kernel(a))) & set(stat_names(resolve_kernel(b)))
    outs = [replay_case({**case, "kernel": k}) for k in (a, b)]
    for i, (oa, ob) in enumerate(zip(*outs, strict=True)):
        sa = {k: v for k, v in oa["ct_stats"].items() if k in common}
        sb = {k: v for k, v in ob["ct_stats"].items() if k in common}
        if oa["fate"] != ob["fate"] or sa != sb:
            pkt = case["packets"][i]
            held = i + 1 < len(case["packets"]) and "race" in case["packets"][i + 1]
            role = "held" if held else "racing" if "race" in pkt else "plain"
            return (
                pkt.get("proto", "tcp"),
                role,
                oa["fate"],
                ob["fate"],
                tuple(sorted(sa.items())),
                tuple(sorted(sb.items())),
            )
    return None


@dataclass(slots=True)
class RaceFinding:
    case: dict[str, Any]
    signature: Signature
    file: Path | None = None

    def describe(self, a: str, b: str) -> str:
        proto, role, fa, fb, sa, sb = self.signature
        return f"{role} {proto} packet: {a} {fa} {dict(sa)}, {b} {fb} {dict(sb)}"


def diff_races(
    a: str,
    b: str,
    examples: int,
    seed: int,
    out_dir: Path,
    *,
    cases: Callable[..., st.SearchStrategy[dict[str, Any]]] = racing_cases,
    divergence: Callable[[dict[str, Any], str, str], Signature | None] = first_race_divergence,
    kind: str = "race",
) -> list[RaceFinding]:
    """Search ``examples`` racing cases per round for a difference not found yet, shrink it,
    write it as ``out_dir/race-A-B-N.json`` (kernel A); repeat until a round finds none.
    ``cases``, ``divergence`` and ``kind`` put other cases through the same search
    (:mod:`sim.testing.datagrams`)."""
    known: set[Signature] = set()
    config = settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    findings: list[RaceFinding] = []

    def differs(case: dict[str, Any]) -> bool:
        sig = divergence(case, a, b)
        return sig is not None and sig not in known

    while True:
        try:
            minimal = find(cases(kernel=a), differs, settings=config, random=random.Random(seed))
        except NoSuchExample:
            return findings
        sig = divergence(minimal, a, b)
        assert sig is not None
        known.add(sig)
        finding = RaceFinding(minimal, sig)
        out_dir.mkdir(parents=True, exist_ok=True)
        finding.file = out_dir / f"{kind}-{a}-{b}-{len(findings) + 1}.json"
        about = {"_about": f"nflab diff-kernels {a} {b} --{kind}s --seed {seed}: {finding.describe(a, b)}"}
        finding.file.write_text(json.dumps({**about, **minimal}, indent=2) + "\n")
        findings.append(finding)
