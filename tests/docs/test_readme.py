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
