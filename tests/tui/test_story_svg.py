"""``nflab tui NAME --svg`` for every story: the screen opens on the packet the story turns on,
with the story's own why in the why panel."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from tui.app import main

# (story, the why's first words at 120x40 on the story's own kernel)
STORIES = {
    "published-port-invalid": "What happened: INVALID",
    "pod-ip-leak": "What happened: INVALID",
    "dns-race": "What happened: packet 1",
    "snat-port-clash": "What happened: packet 1",
    "conntrack-table-full": "What happened: nf_conntrack_max is 6",
    "kube-clusterip-invalid": "What happened: INVALID",
    "kube-nodeport-invalid": "What happened: INVALID",
    "stale-udp-entry": "What happened: this datagram",
    "mid-stream-pickup": "What happened: INVALID",
    "one-sided-wscale": "What happened: INVALID",
}


def svg_text(path: Path) -> str:
    svg = path.read_text(encoding="utf-8")
    spans = re.findall(r"<text[^>]*>(.*?)</text>", svg)
    return html.unescape("".join(re.sub("<[^>]+>", "", s) for s in spans)).replace("\xa0", " ")


@pytest.mark.parametrize("name", sorted(STORIES))
def test_svg_of_every_story(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.svg"
    assert main(name, None, None, svg=str(out)) == 0
    text = svg_text(out)
    assert name in text
    assert STORIES[name] in text


@pytest.mark.parametrize(("fix", "badge"), [(None, "FAILS"), ("random-fully", "SUCCEEDS")])
def test_status_bar_gives_the_story_outcome_not_crafted_case(
    fix: str | None, badge: str, tmp_path: Path
) -> None:
    """A story is not a crafted case: the status bar says whether its expectations held."""
    out = tmp_path / "clash.svg"
    assert main("snat-port-clash", "6.18", fix, svg=str(out)) == 0
    text = svg_text(out)
    assert badge in text
    assert "crafted case" not in text
