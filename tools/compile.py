#!/usr/bin/env python3
"""Build (or ``--clean``) nflab's optional compiled modules: :data:`sim.native.MODULES` compiled
by mypyc, in place, as extension modules beside their source files.

Needs mypy (the ``test`` extra; mypyc comes with it), a C compiler and the Python headers.
Without them it says what is missing and exits 1: nflab runs the same source files as pure
Python. Run it again after editing one of the modules (a stale build is not used; see
:mod:`sim.native`).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim import native  # noqa: E402


def built() -> list[Path]:
    suffixes = tuple(s for s in (sysconfig.get_config_var("EXT_SUFFIX"), ".so", ".pyd") if s)
    return [p for p in (ROOT / "sim").rglob("*") if p.name.endswith(suffixes)]


def clean() -> None:
    for path in built():
        path.unlink()
    shutil.rmtree(ROOT / "build" / "mypyc", ignore_errors=True)


def missing() -> str | None:
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed (pip install mypy)"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc})"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        return f"no Python headers ({include}; e.g. apt-get install python3-dev)"
    return None


def build() -> int:
    reason = missing()
    if reason is not None:
        print(f"tools/compile.py: not compiled: {reason}; nflab runs as pure Python", file=sys.stderr)
        return 1
    from mypyc.build import mypycify
    from setuptools import setup

    clean()
    os.chdir(ROOT)
    paths = [os.path.relpath(native.source_path(m), ROOT) for m in native.MODULES]
    setup(
        name="nflab-native",
        ext_modules=mypycify(paths, group_name=native.GROUP, target_dir="build/mypyc"),
        script_args=["build_ext", "--inplace", "--build-temp", "build/mypyc/temp"],
    )
    print(f"compiled: {', '.join(native.MODULES)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--clean"]:
        clean()
        raise SystemExit(0)
    if sys.argv[1:]:
        print("usage: tools/compile.py [--clean]", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(build())
