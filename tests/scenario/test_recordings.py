"""The model against recordings of the real 6.18 kernel (tests/kernel/observed, made by
``python -m sim.kernel.record``): every built-in case, every packet, every field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.kernel.check import compare, load_case
from sim.scenario.loader import builtin_cases
from sim.scenario.replay import replay_case

OBSERVED = Path(__file__).parents[1] / "kernel" / "observed"


@pytest.mark.parametrize("name", builtin_cases())
def test_model_matches_real_kernel_recording(name):
    case = load_case(name)
    recording = json.loads((OBSERVED / f"{name}.json").read_text())
    assert recording["case"] == name
    diffs = compare(case, replay_case(case), recording["observations"])
    assert diffs == [], "\n".join(d.describe() for d in diffs)
