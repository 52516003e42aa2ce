"""The server's stop signal, seen by the app the moment it comes rather than after the server has drained.

Servers stop gracefully: on SIGTERM (or SIGINT) they stop accepting, wait for the requests in progress, and only
then run the app's shutdown. A look-up held until its decision (`waitSeconds`) is a request in progress for up
to 30 s, so a restart or a deploy would wait that long for it. Told at once, the app answers its held look-ups
`PENDING` (the participant asks again, of a process that is up) and holds no new ones, and the server's
drain takes what the other requests take.

Both servers that run the app receive the signal in their own way — granian's workers through the event loop's
signal handlers, uvicorn through Python's — and both leave a Python-level handler in place (a no-op for the
loop's, since the signal reaches the loop through its wakeup file descriptor anyway). This module sets its own
handler in its place, which tells the app on its event loop, then calls the one it replaced: the server still
stops as it would have.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signal(loop: asyncio.AbstractEventLoop, stopping: Callable[[], None]) -> Callable[[], None]:
    """Call `stopping` on `loop` when the process is asked to stop (SIGTERM, SIGINT), then what handled the signal
    before. Returns what puts the previous handlers back. Only the main thread may set handlers: elsewhere
    (an app run in a test client's thread) nothing is set."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stopping)
        before = previous.get(signum)
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:  # nobody handled it: what the signal does by default, once told
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for signum in STOP_SIGNALS:
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)

    def restore() -> None:
        for signum, before in previous.items():
            if signal.getsignal(signum) is handler and before is not None:
                signal.signal(signum, before)

    return restore
