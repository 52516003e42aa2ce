"""An asyncio face for the confluent-kafka producer: await a message until Kafka acknowledged it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge in time: the caller must not claim the request was accepted."""


class AsyncProducer:
    """One producer per process; a background thread serves its delivery reports."""

    def __init__(self, config: dict[str, Any], timeout_s: float) -> None:
        self._producer = Producer(config)
        self._timeout_s = timeout_s
        self._running = True
        # acknowledgements settled by a poll, handed to their event loops together after it
        self._settled: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._settled_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve_reports, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _serve_reports(self) -> None:
        while self._running:
            self._producer.poll(0.05)
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake each waiting event loop once for all the requests one poll settled, not once per message."""
        with self._settled_lock:
            settled, self._settled = self._settled, []
        by_loop: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = defaultdict(list)
        for loop, settle in settled:
            by_loop[loop].append(settle)
        for loop, settles in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a loop that has closed: nobody waits any more
                loop.call_soon_threadsafe(_run_all, settles)

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)
        self._running = False
        self._thread.join(timeout=2)
        self._hand_over()

    def reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether a broker answers a metadata request now (blocking; call from a thread)."""
        try:
            brokers = self._producer.list_topics(timeout=timeout_s).brokers
        except KafkaException:
            return False
        return bool(brokers)

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Publish one message; return once every in-sync replica has it, else raise KafkaUnavailable."""
        await self.send_many(topic, [(key, value)])

    async def send_many(self, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Publish messages in order; return once all are acknowledged, else raise KafkaUnavailable."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        pending = len(messages)
        failures: list[str] = []
        lock = threading.Lock()

        def settle() -> None:
            if not done.done():
                if failures:
                    done.set_exception(KafkaUnavailable(failures[0]))
                else:
                    done.set_result(None)

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal pending
            with lock:
                pending -= 1
                if err is not None:
                    failures.append(str(err))
                finished = pending == 0 or (err is not None and len(failures) == 1)
            if finished:
                with self._settled_lock:
                    self._settled.append((loop, settle))

        produce = self._producer.produce
        for key, value in messages:
            while True:
                try:
                    produce(topic, value, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    if len(messages) == 1:
                        raise KafkaUnavailable("the producer queue is full") from None
                    await asyncio.sleep(0.01)  # a bulk send waits for the queue to drain
                except KafkaException as exc:
                    raise KafkaUnavailable(str(exc)) from None
        try:
            async with asyncio.timeout(self._timeout_s + 1 + len(messages) / 50_000):
                await done
        except TimeoutError:
            raise KafkaUnavailable("no acknowledgement from Kafka in time") from None


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()
