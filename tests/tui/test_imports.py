"""tui/ stands on the public API: it imports nothing from ``sim`` but ``sim.api`` (module level,
TYPE_CHECKING blocks and inside functions alike), read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

TUI = Path(__file__).resolve().parents[2] / "tui"
PUBLIC = "sim.api"


def sim_imports(source: str) -> list[str]:
    """Every ``sim`` module a piece of source imports, wherever the import statement is."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name == "sim" or a.name.startswith("sim.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module == "sim":  # ``from sim import api`` names a module; any other name is sim's
                out += [f"sim.{a.name}" if a.name == "api" else "sim" for a in node.names]
            elif node.module.startswith("sim."):
                out.append(node.module)
    return out


def test_tui_imports_only_the_public_api() -> None:
    files = sorted(TUI.rglob("*.py"))
    assert len(files) > 10  # the package is read, not an empty glob
    wrong = [
        f"{path.relative_to(TUI.parent)}: {module}"
        for path in files
        for module in sim_imports(path.read_text())
        if module != PUBLIC
    ]
    assert wrong == []


def test_the_scan_sees_every_kind_of_import() -> None:
    source = """
import sim.packet
from sim.trace import Step
from sim import wire
if TYPE_CHECKING:
    from sim.net.world import World
def f():
    from sim.scenario.fixes import FIXES
from sim.api import load
from sim import api
"""
    assert sorted(sim_imports(source)) == [
        "sim",
        "sim.api",
        "sim.api",
        "sim.net.world",
        "sim.packet",
        "sim.scenario.fixes",
        "sim.trace",
    ]


def test_the_tui_explains_from_the_trace_not_the_live_world() -> None:
    # A session keeps the trace, the captures and the scenario's run, not the world: what
    # decided a step (the rule's text, the sysctls, the log prefix) is read off its event.
    from tui.session import Session

    assert "world" not in Session.__dataclass_fields__
    reads = [
        f"{path.relative_to(TUI.parent)}: {attr.attr}"
        for path in sorted(TUI.rglob("*.py"))
        for attr in ast.walk(ast.parse(path.read_text()))
        if isinstance(attr, ast.Attribute) and attr.attr in ("world", "namespaces", "ruleset", "conntrack")
    ]
    assert reads == []
