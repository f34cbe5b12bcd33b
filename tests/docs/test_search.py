"""Chinese search in the BUILT course site, as a student uses it: ``mkdocs build``, the site served
from 127.0.0.1, headless Chromium types a word into the theme's search box, and the theme's own
search (its worker, lunr over ``search/search_index.json``) lists the pages.

Chinese has no spaces. lunr splits text at the search plugin's ``separator`` only, so unsegmented
Chinese is one token per run of characters between punctuation, and a word is found only where
such a run starts with it (the theme matches query terms as prefixes). The search plugin segments
Chinese with jieba at build time (the docs extra) and joins the words with U+200B, which
mkdocs.yml's separator splits at. So "跟踪" ("tracking") in "4. TCP 窗口跟踪：…" is found only
when the site was built with segmentation: built without jieba, the search lists 6 pages and
sections for it, none of the three below (tried: ``sys.modules["jieba"] = None`` before
``mkdocs build``)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.tui.test_serve import CHROMIUM, FLAGS, devtools, free_port, needs_chromium, process, wait_port

ROOT = Path(__file__).resolve().parents[2]
ZWSP = "\u200b"
RESULTS = """JSON.stringify({
  meta: document.querySelector('.md-search-result__meta')?.textContent ?? '',
  items: [...document.querySelectorAll('.md-search-result__item > a')].map(
    a => [new URL(a.href).pathname, a.querySelector('h1, h2')?.textContent ?? ''])
})"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(out)],
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return out


async def search(site: Path, page: str, word: str) -> tuple[str, list[tuple[str, str]]]:
    """Type ``word`` into the search box of ``page`` of the built ``site``; what the theme lists:
    its count line and (path, title) of each result, U+200B removed as a reader sees them."""
    assert CHROMIUM is not None
    port = free_port()
    http = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(site), str(port)]
    with (
        tempfile.TemporaryDirectory() as profile,
        process(http, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ):
        await wait_port(port, 30)
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        with process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as chromium:
            async with devtools(chromium) as cdp:
                target = await cdp.send("Target.createTarget", url=f"http://127.0.0.1:{port}{page}")
                attached = await cdp.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
                cdp.session = attached["sessionId"]
                box = "document.querySelector('.md-search__input')"
                for _ in range(100):  # the page and its scripts
                    ready = await cdp.send("Runtime.evaluate", expression=f"!!{box}", returnByValue=True)
                    if ready["result"]["value"]:
                        break
                    await asyncio.sleep(0.1)
                await cdp.send("Runtime.evaluate", expression=f"{box}.focus()")
                await cdp.send("Input.insertText", text=word)
                for kind in ("keyDown", "keyUp"):  # the theme searches on keyup
                    await cdp.send(
                        "Input.dispatchKeyEvent",
                        type=kind,
                        key="End",
                        code="End",
                        windowsVirtualKeyCode=35,
                        nativeVirtualKeyCode=35,
                    )
                for _ in range(150):  # the worker builds the index, then answers
                    found = await cdp.send("Runtime.evaluate", expression=RESULTS, returnByValue=True)
                    shown = json.loads(found["result"]["value"])
                    if shown["items"]:
                        break
                    await asyncio.sleep(0.2)
    items = [(path, title.replace(ZWSP, "")) for path, title in shown["items"]]
    return shown["meta"], items


@needs_chromium
@pytest.mark.asyncio
async def test_chinese_search_finds_a_word_inside_a_run_of_chinese(site: Path) -> None:
    meta, items = await search(site, "/zh/", "跟踪")
    titles = dict(items)
    # the pages' titles, from docs/zh: 跟踪 only after other Chinese characters, with no space
    assert titles["/zh/04-window-tracking/"] == "4. TCP 窗口跟踪：Rooij 的四个边界"
    assert titles["/zh/09-scenario-library/"] == "9. 场景库：另外七个连接跟踪事故"
    assert titles["/zh/conntrack/"] == "nflab 的连接跟踪器如何对应内核"
    assert meta.endswith("个符合条件的结果")  # the theme's words in Chinese: "N matching results"


@needs_chromium
@pytest.mark.asyncio
async def test_english_search_still_finds_english_words(site: Path) -> None:
    _, items = await search(site, "/", "conntrack")
    assert ("/03-conntrack/", "3. Connection tracking") in items
