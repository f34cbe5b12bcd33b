"""Record data/judged.json: each host capture's --to-case conversion judged by the kernels' own
``nf_conntrack_proto_tcp.c`` (/work/shared/ktcp's judge.py; not a test, run by hand):

    python tests/pcap/record_judged.py /work/shared/ktcp

Case packet i is the i-th packet the analysis tracked (copies on other interfaces and the
host's own RSTs are not case packets), so each verdict is stored under its frame number.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from sim.netfilter.profiles import get_profile
from sim.pcap.analyse import Analysis, Tracker
from sim.pcap.reader import read_frames
from sim.pcap.tocase import capture_case

DATA = Path(__file__).parent / "data"
CAPTURES = ("clean-host.pcap", "lossdup-host.pcap", "late-host.pcap", "any-host.pcap")
BUILDS = ("el7", "3.10.99", "6.18")


def tracked_frames(path: Path) -> list[int]:
    frames: list[int] = []
    a = Analysis([Tracker(get_profile("6.1"))], on_packet=lambda fr, _c, _d, _p: frames.append(fr.number))
    for fr in read_frames(path):
        a.feed(fr)
    return frames


def main(ktcp: str) -> None:
    out: dict[str, object] = {
        "_": "per host capture and ktcp build (judge.py --lines on the --to-case conversion): the "
        "frames that are not plain ACCEPT: [ctstate, window, reason]; packets = case packets"
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in CAPTURES:
            case_file = Path(tmp) / "case.json"
            case_file.write_text(json.dumps(capture_case(str(DATA / name))))
            frames = tracked_frames(DATA / name)
            per_build = {}
            for build in BUILDS:
                lines = subprocess.run(
                    [sys.executable, "judge.py", str(case_file), "--kernel", build, "--lines"],
                    cwd=ktcp,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.splitlines()
                assert len(lines) == len(frames), (name, build)
                flagged = {}
                for frame, line in zip(frames, lines, strict=True):
                    o = json.loads(line)
                    if o["window"] != "ACCEPT" or o["ctstate"] == "INVALID":
                        flagged[str(frame)] = [o["ctstate"], o["window"], o["reason"]]
                per_build[build] = {"packets": len(lines), "flagged": flagged}
            out[name] = per_build
    (DATA / "judged.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
