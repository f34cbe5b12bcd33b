"""``nflab grade DIR``: the course's gradebook (no kernel file: it grades the exercises' checker).

``DIR`` holds one folder per student. In it, the answer to exercise NN is the one file whose name
starts with ``NN`` and ends with the exercise's suffix (``01.json``, ``02-my-rule.toml``), and the
end-of-lab quiz is ``quiz.toml`` (``q1 = "b"`` ...). Each answer is judged by
:func:`sim.report.exercises.check` (behaviour, never a comparison with a solution). What only the
instructor knows comes from the key (``--key``, kept outside the site and the package:
``instructor/quiz-key.toml``): the quiz's answers, and the concepts exercise 02's explanation
sentence (the comments the student added to the starter) must name, cause before effect in the
key's order (:func:`judge_sentence`). The rubric is
:data:`POINTS`, plus with a key one point for the sentence and one per quiz question;
instructor/grading.md says it in words.

One CSV row per student, always: a file that cannot be read, a folder that is no folder, a
checker that cannot run give that item 0 points and a note, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.report.exercises import EXERCISES, Exercise, ExerciseError, check

# points for a right answer, by exercise number; with a key also "02-why" (the explanation
# sentence, 1 point) and "quiz" (1 per question)
POINTS = {"01": 2, "02": 2, "03": 2, "04": 2}
# the lab's graded exercises; 05-09 (lesson 9's stories) are checked by nflab check, not graded here
GRADED = tuple(ex for ex in EXERCISES if ex.name.split("-", 1)[0] in POINTS)
WHY_POINTS = 1
QUIZ_FILE = "quiz.toml"
STARTERS = Path(__file__).resolve().parents[2] / "docs" / "exercises"


@dataclass(frozen=True, slots=True)
class Key:
    """The instructor's key: the quiz's letters and exercise 02's concepts (name -> pattern)."""

    answers: dict[str, str]
    why: dict[str, re.Pattern[str]]


class GradeError(ValueError):
    """DIR, the quiz key or the output cannot be used; one line."""


@dataclass
class Row:
    student: str
    points: dict[str, int] = field(default_factory=dict)  # item -> points
    notes: list[str] = field(default_factory=list)

    def add(self, item: str, points: int, note: str = "") -> None:
        self.points[item] = points
        if note:
            self.notes.append(f"{item}: {note}")


def load_key(path: Path) -> Key:
    """``[answers]`` with ``qN = "letter"`` and ``[why-02]`` with ``concept = "regex"``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise GradeError(f"{path}: {e}") from None
    tables = [data.get("answers"), data.get("why-02")]
    if not all(isinstance(t, dict) and t and all(isinstance(v, str) for v in t.values()) for t in tables):
        raise GradeError(
            f'{path}: expected an [answers] table (q1 = "a" ...) and a [why-02] table (name = "regex")'
        )
    try:
        why = {name: re.compile(regex, re.I) for name, regex in data["why-02"].items()}
    except re.error as e:
        raise GradeError(f"{path}: [why-02]: {e}") from None
    return Key({q: v.strip().lower() for q, v in data["answers"].items()}, why)


def _comments(text: str) -> list[str]:
    """The TOML comments of ``text`` (the part of each line after a ``#`` outside a string)."""
    out = []
    for line in text.splitlines():
        quote = ""
        for i, ch in enumerate(line):
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                out.append(line[i + 1 :].strip())
                break
    return [c for c in out if c]


def explanation(answer: str, starter: str) -> str:
    """The sentence a student added to exercise 02's starter: its new comments, joined."""
    given = set(_comments(starter))
    return " ".join(c for c in _comments(answer) if c not in given)


# words that join two clauses of a sentence: cause first ("A, so B"), or effect first ("A
# because B"); a comma or "and" keeps the order the clauses are written in
THEN = re.compile(r"\b(?:so|therefore|thus|hence|which means)\b|->|→|=>|所以|因此|因而|于是|从而", re.I)
SINCE = re.compile(r"\b(?:because|since)\b|因为|由于", re.I)
ASIDE = re.compile(r"[(（]([^()（）]*)[)）]")


def causal_order(sentence: str) -> list[str]:
    """The clauses of ``sentence`` with each cause before its effect: "A because B" and "A (B)"
    are B then A, "because A, so B" and "A, so B" are A then B."""
    joints = sorted(
        [(m.start(), m.end(), False) for m in THEN.finditer(sentence)]
        + [(m.start(), m.end(), True) for m in SINCE.finditer(sentence)]
    )
    chain: list[str] = []
    at, start, since = 0, 0, False
    for begin, end, next_since in [*joints, (len(sentence), len(sentence), False)]:
        clause = sentence[start:begin].strip(" ,;，；")
        if not chain:
            chain.append(clause)
        elif since:  # a cause: before the clause it explains
            chain.insert(at, clause)
        else:
            at += 1
            chain.insert(at, clause)
        start, since = end, next_since
    # an aside in parentheses explains its clause: "addressed to the host (NAT skipped it)"
    told = [part for c in chain for part in (*ASIDE.findall(c), ASIDE.sub("", c))]
    return [c.strip(" ,;，；") for c in told if c.strip(" ,;，；")]


def missing_concepts(sentence: str, key: Key) -> list[str]:
    return [name for name, pattern in key.why.items() if not pattern.search(sentence)]


def judge_sentence(sentence: str, key: Key) -> str:
    """What is wrong with an explanation sentence ("" when nothing): the key's concepts it does
    not name, or, when it names them all, that it does not chain them cause before effect in the
    key's order (a bag of the right words in the wrong order explains nothing)."""
    if not sentence:
        return "no explanation comment"
    missing = missing_concepts(sentence, key)
    if missing:
        return f"does not say: {', '.join(missing)}"
    told, at, before = " | ".join(causal_order(sentence)), 0, ""
    for name, pattern in key.why.items():
        found = pattern.search(told, at)
        if found is None:
            return f"names every link, but {name} as a cause of {before}, not its effect"
        at, before = found.end(), name
    return ""


def _answer_file(folder: Path, ex: Exercise) -> Path:
    number = ex.name.split("-", 1)[0]
    found = sorted(p for p in folder.iterdir() if p.name.startswith(number) and p.name.endswith(ex.suffix))
    if not found:
        raise ExerciseError(f"no {number}*{ex.suffix} file")
    if len(found) > 1:
        raise ExerciseError(f"{len(found)} files for one answer: {', '.join(p.name for p in found)}")
    return found[0]


def _grade_exercise(row: Row, folder: Path, ex: Exercise, key: Key | None) -> None:
    number = ex.name.split("-", 1)[0]
    try:
        path = _answer_file(folder, ex)
        ok, message = check(ex.name, path)
    except ExerciseError as e:
        row.add(number, 0, f"error: {e}")
        return
    except Exception as e:  # one student's odd file must not stop the gradebook
        row.add(number, 0, f"error: the checker failed on it ({type(e).__name__}: {e})")
        return
    row.add(number, POINTS[number] if ok else 0, "" if ok else message)
    if ex.suffix == ".json" and not _on_the_starter(path, ex):
        row.notes.append(f"{number}: note: the packets before the last are not the starter's")
    if number == "02" and key is not None:
        starter = (STARTERS / f"{ex.name}.starter{ex.suffix}").read_text(encoding="utf-8")
        try:
            sentence = explanation(path.read_text(encoding="utf-8"), starter)
        except (OSError, UnicodeDecodeError) as e:
            row.add("02-why", 0, f"error: {e}")
            return
        note = judge_sentence(sentence, key)
        row.add("02-why", 0 if note else WHY_POINTS, note)


def _on_the_starter(path: Path, ex: Exercise) -> bool:
    """The case keeps the starter's packets before the last one (comments aside), as the task
    asks; a built-in case handed in as it is does not."""

    def head(file: Path) -> list[dict[str, Any]]:
        packets = json.loads(file.read_text(encoding="utf-8"))["packets"][:-1]
        return [{k: v for k, v in p.items() if k != "comment"} for p in packets]

    try:
        return head(path) == head(STARTERS / f"{ex.name}.starter{ex.suffix}")
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unreadable here means the checker already said so


def _grade_quiz(row: Row, folder: Path, key: Key) -> None:
    path = folder / QUIZ_FILE
    try:
        answers = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        row.add("quiz", 0, f"no {QUIZ_FILE}")
        return
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        row.add("quiz", 0, f"error: {QUIZ_FILE}: {e}")
        return
    wrong = [q for q, right in key.answers.items() if str(answers.get(q, "")).strip().lower() != right]
    row.add("quiz", len(key.answers) - len(wrong), f"wrong or missing: {', '.join(wrong)}" if wrong else "")


def grade_student(folder: Path, key: Key | None) -> Row:
    row = Row(folder.name)
    if not folder.is_dir():
        for ex in GRADED:
            row.points[ex.name.split("-", 1)[0]] = 0
        row.notes.append("error: not a folder (one folder per student)")
        return row
    for ex in GRADED:
        _grade_exercise(row, folder, ex, key)
    if key is not None:
        _grade_quiz(row, folder, key)
    return row


def columns(key: Key | None) -> list[str]:
    items = ["01", "02", *(["02-why"] if key else []), "03", "04", *(["quiz"] if key else [])]
    return ["student", *items, "total", "max", "notes"]


def max_points(key: Key | None) -> int:
    return sum(POINTS.values()) + (WHY_POINTS + len(key.answers) if key is not None else 0)


def gradebook(answers: Path, key: Key | None) -> list[dict[str, Any]]:
    """One dict per student (the CSV's rows), by folder name."""
    if not answers.is_dir():
        raise GradeError(f"{answers}: not a folder of students' folders")
    rows = []
    for folder in sorted(answers.iterdir()):
        if folder.name.startswith("."):
            continue
        row = grade_student(folder, key)
        cells: dict[str, Any] = {"student": row.student}
        cells |= {item: row.points.get(item, 0) for item in columns(key)[1:-3]}
        cells |= {"total": sum(row.points.values()), "max": max_points(key), "notes": "; ".join(row.notes)}
        rows.append(cells)
    return rows


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``grade`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "grade",
        help="run the checker over a folder of students' answers and write a gradebook (CSV)",
        description="DIR holds one folder per student with 01*.json, 02*.toml, 03*.json, 04*.json "
        "and quiz.toml. Writes one CSV row per student (points per item, total, notes). "
        "Exit 0: written; 2: DIR, the key or the output cannot be used.",
    )
    p.add_argument("dir", metavar="DIR", help="the folder of students' folders")
    p.add_argument(
        "--key",
        metavar="FILE",
        help="the key (instructor/quiz-key.toml); without it no quiz and no 02-why column",
    )
    p.add_argument(
        "--out", default="gradebook.csv", metavar="FILE", help="the CSV to write (default gradebook.csv)"
    )
    return p


def main(args: argparse.Namespace) -> int:
    try:
        key = load_key(Path(args.key)) if args.key else None
        rows = gradebook(Path(args.dir), key)
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns(key))
            writer.writeheader()
            writer.writerows(rows)
    except GradeError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"nflab: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    for row in rows:
        print(f"{row['student']:<20} {row['total']:>3}/{row['max']}")
    print(f"gradebook: {args.out} ({len(rows)} students)")
    return 0
