"""The optional compiled build (``sim.native``, ``tools/compile.py``): the pure-Python fallback
runs the source files, and the compiled modules, where built (CI builds them), give the same
analysis byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim import native

DATA = Path(__file__).parent / "pcap" / "data"
# captures with every kind of finding: INVALID and IGNORE packets, host RSTs, copies (-i any, both
# cooked link types), untranslated packets
CAPTURES = ("inject-any.pcap", "leak-any-sll.pcap", "late-host.pcap", "lossdup-host.pcap", "merged.pcapng")

KERNELS = ("--kernel", "3.10", "--kernel", "6.18")
_RUN = (
    "import json, sys\n"
    "from sim import native\n"
    "from sim.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print(json.dumps(native.compiled()), file=sys.stderr)\n"
    "raise SystemExit(rc)\n"
)


def _pcap(capture: str, pure: bool) -> tuple[list[dict[str, object]], list[str]]:
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    if pure:
        env[native.PURE_ENV] = "1"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUN,
            "pcap",
            str(DATA / capture),
            "--json",
            "--kernel",
            "3.10",
            "--kernel",
            "6.18",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    lines[-1]["summary"].pop("seconds")  # the one field that is a measurement
    return lines, json.loads(proc.stderr.splitlines()[-1])


def test_pure_python_fallback_runs_the_source_files() -> None:
    lines, compiled = _pcap("inject-any.pcap", pure=True)
    assert compiled == []
    assert lines[-1]["summary"]["tcp_packets"] > 0
    assert any("verdicts" in line for line in lines[:-1])  # the capture has flagged packets


@pytest.mark.skipif(
    not native.use_compiled(), reason="no current compiled build here (python tools/compile.py; CI builds it)"
)
@pytest.mark.parametrize("capture", CAPTURES)
def test_compiled_build_gives_the_same_analysis(capture: str) -> None:
    compiled_lines, compiled = _pcap(capture, pure=False)
    pure_lines, _ = _pcap(capture, pure=True)
    assert compiled == list(native.MODULES)
    assert compiled_lines == pure_lines


def test_a_build_is_used_only_when_current_and_not_turned_off(tmp_path, monkeypatch) -> None:
    src, ext = tmp_path / "m.py", tmp_path / "m.cpython-311-x86_64-linux-gnu.so"
    monkeypatch.setattr(native, "MODULES", ("m",))
    monkeypatch.setattr(native, "source_path", lambda _m: str(src))
    monkeypatch.setattr(native, "extension_path", lambda _m: str(ext) if ext.exists() else None)
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    src.write_text("")
    assert not native.use_compiled()  # never built
    ext.write_bytes(b"")
    os.utime(src, (1_000, 1_000))
    os.utime(ext, (2_000, 2_000))
    assert native.use_compiled()
    monkeypatch.setenv(native.PURE_ENV, "1")
    assert not native.use_compiled()  # NFLAB_PURE=1: the fallback
    monkeypatch.delenv(native.PURE_ENV)
    os.utime(src, (3_000, 3_000))
    assert not native.use_compiled()  # the source was edited after the build: stale
