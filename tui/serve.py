"""``nflab serve``: the walkthrough in a web browser, for classrooms where students cannot install
Python. textual-serve starts one ``nflab tui`` per browser tab and relays its screen.

:class:`ClassServer` is textual-serve's ``Server`` for a class: at most ``max_sessions`` tabs at
once (the next one gets a page, or a screen, saying the class is full, and no process starts),
tabs idle for ``idle_minutes`` closed, and the page's scripts loaded from the address the
student's browser used (or ``--public-url``), never from the listening address (``0.0.0.0``
would leave the browser on the splash screen). Every session runs ``nflab tui --root``
confined: see :mod:`tui.confine`.
"""

from __future__ import annotations

import asyncio
import html
import re
import shlex
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.session import DEFAULT_SCENARIO, SourceError, plan

if TYPE_CHECKING:
    from aiohttp import web
    from textual_serve.app_service import AppService

# Measured on the two-core lab machine with 30 scripted sessions (see the README's classroom
# section): each session is one Python process of ~70 MB; past ~20 busy sessions a key waits
# for the CPU long enough to feel.
MAX_SESSIONS = 20
IDLE_MINUTES = 30.0
WILDCARDS = ("0.0.0.0", "::", "")

# The page as textual-serve renders it, for a classroom: keys reach the terminal without a click
# (the terminal's input takes the focus as soon as it exists), and no font is fetched from the
# internet (a lab may have none; the terminal does not use it).
AUTOFOCUS = """<script>
  const nflabFocus = setInterval(() => {
    const input = document.querySelector("#terminal textarea");
    if (input) { input.focus(); if (document.activeElement === input) clearInterval(nflabFocus); }
  }, 50);
</script>
"""
WEB_FONT = re.compile(r'<link\s+rel="stylesheet"\s+href="https://fonts\.googleapis\.com[^>]*>\s*')

FULL = (
    "The class is full: {n} sessions are running on this server. "
    "Try again in a few minutes, or ask your instructor."
)
IDLE = "This session was closed after {m:g} minutes without a key. Reload the page to start again."


def command(scenario: str | None, root: Path | None) -> str:
    """The command textual-serve runs for each browser tab."""
    argv = [sys.executable, "-m", "sim.cli", "tui", scenario or DEFAULT_SCENARIO]
    if root is not None:
        argv += ["--root", str(root)]
    return shlex.join(argv)


def machine_address() -> str:
    """The name students can reach this machine by: its first non-loopback IPv4 address, from
    the resolver (no packet is sent), else its host name."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET)
    except OSError:
        return name
    addrs = [str(i[4][0]) for i in infos if not str(i[4][0]).startswith("127.")]
    return addrs[0] if addrs else name


def student_url(host: str, port: int, public_url: str | None) -> str:
    if public_url:
        return public_url.rstrip("/") + "/"
    where = machine_address() if host in WILDCARDS else host
    if ":" in where:
        where = f"[{where}]"
    return f"http://{where}:{port}/"


def _text_screen(message: str) -> bytes:
    """A terminal frame with ``message`` (what the browser's terminal shows before it closes)."""
    return b"\x1b[2J\x1b[H\r\n  " + message.encode() + b"\r\n"


def make_server(
    cmd: str,
    host: str,
    port: int,
    public_url: str | None,
    max_sessions: int,
    idle_minutes: float,
) -> Any:
    """A :class:`ClassServer` (built here: textual-serve is an optional dependency)."""
    from aiohttp import WSMsgType, web
    from textual_serve.server import Server

    class ClassServer(Server):  # type: ignore[misc]
        """textual-serve's Server with a session cap, an idle timeout and per-request URLs."""

        def __init__(self) -> None:
            super().__init__(cmd, host=host, port=port, title="nflab", public_url=public_url or "")
            self.fixed_url = public_url.rstrip("/") if public_url else None
            self.max_sessions, self.idle_s = max_sessions, idle_minutes * 60
            self.sessions = 0  # websockets with a process behind them

        def full(self) -> bool:
            return self.sessions >= self.max_sessions

        async def on_startup(self, app: web.Application) -> None:
            pass  # main() has printed the one line that matters

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            if self.full():
                text = html.escape(FULL.format(n=self.max_sessions))
                page = f"<!doctype html><title>nflab: the class is full</title><p>{text}</p>"
                return web.Response(text=page, content_type="text/html", status=503)
            # the scripts and the websocket on the address the browser used to reach us; the
            # base class reads public_url without awaiting in between, so no other request sees it
            self.public_url = self.fixed_url or f"{request.scheme}://{request.host}"
            response: web.Response = await super().handle_index(request)
            assert response.text is not None
            response.text = WEB_FONT.sub("", response.text).replace("</body>", AUTOFOCUS + "</body>")
            return response

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            if self.full():  # checked and counted with no await in between: the cap holds
                ws = web.WebSocketResponse()
                await ws.prepare(request)
                await ws.send_bytes(_text_screen(FULL.format(n=self.max_sessions)))
                await ws.close()
                return ws
            self.sessions += 1
            try:
                response: web.WebSocketResponse = await super().handle_websocket(request)
                return response
            finally:
                self.sessions -= 1

        async def _process_messages(self, websocket: web.WebSocketResponse, app_service: AppService) -> None:
            """The base class's loop, with the time of the last key kept; a tab idle for
            ``idle_s`` is told so and closed (its process stops when this returns)."""
            loop = asyncio.get_running_loop()
            last = loop.time()

            async def watch() -> None:
                while (left := last + self.idle_s - loop.time()) > 0:
                    await asyncio.sleep(left)
                await websocket.send_bytes(_text_screen(IDLE.format(m=self.idle_s / 60)))
                await websocket.close()

            watcher = asyncio.create_task(watch())
            try:
                async for message in websocket:
                    if message.type != WSMsgType.TEXT:
                        continue
                    envelope = message.json()
                    if not isinstance(envelope, list) or not envelope:
                        continue
                    kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
                    if kind == "stdin" and isinstance(data, str):
                        last = loop.time()
                        await app_service.send_bytes(data.encode("utf-8"))
                    elif kind == "resize" and isinstance(data, dict):
                        await app_service.set_terminal_size(int(data["width"]), int(data["height"]))
                    elif kind == "ping":
                        await websocket.send_json(["pong", data])
                    elif kind == "blur":
                        await app_service.blur()
                    elif kind == "focus":
                        await app_service.focus()
            finally:
                watcher.cancel()

    return ClassServer()


def main(
    scenario: str | None,
    host: str,
    port: int,
    *,
    root: str | None = None,
    public_url: str | None = None,
    max_sessions: int | None = None,
    idle_minutes: float | None = None,
) -> int:
    """Serve until interrupted; 2 with one line on stderr for a scenario that cannot be opened
    or a bad option."""
    from tui.confine import course_root

    max_sessions = MAX_SESSIONS if max_sessions is None else max_sessions
    idle_minutes = IDLE_MINUTES if idle_minutes is None else idle_minutes
    try:
        if max_sessions < 1:
            raise SourceError(f"--max-sessions: expected 1 or more, got {max_sessions}")
        if not idle_minutes > 0:
            raise SourceError(f"--idle-minutes: expected more than 0, got {idle_minutes:g}")
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise SourceError(f"--public-url: expected http://HOST:PORT or https://..., got {public_url!r}")
        root_dir = course_root(root) if root is not None else None
        plan(scenario or DEFAULT_SCENARIO)
    except SourceError as e:
        print(f"nflab serve: {e}", file=sys.stderr)
        return 2
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        print("nflab serve: needs textual-serve: pip install 'nflab[serve]'", file=sys.stderr)
        return 2
    url = student_url(host, port, public_url)
    opens = f"built-in scenarios and files under {root_dir}" if root_dir else "built-in scenarios only"
    print(
        f"nflab serve: students open {url} ; at most {max_sessions} sessions, "
        f"closed after {idle_minutes:g} min without a key; o opens {opens}; Ctrl+C stops",
        flush=True,
    )
    make_server(command(scenario, root_dir), host, port, public_url, max_sessions, idle_minutes).serve()
    return 0
