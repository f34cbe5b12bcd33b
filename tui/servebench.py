"""``nflab serve`` under a class: N browser tabs at once, played by N websocket clients that
speak textual-serve's page protocol (keys out as ``["stdin", ...]``, frames in as bytes).

``python -m tui.servebench 30`` starts ``nflab serve`` on 127.0.0.1 with room for N sessions,
connects N tabs at once and measures, as a student's browser would see it:

- ``story_s``: per tab, from connecting to the frame that shows the INVALID late ACK (all N
  start together, so the last one waits for the others' model runs);
- ``key_ms``: per key, from sending it to the first frame after it, while every tab presses
  one key every ``PACE`` seconds (students reading and stepping);
- ``pss_mb``: per session, the proportional set size of its ``nflab tui`` process(es) on the
  server (``/proc/PID/smaps_rollup``: shared pages counted once across sessions).

The figures chose ``tui.serve.MAX_SESSIONS``; they come from here, not from tests.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from tui.bench import plain

PACE = 2.0  # seconds between one tab's keys
KEYS = ["\x1b[C", "\x1b[C", "\x1b[D", "\x1b[B", "\x1b[A", "i", "c", "c"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tui_pids(root: int) -> list[int]:
    """The ``nflab tui`` processes below ``root``."""
    kids: dict[int, list[int]] = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(e))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            todo.append(k)
            try:
                with open(f"/proc/{k}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"sim.cli" in argv and b"tui" in argv:
                out.append(k)
    return out


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Tab:
    def __init__(self, ws: Any, opened: float) -> None:
        self.ws, self.opened = ws, opened
        self.frames: list[tuple[float, str]] = []
        self.story: float | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        import aiohttp

        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                now = time.perf_counter()
                text = plain(msg.data)
                self.frames.append((now, text))
                if self.story is None and "INVALID" in text:
                    self.story = now - self.opened

    async def key(self, data: str, timeout: float = 30.0) -> float:
        """Send one key; seconds until the first frame after it."""
        seen = len(self.frames)
        sent = time.perf_counter()
        await self.ws.send_json(["stdin", data])
        while len(self.frames) == seen:
            if time.perf_counter() - sent > timeout:
                raise TimeoutError("no frame after a key")
            await asyncio.sleep(0.002)
        return self.frames[seen][0] - sent


async def run(n: int, rounds: int = 8) -> dict[str, Any]:
    import aiohttp

    port = _free_port()
    argv = [sys.executable, "-m", "sim.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--max-sessions", str(n)]
    server = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http:
            url = f"ws://127.0.0.1:{port}/ws?width=120&height=40"
            t0 = time.perf_counter()
            sockets = await asyncio.gather(*(http.ws_connect(url, max_msg_size=0) for _ in range(n)))
            tabs = [Tab(ws, t0) for ws in sockets]
            while any(t.story is None for t in tabs):
                if time.perf_counter() - t0 > 600:
                    raise TimeoutError("not every tab reached the story")
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            pids = tui_pids(server.pid)
            pss = [pss_mb(p) for p in pids]
            rng = random.Random(0)

            async def student(tab: Tab) -> list[float]:
                await asyncio.sleep(rng.uniform(0, PACE))
                out = []
                for k in range(rounds):
                    out.append(await tab.key(KEYS[k % len(KEYS)]))
                    await asyncio.sleep(PACE)
                return out

            keys = sorted(x for xs in await asyncio.gather(*(student(t) for t in tabs)) for x in xs)
            for t in tabs:
                t.reader.cancel()
                await t.ws.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    stories = sorted(t.story or 0.0 for t in tabs)
    return {
        "sessions": n,
        "processes": len(pids),
        "pss_mb_per_session": round(sum(pss) / n, 1),
        "pss_mb_total": round(sum(pss), 1),
        "story_s_median": round(statistics.median(stories), 2),
        "story_s_max": round(stories[-1], 2),
        "key_ms_median": round(statistics.median(keys) * 1000, 1),
        "key_ms_p90": round(keys[int(len(keys) * 0.9)] * 1000, 1),
        "key_ms_max": round(keys[-1] * 1000, 1),
        "load_1min_after": os.getloadavg()[0],
    }


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["30"]:
        print(asyncio.run(run(int(arg))), flush=True)
