"""The course in docs/ is current: every command it shows runs, and prints what the page shows.

Two checkable forms, found in every ``docs/**/*.md`` page:

* a fenced ``console`` block whose first line is ``$ nflab ARGS``, optionally piped through
  ``| sed -n A,Bp``, ``| sed -n Ap``, ``| sed -n '/RE1/,/RE2/p'``, ``| head -N``, ``| tail -N``
  or ``| grep PATTERN`` (applied here in Python), followed by the output. The command runs as
  ``python -m sim.cli ARGS`` from the checkout's root (``nflab run`` without ``--out`` runs in
  a temporary directory, so its captures go to ``./nflab-out`` there, as the page says); the
  filtered output must equal the shown lines (trailing blanks ignored, as editors strip them).
  ``nflab kernel-check`` needs root and the kernel tools: it runs when the process is root and
  the command can run (exit status not 2); otherwise the block is skipped with the reason.
* ``pycon`` blocks (``>>>`` sessions): all of one page run as one doctest, in page order,
  from the checkout's root, with no option flags (exact output).

Plus: every relative link and image in the pages points to a file that exists, and
``mkdocs build --strict`` succeeds (skipped when mkdocs is not installed).
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M
)


@dataclass(frozen=True)
class ConsoleBlock:
    page: Path
    line: int
    command: str  # the whole "$ ..." line without "$ "
    shown: list[str]

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _fences(page: Path) -> list[tuple[str, int, str]]:
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        indent = len(m["indent"])
        body = "\n".join(line[indent:] for line in m["body"].split("\n"))
        out.append((m["lang"], text.count("\n", 0, m.start()) + 1, body))
    return out


def console_blocks(paths: list[Path]) -> list[ConsoleBlock]:
    """The ``$ nflab`` console blocks of the given Markdown files (the README uses them too)."""
    blocks = []
    for page in paths:
        for lang, line, body in _fences(page):
            lines = body.rstrip("\n").split("\n")
            if lang == "console" and lines and lines[0].startswith("$ nflab"):
                blocks.append(ConsoleBlock(page, line, lines[0][2:], lines[1:]))
    return blocks


# -- the shell filters the pages may use ---------------------------------------------------
def _filter(stage: list[str], lines: list[str]) -> list[str]:
    match stage:
        case ["sed", "-n", spec] if (m := re.fullmatch(r"(\d+)(?:,(\d+))?p", spec)):
            first, last = int(m[1]), int(m[2] or m[1])
            return lines[first - 1 : last]
        case ["sed", "-n", spec] if (m := re.fullmatch(r"/(.+)/,/(.+)/p", spec)):
            start, stop = re.compile(m[1]), re.compile(m[2])
            out, inside = [], False
            for line in lines:
                if inside:
                    out.append(line)
                    inside = not stop.search(line)
                elif start.search(line):
                    out.append(line)
                    inside = True
            return out
        case ["head", n] if re.fullmatch(r"-\d+", n):
            return lines[: int(n[1:])]
        case ["head", "-n", n]:
            return lines[: int(n)]
        case ["tail", n] if re.fullmatch(r"-\d+", n):
            return lines[-int(n[1:]) :]
        case ["tail", "-n", n]:
            return lines[-int(n) :]
        case ["grep", pattern]:
            return [line for line in lines if re.search(pattern, line)]
        case ["grep", "-F", pattern]:
            return [line for line in lines if pattern in line]
        case ["grep", "-v", pattern]:
            return [line for line in lines if not re.search(pattern, line)]
    raise AssertionError(f"a docs page uses a filter the doc test does not emulate: {shlex.join(stage)}")


def run_block(block: ConsoleBlock, tmp: Path) -> tuple[int, str, list[str]]:
    """Run a block's command as the test does: (exit status, stderr, filtered stdout lines)."""
    args, filters = parse_command(block.command)
    cwd, env = ROOT, None
    if args[0] == "run" and "--out" not in args:
        # as the reader runs it: the captures go to ./nflab-out, here in a temporary directory
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        cwd, env = tmp, {**os.environ, "PYTHONPATH": path}
    elif args[0] == "kernel-check" and "--out" not in args:
        args = [*args, "--out", str(tmp / "kernel-check-out")]
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = proc.stdout.splitlines()
    for stage in filters:
        lines = _filter(stage, lines)
    return proc.returncode, proc.stderr, [line.rstrip() for line in lines]


def parse_command(command: str) -> tuple[list[str], list[list[str]]]:
    """``nflab ARGS | f1 | f2`` -> (ARGS, [f1, f2]), each split as the shell would."""
    stages = [shlex.split(part) for part in command.split(" | ")]
    argv, filters = stages[0], stages[1:]
    assert argv[0] == "nflab", command
    return argv[1:], filters


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


BLOCKS = console_blocks(pages())


def test_the_course_shows_commands():
    assert len(BLOCKS) >= 20, [b.id for b in BLOCKS]
    for b in BLOCKS:
        assert b.shown, f"{b.id}: a console block shows the command's output"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_console_block_output_is_current(block: ConsoleBlock, tmp_path: Path):
    check_console_block(block, tmp_path)


def check_console_block(block: ConsoleBlock, tmp_path: Path) -> None:
    """Run the block's command and compare what it prints with what the page shows."""
    kernel = parse_command(block.command)[0][0] == "kernel-check"
    if kernel and not _is_root():
        pytest.skip("nflab kernel-check needs root (network namespaces)")
    status, stderr, got = run_block(block, tmp_path)
    if kernel and status == 2:
        pytest.skip(f"nflab kernel-check cannot run here: {stderr.strip()[-200:]}")
    shown = [line.rstrip() for line in block.shown]
    assert got == shown, f"{block.id}: `{block.command}` now prints:\n" + "\n".join(got)


PYCON_PAGES = [p for p in pages() if any(lang == "pycon" for lang, _, _ in _fences(p))]


@pytest.mark.parametrize("page", PYCON_PAGES, ids=[str(p.relative_to(DOCS)) for p in PYCON_PAGES])
def test_pycon_sessions_run(page: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(ROOT)
    text = "\n".join(body for lang, _, body in _fences(page) if lang == "pycon")
    test = doctest.DocTestParser().get_doctest(text, {}, str(page.relative_to(DOCS)), str(page), 0)
    runner = doctest.DocTestRunner(optionflags=0)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert runner.tries > 0


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_relative_links_resolve():
    missing = []
    for page in sorted(DOCS.rglob("*.md")):
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).resolve().exists():
                missing.append(f"{page.relative_to(DOCS)} -> {target}")
    assert not missing, missing


def test_every_lesson_is_in_the_site_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in pages():
        rel = page.relative_to(DOCS).as_posix()
        assert rel in nav, f"{rel} is not in mkdocs.yml's nav"


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (pip install mkdocs-material)"
)
def test_site_builds_strict(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr


def update(paths: list[Path]) -> None:
    """``python -m tests.docs.test_docs [PAGE...]``: rewrite the shown output of every console
    block with what the command prints now (kernel-check blocks only when root). Read the
    diff: the prose around a block quotes its numbers."""
    import tempfile

    for block in sorted(console_blocks(), key=lambda b: (b.page, -b.line)):
        if paths and block.page not in paths:
            continue
        if parse_command(block.command)[0][0] == "kernel-check" and not _is_root():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            _, _, got = run_block(block, Path(tmp))
        if got == [line.rstrip() for line in block.shown]:
            continue
        text = block.page.read_text(encoding="utf-8").split("\n")
        start = block.line  # index of the "$ nflab" line (0-based line after the fence)
        assert text[start].lstrip().startswith("$ nflab"), block.id
        indent = text[start][: len(text[start]) - len(text[start].lstrip())]
        end = start + 1 + len(block.shown)
        text[start + 1 : end] = [indent + line if line else line for line in got]
        block.page.write_text("\n".join(text), encoding="utf-8")
        print(f"updated {block.id}")


if __name__ == "__main__":
    update([Path(a).resolve() for a in sys.argv[1:]])
