"""``nflab serve`` in a real browser: headless Chromium (Debian's ``chromium``) loads the page from
localhost, the walkthrough starts, one key steps one packet, and the browser receives the frame.

Chromium is driven over the DevTools protocol (aiohttp, which textual-serve already brings). The
test reads what the browser received on the app's websocket (Network.webSocketFrameReceived), so
it checks the frames a student's browser gets, not the app from inside. Everything stays on
127.0.0.1: Chromium resolves no other host.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tui.bench import plain

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # localhost only
    "--window-size=1280,900",
    "--remote-debugging-port=0",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(argv: list[str], **kw: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own process group, ended with its children however the test ends."""
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    try:
        yield p
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


async def wait_port(port: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


class DevTools:
    """A minimal DevTools client: commands on one page session, events gathered as they come."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.n, self.session = ws, 0, None
        self.frames: list[str] = []  # what the page received on websockets, as plain text
        self.replies: dict[int, Any] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data:
                self.replies[data["id"]] = data
            elif data.get("method") == "Network.webSocketFrameReceived":
                r = data["params"]["response"]
                raw = base64.b64decode(r["payloadData"]) if r["opcode"] == 2 else r["payloadData"].encode()
                self.frames.append(plain(raw))

    async def send(self, method: str, **params: Any) -> Any:
        self.n += 1
        msg: dict[str, Any] = {"id": self.n, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            msg["sessionId"] = self.session
        await self.ws.send_str(json.dumps(msg))
        for _ in range(300):
            if self.n in self.replies:
                reply = self.replies.pop(self.n)
                assert "error" not in reply, reply
                return reply.get("result", {})
            await asyncio.sleep(0.05)
        raise TimeoutError(method)

    async def until(self, pattern: str, timeout: float, start: int = 0) -> int:
        """Wait until the frames from ``start`` on, joined, match ``pattern``; the count of frames then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if re.search(pattern, "".join(self.frames[start:])):
                return len(self.frames)
            await asyncio.sleep(0.1)
        tail = "".join(self.frames[start:])[-600:]
        raise AssertionError(f"the browser never received {pattern!r}; last text: {tail!r}")


@contextlib.asynccontextmanager
async def devtools(chromium: subprocess.Popen[bytes]) -> AsyncIterator[DevTools]:
    import aiohttp

    assert chromium.stderr is not None
    line = b""
    loop = asyncio.get_running_loop()
    while b"DevTools listening on" not in line:
        line = await loop.run_in_executor(None, chromium.stderr.readline)
        assert line, "chromium exited before it listened for DevTools"
    url = line.decode().split("listening on ")[1].strip()
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        tools = DevTools(ws)
        try:
            yield tools
        finally:
            tools.reader.cancel()


def test_serve_refuses_a_bad_file_in_one_line(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from tui.serve import main

    assert main(str(tmp_path / "nope.toml"), "127.0.0.1", free_port()) == 2
    err = capsys.readouterr().err
    assert err.startswith("nflab serve: ") and "nope.toml" in err and err.count("\n") == 1
    for bad in ({"root": str(tmp_path / "nope")}, {"max_sessions": 0}, {"public_url": "lab:8000"}):
        assert main(None, "127.0.0.1", free_port(), **bad) == 2  # type: ignore[arg-type]
        err = capsys.readouterr().err
        assert err.startswith("nflab serve: --") and err.count("\n") == 1


@needs_chromium
@pytest.mark.asyncio
async def test_serve_on_all_interfaces_in_headless_chromium_steps_one_packet_without_a_click() -> None:
    """The classroom command (``--host 0.0.0.0``): the page must load its scripts from the address
    the browser used, not from 0.0.0.0 (issue 20: the browser stayed on the splash screen), and
    keys must reach the app without a click on the page."""
    assert CHROMIUM is not None
    port = free_port()
    serve = [sys.executable, "-m", "sim.cli", "serve", "--host", "0.0.0.0", "--port", str(port)]
    with (
        tempfile.TemporaryDirectory() as profile,
        process(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ):
        await wait_port(port, 30)
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        with process(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as chromium:
            async with devtools(chromium) as cdp:
                target = await cdp.send("Target.createTarget", url="about:blank")
                attached = await cdp.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
                cdp.session = attached["sessionId"]
                await cdp.send("Network.enable")
                await cdp.send("Page.enable")
                await cdp.send("Page.navigate", url=f"http://127.0.0.1:{port}/")
                # the walkthrough opens on the late ACK: packet 561, step 4, INVALID
                seen = await cdp.until(r"packet 561 .*step 4/11", timeout=60)
                await cdp.until(r"INVALID", timeout=10)
                page = await cdp.send("Runtime.evaluate", expression="document.documentElement.outerHTML")
                assert "0.0.0.0" not in page["result"]["value"]
                for kind in ("keyDown", "keyUp"):
                    await cdp.send(
                        "Input.dispatchKeyEvent",
                        type=kind,
                        key="ArrowDown",
                        code="ArrowDown",
                        windowsVirtualKeyCode=40,
                        nativeVirtualKeyCode=40,
                    )
                # one packet on, in the order the host saw them: its own RST to the late ACK,
                # packet 1232, from its first step
                await cdp.until(r"packet 1232 .*step 1/", timeout=30, start=seen)
                shot = os.environ.get("NFLAB_SERVE_SCREENSHOT")  # to look at what the browser shows
                if shot:
                    await asyncio.sleep(1)
                    png = await cdp.send("Page.captureScreenshot", format="png")
                    with open(shot, "wb") as f:
                        f.write(base64.b64decode(png["data"]))


# ---------------------------------------------------------------- the class server (issue 22)


def tui_processes(root_pid: int) -> set[int]:
    """The ``nflab tui`` processes under ``root_pid`` (textual-serve starts one per session)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root_pid]
    while todo:
        for kid in children.get(todo.pop(), []):
            todo.append(kid)
            try:
                with open(f"/proc/{kid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"sim.cli" in argv and b"tui" in argv:
                found.add(kid)
    return found


@contextlib.asynccontextmanager
async def served(tmp: str, *extra: str) -> AsyncIterator[tuple[int, subprocess.Popen[bytes]]]:
    """``nflab serve`` on a free port, its working directory and HOME in ``tmp``."""
    port = free_port()
    argv = [sys.executable, "-m", "sim.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *extra]
    env = dict(os.environ, HOME=tmp, XDG_DOWNLOAD_DIR=tmp)
    with process(argv, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as p:
        await wait_port(port, 30)
        yield port, p


class Tab:
    """One browser tab's websocket, as textual-serve's page speaks it: keys out, frames in."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.text, self.notes = ws, "", []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        import aiohttp

        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.text += plain(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self.notes.append(json.loads(msg.data))

    async def until(self, pattern: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not re.search(pattern, self.text):
            if loop.time() > deadline:
                raise AssertionError(f"never saw {pattern!r}; last: {self.text[-300:]!r}")
            await asyncio.sleep(0.1)

    async def key(self, data: str) -> None:
        await self.ws.send_json(["stdin", data])


@pytest.mark.asyncio
async def test_the_session_cap_holds_under_twice_as_many_concurrent_connects(tmp_path: Any) -> None:
    import aiohttp

    n = 2
    async with (
        served(str(tmp_path), "--max-sessions", str(n)) as (port, server),
        aiohttp.ClientSession() as http,
    ):
        assert server.stdout is not None
        said = server.stdout.readline().decode()  # the one line: where students go, the limits
        assert said.startswith(f"nflab serve: students open http://127.0.0.1:{port}/ ;")
        assert f"at most {n} sessions" in said and "built-in scenarios only" in said
        url = f"ws://127.0.0.1:{port}/ws?width=80&height=24"
        sockets = await asyncio.gather(*(http.ws_connect(url) for _ in range(2 * n)))
        tabs = [Tab(ws) for ws in sockets]
        most = 0
        for _ in range(100):  # ~10 s: the sessions start, the others are turned away
            most = max(most, len(tui_processes(server.pid)))
            await asyncio.sleep(0.1)
        full = [t for t in tabs if "The class is full" in t.text]
        running = [t for t in tabs if t not in full]
        assert len(full) == n and all(t.ws.closed for t in full)
        assert most == n
        for t in running:
            await t.until(r"packet \d+", timeout=60)
        async with http.get(f"http://127.0.0.1:{port}/") as page:  # the next tab: a page saying so
            assert page.status == 503 and "The class is full" in await page.text()
        await running[0].ws.close()
        status, text = 0, ""
        for _ in range(300):  # a place is free again once that session's process has ended
            async with http.get(f"http://127.0.0.1:{port}/") as page:
                status, text = page.status, await page.text()
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert status == 200 and f"ws://127.0.0.1:{port}/ws" in text
        assert len(tui_processes(server.pid)) < n
        for t in tabs:
            t.reader.cancel()


@pytest.mark.asyncio
async def test_no_served_key_writes_a_file_on_the_server_and_s_reaches_the_browser(tmp_path: Any) -> None:
    import aiohttp

    async with served(str(tmp_path)) as (port, _server), aiohttp.ClientSession() as http:
        before = sorted(p for p in tmp_path.rglob("*"))
        ws = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=120&height=40")
        tab = Tab(ws)
        await tab.until(r"INVALID", timeout=60)
        await tab.key("s")
        for _ in range(100):
            if any(n[0] == "deliver_file_start" for n in tab.notes):
                break
            await asyncio.sleep(0.1)
        key = next(n[1] for n in tab.notes if n[0] == "deliver_file_start")
        async with http.get(f"http://127.0.0.1:{port}/download/{key}") as got:
            assert got.status == 200 and "image/svg+xml" in got.headers["Content-Type"]
            assert "<svg" in await got.text()
        # o with a path outside, then every other key: nothing lands on the server's disk
        await tab.key("o")
        await tab.until("Open a scenario", timeout=30)
        await tab.key("/etc/passwd\r")
        await tab.until(r"outside\s+the\s+course\s+folder", timeout=30)
        for data in ["\x1b[C", "\x1b[D", "i", "c", " ", " ", "z", "1", "\r", "z", "?", "\x1b", "s"]:
            await tab.key(data)
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        assert sorted(p for p in tmp_path.rglob("*")) == before
        tab.reader.cancel()
        await ws.close()


def test_serve_says_where_students_go_and_the_limits_in_one_line() -> None:
    from tui.serve import student_url

    assert student_url("0.0.0.0", 8000, "http://lab.example.edu:8000") == "http://lab.example.edu:8000/"
    url = student_url("0.0.0.0", 8000, None)
    assert url.startswith("http://") and url.endswith(":8000/") and "0.0.0.0" not in url
    assert student_url("127.0.0.1", 9000, None) == "http://127.0.0.1:9000/"


@pytest.mark.asyncio
async def test_an_idle_tab_is_told_and_closed_and_its_process_ends(tmp_path: Any) -> None:
    import aiohttp

    async with (
        served(str(tmp_path), "--idle-minutes", "0.05") as (port, server),  # 3 s without a key
        aiohttp.ClientSession() as http,
    ):
        ws = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=80&height=24")
        tab = Tab(ws)
        await tab.until("closed after 0.05 minutes without a key", timeout=60)
        for _ in range(100):
            if ws.closed and not tui_processes(server.pid):
                break
            await asyncio.sleep(0.1)
        assert ws.closed and not tui_processes(server.pid)
        tab.reader.cancel()
