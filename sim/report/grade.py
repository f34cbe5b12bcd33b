"""``nflab grade DIR``: the course's gradebook (no kernel file: it grades the exercises' checker).

``DIR`` holds one folder per student. In it, the answer to exercise NN is the one file whose name
starts with ``NN`` and ends with the exercise's suffix (``01.json``, ``02-my-rule.toml``,
``05.toml``), and the end-of-lab quiz is ``quiz.toml`` (``q1 = "b"`` ...). Each answer is judged
by :func:`sim.report.exercises.check` (what the file does in the model, never a comparison with a
solution). What only the instructor knows comes from the key (``--key``, kept outside the site
and the package: ``instructor/quiz-key.toml``): the quiz's answers, and for each exercise that
asks for one (02, 05-09) the links its explanation sentence (the comments the student added to
the starter) must name, cause before effect in the key's order (:func:`judge_sentence`). The
rubric is :data:`POINTS` for the exercises of the lab graded (``--lab``), plus with a key one
point per sentence and one per quiz question; instructor/grading.md says it in words.

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
from enum import StrEnum
from pathlib import Path
from typing import Any

from sim.report.exercises import EXERCISES, Exercise, ExerciseError, check


def number_of(ex: Exercise) -> str:
    """``"05"`` for ``05-a-race-only-old-kernels-lose``."""
    return ex.name.split("-", 1)[0]


class Lab(StrEnum):
    """The lab sessions of docs/lab.md: the first (01-04 and the quiz), the second (lesson 9's
    stories, 05-09), or both."""

    FIRST = "1"
    SECOND = "2"
    BOTH = "both"

    def exercises(self) -> tuple[Exercise, ...]:
        first = ("01", "02", "03", "04")
        return tuple(
            ex for ex in EXERCISES if self is Lab.BOTH or (number_of(ex) in first) == (self is Lab.FIRST)
        )

    @property
    def has_quiz(self) -> bool:
        return self is not Lab.SECOND


# points for a right answer, by exercise number; with a key also "NN-why" (an explanation
# sentence, 1 point, for each exercise the key has links for) and "quiz" (1 per question)
POINTS = {number_of(ex): 2 for ex in EXERCISES}
WHY_POINTS = 1
QUIZ_FILE = "quiz.toml"
STARTERS = Path(__file__).resolve().parents[2] / "docs" / "exercises"


@dataclass(frozen=True, slots=True)
class Key:
    """The instructor's key: the quiz's letters (none: no quiz) and, per exercise number, the
    links its explanation sentence must name, cause first (link name -> pattern)."""

    answers: dict[str, str]
    why: dict[str, dict[str, re.Pattern[str]]]


class GradeError(ValueError):
    """DIR, the quiz key or the output cannot be used; one line."""


@dataclass
class Row:
    student: str
    points: dict[str, int] = field(default_factory=dict)  # item -> points
    notes: list[str] = field(default_factory=list)
    sentences: dict[str, str] = field(default_factory=dict)  # "NN-why" -> the sentence judged

    def add(self, item: str, points: int, note: str = "") -> None:
        self.points[item] = points
        if note:
            self.notes.append(f"{item}: {note}")


def load_key(path: Path) -> Key:
    """``[answers]`` with ``qN = "letter"`` and ``[why-NN]`` tables with ``link = "regex"``, the
    links of exercise NN's sentence in causal order; each table is optional, none is empty."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise GradeError(f"{path}: {e}") from None
    if not data:
        raise GradeError(
            f'{path}: expected an [answers] table (q1 = "a" ...) and [why-NN] tables (link = "regex")'
        )
    why: dict[str, dict[str, re.Pattern[str]]] = {}
    for name, table in data.items():
        number = name.removeprefix("why-")
        if name != "answers" and not (name.startswith("why-") and number in POINTS):
            raise GradeError(f"{path}: [{name}]: not a table of the key ([answers], [why-01] ... [why-09])")
        if not (isinstance(table, dict) and table and all(isinstance(v, str) for v in table.values())):
            form = 'q1 = "a" ...' if name == "answers" else 'link = "regex" ..., cause first'
            raise GradeError(f"{path}: [{name}]: expected a table of strings ({form})")
        if name != "answers":
            try:
                why[number] = {link: re.compile(regex, re.I | re.ASCII) for link, regex in table.items()}
            except re.error as e:
                raise GradeError(f"{path}: [{name}]: {e}") from None
    answers = {q: v.strip().lower() for q, v in data.get("answers", {}).items()}
    return Key(answers, why)


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


# words that join two clauses of a sentence: cause first ("A, so B", "A leads to B"), or effect
# first ("A because B", "A due to B"); a comma or "and" keeps the order the clauses are written in
THEN = re.compile(
    r"\b(?:so|therefore|thus|hence|consequently|as a result|(?:which )?(?:means|leads? to|results? in))\b"
    r"|->|→|=>|所以|因此|因而|于是|从而|导致|使得",
    re.I,
)
SINCE = re.compile(r"\b(?:because|since|due to|owing to|thanks to)\b|因为|由于", re.I)
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


Links = dict[str, re.Pattern[str]]


def missing_concepts(sentence: str, links: Links) -> list[str]:
    return [name for name, pattern in links.items() if not pattern.search(sentence)]


def judge_sentence(sentence: str, links: Links) -> str:
    """What is wrong with an explanation sentence ("" when nothing): the links (one exercise's
    table of the key) it does not name, or, when it names them all, that it does not chain them
    cause before effect in the key's order (a bag of the right words in the wrong order explains
    nothing)."""
    if not sentence:
        return "no explanation comment"
    missing = missing_concepts(sentence, links)
    if missing:
        return f"does not say: {', '.join(missing)}"
    told, at, before = " | ".join(causal_order(sentence)), 0, ""
    for name, pattern in links.items():
        found = pattern.search(told, at)
        if found is None:
            return f"names every link, but {name} as a cause of {before}, not its effect"
        at, before = found.end(), name
    return ""


def _answer_file(folder: Path, ex: Exercise) -> Path:
    number = number_of(ex)
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(number) and p.name.endswith(ex.suffix)]
    except OSError as e:
        raise ExerciseError(f"{folder.name}: {e.strerror}") from None
    found = sorted(names)
    if not found:
        raise ExerciseError(f"no {number}*{ex.suffix} file")
    if len(found) > 1:
        raise ExerciseError(f"{len(found)} files for one answer: {', '.join(p.name for p in found)}")
    return found[0]


def _grade_exercise(row: Row, folder: Path, ex: Exercise, key: Key | None) -> None:
    """The checker's points, and the sentence's where the key has links for it: judged whenever
    the file is there, so a rule that fails can still come with a right explanation."""
    number = number_of(ex)
    try:
        path = _answer_file(folder, ex)
    except ExerciseError as e:
        row.add(number, 0, f"error: {e}")
        return
    try:
        ok, message = check(ex.name, path)
        row.add(number, POINTS[number] if ok else 0, "" if ok else message)
    except ExerciseError as e:
        row.add(number, 0, f"error: {e}")
    except Exception as e:  # one student's odd file must not stop the gradebook
        row.add(number, 0, f"error: the checker failed on it ({type(e).__name__}: {e})")
    else:
        if ex.suffix == ".json" and not _on_the_starter(path, ex):
            row.notes.append(f"{number}: note: the packets before the last are not the starter's")
    if key is not None and number in key.why:
        starter = (STARTERS / f"{ex.name}.starter{ex.suffix}").read_text(encoding="utf-8")
        try:
            sentence = explanation(path.read_text(encoding="utf-8"), starter)
        except (OSError, UnicodeDecodeError) as e:
            row.add(f"{number}-why", 0, f"error: {e}")
            return
        note = judge_sentence(sentence, key.why[number])
        row.add(f"{number}-why", 0 if note else WHY_POINTS, note)
        row.sentences[f"{number}-why"] = sentence


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


def _quiz(key: Key | None, lab: Lab) -> bool:
    return key is not None and bool(key.answers) and lab.has_quiz


def grade_student(folder: Path, key: Key | None, lab: Lab = Lab.BOTH) -> Row:
    row = Row(folder.name)
    if not folder.is_dir():
        row.notes.append("error: not a folder (one folder per student)")
        return row
    for ex in lab.exercises():
        _grade_exercise(row, folder, ex, key)
    if key is not None and _quiz(key, lab):
        _grade_quiz(row, folder, key)
    return row


def items(key: Key | None, lab: Lab = Lab.BOTH) -> dict[str, int]:
    """The gradebook's items in order, each with its points: an exercise, its sentence where
    the key has links for it, the quiz."""
    out: dict[str, int] = {}
    for ex in lab.exercises():
        number = number_of(ex)
        out[number] = POINTS[number]
        if key is not None and number in key.why:
            out[f"{number}-why"] = WHY_POINTS
    if key is not None and _quiz(key, lab):
        out["quiz"] = len(key.answers)
    return out


def columns(key: Key | None, lab: Lab = Lab.BOTH) -> list[str]:
    return ["student", *items(key, lab), "total", "max", "notes"]


def max_points(key: Key | None, lab: Lab = Lab.BOTH) -> int:
    return sum(items(key, lab).values())


def student_folders(answers: Path) -> list[Path]:
    """The entries of ``answers`` but hidden ones; refused when none is a folder (the path of one
    student's folder, or of an empty one, given by mistake)."""
    if not answers.is_dir():
        raise GradeError(f"{answers}: not a folder of students' folders")
    try:
        entries = sorted(p for p in answers.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise GradeError(f"{answers}: {e.strerror}") from None
    if not any(p.is_dir() for p in entries):
        handed_in = [p.name for p in entries if p.name == QUIZ_FILE or p.name[:2] in POINTS]
        but = f", but answer files ({', '.join(handed_in[:3])})" if handed_in else ""
        above = "the folder above it, which" if handed_in else "the folder that"
        raise GradeError(
            f"{answers}: holds no student folders{but}: give {above} holds one folder per student"
        )
    return entries


# a sentence this long handed in word for word by two students is worth a look
SAME_SENTENCE_CHARS = 30


def note_same_sentences(rows: list[Row]) -> None:
    """Note each sentence that other students handed in word for word (case and spacing aside):
    the judge cannot tell a copied sentence from one understood, the instructor can ask."""
    by_text: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        for item, sentence in row.sentences.items():
            text = " ".join(sentence.lower().split())
            if len(text) >= SAME_SENTENCE_CHARS:
                by_text.setdefault((item, text), []).append(row)
    for (item, _text), same in by_text.items():
        if len(same) < 2:
            continue
        for row in same:
            others = [other.student for other in same if other is not row]
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            row.notes.append(f"{item}: note: the same sentence as {', '.join(others[:3])}{more}")


def gradebook(answers: Path, key: Key | None, lab: Lab = Lab.BOTH) -> list[dict[str, Any]]:
    """One dict per student (the CSV's rows), by folder name."""
    graded = [grade_student(folder, key, lab) for folder in student_folders(answers)]
    note_same_sentences(graded)
    rows = []
    for row in graded:
        cells: dict[str, Any] = {"student": row.student}
        cells |= {item: row.points.get(item, 0) for item in items(key, lab)}
        cells |= {
            "total": sum(row.points.values()),
            "max": max_points(key, lab),
            "notes": "; ".join(row.notes),
        }
        rows.append(cells)
    return rows


def report(rows: list[dict[str, Any]], key: Key | None, lab: Lab, out: str) -> list[str]:
    """What the command prints: a line per student (total, and the items short of full points),
    a line per item (how many students have full points), where the CSV is."""
    full = items(key, lab)
    lines = []
    for row in rows:
        short = [
            item if row[item] == 0 else f"{item} {row[item]}/{p}" for item, p in full.items() if row[item] < p
        ]
        lost = f"  short: {', '.join(short)}" if short else ""
        lines.append(f"{row['student']:<20} {row['total']:>3}/{row['max']}{lost}")
    if rows:
        per_item = ", ".join(f"{item} {sum(r[item] == p for r in rows)}" for item, p in full.items())
        lines.append(f"full points, students per item (of {len(rows)}): {per_item}")
    lines.append(f"gradebook: {out} ({len(rows)} students; the notes column says why each point was lost)")
    return lines


def add_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``grade`` on an ``add_subparsers()`` object; dispatch to :func:`main`."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "grade",
        help="run the checker over a folder of students' answers and write a gradebook (CSV)",
        description="DIR holds one folder per student with 01*.json, 02*.toml, 03*.json, 04*.json, "
        "05*.toml ... 09*.toml and quiz.toml. Writes one CSV row per student (points per item, "
        "total, notes) and prints a summary. Exit 0: written; 2: DIR, the key or the output "
        "cannot be used.",
    )
    p.add_argument("dir", metavar="DIR", help="the folder of students' folders")
    p.add_argument(
        "--key",
        metavar="FILE",
        help="the key (instructor/quiz-key.toml); without it no quiz and no NN-why columns",
    )
    p.add_argument(
        "--lab",
        choices=[lab.value for lab in Lab],
        default=Lab.BOTH.value,
        help="grade the first lab (01-04 and the quiz), the second (05-09) or both (default)",
    )
    p.add_argument(
        "--out", default="gradebook.csv", metavar="FILE", help="the CSV to write (default gradebook.csv)"
    )
    return p


def main(args: argparse.Namespace) -> int:
    try:
        key, lab = load_key(Path(args.key)) if args.key else None, Lab(args.lab)
        student_folders(Path(args.dir))  # refused before the output is opened
        # opened before grading, so that a path that cannot be written fails at once; grading
        # itself raises no OSError (an unreadable file or folder is a note in its row)
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            rows = gradebook(Path(args.dir), key, lab)
            writer = csv.DictWriter(f, fieldnames=columns(key, lab))
            writer.writeheader()
            writer.writerows(rows)
    except GradeError as e:
        print(f"nflab: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"nflab: {args.out}: {e.strerror}", file=sys.stderr)
        return 2
    print("\n".join(report(rows, key, lab, args.out)))
    return 0
