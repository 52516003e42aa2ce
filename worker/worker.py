"""ParticipationWorker: a consumer-group member that decides participation requests in log order.

One loop, one batch at a time: consume up to `batch_size` messages, then in **one** database
transaction lock the campaigns, skip requests already recorded (redeliveries), decide the rest,
insert the history rows, update the counters and store the next offsets; only after that commit
are the offsets committed to Kafka. Messages that can never be decided go to the dead-letter
topic (acknowledged by Kafka before the transaction commits). A database error rolls everything
back and the same batch is retried with backoff, so nothing is lost and nothing counted twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import time
from collections.abc import Sequence
from types import FrameType

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from fcfs import draw, heap
from fcfs.db import short_error, utcnow
from fcfs.dead_letters import Code, DeadLetter, DeadLetterError, publish_dead_letters
from fcfs.events import InvalidEvent, ParticipationEvent, unsigned
from fcfs.kafka import consumer_config, producer_config
from fcfs.ledger import BatchResult, Delivered
from fcfs.request_ids import RequestIdSigner
from fcfs.settings import Settings
from worker import metrics
from worker.heartbeat import Heartbeat, WorkerStats
from worker.store import Batch, draw_due, load_offsets, record_batch

log = logging.getLogger(__name__)
DRAW_CHECK_S = 0.5  # how often a worker looks for pre-queues due (fcfs/draw.py)


class ParticipationWorker:
    """Consumes the participation topic and records a decision for every request, exactly once."""

    def __init__(self, settings: Settings, engine: Engine, *, group: str | None = None, drain: bool = False) -> None:
        self.settings = settings
        self.engine = engine
        self.group = group or settings.kafka_consumer_group
        self.topic = settings.kafka_topic
        self.drain = drain
        self._signer = RequestIdSigner(settings.request_id_secret.get_secret_value())
        self.stats = WorkerStats()
        metrics.COUNTERS.track(self.stats)
        self._stopping = False
        self._consumer: Consumer | None = None
        self._dlq: Producer | None = None
        self._assigned: set[int] = set()
        self._recorded_up_to: dict[int, int] = {}  # partition -> next offset the database has decided
        self._heartbeat = Heartbeat(engine, self.group, self.topic)
        self._next_draw_check = 0.0  # monotonic: when to look for pre-queues due next
        self._stamped_up_to: dict[int, int] = {}  # partition -> the latest stamp (ms) of a request recorded from it

    # -- life cycle -------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT: finish the batch in hand, commit, leave the group, exit."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the batch in hand", signum)
        self.stop()

    def stop(self) -> None:
        self._stopping = True

    def run(self, drain_wait_s: float = 60.0) -> WorkerStats:
        """Consume until stopped (or, in drain mode, until every assigned partition is caught up)."""
        self._consumer = Consumer(consumer_config(self.settings, self.group))
        self._dlq = Producer(producer_config(self.settings, **{"linger.ms": 0}))
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info(
            "worker %s up: topic=%s group=%s drain=%s", self._heartbeat.worker_id, self.topic, self.group, self.drain
        )
        heap.settle()  # start-up is done: what exists now lives as long as the process
        started = time.monotonic()
        last_report = started
        try:
            while not self._stopping:
                messages = self._consumer.consume(self.settings.worker_batch_size, self.settings.worker_poll_timeout_s)
                if messages:
                    if self.stats.first_message_at is None:
                        self.stats.first_message_at = time.monotonic()
                    self._handle(messages)
                elif self.drain and self._caught_up() and not self._draw_due(at_once=True):
                    log.info("drained: every assigned partition is caught up")
                    break
                elif self.drain and not self._assigned and time.monotonic() - started > drain_wait_s:
                    raise TimeoutError("drain mode: no partition was assigned")
                self._draw_due()
                self._beat("RUNNING")
                if time.monotonic() - last_report >= 10:
                    last_report = time.monotonic()
                    self._report()
        finally:
            self._close()
            self._beat("STOPPED", force=True)
        self._report()
        return self.stats

    def _beat(self, state: str, force: bool = False) -> None:
        self._heartbeat.beat(self._assigned, self.stats, state, force)

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.commit(asynchronous=False)
            except Exception as exc:  # noqa: BLE001 - nothing to commit, or Kafka is gone; the DB has the offsets
                log.debug("final commit: %s", exc)
            self._consumer.close()
        if self._dlq is not None:
            self._dlq.flush(10)

    def _report(self) -> None:
        s = self.stats
        elapsed = max(time.monotonic() - s.started_at, 1e-9)
        log.info(
            "decided=%d redelivered=%d dead_lettered=%d batches=%d db_retries=%d rate=%.0f/s",
            s.decided,
            s.decisions.redelivered,
            s.dead_lettered,
            s.batches,
            s.db_retries,
            s.decided / elapsed,
        )

    # -- the pre-queues' timer ----------------------------------------------------------------------------

    def _draw_due(self, at_once: bool = False) -> bool:
        """Draw the pre-queues of campaigns on this worker's partitions that opened over PRE_QUEUE_GRACE_S ago with
        no request since, once the partition is read that far: to its end, or to a request stamped PRE_QUEUE_GRACE_S
        after the opening or later (a partition other campaigns keep busy); twice a second at most. Whether any was
        drawn."""
        now = time.monotonic()
        if not self._assigned or (now < self._next_draw_check and not at_once):
            return False
        self._next_draw_check = now + DRAW_CHECK_S
        drew = False
        try:
            with self.engine.connect() as conn:
                due = draw.due(conn, utcnow() - dt.timedelta(seconds=self.settings.pre_queue_grace_s))
            grace_ms = round(self.settings.pre_queue_grace_s * 1000)
            for d in due:
                if d.partition not in self._assigned:
                    continue
                read_past = self._stamped_up_to.get(d.partition, 0) >= d.opens_ms + grace_ms
                if read_past or self._read_to_end(d.partition):
                    drew |= draw_due(self.engine, d.campaign_id) is not None
        except (SQLAlchemyError, KafkaException) as exc:
            log.warning("drawing the pre-queues due: %s (again in %.1f s)", short_error(exc), DRAW_CHECK_S)
        return drew

    def _read_to_end(self, partition: int) -> bool:
        assert self._consumer is not None
        _, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=2, cached=False)
        return self._recorded_up_to.get(partition, 0) >= high

    # -- rebalance ----------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition at the offset stored with the decisions (the database is the truth)."""
        stored = self._stored_offsets()
        self._recorded_up_to.update(stored)
        for tp in partitions:
            if tp.partition in stored:
                tp.offset = stored[tp.partition]
        consumer.incremental_assign(partitions)  # cooperative-sticky: only the newly added partitions
        self._assigned |= {tp.partition for tp in partitions}
        log.info("assigned partitions %s (stored offsets %s)", sorted(tp.partition for tp in partitions), stored)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned -= {tp.partition for tp in partitions}
        log.info("revoked partitions %s", sorted(tp.partition for tp in partitions))

    def _stored_offsets(self) -> dict[int, int]:
        for attempt in range(3):
            try:
                with self.engine.connect() as conn:
                    return load_offsets(conn, self.group, self.topic)
            except SQLAlchemyError as exc:
                log.warning("reading stored offsets failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.5 * (attempt + 1))
        log.warning("starting from Kafka's committed offsets; request ids still stop double counting")
        return {}

    def _caught_up(self) -> bool:
        assert self._consumer is not None
        if not self._assigned:
            return False
        assignment = self._consumer.assignment()
        positions = self._consumer.position(assignment)
        committed = {tp.partition: tp.offset for tp in self._consumer.committed(assignment, timeout=5)}
        for tp in positions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            # nothing consumed yet: the partition starts where the database or else Kafka says
            position = (
                tp.offset
                if tp.offset >= 0
                else max(committed.get(tp.partition, -1), self._recorded_up_to.get(tp.partition, -1))
            )
            if position < 0:
                position = low
            if position < high:
                return False
        return True

    # -- one batch --------------------------------------------------------------------------------

    def _handle(self, messages: Sequence[Message]) -> None:
        batch = Batch(self.topic)
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", error)
                continue
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None  # set on every consumed message
            batch.next_offsets[partition] = offset + 1
            try:
                event = ParticipationEvent.from_json(msg.value())
                why, code = unsigned(self._signer, event), Code.UNSIGNED_REQUEST
            except InvalidEvent as exc:
                why, code = str(exc), Code.INVALID_EVENT
            except Exception as exc:  # noqa: BLE001 - a message is only data: whatever it does, it is dead-lettered
                why, code = f"undecodable: {exc!r}"[:500], Code.INVALID_EVENT
            if why is not None:
                batch.invalid.append(DeadLetter(code, why, self.topic, partition, offset, msg.key(), msg.value()))
                continue
            batch.delivered.append(Delivered(event, partition, offset, msg.value() or b"", msg.key()))
        if not batch.next_offsets:
            return
        result = self._record_with_retry(batch)
        self.stats.batches += 1
        self.stats.decisions.add(result)
        self.stats.last_commit_at = time.monotonic()
        self._observe(result, batch, len(messages))
        assert self._consumer is not None
        self._consumer.commit(
            offsets=[TopicPartition(self.topic, p, o) for p, o in batch.next_offsets.items()], asynchronous=True
        )

    def _observe(self, result: BatchResult, batch: Batch, size: int) -> None:
        metrics.BATCH_SIZE.observe(size)
        metrics.LAST_BATCH.set_to_current_time()
        if batch.delivered:
            oldest = min(d.event.requested_at_ms for d in batch.delivered)
            metrics.DECISION_LATENCY.observe(max(time.time() - oldest / 1000, 0.0))
        assert self._consumer is not None
        for partition, next_offset in batch.next_offsets.items():
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
            if high >= 0:
                metrics.LAG.labels(str(partition)).set(max(high - next_offset, 0))

    def _record_with_retry(self, batch: Batch) -> BatchResult:
        backoff = 0.1
        check_all = False
        while True:
            started = time.perf_counter()
            try:
                recorded = record_batch(
                    self.engine, self.group, batch, None if check_all else self._recorded_up_to, self._dead_letter
                )
            except (DBAPIError, SQLAlchemyError, DeadLetterError) as exc:
                if isinstance(exc, IntegrityError) and not check_all:
                    # a request id recorded meanwhile (a replay, a rebalance race): decide again, checking all
                    log.info("request id already recorded, checking every id of the batch: %s", short_error(exc))
                    check_all = True
                    continue
                if self._stopping and isinstance(exc, DeadLetterError | DBAPIError):
                    log.warning("stopping with an undecided batch; it will be redelivered: %s", exc)
                    raise SystemExit(1) from exc
                self.stats.db_retries += 1
                self._beat("RETRYING")
                log.warning("batch not recorded, retrying in %.1f s: %s", backoff, short_error(exc))
                # No poll() while waiting: it would hand out the next message and skip it. Heartbeats run
                # on librdkafka's own thread; past max.poll.interval.ms the group reassigns the partition
                # and the stored offsets, row locks and request ids keep the retry exact.
                time.sleep(backoff)
                backoff = min(backoff * 2, self.settings.worker_retry_max_backoff_s)
                continue
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
            for d in batch.delivered:
                if d.event.requested_at_ms > self._stamped_up_to.get(d.partition, 0):
                    self._stamped_up_to[d.partition] = d.event.requested_at_ms
            for partition, offset in batch.next_offsets.items():
                self._recorded_up_to[partition] = max(self._recorded_up_to.get(partition, 0), offset)
            self.stats.dead_lettered += len(recorded.dead_letters)
            return recorded.result

    def _dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Publish messages that can never be decided to the DLQ (called before the batch commits)."""
        assert self._dlq is not None
        first = letters[0]
        log.warning(
            "dead-lettering %d message(s) of the batch, the first p%s@%s: %s",
            len(letters),
            first.source_partition,
            first.source_offset,
            first.reason,
        )  # one line per batch: a flood of bad messages must not flood the log
        publish_dead_letters(self._dlq, self.settings, letters)
