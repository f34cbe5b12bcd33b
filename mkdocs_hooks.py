"""MkDocs hook: each page learns the URL of its translation, for the language switch
(overrides/partials/alternate.html). ``docs/zh/X.md`` translates ``docs/X.md``; the page's own
language comes from its front matter (``lang: zh``, read by overrides/partials/language.html)."""

from __future__ import annotations

from typing import Any

TRANSLATED = "zh/"


def counterparts(src: str) -> dict[str, str]:
    """The source paths of one page in each language: ``zh/a.md`` <-> ``a.md``."""
    english = src.removeprefix(TRANSLATED)
    return {"en": english, "zh": TRANSLATED + english}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    urls = {}
    for lang, src in counterparts(page.file.src_uri).items():
        found = files.get_file_from_path(src)
        if found is not None:
            urls[lang] = found.url or "./"
    page.meta["translations"] = urls
    return markdown
