"""The quiz line: the open question and its numbered choices, or whether the answer was right."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.quiz import Quiz
from tui.rows import Tone
from tui.terms import TERMS
from tui.widgets.style import INK

# the three verdicts in one line each, for the question bar (TERMS has the kernel's detail)
SHORT = {
    "ACCEPT": "entry kept, NAT translates, the window moves on",
    "IGNORE": "entry kept, NAT translates, the tracker learns nothing from it",
    "INVALID": "entry detached (-NF_ACCEPT): the packet goes on, NAT skips it",
}


class QuizBar(Static):
    def show(self, state: tuple[Quiz, bool] | None) -> None:
        self.display = state is not None
        if state is None:
            return
        quiz, revealed = state
        n = len(quiz.given) + (0 if revealed else 1)
        out = Text(f"quiz {n}/{len(quiz.items)}  score {quiz.score}/{len(quiz.given)}  ", style="bold")
        if not revealed:
            q = quiz.current
            assert q is not None
            out.append(q.prompt + "  ")
            for k, choice in enumerate(q.choices, 1):
                out.append(f"[{k}]", style="bold reverse")
                out.append(f" {choice}  ")
            for term in q.terms:  # the words first, then the question
                out.append(f"\n{term}", style="bold")
                out.append(f": {SHORT.get(term, TERMS[term])}", style="dim")
        else:
            q = quiz.items[len(quiz.given) - 1]
            if quiz.given[-1] == q.answer:
                out.append(f"right: {q.choices[q.answer]}. ", style=f"bold {INK[Tone.ACCEPT]}")
            else:
                out.append(
                    f"not {q.choices[quiz.given[-1]]}: it is {q.choices[q.answer]}; {q.shows} shows it. ",
                    style=f"bold {INK[Tone.DROP]}",
                )
            out.append("enter: next question", style="dim")
        self.update(out, layout=True)
