"""MkDocs hook: a page whose front matter says ``lang: zh`` gets ``<html lang="zh">``, so
browsers, screen readers and search engines treat the Chinese pages as Chinese."""

from __future__ import annotations

import re
from typing import Any


def on_post_page(output: str, page: Any, config: Any) -> str:
    lang = page.meta.get("lang")
    if not lang:
        return output
    return re.sub(r"<html lang=\"[^\"]*\"", f'<html lang="{lang}"', output, count=1)
