"""``nflab bench``'s capture figures: ``nflab pcap`` against tshark on a real bulk upload.

The capture: a bulk upload through the MASQUERADE host of :mod:`sim.kernel.upload` (MTU
1500, one segment per packet, ``tcpdump -s 96`` on the host's uplink), cut to its first
:data:`BENCH_PACKETS` frames. It is made once (needs root) and kept at
``$NFLAB_PCAP_BENCH`` or ``~/.cache/nflab/bulk-141591.pcap``; any pcap of that size given
there is used as it is.

Both tools run as commands on the same file in the same bench run, timed by the wall clock
from start to exit (start-up included on both sides): ``nflab pcap FILE --json`` (every
packet through the newest kernel's tracker) and ``tshark -r FILE -o
tcp.analyze_sequence_numbers:TRUE -z conv,tcp -q``. The resident-memory figure is the
``nflab pcap`` process's peak RSS, ``VmHWM`` of /proc/self/status read by the process as it
ends (``ru_maxrss`` would also count the bench process it was forked from). ``pcap_build``
says whether the optional compiled build (:mod:`sim.native`) ran or the pure Python one.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim import native

BENCH_PACKETS = 141_591
UPLOAD_BYTES = 240_000_000  # ~1.5 packets per 1448 payload bytes: more than BENCH_PACKETS
Figure = float | str | None


def bench_capture_path() -> Path:
    env = os.environ.get("NFLAB_PCAP_BENCH")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "nflab" / f"bulk-{BENCH_PACKETS}.pcap"


def cut_pcap(src: Path, dst: Path, frames: int) -> int:
    """Copy the file header and the first ``frames`` records of a classic pcap; the count copied."""
    raw = src.read_bytes()
    order = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, n = 24, 0
    while off < len(raw) and n < frames:
        off += 16 + struct.unpack_from(order + "I", raw, off + 8)[0]
        n += 1
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(raw[:off])
    return n


def ensure_bench_capture() -> Path | str:
    """The bench capture's path, made if missing; a one-line reason when it cannot be."""
    path = bench_capture_path()
    if path.exists():
        return path
    from sim.kernel.netns import skip_reason
    from sim.kernel.upload import Upload, run_upload

    reason = skip_reason()
    if reason is not None:
        return f"no capture at {path} and none can be made here: {reason}"
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.pcap"
        run_upload(Upload(size=UPLOAD_BYTES, mtu=1500, snaplen=96, timeout_s=300.0), full)
        n = cut_pcap(full, path, BENCH_PACKETS)
    if n != BENCH_PACKETS:
        path.unlink()
        return f"the upload made only {n} packets, fewer than {BENCH_PACKETS}"
    return path


# `nflab pcap FILE --json`, then the process's own peak RSS in kB on stderr
_NFLAB_PCAP = (
    "import sys\n"
    "from sim.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read()\n"
    "print(status.split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
    "raise SystemExit(rc)\n"
)


def _timed(argv: list[str]) -> tuple[float, str]:
    """Wall seconds of a command (stdout discarded) and its stderr."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited with {proc.returncode}")
    return elapsed, proc.stderr


def pcap_figures() -> dict[str, Figure]:
    """``pcap_packets_per_s``, ``pcap_vs_tshark``, ``pcap_peak_rss_mb`` (null + a reason when
    a figure cannot be measured here)."""
    found = ensure_bench_capture()
    if isinstance(found, str):
        return {
            "pcap_packets_per_s": None,
            "pcap_vs_tshark": None,
            "pcap_peak_rss_mb": None,
            "pcap_note": found,
        }
    nflab_s, err = _timed([sys.executable, "-c", _NFLAB_PCAP, "pcap", str(found), "--json"])
    out: dict[str, Figure] = {
        "pcap_packets_per_s": round(BENCH_PACKETS / nflab_s, 1),
        "pcap_peak_rss_mb": round(int(err.split()[-1]) / 1024, 1),
        "pcap_build": "compiled (mypyc)" if native.use_compiled() else "pure Python",
    }
    if shutil.which("tshark") is None:
        out["pcap_vs_tshark"] = None
        out["pcap_note"] = "tshark is not installed"
        return out
    tshark_s, _ = _timed(
        ["tshark", "-r", str(found), "-o", "tcp.analyze_sequence_numbers:TRUE", "-z", "conv,tcp", "-q"]
    )
    out["pcap_vs_tshark"] = round(tshark_s / nflab_s, 3)
    return out
