"""The TUI's two benchmark numbers, measured with Textual's pilot (headless)."""

from __future__ import annotations

import asyncio
import time

from tui.app import make_app

SIZE = (120, 40)
STEPS = 50


async def _first_frame() -> float:
    t0 = time.perf_counter()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        return time.perf_counter() - t0


async def _steps() -> float:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t0 = time.process_time()
        for k in range(STEPS):
            await pilot.press("right" if k % 2 == 0 else "left")
        await pilot.pause()
        return (time.process_time() - t0) / STEPS


def tui_first_frame_s() -> float:
    """Wall seconds from make_app() (which runs the seed incident) to the first painted frame."""
    return asyncio.run(_first_frame())


def tui_step_ms() -> float:
    """Mean milliseconds of CPU per Next/Previous step key at 120x40: the key handled and the
    whole screen re-rendered, through the pilot. CPU time, because the pilot's wall time also
    counts its own idle waits between frames (about 45 ms a key here), which is not work."""
    return asyncio.run(_steps()) * 1000.0


if __name__ == "__main__":
    print({"tui_first_frame_s": round(tui_first_frame_s(), 3), "tui_step_ms": round(tui_step_ms(), 2)})
