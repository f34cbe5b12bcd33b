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


def test_readme_names_every_subcommand():
    from sim.cli import _build

    parser = _build()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    text = README.read_text()
    for name in sub.choices:
        assert f"`nflab {name}" in text, name
    assert "`nflab run FILE --show" in text and "TOML" in text
