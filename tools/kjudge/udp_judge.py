"""Record what each kernel's own nf_conntrack_proto_udp.c does with generated UDP flows.

    KJUDGE_MIRROR=/work/.mirror ./build-udp.sh all
    python3 tools/kjudge/udp_judge.py --n 300 --seed 1 --out tests/kernel/observed-udp

A flow is a list of datagrams of one UDP entry: direction (``o`` original, ``r`` reply), the
gap before it in milliseconds, the bytes after the IP header and the header's length field,
its checksum (``good``, ``bad``, ``none``: a zero field), the hook (``pre`` PRE_ROUTING, ``out``
LOCAL_OUT) and whether the entry was marked IPS_NAT_CLASH first. Each build's driver
(``kudp_driver.c``) answers per datagram: the tracker's verdict, its log text, the entry's
status bits (SEEN_REPLY, ASSURED, CONFIRMED, NAT_CLASH) and the timeout it asked for.
One file per build is written: the build's source (tree, commit, blob), the flows and the
answers, so a test can replay the flows on the model. Only facts are stored, never source.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

BUILDS = ("el7", "3.10.99", "4.19", "5.10", "5.15", "6.1", "6.12", "6.18")
# Gaps that sit on the tracker's edges: stream_ts (2 s, strictly after), the unreplied
# timeout (30 s) and the old stream timeout (180 s); 1 ms most of the time.
GAPS_MS = (1, 1, 1, 1, 500, 2000, 2001, 2500, 30001, 120001, 180001)
PAYLOAD = 33
UDP_HEADER = 8


def flows(n: int, seed: int) -> list[list[dict[str, Any]]]:
    """``n`` flows of 1 to 8 datagrams, from a seeded random.Random."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        flow = []
        for i in range(rng.randint(1, 8)):
            avail = UDP_HEADER + PAYLOAD
            kind = rng.choice(("ok",) * 12 + ("truncated", "short-length", "no-header"))
            length = {"ok": avail, "truncated": avail + 10, "short-length": 4, "no-header": avail}[kind]
            if kind == "no-header":
                avail = length = 4
            flow.append(
                {
                    "dir": "o" if i == 0 else rng.choice(("o", "r")),
                    "gap_ms": 0 if i == 0 else rng.choice(GAPS_MS),
                    "avail": avail,
                    "len": length,
                    "csum": rng.choice(("good",) * 6 + ("bad", "none")),
                    "hook": rng.choice(("pre",) * 4 + ("out",)),
                    "clash": i > 0 and rng.randint(0, 15) == 0,
                }
            )
        out.append(flow)
    return out


def run(driver: Path, all_flows: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Every flow through one build's driver (one process, ``reset`` between flows)."""
    lines = []
    for flow in all_flows:
        lines.append("reset")
        now = 0
        for d in flow:
            now += d["gap_ms"]
            lines.append(f"time {now}")
            if d["clash"]:
                lines.append("clash")
            lines.append(f"pkt {d['dir']} {d['avail']} {d['len']} {d['csum']} {d['hook']}")
    proc = subprocess.run(
        [str(driver)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True
    )
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    errors = [a["error"] for a in answers if "error" in a]
    if errors:
        raise ValueError(f"{driver}: {errors[0]}")
    verdicts = iter(a for a in answers if "verdict" in a)
    return [[next(verdicts) for _ in flow] for flow in all_flows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build-dir", type=Path, default=Path("/tmp/kjudge-build"))
    p.add_argument("--builds", nargs="*", default=list(BUILDS))
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    generated = flows(args.n, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for build in args.builds:
        bdir = args.build_dir / f"udp-{build}"
        if not (bdir / "kudp").exists():
            print(f"udp_judge: no build {bdir}/kudp (run build-udp.sh {build})", file=sys.stderr)
            return 2
        answers = run(bdir / "kudp", generated)
        body = {
            "judge": json.loads((bdir / "SOURCE.json").read_text()),
            "generator": f"tools/kjudge/udp_judge.py --n {args.n} --seed {args.seed}",
            "flows": [
                [
                    {**d, **{k: a[k] for k in ("verdict", "log", "status", "timeout")}}
                    for d, a in zip(f, ans, strict=True)
                ]
                for f, ans in zip(generated, answers, strict=True)
            ],
        }
        path = args.out / f"{build}.json"
        path.write_text(json.dumps(body, separators=(",", ":")) + "\n")
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
