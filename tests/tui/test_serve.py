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


@needs_chromium
@pytest.mark.asyncio
async def test_serve_in_headless_chromium_steps_one_packet() -> None:
    assert CHROMIUM is not None
    port = free_port()
    serve = [sys.executable, "-m", "sim.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
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
                await cdp.send("Runtime.evaluate", expression="document.querySelector('textarea').focus()")
                for kind in ("keyDown", "keyUp"):
                    await cdp.send(
                        "Input.dispatchKeyEvent",
                        type=kind,
                        key="ArrowDown",
                        code="ArrowDown",
                        windowsVirtualKeyCode=40,
                        nativeVirtualKeyCode=40,
                    )
                # one packet on: the remote's next segment, packet 562, from its first step
                await cdp.until(r"packet 562 .*step 1/", timeout=30, start=seen)
                shot = os.environ.get("NFLAB_SERVE_SCREENSHOT")  # to look at what the browser shows
                if shot:
                    await asyncio.sleep(1)
                    png = await cdp.send("Page.captureScreenshot", format="png")
                    with open(shot, "wb") as f:
                        f.write(base64.b64decode(png["data"]))
