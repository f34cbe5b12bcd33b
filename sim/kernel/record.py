"""Record what a real kernel does with cases: ``python -m sim.kernel.record [--out DIR] CASE...``.

Three modes:

* live (default, needs root): each case (a built-in name or a JSON file; ``--all`` for the
  whole library) is replayed on one reused testbed of the running kernel and stored as
  ``DIR/<name>.json``::

      {"kernel_release": "<uname -r>", "case": "<name>", "observations": [{...}, ...]}

* ``--judge KTCP_DIR --kernel NAME``: the same cases through a userspace build of one
  kernel's own ``nf_conntrack_proto_tcp.c`` (``/work/shared/ktcp``: ``judge.py --kernel NAME``).
  A built-in case is stored as ``DIR/<name>.json`` with ``"judge"`` (the tree, commit and
  blob the build came from) in place of ``kernel_release``; a file of generated cases
  (``{"cases": [...]}``) as one ``DIR/<file name>`` holding ``"recordings"``, one per case.
* ``--generate N --seed S [--probes]``: write N generated conversations (the strategy of
  ``nflab kernel-check --fuzz``; with ``--probes``, a short well-formed conversation followed
  by segments aimed at the tracker's edges, :func:`probe_strategy`) as one cases file
  ``--out FILE``, to be recorded by the other modes and committed with the recordings, so
  every recording stays replayable.

Only facts per packet are stored (:data:`sim.kernel.check.FIELDS`), never kernel source.
The recordings under ``tests/kernel/observed*/`` are the expected values of the model's
replay tests. Exits 2 with a one-line reason when it cannot run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sim.errors import InputError
from sim.kernel.check import FIELDS, KernelRunner, case_strategy, load_case
from sim.kernel.netns import NetnsError, skip_reason
from sim.packet import SEQ_MASK, parse_flags
from sim.scenario.case import CaseError, parse_case
from sim.scenario.fuzzcase import FIXES, MAX_PAYLOAD, conversation_to_case
from sim.scenario.loader import CASES_DIR, builtin_cases

DEFAULT_OUT = Path("tests/kernel/observed")


def recording(case: dict[str, Any], observations: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored form of one case's kernel observations."""
    return {"kernel_release": os.uname().release, "case": case["name"], "observations": observations}


# ---------------------------------------------------------------- generated cases


# Probe flags: what the state table and the RST checks tell apart.
_PROBE_FLAGS = ("A", "PA", "R", "RA", "S", "SA", "FA", "F", "")
# Gaps that outlive a timeout: CLOSE 10 s, LAST_ACK 30 s, SYN_RECV 60 s, SYN_SENT/TIME_WAIT
# 120 s (100 + 100 after a retransmitted SYN), RETRANS/UNACK 300 s.
_PROBE_DELAYS = (11.0, 31.0, 61.0, 100.0, 121.0, 301.0)


def probe_strategy(seed: int) -> Any:
    """Cases that probe the tracker's edges. An opening -- a well-formed conversation (at
    most 8 steps) cut anywhere, or picked up mid-stream, or a simultaneous open -- maybe a
    close (FIN, ACK, FIN, ACK, cut anywhere), then 1..6 segments from either side whose seq
    and ack sit on or next to what conntrack tracks (each side's next seq, the peer's window
    edge, 66000 below, zero, anywhere), with any flags the state table tells apart, options
    on some, now and then after a gap that outlives a timeout; one of :data:`FIXES` each."""
    from hypothesis import strategies as st

    from sim.packet import TcpOptions
    from sim.testing.strategies import Segment, conversations

    options = (TcpOptions(), TcpOptions(mss=1460), TcpOptions(mss=1460, wscale=7, sack_perm=True))

    def seg(frm: str, flags: str, seq: int, ack: int = 0, win: int = 65535, length: int = 0) -> Segment:
        return Segment(frm, parse_flags(flags), seq & SEQ_MASK, ack & SEQ_MASK, win, length)

    @st.composite
    def sequence(draw: st.DrawFn) -> tuple[list[Segment], dict[int, float]]:
        """Short sequences aimed at one changelog entry each (named in the comment)."""
        x, y = draw(st.integers(0, SEQ_MASK)), draw(st.integers(0, SEQ_MASK))
        k = draw(st.sampled_from((1, 1000, 70000)))
        far = draw(st.sampled_from((0, 200_000)))
        hs = [seg("c", "S", x), seg("s", "SA", y, x + 1), seg("c", "A", x + 1, y + 1)]
        which = draw(st.integers(0, 9))
        if which == 0:  # fast-open: an old SYN or RST while the receiver is unknown
            return [seg("c", "S", x), seg("c", draw(st.sampled_from(("S", "R", "RA"))), x - k)], {}
        if which == 1:  # rfc5961-last-ack: a SYN in LAST_ACK, then the peer's challenge ACK
            close = [seg("c", "FA", x + 1, y + 1), seg("s", "A", y + 1, x + 2), seg("s", "FA", y + 1, x + 2)]
            return [*hs, *close, seg("c", "S", x + k), seg("s", "A", y + 2, x + 2)], {}
        if which == 2:  # zero-window-timeout: a zero window, then a gap of 301 s
            return [*hs, seg("s", "A", y + 1, x + 1, win=0), seg("c", "A", x + 1, y + 1)], {4: 301.0}
        if which == 3:  # syn-sent-no-renew: a retransmitted SYN 100 s later, then 100 s more
            return [seg("c", "S", x), seg("c", "S", x), seg("s", "SA", y, x + 1)], {1: 100.0, 2: 100.0}
        if which == 4:  # challenge-ack-reuse: an ACK answering the SYN, then a RST with its ack
            return [seg("c", "S", x), seg("s", "A", y, x + k), seg("c", "R", x + k)], {}
        if which == 5:  # keep-be-liberal: pick-up, an ignored SYN, its SYN/ACK, far data
            return [
                seg("c", "A", x, y),
                seg("c", "S", x + k),
                seg("s", "SA", y, x + k + 1),
                seg("c", "A", x + k + 1, y + 1),
                seg("s", "A", y + 1 + far, x + k + 1, length=100),
            ], {}
        if which == 6:  # simultaneous-open: SYN, SYN, SYN/ACK, SYN/ACK, ACK
            return [
                seg("c", "S", x),
                seg("s", "S", y),
                seg("c", "SA", x, y + 1),
                seg("s", "SA", y, x + 1),
                seg("s", "A", y + 1, x + 1),
                seg("c", "A", x + 1, y + 1),
            ], {}
        if which == 7:  # rst-to-syn-other-dir: a SYN in ESTABLISHED, a RST the same way acking it
            return [*hs, seg("c", "S", x + k), seg("c", "RA", x + 1 + far, x + k + 1)], {}
        if which == 8:  # tw-reopen-reply: close to TIME_WAIT, then a SYN from the server
            close = [
                seg("c", "FA", x + 1, y + 1),
                seg("s", "A", y + 1, x + 2),
                seg("s", "FA", y + 1, x + 2),
                seg("c", "A", x + 2, y + 2),
            ]
            return [*hs, *close, seg("s", "S", y + k), seg("c", "SA", x + k, y + k + 1)], {}
        # out-of-window-fin-rst: an out-of-window FIN, the peer's out-of-window RST, 301 s later
        return [
            *hs,
            seg("s", "FA", y + 1 + 200_000, x + 1),
            seg("c", "RA", x + 1 + 200_000, y + 1),
            seg("c", "A", x + 1, y + 1),
        ], {5: 301.0}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        if draw(st.integers(0, 2)) == 0:
            segs, delays = draw(sequence())
            case = conversation_to_case(segs, name=f"probe-seed{seed}", fix=draw(st.sampled_from(FIXES)))
            for i, delay in delays.items():
                case["packets"][i]["delay"] = delay
            return case
        conv = draw(conversations(max_steps=8, max_segment=MAX_PAYLOAD))
        segs = list(conv.segments)
        opening = draw(st.sampled_from(("handshake", "handshake", "pickup", "simultaneous")))
        if opening == "handshake":
            segs = segs[: draw(st.sampled_from((1, 2, 3, len(segs), len(segs))))]
        elif opening == "pickup":
            segs = segs[draw(st.integers(1, 3)) :] or segs[-1:]
        else:
            c_syn, s_synack = segs[0], segs[1]
            s_syn = s_synack._replace(flags=parse_flags("S"), ack=0)
            c_synack = c_syn._replace(flags=parse_flags("SA"), ack=(s_synack.seq + 1) & SEQ_MASK)
            segs = [c_syn, s_syn, c_synack, s_synack][: draw(st.integers(2, 4))]
        nxt = {"c": (conv.isn_c + 1) & SEQ_MASK, "s": (conv.isn_s + 1) & SEQ_MASK}
        win = {"c": 65535, "s": 65535}
        for old in segs:
            nxt[old.frm] = max(nxt[old.frm], (old.seq + old.length) & SEQ_MASK)
            win[old.frm] = old.win
        if draw(st.integers(0, 2)) == 0:
            first = draw(st.sampled_from("cs"))
            second = "s" if first == "c" else "c"
            close = [
                seg(first, "FA", nxt[first], nxt[second], win[first]),
                seg(second, "A", nxt[second], nxt[first] + 1, win[second]),
                seg(second, "FA", nxt[second], nxt[first] + 1, win[second]),
                seg(first, "A", nxt[first] + 1, nxt[second] + 1, win[first]),
            ]
            sent = draw(st.integers(1, 4))
            segs += close[:sent]
            nxt[first] = (nxt[first] + 1) & SEQ_MASK
            if sent >= 3:
                nxt[second] = (nxt[second] + 1) & SEQ_MASK
        delays = {}
        for _ in range(draw(st.integers(1, 6))):
            frm = draw(st.sampled_from("cs"))
            peer = "s" if frm == "c" else "c"
            length = draw(st.sampled_from((0, 0, 1, 100, MAX_PAYLOAD)))
            seq = draw(
                st.sampled_from(
                    (
                        nxt[frm],
                        nxt[frm],
                        nxt[frm] - 1,
                        nxt[frm] + win[peer] - length,
                        nxt[frm] + win[peer] + 1,
                        nxt[frm] - 70000,
                        nxt[frm] + 1000,
                        0,
                        draw(st.integers(0, SEQ_MASK)),
                    )
                )
            )
            ack = draw(
                st.sampled_from(
                    (
                        nxt[peer],
                        nxt[peer],
                        nxt[peer] + 1,
                        nxt[peer] - 66001,
                        nxt[peer] - 70000,
                        nxt[peer] + 1000,
                        nxt[frm],
                        nxt[frm] + 1,
                        0,
                    )
                )
            )
            flags = parse_flags(draw(st.sampled_from(_PROBE_FLAGS)))
            opts = draw(st.sampled_from(options)) if flags & parse_flags("S") else TcpOptions()
            if draw(st.integers(0, 5)) == 0:
                delays[len(segs)] = draw(st.sampled_from(_PROBE_DELAYS))
            window = draw(st.sampled_from((0, 1, 512, 65535)))
            segs.append(Segment(frm, flags, seq & SEQ_MASK, ack & SEQ_MASK, window, length, opts))
            if seq & SEQ_MASK == nxt[frm]:
                step = length + bool(flags & parse_flags("S")) + bool(flags & parse_flags("F"))
                nxt[frm] = (nxt[frm] + step) & SEQ_MASK
        case = conversation_to_case(segs, name=f"probe-seed{seed}", fix=draw(st.sampled_from(FIXES)))
        for i, delay in delays.items():
            case["packets"][i]["delay"] = delay
        return case

    return build()


BATCH = 30  # examples per hypothesis run: one run's examples are variations of each other


def generate(n: int, seed: int, probes: bool = False) -> list[dict[str, Any]]:
    """Up to ``n`` distinct cases from :func:`sim.kernel.check.case_strategy`, or
    :func:`probe_strategy` with ``probes``, drawn with fixed seeds: hypothesis ``find`` (nothing
    shrunk) in runs of :data:`BATCH` examples, run ``i`` with ``random.Random(seed * 1000 + i)``;
    named ``gen<seed>-<i>`` / ``probe<seed>-<i>``."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample

    seen: dict[str, dict[str, Any]] = {}

    def keep(case: dict[str, Any]) -> bool:
        parse_case(case)  # a generated case must be valid: CaseError names the field
        key = json.dumps([case["packets"], case.get("sysctl"), case.get("iptables")], sort_keys=True)
        seen.setdefault(key, case)
        return False

    strategy = probe_strategy(seed) if probes else case_strategy(seed)
    for run in range((n + BATCH - 1) // BATCH):
        config = settings(
            max_examples=min(BATCH, n - run * BATCH),
            database=None,
            deadline=None,
            phases=(Phase.generate,),
            suppress_health_check=list(HealthCheck),
        )
        with contextlib.suppress(NoSuchExample):
            find(strategy, keep, settings=config, random=random.Random(seed * 1000 + run))
    prefix = "probe" if probes else "gen"
    return [{**case, "name": f"{prefix}{seed}-{i:03d}"} for i, case in enumerate(seen.values())]


# ---------------------------------------------------------------- the ktcp judge


def _facts(obs: dict[str, Any]) -> dict[str, Any]:
    """One judged packet reduced to the compared fields (the judge's extra keys dropped)."""
    out = {k: obs.get(k) for k in FIELDS if k != "delivered_as"}
    out["emitted"] = [{k: v for k, v in e.items() if k != "ktcp_window"} for e in obs.get("emitted") or []]
    return out


def judge(judge_dir: Path, kernel: str, files: list[Path]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``judge.py --kernel NAME`` on case files -> (its build's source, one result per
    case). ValueError (one line) when the judge fails or a case uses what it does not model;
    a case setting a sysctl this kernel lacks is left out (the model refuses it too)."""
    script = judge_dir / "judge.py"
    if not script.exists():
        raise ValueError(f"{script}: no such file (give the ktcp folder)")
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, files), "--kernel", kernel],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"judge.py --kernel {kernel} failed: {last}")
    out = json.loads(proc.stdout)
    cases = []
    for res in out["cases"]:
        notes = [n for n in res["notes"] if not n.endswith(": not in this kernel, ignored")]
        if notes:
            raise ValueError(f"{res['file']} case {res['name']}: {notes[0]}")
        if not res["notes"]:
            cases.append(res)
    source = {k: out["source"][k] for k in ("name", "gitdir", "rev", "blob", "layout", "makefile_version")}
    source["tree"] = source.pop("gitdir").removesuffix("/repo").rsplit("/", 1)[-1].replace("+", "/", 1)
    return source, cases


def _judge_spelling(src: Path, dst: Path) -> Path:
    """Copy a case file for judge.py, which spells CWR "C" where the case format says "W"."""
    body = json.loads(src.read_text())
    for case in body.get("cases", [body]):
        for pkt in case["packets"]:
            pkt["flags"] = pkt.get("flags", "").upper().replace("W", "C")
    dst.write_text(json.dumps(body))
    return dst


def record_judge(judge_dir: Path, kernel: str, refs: list[str], out: Path) -> list[Path]:
    """Record built-in cases / case files through the judge into ``out``; the paths written."""
    files = [CASES_DIR / f"{r}.json" if r in builtin_cases() else Path(r) for r in refs]
    for f in files:
        if not f.exists():
            raise ValueError(f"{f}: no such case file")
    with tempfile.TemporaryDirectory() as tmp:
        spelled = [_judge_spelling(f, Path(tmp) / f"{i}.json") for i, f in enumerate(files)]
        source, results = judge(judge_dir, kernel, spelled)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    by_file: dict[str, list[dict[str, Any]]] = {}
    for res in results:
        by_file.setdefault(res["file"], []).append(
            {"case": res["name"], "observations": [_facts(o) for o in res["packets"]]}
        )
    for f, judged in zip(files, spelled, strict=True):
        recs = by_file.get(str(judged), [])
        if f.parent == CASES_DIR:
            if not recs:
                continue  # a sysctl this kernel does not have
            path = out / f.name
            path.write_text(json.dumps({"judge": source, **recs[0]}, indent=2) + "\n")
        else:
            path = out / f.name
            body = {"judge": source, "cases_file": f.name, "recordings": recs}
            path.write_text(json.dumps(body, separators=(",", ":")) + "\n")
        written.append(path)
    return written


# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim.kernel.record", description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", metavar="CASE", help="a built-in case name or a JSON case file")
    p.add_argument("--all", action="store_true", help="every built-in case")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--judge", type=Path, metavar="KTCP_DIR", help="record through this ktcp judge")
    p.add_argument("--kernel", metavar="NAME", help="the judge's build name (with --judge)")
    p.add_argument("--generate", type=int, metavar="N", help="write N generated cases to --out FILE")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed for --generate (default 0)")
    p.add_argument("--probes", action="store_true", help="--generate probes of the tracker's edges")
    return p


def _fail(message: str) -> int:
    print(f"record: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Record the named cases; 0 on success, 2 on bad input or when the kernel side cannot run."""
    args = _parser().parse_args(argv)
    if args.generate is not None:
        if args.generate <= 0 or args.out == DEFAULT_OUT:
            return _fail("--generate N needs N > 0 and --out FILE")
        cases = generate(args.generate, args.seed, args.probes)
        how = f"--generate {args.generate} --seed {args.seed}{' --probes' if args.probes else ''}"
        body = {"generator": f"python -m sim.kernel.record {how}", "cases": cases}
        args.out.write_text(json.dumps(body, separators=(",", ":")) + "\n")
        print(f"{len(cases)} cases -> {args.out}", file=sys.stderr)
        return 0
    refs = builtin_cases() + list(args.cases) if args.all else list(args.cases)
    if not refs:
        return _fail("name cases or case files, or use --all")
    if args.judge is not None:
        if not args.kernel:
            return _fail("--judge needs --kernel NAME")
        try:
            for path in record_judge(args.judge, args.kernel, refs, args.out):
                print(path, file=sys.stderr)
        except ValueError as e:
            return _fail(str(e))
        return 0
    try:
        cases = [load_case(ref) for ref in refs]
    except InputError as e:
        return _fail(str(e))
    reason = skip_reason()
    if reason is not None:
        return _fail(reason)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with KernelRunner() as kernel:
            for i, case in enumerate(cases, 1):
                path = args.out / f"{case['name']}.json"
                path.write_text(json.dumps(recording(case, kernel.run(case)), indent=2) + "\n")
                print(f"[{i}/{len(cases)}] {path}", file=sys.stderr, flush=True)
    except (NetnsError, CaseError) as e:
        return _fail(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
