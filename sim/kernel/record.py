"""Record what the real kernel does with cases: ``python -m sim.kernel.record [--out DIR] CASE...``.

Each case (a built-in name or a JSON file; ``--all`` for the whole library) is replayed
on one reused testbed and stored as ``DIR/<name>.json``::

    {"kernel_release": "<uname -r>", "case": "<name>", "observations": [{...}, ...]}

The recordings in ``tests/kernel/observed/`` (the default DIR) are the expected values of
the model's replay tests. Needs root; exits 2 with a one-line reason when it cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sim.kernel.check import KernelRunner, load_case
from sim.kernel.netns import NetnsError, skip_reason
from sim.scenario.case import CaseError
from sim.scenario.loader import InputError, builtin_cases

DEFAULT_OUT = Path("tests/kernel/observed")


def recording(case: dict[str, Any], observations: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored form of one case's kernel observations."""
    return {"kernel_release": os.uname().release, "case": case["name"], "observations": observations}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim.kernel.record", description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", metavar="CASE", help="a built-in case name or a JSON case file")
    p.add_argument("--all", action="store_true", help="every built-in case")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    return p


def main(argv: list[str] | None = None) -> int:
    """Record the named cases; 0 on success, 2 on bad input or when the kernel side cannot run."""
    args = _parser().parse_args(argv)
    refs = builtin_cases() if args.all else list(args.cases)
    if not refs:
        print("record: name cases or case files, or use --all", file=sys.stderr)
        return 2
    try:
        cases = [load_case(ref) for ref in refs]
    except InputError as e:
        print(f"record: {e}", file=sys.stderr)
        return 2
    reason = skip_reason()
    if reason is not None:
        print(f"record: {reason}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with KernelRunner() as kernel:
            for i, case in enumerate(cases, 1):
                path = args.out / f"{case['name']}.json"
                path.write_text(json.dumps(recording(case, kernel.run(case)), indent=2) + "\n")
                print(f"[{i}/{len(cases)}] {path}", file=sys.stderr, flush=True)
    except (NetnsError, CaseError) as e:
        print(f"record: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
