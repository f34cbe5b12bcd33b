"""The model against recordings of real kernels, every packet, every field.

* ``tests/kernel/observed/``: the live 6.18 kernel of these machines, every built-in case
  (``python -m sim.kernel.record --all``), contract v1 and v2 (UDP, ICMP, extra hosts, races;
  with ``proto``, ``ct_status`` and ``ct_stats`` for every packet). Cases and outputs the
  model does not support yet are expected failures naming the missing feature
  (``tests/contract_v2.py``); they turn into plain tests once the model replays them.
* ``tests/kernel/observed-<profile>/``: each profile's own ``nf_conntrack_proto_tcp.c``,
  compiled in userspace (``/work/shared/ktcp``), on the built-in cases and on the generated
  conversations committed in ``tests/kernel/conversations/``
  (``python -m sim.kernel.record --judge KTCP_DIR --kernel NAME --all CASES.json``). The
  judge stands in for the host around the tracker, so ``delivered_as`` is not recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sim.kernel.check import FIELDS, V1_FIELDS, V2_FIELDS, compare, load_case
from sim.netfilter.profiles import PROFILES
from sim.scenario.case import CaseError
from sim.scenario.loader import builtin_cases
from sim.scenario.replay import replay_case

from ..contract_v2 import FEATURES, is_v2, model_gap, xfail_until_model_has

KERNEL = Path(__file__).parents[1] / "kernel"
OBSERVED = KERNEL / "observed"
CONVERSATIONS = KERNEL / "conversations"
JUDGED_FIELDS = tuple(f for f in V1_FIELDS if f != "delivered_as")
MIN_GENERATED = 300
V1_CASES = [n for n in builtin_cases() if not is_v2(load_case(n))]
V2_CASES = [n for n in builtin_cases() if is_v2(load_case(n))]
V1_GAP = model_gap(load_case("baseline"))  # the v2 outputs on v1 cases
# judge.py stands in for Docker's host (MASQUERADE, FORWARD, --ctstate rules) but has no DNAT:
# a published port's cases are judged by the live kernel only.
JUDGE_CANNOT = {
    n for n in V1_CASES if any("-j DNAT" in r for r in load_case(n).get("iptables", {}).get("host", []))
}


def _live_diffs(name: str, fields: tuple[str, ...]) -> list[str]:
    case = load_case(name)
    case["kernel"] = "6.18"  # the kernel the recordings were made on
    recording = json.loads((OBSERVED / f"{name}.json").read_text())
    assert recording["case"] == name
    assert recording["kernel_release"].startswith("6.18.")
    return [d.describe() for d in compare(case, replay_case(case), recording["observations"], fields)]


@pytest.mark.parametrize("name", V1_CASES)
def test_model_matches_real_kernel_recording(name):
    diffs = _live_diffs(name, V1_FIELDS)
    assert diffs == [], "\n".join(diffs)


@pytest.mark.xfail(V1_GAP is not None, reason=f"needs {FEATURES['outputs']}: {V1_GAP}", strict=True)
@pytest.mark.parametrize("name", V1_CASES)
def test_model_matches_v2_outputs_of_v1_cases(name):
    diffs = _live_diffs(name, V2_FIELDS)
    assert diffs == [], "\n".join(diffs)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=xfail_until_model_has(load_case(n))) for n in V2_CASES]
)
def test_model_matches_real_kernel_recording_of_v2_case(name):
    diffs = _live_diffs(name, FIELDS)
    assert diffs == [], "\n".join(diffs)


def _generated() -> dict[str, dict[str, Any]]:
    return {
        c["name"]: c for f in sorted(CONVERSATIONS.glob("*.json")) for c in json.loads(f.read_text())["cases"]
    }


GENERATED = _generated()


def _recordings(profile: str) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(file, case, observations) of every recording of ``profile``."""
    out = []
    for path in sorted((KERNEL / f"observed-{profile}").glob("*.json")):
        body = json.loads(path.read_text())
        if "recordings" in body:
            out += [(path.name, dict(GENERATED[r["case"]]), r["observations"]) for r in body["recordings"]]
        else:
            out.append((path.name, load_case(body["case"]), body["observations"]))
    return out


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_is_recorded(profile):
    """A profile with no recording is not done: every built-in case (but those setting a
    sysctl that kernel lacks, which the model must refuse too) and >= 300 generated ones."""
    recs = _recordings(profile)
    names = {case["name"] for _f, case, _o in recs}
    for name in set(V1_CASES) - names - JUDGE_CANNOT:
        case = load_case(name)
        case["kernel"] = profile
        with pytest.raises(CaseError, match="does not exist in kernel"):
            replay_case(case)
    generated = [n for n in names if n in GENERATED]
    assert len(generated) >= MIN_GENERATED, f"{profile}: {len(generated)} generated conversations recorded"
    tree = json.loads(next((KERNEL / f"observed-{profile}").glob("*.json")).read_text())["judge"]["tree"]
    assert tree == PROFILES[profile].source


@pytest.mark.parametrize("profile", list(PROFILES))
def test_model_matches_each_kernels_own_code(profile):
    """Every recorded packet of the profile's own tracker, every field, in one report."""
    lines = []
    packets = 0
    for path, case, observations in _recordings(profile):
        case["kernel"] = profile
        packets += len(observations)
        diffs = compare(case, replay_case(case), observations, JUDGED_FIELDS)
        lines += [f"{path}: {d.describe()}" for d in diffs]
    assert packets > 0
    assert lines == [], f"{len(lines)} differences in {packets} packets:\n" + "\n".join(lines[:40])
