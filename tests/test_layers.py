"""The layers of sim/ and its front ends (sim/__init__.py): no import cycle, and each layer
imports only the layers below it.

Strict: every import counts, wherever it is written -- at module level, in a ``TYPE_CHECKING``
block (an annotation still names the module) and inside a function (a lazy import still
depends on the module). Imports are read from the source, so nothing is executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "tui")

# The layers from the bottom up; each may import itself and every layer before it. A layer is
# a set of module or package names (a package stands for all its modules).
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "base",
        frozenset(
            {
                "sim.clock",
                "sim.packet",
                "sim.wire",
                "sim.skb",
                "sim.trace",
                "sim.include",
                "sim.errors",
                "sim.native",
            }
        ),
    ),
    ("netfilter", frozenset({"sim.netfilter"})),
    ("net", frozenset({"sim.net"})),
    ("topology", frozenset({"sim.topology"})),
    ("scenario", frozenset({"sim.scenario"})),
    ("testing", frozenset({"sim.testing"})),
    ("kernel", frozenset({"sim.kernel"})),
    ("report", frozenset({"sim.report", "sim.pcap"})),
    ("front ends", frozenset({"sim", "sim.api", "sim.cli", "sim.bench", "tui"})),
)


def module_names(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module under ``root``'s ``packages``, by dotted name."""
    out = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The known modules ``path`` (module ``name``) imports anywhere in its source."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..y import z
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for a in node.names:  # ``from sim.kernel import observe`` imports the submodule
                sub = f"{module}.{a.name}"
                found.add(sub if sub in modules else module)
    out = set()
    for m in found:
        while m and m not in modules:  # ``import sim.net.world.X`` names module sim.net.world
            m = m.rpartition(".")[0]
        if m and m != name:
            out.add(m)
    return out


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    modules = module_names(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles (a submodule's import of its own package is not one: the package is
    loaded first anyway)."""
    found, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for dep in sorted(graph.get(module, ())):
            if not module.startswith(dep + "."):
                visit(dep, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


def layer_of(module: str, layers: tuple[tuple[str, frozenset[str]], ...] = LAYERS) -> int | None:
    """The index of the layer ``module`` belongs to (its longest-named member wins)."""
    best: tuple[int, int] | None = None
    for i, (_, members) in enumerate(layers):
        for m in members:
            if (module == m or module.startswith(m + ".")) and (best is None or len(m) > best[1]):
                best = (i, len(m))
    return None if best is None else best[0]


def upward_imports(
    graph: dict[str, set[str]], layers: tuple[tuple[str, frozenset[str]], ...] = LAYERS
) -> list[str]:
    """``A imports B`` for each import of a module from a higher layer (or of no layer)."""
    wrong = []
    for module, deps in sorted(graph.items()):
        mine = layer_of(module, layers)
        if mine is None:
            wrong.append(f"{module} is in no layer")
            continue
        for dep in sorted(deps):
            theirs = layer_of(dep, layers)
            if theirs is None or theirs > mine:
                wrong.append(f"{module} ({layers[mine][0]}) imports {dep}")
    return wrong


GRAPH = import_graph(ROOT)


def test_the_import_graph_has_no_cycle():
    assert cycles(GRAPH) == []


def test_each_layer_imports_only_the_layers_below():
    assert upward_imports(GRAPH) == []


def test_the_graph_is_read_strictly():
    # guards the two tests above against reading nothing: a module-level import, a
    # TYPE_CHECKING-only import (sim.skb's Conn) and an in-function import (``nflab tui``'s app)
    assert "sim.netfilter.conntrack" in GRAPH["sim.netfilter.nat"]
    assert "sim.include.nf_conntrack" in GRAPH["sim.skb"]
    assert "tui.app" in GRAPH["tui.command"]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_checker_fails_on_an_upward_import_wherever_it_is_written(tmp_path):
    # A fake tree: sim.netfilter.core reaching up into sim.net.world, once at module level,
    # once for annotations only, once inside a function. Each one alone is reported.
    for body in (
        "from sim.net.world import World\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sim.net.world import World\n",
        "def f():\n    from sim.net import world\n    return world\n",
    ):
        root = _tree(
            tmp_path / str(abs(hash(body))),
            {
                "sim/__init__.py": "",
                "sim/net/__init__.py": "",
                "sim/net/world.py": "from sim.netfilter import core\n",
                "sim/netfilter/__init__.py": "",
                "sim/netfilter/core.py": body,
            },
        )
        graph = import_graph(root, ("sim",))
        assert upward_imports(graph) == ["sim.netfilter.core (netfilter) imports sim.net.world"]
        assert cycles(graph) == [["sim.net.world", "sim.netfilter.core", "sim.net.world"]]


def test_the_checker_passes_a_downward_tree(tmp_path):
    root = _tree(
        tmp_path,
        {
            "sim/__init__.py": "",
            "sim/trace.py": "",
            "sim/net/__init__.py": "",
            "sim/net/world.py": "from sim.netfilter import core\nfrom sim import trace\n",
            "sim/netfilter/__init__.py": "",
            "sim/netfilter/core.py": "from ..trace import *\n",
        },
    )
    graph = import_graph(root, ("sim",))
    assert graph["sim.netfilter.core"] == {"sim.trace"}
    assert upward_imports(graph) == [] and cycles(graph) == []
