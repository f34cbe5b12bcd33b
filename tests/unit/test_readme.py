"""The README's shown output is what the command prints now."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def test_readme_console_blocks_are_current(tmp_path):
    text = README.read_text()
    blocks = re.findall(r"```console\n\$ (nflab [^\n|]*?)(?: \| sed -n (\d+),(\d+)p)?\n(.*?)```", text, re.S)
    assert blocks
    for command, first, last, shown in blocks:
        args = (
            [*command.split()[1:], "--out", str(tmp_path)]
            if " run " in f" {command} "
            else command.split()[1:]
        )
        out = subprocess.run(
            [sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if first:
            out = out[int(first) - 1 : int(last)]
        assert shown.splitlines() == out, command
