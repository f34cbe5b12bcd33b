"""The nflab walkthrough app: ``make_app()`` builds it (tests reuse it), ``main()`` runs it.

The app holds the state (the indexed run, a cursor, the quiz if one is on); the main screen only
renders it. The model runs in a worker thread, so the first frame and every key answer at once:
while a run is under way (launch, a fix, a kernel, a file) the screen shows a spinner. Each
re-run says what changed, where the two runs first diverge, and moves to the new run's decisive
packet.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import io
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.pilot import Pilot
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import get_current_worker

from sim.api import FIXES, KERNELS, PROFILES, WINDOW_FIXES, builtin_scenarios
from tui.confine import Confinement
from tui.messages import CursorMoved, RunChanged
from tui.quiz import Quiz, questions, story_runs
from tui.rows import describe_change
from tui.screens.main import MainScreen
from tui.session import (
    DEFAULT_SCENARIO,
    REMOTE_RST,
    Cursor,
    Plan,
    Session,
    SourceError,
    classify,
    cycle,
    follow,
    next_invalid,
    next_packet,
    next_step,
    plan,
    play_next,
    prev_packet,
    prev_step,
)
from tui.widgets.why import WhyPanel


def queued(action: Callable[..., None]) -> Callable[..., None]:
    """An action that a key may ask for while the model runs: it is kept, said on the status
    line, and done once the run is on screen (in the order the keys came), never dropped."""

    @functools.wraps(action)
    def run(app: NflabApp, *args: object) -> None:
        if app.ready:
            action(app, *args)
            return
        app.pending.append((action, args))
        app.screen_main.busy(f"{app.running} ... then {len(app.pending)} key(s)")

    QUEUED.add(action.__name__.removeprefix("action_"))
    return run


def settle_gc() -> None:
    """After the launch's first run is on screen: collect what the launch left (~700 objects,
    ~180 KB, among ~150k: classes that imports replaced, in cycles), keep the collector's passes
    off the rest, which lives on, and turn the collector back on. One pass, ~60 ms."""
    gc.collect()
    gc.freeze()
    gc.enable()


def model_runs() -> None:
    """A re-run's model starts in its worker, and Textual's writer thread writes the spinner's
    frame meanwhile, each step of it waiting for the GIL the worker holds. As at launch, the
    collector is off until the run is on screen (arrive, then settle_gc): a run leaves no cyclic
    garbage (measured: 0 objects) and each pass over its young objects held the GIL 7-17 ms.
    And the GIL changes hands after 0.5 ms instead of 5 until the run arrives (k's spinner frame
    7-32 ms -> 7-16 ms)."""
    gc.disable()
    sys.setswitchinterval(RUN_SWITCH_S)


def model_stopped() -> None:
    """The run failed, or the app ends before settle_gc came: as before :func:`model_runs`."""
    sys.setswitchinterval(SWITCH_S)
    gc.enable()


QUEUED: set[str] = set()
STEP = Binding.Group("step", compact=True)
PACKET = Binding.Group("pkt", compact=True)
SWITCH_S = sys.getswitchinterval()  # Python's 5 ms
RUN_SWITCH_S = 0.0005  # while a re-run's model runs in its worker (model_runs)
GC_AFTER_S = 0.15  # after the first run is on screen (the frame is out in a few tens of ms)
PLAY_INTERVAL = 0.25  # four steps a second: readable, and the late ACK reaches its RST in 3 s
Cache = dict[tuple[str, str, str, str | None], Session]


class NflabApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "nflab"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "prev_step", "step", id="step.prev", group=STEP, key_display="←"),
        Binding("right", "next_step", "step", id="step.next", group=STEP, key_display="→"),
        Binding("up", "prev_packet", "pkt", id="packet.prev", group=PACKET, key_display="↑"),
        Binding("down", "next_packet", "pkt", id="packet.next", group=PACKET, key_display="↓"),
        Binding("space", "play", "play", id="play", key_display="spc"),
        Binding("i", "next_invalid", "INVALID", id="invalid.next"),
        Binding("f", "cycle_fix", "fix", id="fix.cycle"),
        Binding("k", "cycle_kernel", "kernel", id="kernel.cycle"),
        Binding("r", "cycle_remote", "remote", id="remote.cycle", show=False),
        Binding("z", "quiz", "quiz", id="quiz"),
        Binding("o", "open", "open", id="open"),
        Binding("question_mark,f1", "help", "help", id="help", key_display="?"),
        Binding("q", "quit", "quit", id="quit"),
        Binding("c", "follow", "follow RST", id="follow", show=False),
        Binding("home", "focus_story", "story", id="story", show=False),
        Binding("s", "screenshot", "SVG", id="screenshot", show=False),
        *(
            Binding(str(n), f"answer({n - 1})", f"answer {n}", id=f"quiz.answer{n}", show=False)
            for n in range(1, 5)
        ),
        Binding("enter", "quiz_next", "next question", id="quiz.next", show=False),
        Binding("pagedown", "why_scroll(1)", "why down", id="why.down", show=False),
        Binding("pageup", "why_scroll(-1)", "why up", id="why.up", show=False),
    ]

    def __init__(
        self,
        ref: str,
        kernel: str | None,
        fix: str | None,
        cache: Cache | None = None,
        quiz: bool = False,
        root: Path | None = None,
        confined: bool = False,
    ) -> None:
        super().__init__()
        self.root, self._confined = root, confined
        self.plan: Plan | None = None  # set when the first run arrives
        self.ref, self.kernel, self.fix = ref, kernel, fix
        self.remote: str | None = None  # the scenario's remote RST policy, once a run is on screen
        self.session: Session | None = None
        self.cursor = Cursor(0, 0)
        self.playing: Timer | None = None
        self.quiz: Quiz | None = None
        self.quiz_revealed = False
        self.want_quiz = quiz
        self.ready = False  # a run is on screen and no re-run is under way
        self.running = ""  # what the spinner says while not ready
        self.pending: list[tuple[Callable[..., None], tuple[object, ...]]] = []  # keys for after the run
        self._cache: Cache = {} if cache is None else cache

    # -- state --------------------------------------------------------------------

    def cached(self, p: Plan) -> Session | None:
        return self._cache.get(p.key)

    def get_default_screen(self) -> Screen[None]:
        return MainScreen()

    def get_loading_widget(self) -> Widget:
        """Over the journey and why panels while the model runs: what it runs, standing still.
        Textual's animated indicator repaints both panels 16 times a second, and each repaint
        takes the GIL from the run it waits for."""
        return Static(f"{self.running} ...", id="running")

    def on_mount(self) -> None:
        self.sub_title = self.ref

    def on_unmount(self) -> None:
        model_stopped()  # a run's settle_gc may not have come yet: never leave the collector off

    def screen_ready(self) -> None:
        """The main screen is composed: paint it with a spinner, then load and run the first source
        in a worker (MainScreen.on_mount calls this). The model's modules load there too, so the
        first frame waits for Textual only."""
        if self.session is None:
            self.running = f"running {self.ref}"
            self.screen_main.busy(f"{self.running} ...")
            self.call_after_refresh(self.first_run)

    @work(thread=True, exclusive=True, group="model")
    def first_run(self) -> None:
        try:
            p = plan(self.ref, self.kernel, self.fix, self.remote)
            s = self.cached(p) or p.run()
        except SourceError as e:  # found only now: a file that reads but does not load
            self.call_from_thread(self.exit, None, 2, f"nflab tui: {e}")
            return
        self.call_from_thread(self.arrive, p, s, f"opened {p.title}")

    def show(self) -> None:
        if self.session is not None:
            self.screen_main.post_message(
                CursorMoved(self.session, self.cursor, self.playing is not None, self.quiz_state())
            )

    @property
    def screen_main(self) -> MainScreen:
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))

    def move(self, cursor: Cursor) -> None:
        if cursor != self.cursor:
            self.cursor = cursor
            self.show()

    # -- running the model ----------------------------------------------------------

    def start(self, p: Plan, what: str) -> None:
        """Show ``p``'s run: at once from the cache, else in a worker behind a spinner."""
        self.stop_playing()
        done = self.cached(p)
        if done is not None:
            self.arrive(p, done, what)
            return
        self.ready = False
        self.refresh_bindings()
        self.running = f"running {p.title} on kernel {p.kernel} with fix {p.fix}"
        self.screen_main.busy(f"{self.running} ...")
        model_runs()
        self.call_after_refresh(self.run_model, p, what)  # the spinner is on screen before the run

    @work(thread=True, exclusive=True, group="model")
    def run_model(self, p: Plan, what: str) -> None:
        try:
            s = p.run()
        except SourceError as e:
            self.call_from_thread(self.failed, str(e))
            return
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self.arrive, p, s, what)

    def failed(self, message: str) -> None:
        model_stopped()
        self.notify(message, severity="error", timeout=8)
        self.screen_main.busy(None)
        self.ready = self.session is not None
        self.replay_pending()

    def replay_pending(self) -> None:
        """The keys pressed while the model ran, in order, on the run now on screen."""
        pending, self.pending = self.pending, []
        for action, args in pending:
            if self.ready:  # a queued f or k starts another run: the keys after it wait for that one
                action(self, *args)
            else:
                self.pending.append((action, args))

    def arrive(self, p: Plan, new: Session, what: str) -> None:
        """A run is ready: say what changed against the one on screen and go to its story."""
        sys.setswitchinterval(SWITCH_S)
        self._cache[p.key] = new
        if gc.isenabled():
            gc.freeze()  # a run is ~100k objects that live on: keep the collector's passes off them
        else:  # the launch turned it off (tui.command.main): once this run is on screen
            self.set_timer(GC_AFTER_S, settle_gc)
        old = self.session
        self.plan, self.session = p, new
        self.ref, self.kernel, self.fix, self.remote = p.source.ref, new.kernel, new.fix, p.remote
        self.sub_title = new.title
        if old is not None and old.source == new.source:
            summary = describe_change(old, new, what)
        elif old is not None:
            summary = f"{what}: {new.outcome}"
        else:
            summary = ""
        self.cursor = Cursor(*new.focus)
        self.quiz = None
        self.screen_main.busy(None)
        self.screen_main.post_message(RunChanged(summary))
        self.ready = True
        self.refresh_bindings()
        if self.want_quiz:
            self.want_quiz = False
            self.action_quiz()
        self.show()
        self.replay_pending()

    def rerun(
        self, ref: str, kernel: str | None, fix: str | None, what: str, remote: str | None = None
    ) -> None:
        try:
            p = plan(ref, kernel, fix, remote)
        except SourceError as e:
            self.notify(str(e), severity="error", timeout=8)
            return
        self.start(p, what)

    # -- actions ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("answer", "quiz_next"):
            return self.quiz is not None
        if action in ("quit", "help", "open", "screenshot"):
            return True
        return self.ready or action in QUEUED  # keys during a run wait for it (see queued)

    @queued
    def action_next_step(self) -> None:
        assert self.session is not None
        self.move(next_step(self.session, self.cursor))

    @queued
    def action_prev_step(self) -> None:
        assert self.session is not None
        self.move(prev_step(self.session, self.cursor))

    @queued
    def action_next_packet(self) -> None:
        assert self.session is not None
        self.move(next_packet(self.session, self.cursor))

    @queued
    def action_prev_packet(self) -> None:
        assert self.session is not None
        self.move(prev_packet(self.session, self.cursor))

    def goto(self, cursor: Cursor) -> None:
        """A click on a journey row or a capture line."""
        if self.ready and self.quiz is None:
            self.move(cursor)

    @queued
    def action_next_invalid(self) -> None:
        assert self.session is not None
        cur, wrapped = next_invalid(self.session, self.cursor)
        if cur == self.cursor and not self.session.invalid:
            self.notify("no INVALID packet in this run", timeout=3)
        elif wrapped:
            self.notify("no INVALID after this one: back to the first", timeout=3)
        self.move(cur)

    @queued
    def action_follow(self) -> None:
        assert self.session is not None
        cur = follow(self.session, self.cursor)
        if cur is None:
            self.notify("this packet caused nothing and has no cause", timeout=3)
        else:
            self.move(cur)

    @queued
    def action_focus_story(self) -> None:
        assert self.session is not None
        self.move(Cursor(*self.session.focus))

    def action_why_scroll(self, pages: int) -> None:
        why = self.screen_main.query_one(WhyPanel)
        why.scroll_lines(pages * max(why.size.height - 1, 1))

    def stop_playing(self) -> None:
        if self.playing is not None:
            self.playing.stop()
            self.playing = None

    def play_tick(self) -> None:
        assert self.session is not None
        nxt = play_next(self.session, self.cursor)
        if nxt is None:
            self.stop_playing()
            self.show()
            return
        self.move(nxt)

    @queued
    def action_play(self) -> None:
        if self.playing is None:
            self.playing = self.set_interval(PLAY_INTERVAL, self.play_tick)
        else:
            self.stop_playing()
        self.show()

    @queued
    def action_cycle_fix(self) -> None:
        fix = cycle(self.plan.fixes if self.plan is not None else FIXES, self.fix or "none")
        self.rerun(self.ref, self.kernel, fix, f"fix {fix}", self.remote)

    @queued
    def action_cycle_remote(self) -> None:
        """The remote's RST policy: the incident's (any RST) or RFC 5961's (exactly RCV.NXT)."""
        if self.remote is None:
            self.notify("a crafted case has no remote endpoint to switch", timeout=3)
            return
        remote = cycle(REMOTE_RST, self.remote)
        words = "accepts any RST" if remote == "any" else "follows RFC 5961 (a RST only at exactly RCV.NXT)"
        self.rerun(self.ref, self.kernel, self.fix, f"remote {words}", remote)

    @queued
    def action_cycle_kernel(self) -> None:
        self.set_kernel(cycle(KERNELS, self.kernel or KERNELS[0]))

    def set_fix(self, fix: str) -> None:
        self.rerun(self.ref, self.kernel, fix, f"fix {fix}", self.remote)

    def set_kernel(self, kernel: str) -> None:
        self.rerun(
            self.ref, kernel, self.fix, f"kernel {kernel} ({PROFILES[kernel].description})", self.remote
        )

    @property
    def confinement(self) -> Confinement:
        """What ``o`` may open: a browser's session (``nflab serve``), a ``--root`` or ``confined``
        keeps it to built-in names and the files under the root."""
        return Confinement(self._confined or self.root is not None or self.is_web, self.root)

    def open_ref(self, ref: str | None) -> None:
        if not ref:
            return
        try:
            target = self.confinement.check(ref)
        except SourceError as e:  # one line, and nothing opened
            self.notify(str(e), severity="error", timeout=8)
            return
        self.rerun(target, None, None, f"opened {ref}")

    def action_open(self) -> None:
        from tui.screens.open_file import OpenScreen

        self.push_screen(OpenScreen(), self.open_ref)

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen  # Markdown loads on first use

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_screenshot(self) -> None:
        """The screen as SVG: in a terminal saved in the current directory (the course's
        screenshots); in a browser (``nflab serve``) sent to the browser as a download, and
        nothing is written on the server."""
        name = f"nflab-{self.plan.title if self.plan else self.ref}-{self.kernel}-{self.fix}"
        if self.session is not None:
            name += f"-pkt{self.session.pids[self.cursor.packet]}-step{self.cursor.step + 1}"
        name = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name) + ".svg"
        if self.is_web:
            svg = self.export_screenshot(title=f"nflab {self.sub_title}")
            self.deliver_text(io.StringIO(svg), save_filename=name, mime_type="image/svg+xml")
            self.notify(f"screen sent to your browser as {name}", timeout=4)
            return
        path = self.save_screenshot(name, str(Path.cwd()))
        self.notify(f"screen saved as {path}", timeout=4)

    # -- quiz ---------------------------------------------------------------------

    def quiz_state(self) -> tuple[Quiz, bool] | None:
        return (self.quiz, self.quiz_revealed) if self.quiz is not None else None

    @queued
    def action_quiz(self) -> None:
        """Start (or stop) the quiz on the run on screen."""
        assert self.session is not None
        if self.quiz is not None:
            self.quiz = None
            self.show()
            return
        self.stop_playing()
        if self.plan is None or (self.session.run is None and self.session.story is None):
            self.begin_quiz(self.session, {})  # a case: no fixes to ask about
            return
        self.ready = False
        self.running = "preparing the quiz: running the fixes"
        self.screen_main.busy(f"{self.running} ...")
        self.prepare_quiz(self.plan, self.session)

    @work(thread=True, exclusive=True, group="quiz")  # not "model": it may start from arrive()
    def prepare_quiz(self, p: Plan, s: Session) -> None:
        """The quiz asks what each fix would change: run the fixes the session lacks (cached)."""
        if s.story is not None:  # a story: its fixes and the other kernel (tui.quiz.story_runs)
            self.call_from_thread(self.begin_quiz, s, *story_runs(p.source.ref, p.kernel, p.remote))
            return
        fixed: dict[str, Session] = {}
        for fix in WINDOW_FIXES:
            if fix in ("none", p.fix) or fix not in p.fixes:
                continue
            other = plan(p.source.ref, p.kernel, fix, p.remote)
            fixed[fix] = self._cache.get(other.key) or other.run()
            self._cache[other.key] = fixed[fix]
        self.call_from_thread(self.begin_quiz, s, fixed)

    def begin_quiz(
        self, s: Session, fixed: dict[str, Session], kernels: dict[str, Session] | None = None
    ) -> None:
        self.ready = True
        self.screen_main.busy(None)
        if s is not self.session:
            return
        items = questions(s, fixed, kernels)
        if not items:
            self.notify("nothing to quiz on in this run", timeout=3)
            return
        self.quiz, self.quiz_revealed = Quiz(s, items), False
        self.cursor = items[0].ask
        self.show()
        self.replay_pending()

    def action_answer(self, choice: int) -> None:
        """Keys 1..4: answer the current question; the screen moves to the step that shows it."""
        quiz = self.quiz
        if quiz is None or self.quiz_revealed or quiz.current is None:
            return
        q = quiz.current
        if not 0 <= choice < len(q.choices):
            return
        quiz.answer(choice)
        self.quiz_revealed = True
        self.cursor = q.reveal
        self.show()

    def action_quiz_next(self) -> None:
        quiz = self.quiz
        if quiz is None or not self.quiz_revealed:
            return
        self.quiz_revealed = False
        if quiz.current is None:
            from tui.screens.quiz import QuizResult

            self.quiz = None
            self.show()
            self.push_screen(QuizResult(quiz.report()))
            return
        self.cursor = quiz.current.ask
        self.show()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:  # type: ignore[type-arg]
        yield from super().get_system_commands(screen)
        yield SystemCommand("Next step", "Move to the packet's next step", self.action_next_step)
        yield SystemCommand("Previous step", "Move to the previous step", self.action_prev_step)
        yield SystemCommand("Next packet", "Move to the next packet", self.action_next_packet)
        yield SystemCommand("Previous packet", "Move to the previous packet", self.action_prev_packet)
        yield SystemCommand("Play / pause", "Step automatically", self.action_play)
        yield SystemCommand(
            "Jump to next INVALID", "The next packet conntrack calls INVALID", self.action_next_invalid
        )
        yield SystemCommand(
            "Follow cause / RST", "To the packet this one caused, or its cause", self.action_follow
        )
        yield SystemCommand(
            "Back to the story", "The decisive packet: the first INVALID at the host", self.action_focus_story
        )
        yield SystemCommand(
            "Quiz", "Predict each decisive hook's outcome before it is shown", self.action_quiz
        )
        yield SystemCommand(
            "Save screen as SVG", "For the course: the screen as it is", self.action_screenshot
        )
        for fix in self.plan.fixes if self.plan is not None else FIXES:
            yield SystemCommand(
                f"Fix: {fix}", f"Re-run with fix {fix} and say what changed", lambda f=fix: self.set_fix(f)
            )
        for kernel, profile in PROFILES.items():
            yield SystemCommand(
                f"Kernel: {kernel}", f"Re-run on {profile.description}", lambda k=kernel: self.set_kernel(k)
            )
        for name in builtin_scenarios():
            yield SystemCommand(
                f"Open built-in: {name}",
                "Back to the seed incident" if name == DEFAULT_SCENARIO else f"The built-in scenario {name}",
                lambda n=name: self.rerun(n, None, None, f"opened {n}"),
            )
        yield SystemCommand("Open scenario file", "A scenario or crafted case file", self.action_open)
        yield SystemCommand("Help", "The story, the colours and the keys", self.action_help)


def make_app(
    scenario: str | None = None,
    kernel: str | None = None,
    fix: str | None = None,
    *,
    cache: Cache | None = None,
    quiz: bool = False,
    root: Path | None = None,
    confined: bool = False,
) -> NflabApp:
    """The app on ``scenario`` (built-in name, scenario file or case file; default the seed
    incident), with ``kernel``/``fix`` overriding what the file says; ``quiz`` starts in quiz
    mode. A file that cannot be read or parsed fails here (SourceError, before the terminal
    switches modes); the model loads and runs once the first frame is up. ``cache`` shares runs
    between apps (tests). ``root``/``confined``: what ``o`` may open (see :mod:`tui.confine`);
    the first source is the one the command line names, checked as an unconfined ``o`` would."""
    ref = Confinement(False).check(scenario or DEFAULT_SCENARIO)
    if ref != DEFAULT_SCENARIO:
        classify(ref)
    return NflabApp(ref, kernel, fix, cache, quiz, root, confined)


async def until_ready(app: NflabApp, pilot: Pilot[int], timeout: float = 30.0) -> None:
    """Wait for the model's run (launch or re-run) and the frame that shows it."""
    deadline = asyncio.get_running_loop().time() + timeout
    await pilot.pause()
    while not app.ready or any(not w.is_finished for w in app.workers):
        if app.return_code is not None:  # the app gave up (a file that does not load)
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the model run did not finish")
        await app.workers.wait_for_complete()
        await pilot.pause(0.01)
    await pilot.pause()


async def export_svg(app: NflabApp, path: str, size: tuple[int, int], keys: list[str]) -> None:
    """Run ``app`` headless at ``size``, press ``keys`` once the run is on screen, save an SVG."""
    async with app.run_test(size=size) as pilot:
        await until_ready(app, pilot)
        if app.return_code is not None:
            return
        for key in keys:
            await pilot.press(key)
            await until_ready(app, pilot)
        Path(path).write_text(app.export_screenshot(title=f"nflab {app.plan.title if app.plan else app.ref}"))


def svg_unwritable(path: str) -> str | None:
    """Why ``path`` (``--svg``) cannot be written, found before the run rather than after it:
    its folder is missing or read-only, or it is a folder. None: it can be written."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        return "Is a directory"
    if not folder.is_dir():
        return "No such file or directory"
    if not os.access(target if target.exists() else folder, os.W_OK):
        return "Permission denied"
    return None


def unknown_key(keys: list[str]) -> str | None:
    """The first of ``keys`` (``--press``) that names no key: not a single character, not a key
    the app binds (``question_mark``, ``pagedown``) and not one of Textual's key names."""
    from textual.keys import Keys

    bound = {k for b in NflabApp.BINDINGS if isinstance(b, Binding) for k in b.key.split(",")}
    known = bound | {k.value for k in Keys} | {"enter", "space"}
    return next((k for k in keys if len(k) != 1 and k not in known), None)


def main(
    argv_scenario: str | None,
    kernel: str | None,
    fix: str | None,
    *,
    quiz: bool = False,
    svg: str | None = None,
    size: tuple[int, int] = (120, 40),
    keys: list[str] | None = None,
    root: str | None = None,
) -> int:
    """``nflab`` (no args: the seed incident) and ``nflab tui FILE``. ``kernel`` None keeps the
    file's kernel; ``fix`` overrides the file's fix ("" or None keeps it). With ``svg`` the screen
    is written to that file (after ``keys``) instead of opening the terminal UI. Returns the exit
    status: 0, or 2 with a one-line message on stderr when the file cannot be opened."""
    import sys

    from tui.confine import course_root

    try:
        app = make_app(
            argv_scenario, kernel, fix or None, quiz=quiz, root=course_root(root) if root else None
        )
    except SourceError as e:
        print(f"nflab tui: {e}", file=sys.stderr)
        return 2
    if svg is not None:
        bad = unknown_key(keys or [])
        if bad is not None:
            print(
                f"nflab tui: --press: {bad!r} is not a key (e.g. right, left, down, f, question_mark)",
                file=sys.stderr,
            )
            return 2
        unwritable = svg_unwritable(svg)
        if unwritable is not None:
            print(f"nflab tui: {svg}: {unwritable}", file=sys.stderr)
            return 2
        try:
            asyncio.run(export_svg(app, svg, size, keys or []))
        except OSError as e:
            print(f"nflab tui: {svg}: {e.strerror}", file=sys.stderr)
            return 2
        if app.return_code:
            return app.return_code  # Textual has printed the one-line reason
        print(f"wrote {svg}")
        return 0
    app.run()
    return app.return_code or 0
