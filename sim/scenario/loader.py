"""The one way in for what nflab runs: built-in scenario names, scenario files (TOML, or JSON
with the same keys) and crafted-packet case files (JSON, or TOML with the same keys).

Everything refused raises :class:`InputError` (``CaseError`` and ``ScenarioError`` are its
kinds) with one line naming the file and the place.
"""

from __future__ import annotations

import codecs
import json
import re
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sim.errors import InputError

SCENARIOS = "sim.scenario.scenarios"
CASES_DIR = Path(__file__).resolve().parent / "cases"


def builtin_scenarios() -> list[str]:
    """Names of the built-in scenarios (``sim/scenario/scenarios/<name>.toml``), sorted."""
    return sorted(
        p.name.removesuffix(".toml") for p in resources.files(SCENARIOS).iterdir() if p.name.endswith(".toml")
    )


def builtin_scenario_text(name: str) -> str:
    return (resources.files(SCENARIOS) / f"{name}.toml").read_text()


def builtin_cases() -> list[str]:
    """Names of the built-in crafted-packet cases (``sim/scenario/cases/<name>.json``), sorted."""
    return sorted(p.stem for p in CASES_DIR.glob("*.json"))


def find_case(ref: str) -> Path:
    """A built-in case name or a case file's path -> the file; InputError for neither."""
    path = Path(ref)
    if path.exists() or path.suffix in (".json", ".toml"):
        return path
    path = CASES_DIR / f"{ref}.json"
    if not path.exists():
        raise InputError(f"{ref}: no such file or built-in case (built-in: {', '.join(builtin_cases())})")
    return path


def read_text(path: Path, error: type[InputError] = InputError) -> str:
    """A file's text; ``error`` with one line naming the file when it cannot be read as UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as e:
        kind = "is a directory" if path.is_dir() else e.strerror
        raise error(f"{path}: {kind}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        bad = data[e.start]
        raise error(f"{path}:{line}: not UTF-8 text (byte {bad:#04x} at offset {e.start})") from None


def read_data(
    path: str | Path, default_format: Literal["json", "toml"], error: type[InputError] = InputError
) -> Any:
    """A JSON or TOML file's data: ``.json`` and ``.toml`` by their suffix, anything else as
    ``default_format``. ``error`` (an InputError kind) names the file, and the line for JSON."""
    path = Path(path)
    return parse_text(read_text(path, error), str(path), _format(path, default_format), error)


def parse_text(
    text: str, source: str, fmt: Literal["json", "toml"], error: type[InputError] = InputError
) -> Any:
    """:func:`read_data` for text already read; ``source`` names it in errors."""
    try:
        return json.loads(text) if fmt == "json" else tomllib.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{source}: invalid TOML: {e}") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to read") from None


def _format(path: Path, default: Literal["json", "toml"]) -> Literal["json", "toml"]:
    if path.suffix == ".json":
        return "json"
    if path.suffix == ".toml":
        return "toml"
    return default


def kind_of(ref: str) -> Literal["scenario", "case"]:
    """Whether ``ref`` (a built-in name or a file) is a scenario or a crafted-packet case (a
    case has ``packets``)."""
    if ref in builtin_scenarios():
        return "scenario"
    try:
        data = read_data(ref, "toml")
    except InputError as e:
        if not Path(ref).exists():
            raise InputError(f"{e} (built-in scenarios: {', '.join(builtin_scenarios())})") from None
        raise
    return "case" if isinstance(data, dict) and "packets" in data else "scenario"


# ---------------------------------------------------------------- reading a JSON object in pieces

CHUNK = 1 << 16  # characters read at a time by json_members
_DECODER = json.JSONDecoder()  # what json.loads uses: the same values, NaN and all
_BLANKS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as json.decoder.WHITESPACE


class NotStreamable(Exception):
    """:func:`json_members` cannot read the file piece by piece: it is not a JSON object (or
    not JSON at all, or not UTF-8). Read it whole (:func:`read_data`) for the error."""


class _Text:
    """A file's text, decoded as UTF-8 and read on as a parse needs it: ``text[pos:]`` is
    what has not been consumed yet."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Read on (as much again as is held, at least CHUNK); False at the end of the file."""
        if self.eof:
            return False
        data = self.f.read(max(CHUNK, len(self.text) - self.pos))
        self.eof = not data
        try:
            got = self.decoder.decode(data, final=self.eof)
        except UnicodeDecodeError:
            raise NotStreamable from None
        self.text = self.text[self.pos :] + got
        self.pos = 0
        return True

    def next_char(self) -> str:
        """Skip whitespace; the next character, '' at the end of the file."""
        while True:
            blanks = _BLANKS.match(self.text, self.pos)
            assert blanks is not None  # it matches the empty string
            self.pos = blanks.end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def take(self, chars: str) -> str:
        """Consume the next non-blank character, one of ``chars``."""
        c = self.next_char()
        if not c or c not in chars:
            raise NotStreamable
        self.pos += 1
        return c

    def value(self) -> Any:
        """The JSON value at the position, decoded by json itself; read on while the text
        held may end inside it (a number cut at a chunk's end decodes too, so a value
        ending exactly where the text ends is decoded again with more)."""
        self.next_char()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self.more():
                    continue
                raise NotStreamable from None
            except RecursionError:
                raise NotStreamable from None
            if end == len(self.text) and self.more():
                continue
            self.pos = end
            return value


def json_members(path: Path, streamed: str) -> Iterator[tuple[str, Any, bool]]:
    """The members of the JSON object in ``path``, read a chunk at a time: ``(name, value,
    False)`` for each, in the file's order, except that an array under the name ``streamed``
    comes as ``(streamed, [], False)`` and then ``(streamed, element, True)`` per element, so
    that only one element is held at a time. The values are json's own; NotStreamable for
    anything :func:`json.loads` would not read as an object (then read the file whole for
    the error), OSError when the file cannot be read."""
    with path.open("rb") as f:
        text = _Text(f)
        text.take("{")
        if text.next_char() == "}":
            text.pos += 1
        else:
            while True:
                if text.next_char() != '"':
                    raise NotStreamable
                name = text.value()
                text.take(":")
                if name == streamed and text.next_char() == "[":
                    text.pos += 1
                    yield name, [], False
                    if text.next_char() == "]":
                        text.pos += 1
                    else:
                        while True:
                            yield name, text.value(), True
                            if text.take(",]") == "]":
                                break
                else:
                    yield name, text.value(), False
                if text.take(",}") == "}":
                    break
        if text.next_char():
            raise NotStreamable  # json.loads: "Extra data"
