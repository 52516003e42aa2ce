"""The app told of the server's stop signal, and the server's own handler still called."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

from backend.app.stop_signal import on_stop_signal


def test_a_stop_signal_tells_the_app_on_its_loop_and_still_reaches_the_servers_handler() -> None:
    seen: list[str] = []

    def server(signum: int, frame: FrameType | None) -> None:
        seen.append(f"server {signal.Signals(signum).name}")

    before = signal.signal(signal.SIGTERM, server)
    try:

        async def run() -> None:
            restore = on_stop_signal(asyncio.get_running_loop(), lambda: seen.append("app"))
            signal.raise_signal(signal.SIGTERM)
            await asyncio.sleep(0.05)
            restore()

        asyncio.run(run())
        assert seen == ["server SIGTERM", "app"]
        assert signal.getsignal(signal.SIGTERM) is server  # put back as it was
    finally:
        signal.signal(signal.SIGTERM, before)


def test_off_the_main_thread_nothing_is_set() -> None:
    async def run() -> object:
        loop = asyncio.get_running_loop()

        def elsewhere() -> object:
            on_stop_signal(loop, lambda: None)
            return signal.getsignal(signal.SIGTERM)

        return await loop.run_in_executor(None, elsewhere)

    before = signal.getsignal(signal.SIGTERM)
    assert asyncio.run(run()) is before
