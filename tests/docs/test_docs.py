"""The course in docs/ is current: every command it shows runs, and prints what the page shows.

Two checkable forms, found in every ``docs/**/*.md`` page:

* a fenced ``console`` block whose first line is ``$ nflab ARGS``, optionally piped through
  ``| sed -n A,Bp``, ``| sed -n Ap``, ``| sed -n '/RE1/,/RE2/p'``, ``| head -N``, ``| tail -N``,
  ``| grep PATTERN``, ``| fold -s -w N`` or ``| fold -w N`` (applied here in Python), followed
  by the output.
  The command runs as ``python -m sim.cli ARGS`` from the checkout's root (``nflab run``
  without ``--out`` runs in a temporary directory, so its captures go to ``./nflab-out``
  there, as the page says; a file named by path is taken from the checkout's root); the
  filtered output must equal the shown lines (trailing blanks ignored, as editors strip them).
  Every line of a console, pycon, sh or text block fits in 100 columns.
  ``nflab kernel-check`` needs root and the kernel tools: it runs when the process is root and
  the command can run (exit status not 2); otherwise the block is skipped with the reason.
* ``pycon`` blocks (``>>>`` sessions): all of one page run as one doctest, in page order,
  from the checkout's root, with no option flags (exact output).

Numbers in the prose: in every section (the text under one heading) that shows a run (a
console block, or a pycon session whose code counts as its input), every number of five or
more digits (``530308``, ``530,308``) the prose states must be printed by one of that
section's runs (or be in the case or scenario file the run reads: its input), or be the result
of an expression written out in the prose (``596701 - 66000 = 530701``: ``+``, ``-``, ``<<``),
whose operands are such numbers, small numbers or the page's declared constants, and whose
arithmetic is right. Constants that come from the kernel source rather than a run are declared
once per page in an HTML comment, ``<!-- constants: 66000 (MAXACKWINDOW's floor) -->``.

Plus: every relative link and image in the pages points to a file that exists, and
``mkdocs build --strict`` succeeds (skipped when mkdocs is not installed).
"""

from __future__ import annotations

import doctest
import importlib.util
import json
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
        case ["sed", "-n", spec] if m := re.fullmatch(r"(\d+)(?:,(\d+))?p", spec):
            first, last = int(m[1]), int(m[2] or m[1])
            return lines[first - 1 : last]
        case ["sed", "-n", spec] if m := re.fullmatch(r"/(.+)/,/(.+)/p", spec):
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
        case ["fold", "-s", "-w", width] if width.isdigit():
            return [part for line in lines for part in _fold(line, int(width))]
        case ["fold", "-w", width] if width.isdigit():
            n = int(width)
            return [line[i : i + n] for line in lines for i in range(0, max(len(line), 1), n)]
        case ["grep", pattern]:
            return [line for line in lines if re.search(pattern, line)]
        case ["grep", "-F", pattern]:
            return [line for line in lines if pattern in line]
        case ["grep", "-v", pattern]:
            return [line for line in lines if not re.search(pattern, line)]
    raise AssertionError(f"a docs page uses a filter the doc test does not emulate: {shlex.join(stage)}")


def _fold(line: str, width: int) -> list[str]:
    """``fold -s -w WIDTH`` (GNU coreutils) on one line: break after the last blank within
    WIDTH columns, or at WIDTH when there is none; the blank stays at the end of the piece."""
    out = []
    while len(line) > width:
        blank = line.rfind(" ", 0, width)
        cut = blank + 1 if blank >= 0 else width
        out.append(line[:cut])
        line = line[cut:]
    return [*out, line]


def run_block(block: ConsoleBlock, tmp: Path) -> tuple[int, str, list[str]]:
    """Run a block's command as the test does: (exit status, stderr, filtered stdout lines)."""
    args, filters = parse_command(block.command)
    # files named by path are relative to the checkout's root, where the reader runs the command
    args = [str(ROOT / a) if not a.startswith("-") and (ROOT / a).is_file() else a for a in args]
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


def test_console_blocks_fit_in_100_columns():
    wide = []
    for page in pages():
        for lang, line, body in _fences(page):
            if lang in ("console", "pycon", "sh", "text"):
                wide += [
                    f"{page.relative_to(DOCS)}:{line + i}"
                    for i, x in enumerate(body.split("\n"), 1)
                    if len(x.rstrip()) > 100
                ]
    assert not wide, wide


def test_fold_is_gnu_fold_s():
    assert _fold("aaa bbb ccc", 5) == ["aaa ", "bbb ", "ccc"]
    assert _fold("abcdefgh", 3) == ["abc", "def", "gh"]
    assert _fold("short", 100) == ["short"]


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


# -- numbers in the prose come from the runs beside them ------------------------------------
HEADING = re.compile(r"^#{1,6} ", re.M)
BIG = re.compile(r"(?<![\w.,:/-])(\d{1,3}(?:,\d{3})+|\d{5,})(?![\w:/]|[.,]\d)")
EXPR = re.compile(r"(\d[\d,]*)\s*(\+|-|<<)\s*(\d[\d,]*)\s*=\s*(\d[\d,]*)")
CONSTANTS = re.compile(r"<!--\s*constants:(.*?)-->", re.S)


@dataclass(frozen=True)
class Section:
    page: Path
    heading: str
    prose: str  # the section's text without its fenced blocks and HTML comments
    printed: set[int]  # every integer the section's runs print


def _ints(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\d+", re.sub(r"(?<=\d)_(?=\d)", "", text))}


def _inputs(command: str) -> str:
    """The text of the files a shown command reads (a case or scenario file, a built-in
    scenario by name): the numbers in them are the run's input, stated by the page too."""
    texts = []
    for arg in parse_command(command)[0]:
        found = [ROOT / arg] if (ROOT / arg).is_file() else sorted((ROOT / "sim").rglob(f"{arg}.toml"))
        texts += [path.read_text(encoding="utf-8") for path in found[:1] if path.suffix in (".json", ".toml")]
    return "\n".join(texts)


def _run_output(lang: str, body: str) -> str | None:
    lines = body.split("\n")
    if lang == "console" and lines and lines[0].startswith("$ nflab"):
        return "\n".join([*lines[1:], _inputs(lines[0][2:])])
    if lang == "pycon":  # the session's code is its input, the rest what it printed
        return body
    return None


def sections(page: Path) -> list[Section]:
    text = page.read_text(encoding="utf-8")
    parts = HEADING.split(text)
    out = []
    for part in parts:
        outputs = [_run_output(m["lang"], m["body"]) for m in FENCE.finditer(part)]
        prose = re.sub(r"<!--.*?-->", "", FENCE.sub("", part), flags=re.S)
        printed = set().union(*(_ints(o) for o in outputs if o is not None))
        out.append(Section(page, part.split("\n", 1)[0].strip(), prose, printed))
    return out


def page_constants(page: Path) -> set[int]:
    return {
        int(n)
        for m in CONSTANTS.findall(page.read_text(encoding="utf-8"))
        for n in BIG.findall(m)
        for n in [n.replace(",", "")]
    }


def unsupported_numbers(section: Section, constants: set[int]) -> list[str]:
    """The section's stated numbers that neither its runs print nor its arithmetic derives;
    wrong arithmetic is reported too."""
    known = section.printed | constants
    problems = []
    exprs = [
        (*(int(g.replace(",", "")) for g in (a, b, c)), op)
        for a, op, b, c in ((m[1], m[2], m[3], m[4]) for m in EXPR.finditer(section.prose.replace("`", "")))
    ]
    for a, b, c, op in exprs:
        value = a + b if op == "+" else a - b if op == "-" else a << b
        if value != c:
            problems.append(f"{a} {op} {b} is {value}, not {c}")
    changed = True
    while changed:
        changed = False
        for a, b, c, _ in exprs:
            if c not in known and all(x in known or x < 10000 for x in (a, b)):
                known.add(c)
                changed = True
    for n in BIG.findall(section.prose):
        if int(n.replace(",", "")) not in known:
            problems.append(f"{n} is not printed by this section's runs")
    return problems


RUN_SECTIONS = [s for p in pages() for s in sections(p) if s.printed]


@pytest.mark.parametrize(
    "section", RUN_SECTIONS, ids=[f"{s.page.relative_to(DOCS)}:{s.heading[:40]}" for s in RUN_SECTIONS]
)
def test_numbers_in_the_prose_come_from_the_runs_beside_them(section: Section):
    problems = unsupported_numbers(section, page_constants(section.page))
    assert not problems, f"{section.page.relative_to(DOCS)} ({section.heading}): " + "; ".join(problems)


def test_declared_constants_are_used():
    for page in pages():
        text = re.sub(r"<!--.*?-->", "", FENCE.sub("", page.read_text(encoding="utf-8")), flags=re.S)
        stated = {int(n.replace(",", "")) for n in BIG.findall(text)}
        unused = page_constants(page) - stated
        assert not unused, f"{page.relative_to(DOCS)} declares constants it never states: {sorted(unused)}"


def test_the_number_check_can_fail():
    page = DOCS / "index.md"
    ok = Section(page, "t", "the limit is `596701 - 66000 = 530701`, 530,104 is under it", {596701, 530104})
    assert unsupported_numbers(ok, {66000}) == []
    assert unsupported_numbers(ok, set()) == [
        "66000 is not printed by this section's runs",
        "530701 is not printed by this section's runs",
    ]
    wrong = Section(page, "t", "`596701 - 66000 = 530700`", {596701, 66000})
    assert unsupported_numbers(wrong, set())[0] == "596701 - 66000 is 530701, not 530700"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


INSTRUCTOR = ROOT / "instructor"


def test_relative_links_resolve():
    missing = []
    for page in [*sorted(DOCS.rglob("*.md")), *sorted(INSTRUCTOR.rglob("*.md"))]:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).resolve().exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not missing, missing


IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def test_every_figure_has_an_alt_text_that_says_what_it_shows():
    for page in pages():
        for alt, target in IMAGE.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
            # a sentence, not a title: at least a dozen words (or 60 characters of Chinese)
            assert len(alt.split()) >= 12 or len(alt) >= 60, f"{page.relative_to(DOCS)}: {target}: {alt!r}"


def test_every_lesson_ends_with_check_your_understanding_questions():
    for page in pages():
        if re.fullmatch(r"\d\d-.*\.md", page.name) and "exercises" not in page.parts:
            text = page.read_text(encoding="utf-8")
            heading = "## 自测题" if ZH in page.parents else "## Check your understanding"
            assert heading in text, page
            questions = text.split(heading, 1)[1]
            assert len(re.findall(r"^\d+\. ", questions, re.M)) >= 3, page


def test_instructor_notes_stay_out_of_the_students_site():
    # the answers live in instructor/, outside docs_dir: never built, never in the nav
    assert (INSTRUCTOR / "README.md").is_file()
    assert not list(DOCS.rglob("*instructor*"))
    for page in pages():
        assert "instructor/" not in page.read_text(encoding="utf-8"), page


def test_every_lesson_is_in_the_site_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in pages():
        rel = page.relative_to(DOCS).as_posix()
        assert rel in nav, f"{rel} is not in mkdocs.yml's nav"


ZH = DOCS / "zh"


def test_every_page_for_students_has_a_chinese_translation():
    # every page: lessons, exercises, handout, quiz, references
    english = {p.relative_to(DOCS) for p in pages() if ZH not in p.parents}
    chinese = {p.relative_to(ZH) for p in ZH.rglob("*.md")}
    assert english == chinese, sorted(map(str, english ^ chinese))


def test_chinese_pages_are_marked_lang_zh():
    for page in sorted(ZH.rglob("*.md")):
        assert page.read_text(encoding="utf-8").startswith("---\nlang: zh\n---\n"), page


def test_chinese_pages_show_the_same_runs_as_the_english_ones():
    # same commands in the same order: the translation covers every run of its page
    for page in sorted(ZH.rglob("*.md")):
        english = DOCS / page.relative_to(ZH)
        runs = [b.command for b in BLOCKS if b.page == page]
        assert runs == [b.command for b in BLOCKS if b.page == english], page


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
    site = tmp_path / "site"
    for page in pages():
        rel = page.relative_to(DOCS)
        chinese = ZH in page.parents
        english = rel.relative_to("zh") if chinese else rel
        html = (site / _built(rel)).read_text(encoding="utf-8")
        # the page's language, the theme's words in it (overrides/partials/language.html)
        assert f'<html lang="{"zh" if chinese else "en"}"' in html, rel
        assert ('placeholder="搜索"' if chinese else 'placeholder="Search"') in html, rel
        # the language switch leads to the same page in the other language (mkdocs_hooks.py)
        links = dict(re.findall(r'<a href="([^"]*)" hreflang="(en|zh)" class="md-select__link"', html))
        targets = {lang: href for href, lang in links.items()}
        here = (site / _built(rel)).parent
        assert (here / targets["en"]).resolve() == (site / _built(english)).parent.resolve(), rel
        assert (here / targets["zh"]).resolve() == (site / _built(Path("zh") / english)).parent.resolve(), rel
    # Chinese search finds Chinese words: jieba split the text into words at build time (连接: "connection")
    docs = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))["docs"]
    assert any("\u200b连接\u200b" in d["text"] for d in docs if d["location"].startswith("zh/"))


def _built(rel: Path) -> Path:
    """Where mkdocs writes the page ``rel`` (directory URLs): a/b.md -> a/b/index.html."""
    parent = rel.parent if rel.stem == "index" else rel.parent / rel.stem
    return parent / "index.html"


# -- screenshots of the walkthrough, exported by the app itself (nflab tui --svg) -----------
SCREENSHOTS = {
    "tui-late-ack.svg": ["seed-incident", "--kernel", "3.10"],
    "tui-quiz.svg": ["seed-incident", "--kernel", "3.10", "--quiz"],
    "tui-drop-invalid.svg": ["seed-incident", "--kernel", "3.10", "--fix", "drop-invalid"],
}


def export_screenshot(name: str, out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "sim.cli", "tui", *SCREENSHOTS[name], "--svg", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.parametrize("name", sorted(SCREENSHOTS))
def test_walkthrough_screenshots_are_what_the_app_exports(name: str, tmp_path: Path):
    command = f"nflab tui {' '.join(SCREENSHOTS[name])} --svg docs/figures/{name}"
    for page in (DOCS / "walkthrough.md", ZH / "walkthrough.md"):
        assert command in page.read_text(encoding="utf-8"), f"{page.name} shows how {name} is made"
    export_screenshot(name, tmp_path / name)
    assert (tmp_path / name).read_bytes() == (DOCS / "figures" / name).read_bytes(), (
        f"docs/figures/{name} is stale: run python -m tests.docs.test_docs"
    )


def update(paths: list[Path]) -> None:
    """``python -m tests.docs.test_docs [PAGE...]``: rewrite the shown output of every console
    block with what the command prints now (kernel-check blocks only when root), and without
    PAGE the walkthrough's screenshots. Read the diff: the prose around a block quotes its
    numbers."""
    import tempfile

    for block in sorted(console_blocks([*pages(), ROOT / "README.md"]), key=lambda b: (b.page, -b.line)):
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
    if not paths:
        for name in SCREENSHOTS:
            export_screenshot(name, DOCS / "figures" / name)


if __name__ == "__main__":
    update([Path(a).resolve() for a in sys.argv[1:]])
