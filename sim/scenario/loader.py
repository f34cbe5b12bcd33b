"""The one way in for what nflab runs: built-in scenario names, scenario files (TOML, or JSON
with the same keys) and crafted-packet case files (JSON, or TOML with the same keys).

Everything refused raises :class:`InputError` (``CaseError`` and ``ScenarioError`` are its
kinds) with one line naming the file and the place.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

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
