"""The answers stay with the instructor: no solution text in the built site (``mkdocs build``),
in the wheel, or in the student checkout (``git archive``, where ``instructor/`` is
export-ignore). The checker judges behaviour, so it needs none of them."""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTRUCTOR = ROOT / "instructor"
DOCS = ROOT / "docs"


def _phrases(text: str) -> set[str]:
    """The sentences of ``text`` (split at line ends and JSON/TOML quoting), 30+ characters."""
    parts = re.split(r'[\n"]|(?<=[.;:])\s', text)
    return {p.strip(" ,#-*'") for p in parts if len(p.strip(" ,#-*'")) >= 30}


def answer_phrases() -> set[str]:
    """What only the answers say: the instructor files' phrases that neither a page, a starter
    nor the package's own cases and scenarios (public, in the wheel) contain."""
    public_files = [p for p in DOCS.rglob("*") if p.is_file() and p.suffix in (".md", ".json", ".toml")]
    public_files += [p for p in (ROOT / "sim").rglob("*") if p.suffix in (".json", ".toml")]
    public = "\n".join(p.read_text(encoding="utf-8") for p in public_files)
    given = set().union(
        *(_phrases(p.read_text(encoding="utf-8")) for p in INSTRUCTOR.rglob("*") if p.is_file())
    )
    return {p for p in given if p not in public}


def leaks(files: dict[str, str], phrases: set[str]) -> list[str]:
    """``name: phrase`` for every answer phrase found in a file's text (HTML unescaped)."""
    found = [f"{name}: a solution file" for name in files if ".solution." in name or "quiz-key" in name]
    for name, text in files.items():
        plain = html.unescape(text)
        found += [f"{name}: {p[:60]}" for p in phrases if p in plain]
    return found


def test_the_answers_have_phrases_of_their_own():
    phrases = answer_phrases()
    assert len(phrases) > 50
    sol = json.loads(
        (INSTRUCTOR / "solutions" / "04-the-rst-be-liberal-does-not-save.solution.json").read_text()
    )
    assert any(p in sol["description"] for p in phrases)


def test_the_leak_check_can_fail():
    phrases = answer_phrases()
    key = (INSTRUCTOR / "quiz-key.toml").read_text()
    assert leaks({"page.html": html.escape(key)}, phrases)
    assert leaks({"x/01-ack-over-upper-bound.solution.json": "{}"}, phrases)
    assert not leaks({"page.html": (DOCS / "quiz.md").read_text()}, phrases)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed")
def test_the_built_site_has_no_answers(tmp_path: Path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(site)],
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    files = {
        str(p.relative_to(site)): p.read_text(encoding="utf-8", errors="replace")
        for p in site.rglob("*")
        if p.is_file() and p.suffix in (".html", ".json", ".toml", ".md", ".txt", ".xml")
    }
    assert len(files) > 40
    assert not leaks(files, answer_phrases())


def test_the_wheel_has_no_answers(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wheels = list(tmp_path.glob("nflab-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.skip(f"cannot build the wheel here: {proc.stderr.strip()[-200:]}")
    with zipfile.ZipFile(wheels[0]) as z:
        files = {n: z.read(n).decode("utf-8", "replace") for n in z.namelist()}
    assert any(n.startswith("sim/") for n in files)
    assert not leaks(files, answer_phrases())


def test_the_student_checkout_leaves_instructor_out():
    proc = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "check-attr",
            "export-ignore",
            "--",
            "instructor/README.md",
            "instructor/solutions/01-ack-over-upper-bound.solution.json",
            "docs/index.md",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    assert proc.stdout.splitlines() == [
        "instructor/README.md: export-ignore: set",
        "instructor/solutions/01-ack-over-upper-bound.solution.json: export-ignore: set",
        "docs/index.md: export-ignore: unspecified",
    ]
