"""The course's Python sessions stand on the public API: ``sim.api``, and ``sim.testing`` (the
hypothesis strategies the property chapter is about), never the model's inner modules."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
IMPORT = re.compile(r"^(?:>>>|\.\.\.) +(?:from (\S+) import|import (\S+))", re.M)
PUBLIC = {"sim.api", "sim.testing"}


def test_doc_sessions_import_only_the_public_api() -> None:
    found = {
        f"{page.relative_to(DOCS)}: {a or b}"
        for page in DOCS.rglob("*.md")
        for a, b in IMPORT.findall(page.read_text(encoding="utf-8"))
    }
    assert any(line.endswith("sim.api") for line in found)  # the sessions are read
    assert (
        sorted(x for x in found if x.split(": ")[1].startswith("sim") and x.split(": ")[1] not in PUBLIC)
        == []
    )
