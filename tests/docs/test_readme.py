"""The README's console blocks print what they show, checked by the docs' own block runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.test_docs import ROOT, ConsoleBlock, check_console_block, console_blocks

BLOCKS = console_blocks([ROOT / "README.md"])


def test_the_readme_shows_commands():
    assert BLOCKS and all(b.shown for b in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_console_block_is_current(block: ConsoleBlock, tmp_path: Path):
    check_console_block(block, tmp_path)


def test_readme_names_every_subcommand():
    from sim.cli import COMMANDS, build

    parser = build(["--help"])  # every subcommand's module registers it
    assert set(COMMANDS) == set(next(a for a in parser._actions if a.dest == "command").choices)
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    text = (ROOT / "README.md").read_text()
    for name in sub.choices:
        assert f"`nflab {name}" in text, name
    assert "`nflab run FILE --show" in text and "TOML" in text
