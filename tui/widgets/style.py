"""The verdict colours, shared by every widget: one badge per tone, readable on dark and light."""

from __future__ import annotations

from rich.text import Text

from tui.rows import Tone

# foreground on background: fixed colours so a verdict looks the same in every theme
BADGE: dict[Tone, str] = {
    Tone.ACCEPT: "bold #ffffff on #2e7d32",
    Tone.IGNORE: "bold #000000 on #f9a825",
    Tone.INVALID: "bold #ffffff on #8e24aa",
    Tone.DROP: "bold #ffffff on #c62828",
    Tone.INFO: "",
}
# text-only accents (pass/fail, RST lines): mid-luminance, legible on black and on white
INK: dict[Tone, str] = {
    Tone.ACCEPT: "#3d9a47",
    Tone.IGNORE: "#c88a00",
    Tone.INVALID: "#a23bbf",
    Tone.DROP: "#d9363e",
    Tone.INFO: "",
}


def badge(label: str, tone: Tone) -> Text:
    """A verdict as a coloured badge (a plain word for INFO)."""
    if tone is Tone.INFO:  # padded like a badge, so every verdict starts in the same column
        return Text(f" {label} ", style="dim")
    return Text(f" {label} ", style=BADGE[tone])


def markup_badge(label: str, tone: Tone) -> str:
    """The same badge as Textual content markup."""
    if tone is Tone.INFO:
        return f"[dim]{label}[/]"
    return f"[{BADGE[tone].replace('bold ', 'b ')}] {label} [/]"
