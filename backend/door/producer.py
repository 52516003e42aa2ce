"""An asyncio face for the confluent-kafka producer: await a message until Kafka acknowledged it.

One producer per process. A background thread polls the delivery reports and hands every report
of one poll to each waiting event loop in a single `call_soon_threadsafe` (not one wake-up per
message). librdkafka reports every message within `message.timeout.ms` (the produce timeout), with
an error if it could not be delivered; an expiry sweep once a second is the safety net behind that
promise, so no waiter ever hangs and no per-request timer is needed on the hot path.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

# A settled request: the loop that waits, its future, and the error Kafka reported (None: acknowledged).
# where Kafka put a message: (partition, offset), the request's ticket
Place = tuple[int, int]
# a wait settled by librdkafka: its loop, its future, the error (None: acknowledged) and the place
Settled = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", str | None, Place | None]


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge in time: the caller must not claim the request was accepted.

    `maybe_written`: the message reached the producer, so Kafka may have it even without an
    acknowledgement (a timeout); False when it was refused before that and is certainly not written.
    """

    def __init__(self, reason: str, maybe_written: bool = True) -> None:
        super().__init__(reason)
        self.maybe_written = maybe_written


class AsyncProducer:
    """Publishes messages and lets coroutines wait for Kafka's acknowledgement."""

    def __init__(self, config: dict[str, Any], timeout_s: float) -> None:
        self._config = {**config, "error_cb": self._on_error}
        self._producer = Producer(self._config)
        self._fatal: str | None = None  # a fatal error of the current producer, until it is replaced
        self.replacements = 0
        self._timeout_s = timeout_s
        self._running = True
        self._settled: list[Settled] = []
        self._settled_lock = threading.Lock()
        # futures in the order they were sent, with the moment they give up (deadlines only grow)
        self._deadlines: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        self._thread = threading.Thread(target=self._serve_reports, name="kafka-delivery", daemon=True)
        self._thread.start()
        self._sweeper: asyncio.Task[None] | None = None

    def _serve_reports(self) -> None:
        while self._running:
            self._producer.poll(0.05)
            self._hand_over()
            if self._fatal is not None:
                self._replace()

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's error callback (on the delivery thread): a fatal error ends this producer for good."""
        if err.fatal():
            log.error("fatal producer error, replacing the producer: %s", err)
            self._fatal = str(err)
        else:
            log.debug("producer: %s", err)

    def _replace(self) -> None:
        """A new producer for a fatally failed one (an idempotent producer's sequence can break for good).

        The old producer fails whatever it still holds (those waiters get 503, maybe written); the
        requests after the swap go to the new one."""
        old = self._producer
        try:
            self._producer = Producer(self._config)
        except KafkaException as exc:
            log.error("could not create a producer, retrying: %s", exc)
            time.sleep(1)
            return
        self._fatal = None
        self.replacements += 1
        old.purge()
        old.flush(0)
        old.poll(0)
        self._hand_over()
        log.warning("producer replaced (%d so far)", self.replacements)

    @property
    def fatal_error(self) -> str | None:
        """The fatal error the current producer is in, if any (readiness reports it)."""
        return self._fatal

    def _hand_over(self) -> None:
        """Wake each waiting event loop once for all the requests one poll settled."""
        with self._settled_lock:
            settled, self._settled = self._settled, []
        by_loop: dict[asyncio.AbstractEventLoop, list[Settled]] = defaultdict(list)
        for item in settled:
            by_loop[item[0]].append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a loop that has closed: nobody waits any more
                loop.call_soon_threadsafe(_settle_all, items)

    def _report(
        self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[Any], error: str | None, place: Place | None = None
    ) -> None:
        with self._settled_lock:
            self._settled.append((loop, done, error, place))

    async def _sweep(self) -> None:
        """Fail the waits that outlived the produce timeout by a second (only if a report never came)."""
        while self._running:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            while self._deadlines and self._deadlines[0][0] <= now:
                _, done = self._deadlines.popleft()
                if not done.done():
                    done.set_exception(KafkaUnavailable("no acknowledgement from Kafka in time"))

    def _wait_for(self, done: asyncio.Future[Any], extra_s: float = 0.0) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        self._deadlines.append((time.monotonic() + self._timeout_s + 1.0 + extra_s, done))

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)
        self._running = False
        self._thread.join(timeout=2)
        self._hand_over()
        if self._sweeper is not None:
            self._sweeper.cancel()

    def reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether the producer works and a broker answers a metadata request now (blocking; call from a thread)."""
        if self._fatal is not None:
            return False
        try:
            brokers = self._producer.list_topics(timeout=timeout_s).brokers
        except KafkaException:
            return False
        return bool(brokers)

    async def send(self, topic: str, key: bytes, value: bytes, partition: int = -1) -> Place:
        """Publish one message (to `partition`, or by key when -1); once every in-sync replica has it, its place
        in the log, else raise KafkaUnavailable — within the produce timeout and the sweep's second, whatever
        happens."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Place] = loop.create_future()
        report = self._report

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                report(loop, done, None, (msg.partition() or 0, msg.offset() or 0))  # both set once acknowledged
            else:
                report(loop, done, str(err))

        try:
            try:
                self._producer.produce(topic, value, key, partition, on_delivery=on_delivery)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError._UNKNOWN_PARTITION:
                    raise
                return await self._send_after_refresh(topic, key, value, partition, done, on_delivery)
        except BufferError:
            raise KafkaUnavailable("the producer queue is full", maybe_written=False) from None
        except KafkaException as exc:
            raise KafkaUnavailable(str(exc), maybe_written=False) from None
        self._wait_for(done)
        return await done

    async def _send_after_refresh(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        partition: int,
        done: asyncio.Future[Place],
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> Place:
        """A partition added since this process last read the topic's metadata: read it and produce again,
        all within the request's one budget (the produce timeout, and the sweep's second for the answer) —
        a broker that does not answer the metadata request must not stretch I5's bound. Rare: its own timer."""
        started = time.monotonic()
        await asyncio.to_thread(self.partitions, topic, max(self._timeout_s - 0.5, 0.1))
        if time.monotonic() - started >= self._timeout_s:
            raise KafkaUnavailable("no metadata from Kafka in time", maybe_written=False)
        self._producer.produce(topic, value, key, partition, on_delivery=on_delivery)
        try:
            return await asyncio.wait_for(done, started + self._timeout_s + 1.0 - time.monotonic())
        except TimeoutError:
            raise KafkaUnavailable("no acknowledgement from Kafka in time") from None

    def partitions(self, topic: str, timeout_s: float = 5.0) -> int:
        """How many partitions `topic` has now (read from the cluster; the producer's own metadata is
        refreshed with it, so it can produce to a partition added since)."""
        try:
            topics = self._producer.list_topics(topic, timeout=timeout_s).topics
        except KafkaException as exc:
            raise KafkaUnavailable(str(exc), maybe_written=False) from None
        meta = topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise KafkaUnavailable(f"topic {topic} is unknown to the cluster", maybe_written=False)
        return len(meta.partitions)

    async def send_many(
        self, topic: str, messages: Iterable[tuple[bytes, bytes]], count: int, partition: int = -1
    ) -> None:
        """Publish `count` messages in order; return once all are acknowledged, else raise KafkaUnavailable.

        The messages are built and handed to the producer on a thread (a bulk of 100,000 takes about a
        second of CPU), so the event loop keeps serving other requests meanwhile.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        pending = count
        failed = False
        lock = threading.Lock()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal pending, failed
            with lock:
                pending -= 1
                first_failure = err is not None and not failed
                failed = failed or err is not None
                finished = pending == 0 and not failed
            if first_failure or finished:
                self._report(loop, done, None if err is None else str(err))

        def publish_all() -> None:
            produce = self._producer.produce
            for key, value in messages:
                while True:
                    try:
                        produce(topic, value, key, partition, on_delivery=on_delivery)
                        break
                    except BufferError:
                        time.sleep(0.01)  # the producer's queue is full: wait for it to drain

        try:
            await asyncio.to_thread(publish_all)
        except KafkaException as exc:
            raise KafkaUnavailable(str(exc)) from None
        self._wait_for(done, extra_s=count / 50_000)
        await done


def _settle_all(items: list[Settled]) -> None:
    for _loop, done, error, place in items:
        if not done.done():
            if error is None:
                done.set_result(place)
            else:
                done.set_exception(KafkaUnavailable(error))
