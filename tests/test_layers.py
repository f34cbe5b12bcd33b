"""The layers of sim/ (sim/__init__.py): no import cycle, and each layer imports only the layers
below it. Imports are read from the source (module level, TYPE_CHECKING blocks excluded: they
are annotations, not imports at run time)."""

from __future__ import annotations

import ast
from pathlib import Path

SIM = Path(__file__).resolve().parents[1] / "sim"

# What each layer may import at run time besides itself (sim/__init__.py's overview).
BASE = {"sim.clock", "sim.packet", "sim.wire", "sim.skb", "sim.trace"}
ALLOWED = {
    "base": BASE,
    "sim.netfilter": BASE,
    "sim.net": BASE | {"sim.netfilter"},
    "sim.topology": BASE | {"sim.netfilter", "sim.net"},
    "sim.scenario": BASE | {"sim.netfilter", "sim.net", "sim.topology"},
    "sim.report": BASE | {"sim.netfilter", "sim.net", "sim.topology", "sim.scenario"},
    "sim.pcap": BASE | {"sim.netfilter", "sim.net", "sim.topology", "sim.scenario"},
}


def _name(path: Path) -> str:
    parts = path.relative_to(SIM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in SIM.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """The sim modules ``path`` imports when it is imported."""
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for n in ast.walk(node):
            if isinstance(n, ast.Import):
                out |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                for a in n.names:  # ``from sim.kernel import observe`` imports the submodule
                    sub = f"{n.module}.{a.name}"
                    out.add(sub if sub in MODULES else n.module)
    return {m for m in out if m in MODULES}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    if module in BASE:
        return "base"
    return next((layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), None)


def test_the_import_graph_has_no_cycle():
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for dep in sorted(GRAPH[module]):
            if not module.startswith(dep + "."):  # a submodule's own package is loaded first anyway
                visit(dep, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])


def test_each_layer_imports_only_the_layers_below():
    wrong = []
    for module, deps in GRAPH.items():
        layer = _layer(module)
        if layer is None:
            continue
        for dep in deps:
            if _layer(dep) != layer and not any(
                dep == allowed or dep.startswith(allowed + ".") for allowed in ALLOWED[layer]
            ):
                wrong.append(f"{module} imports {dep}")
    assert wrong == []


def test_the_graph_is_read():
    # guards the two tests above against reading nothing
    assert "sim.netfilter.conntrack" in GRAPH["sim.netfilter.nat"]
    assert "sim.netfilter.core" in GRAPH["sim.net.ipv4"]
