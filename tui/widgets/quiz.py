"""The quiz line: the open question and its numbered choices, or whether the answer was right."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.quiz import Quiz
from tui.rows import Tone
from tui.widgets.style import INK


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
        else:
            q = quiz.items[len(quiz.given) - 1]
            if quiz.given[-1] == q.answer:
                out.append(f"right: {q.choices[q.answer]}. ", style=f"bold {INK[Tone.ACCEPT]}")
            else:
                out.append(
                    f"not {q.choices[quiz.given[-1]]}: it is {q.choices[q.answer]}; the why panel says why. ",
                    style=f"bold {INK[Tone.DROP]}",
                )
            out.append("enter: next question", style="dim")
        self.update(out, layout=True)
