"""The dead-letter topic, in one place: its record and headers, publishing, listing and replaying.

The worker publishes every message it can never decide here, with the reason and the message's place
in the participation topic as headers. Operators list them (newest first) and replay them once the
cause is fixed: a replay publishes the original key and value to the participation topic again, so
the message is decided like any other (its requestId keeps it from being counted twice); each dead
letter is replayed at most once, recorded in `dead_letter_replay`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from fcfs.db import utcnow
from fcfs.events import ParticipationEvent
from fcfs.kafka import producer_config, reader_config
from fcfs.schema import campaign, dead_letter_replay
from fcfs.settings import Settings

REASON = "dlq.reason"
CODE = "dlq.code"
SOURCE_TOPIC = "dlq.source.topic"
SOURCE_PARTITION = "dlq.source.partition"
SOURCE_OFFSET = "dlq.source.offset"
REPLAYED_FROM = "dlq.replayed-from"
ORIGINAL_SIZE = "dlq.original.size"  # set when the value or key was cut to fit: its size in bytes ...
ORIGINAL_SHA256 = "dlq.original.sha256"  # ... and the SHA-256 of the whole value and key, hex
TRUNCATED = "dlq.truncated"  # "value", "key" or "key,value": which were cut

# What is kept of a dead letter's value and key: a participation event is ~200 bytes, so anything
# bigger is garbage; keeping a preview (not the whole ~1 MB a topic accepts) leaves room for the
# headers under the broker's message size limit.
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_BYTES = 1024
PREVIEW_BYTES = 1024  # what a listing shows of each key and value


class Code(enum.StrEnum):
    """Why a message was dead-lettered, in a word a program can match (the reason says it in full)."""

    INVALID_EVENT = "INVALID_EVENT"  # not a participation event: bytes, JSON of another shape, bad values
    UNSIGNED_REQUEST = "UNSIGNED_REQUEST"  # its requestId was not issued by the API for its campaign and user
    UNKNOWN_CAMPAIGN = "UNKNOWN_CAMPAIGN"
    WRONG_CHANNEL = "WRONG_CHANNEL"  # its campaign takes part synchronously (SYNC mode)
    WRONG_PARTITION = "WRONG_PARTITION"  # its campaign is placed on another partition: its order is that one's


class DeadLetterError(RuntimeError):
    """The dead-letter topic did not take a message: the batch is not committed and will be retried."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that can never be decided: why, and where it was in the participation topic."""

    code: str
    reason: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    key: bytes | None
    value: bytes | None
    original_size: int | None = None  # set when key or value was truncated to fit the dead-letter topic
    original_sha256: str | None = None
    truncated: str | None = None

    def fitted(self) -> DeadLetter:
        """This letter with its value and key cut to what the dead-letter topic keeps (and the cut said)."""
        value, key = self.value or b"", self.key or b""
        cut = [
            name
            for name, raw, limit in (("key", key, MAX_KEY_BYTES), ("value", value, MAX_VALUE_BYTES))
            if len(raw) > limit
        ]
        if not cut:
            return self
        return DeadLetter(
            self.code,
            self.reason,
            self.source_topic,
            self.source_partition,
            self.source_offset,
            key[:MAX_KEY_BYTES] if self.key is not None else None,
            value[:MAX_VALUE_BYTES] if self.value is not None else None,
            original_size=len(value) + len(key),
            original_sha256=hashlib.sha256(key + value).hexdigest(),
            truncated=",".join(cut),
        )

    def headers(self) -> dict[str, str | bytes | None]:
        headers: dict[str, str | bytes | None] = {
            CODE: self.code.encode(),
            REASON: self.reason.encode(errors="replace")[:1000],
            SOURCE_TOPIC: self.source_topic.encode(),
            SOURCE_PARTITION: str(self.source_partition).encode(),
            SOURCE_OFFSET: str(self.source_offset).encode(),
        }
        if self.truncated:
            headers[TRUNCATED] = self.truncated.encode()
            headers[ORIGINAL_SIZE] = str(self.original_size).encode()
            headers[ORIGINAL_SHA256] = str(self.original_sha256).encode()
        return headers


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter as found in the dead-letter topic, at its own partition and offset."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter


# -- writing ------------------------------------------------------------------------------------------


def publish_dead_letters(producer: Producer, settings: Settings, letters: Sequence[DeadLetter]) -> None:
    """Publish to the dead-letter topic and wait until Kafka has every one; else raise DeadLetterError."""
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(str(err))

    for letter in letters:
        fitted = letter.fitted()
        while True:
            try:
                producer.produce(
                    settings.dlq_topic,
                    value=fitted.value,
                    key=fitted.key,
                    headers=fitted.headers(),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # the producer's queue is full: let it drain, then go on
                producer.flush(1)
            except KafkaException as exc:
                raise DeadLetterError(f"dead-letter topic refused a message: {exc}") from exc
    remaining = producer.flush(settings.kafka_produce_timeout_ms / 1000 + 1)
    if failures or remaining:
        raise DeadLetterError(f"dead-letter topic did not acknowledge: {failures or remaining}")


# -- reading ------------------------------------------------------------------------------------------


def printable(raw: bytes | None, limit: int | None = None) -> tuple[str | None, str]:
    """Text for JSON: the bytes as UTF-8 when they are, else base64; at most `limit` bytes of them."""
    if raw is None:
        return None, "none"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw[:limit]).decode(), "base64"
    if limit is not None and len(raw) > limit:
        text = raw[:limit].decode("utf-8", errors="ignore")  # not half a character at the cut
    return text, "utf-8"


def _from_message(msg: Message) -> StoredDeadLetter:
    raw_headers: list[tuple[str, bytes | None]] = list(msg.headers() or [])  # type: ignore[arg-type]
    headers = {k: v.decode(errors="replace") for k, v in raw_headers if v is not None}

    def as_int(name: str) -> int | None:
        value = headers.get(name)
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    partition, offset = msg.partition(), msg.offset()
    assert partition is not None and offset is not None
    size = as_int(ORIGINAL_SIZE)
    letter = DeadLetter(
        code=headers.get(CODE, ""),
        reason=headers.get(REASON, ""),
        source_topic=headers.get(SOURCE_TOPIC, ""),
        source_partition=as_int(SOURCE_PARTITION),
        source_offset=as_int(SOURCE_OFFSET),
        key=msg.key(),
        value=msg.value(),
        original_size=size,
        original_sha256=headers.get(ORIGINAL_SHA256),
        truncated=headers.get(TRUNCATED),
    )
    return StoredDeadLetter(partition, offset, msg.timestamp()[1], letter)


def _reader(settings: Settings) -> Consumer:
    return Consumer(reader_config(settings, f"dlq-reader-{uuid.uuid4()}", **{"enable.partition.eof": True}))


def read_dead_letters(settings: Settings, limit: int = 100, timeout_s: float = 10.0) -> list[StoredDeadLetter]:
    """The newest `limit` dead letters of each DLQ partition, newest first, one per source message."""
    topic = settings.dlq_topic
    consumer = _reader(settings)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        stored: list[StoredDeadLetter] = []
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            start = max(low, high - limit)
            if high <= start:
                continue
            consumer.assign([TopicPartition(topic, p, start)])
            wanted, got = high - start, 0
            while got < wanted:
                batch = consumer.consume(min(wanted - got, 1000), timeout_s)
                if not batch:
                    break
                for msg in batch:
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            got = wanted
                        continue
                    stored.append(_from_message(msg))
                    got += 1
        stored.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset), reverse=True)
        seen: set[tuple[str, int | None, int | None]] = set()
        unique = []
        for found in reversed(stored):  # keep the first copy of a source message
            source = (found.letter.source_topic, found.letter.source_partition, found.letter.source_offset)
            if found.letter.source_offset is None or source not in seen:
                seen.add(source)
                unique.append(found)
        return list(reversed(unique))[:limit]
    finally:
        consumer.close()


def read_dead_letter(
    settings: Settings, partition: int, offset: int, timeout_s: float = 10.0
) -> StoredDeadLetter | None:
    consumer = _reader(settings)
    try:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(settings.dlq_topic, partition), timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() in (KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART):
                return None
            raise
        if not low <= offset < high:
            return None
        consumer.assign([TopicPartition(settings.dlq_topic, partition, offset)])
        for msg in consumer.consume(1, timeout_s):
            if msg.error() is None and msg.offset() == offset:
                return _from_message(msg)
        return None
    finally:
        consumer.close()


# -- replaying ----------------------------------------------------------------------------------------


def replayed_offsets(engine: Engine, topic: str) -> set[tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(dead_letter_replay.c.dlq_partition, dead_letter_replay.c.dlq_offset).where(
                dead_letter_replay.c.dlq_topic == topic
            )
        )
        return {(r.dlq_partition, r.dlq_offset) for r in rows}


def replay(settings: Settings, engine: Engine, coordinates: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Publish each dead letter back to the participation topic, once; report what happened to each."""
    done = replayed_offsets(engine, settings.dlq_topic)
    producer = Producer(producer_config(settings))
    results = []
    for partition, offset in coordinates:
        outcome: dict[str, Any] = {"dlqPartition": partition, "dlqOffset": offset}
        if (partition, offset) in done:
            results.append({**outcome, "status": "ALREADY_REPLAYED"})
            continue
        found = read_dead_letter(settings, partition, offset)
        if found is None:
            results.append({**outcome, "status": "NOT_FOUND"})
            continue
        if found.letter.truncated:  # only a preview was kept: the original cannot be published again
            results.append({**outcome, "status": "TRUNCATED"})
            continue
        try:
            target = _publish_back(producer, settings, found, _campaign_partition(engine, found.letter.value))
        except RuntimeError as exc:
            results.append({**outcome, "status": "FAILED", "error": str(exc)})
            continue
        try:
            with engine.begin() as conn:
                conn.execute(
                    dead_letter_replay.insert().values(
                        dlq_topic=settings.dlq_topic,
                        dlq_partition=partition,
                        dlq_offset=offset,
                        replayed_at=utcnow(),
                        target_partition=target.partition(),
                        target_offset=target.offset(),
                    )
                )
        except IntegrityError:  # replayed concurrently by another call: the requestId keeps it counted once
            pass
        done.add((partition, offset))
        results.append(
            {**outcome, "status": "REPLAYED", "targetPartition": target.partition(), "targetOffset": target.offset()}
        )
    return results


def _campaign_partition(engine: Engine, value: bytes | None) -> int:
    """The partition the letter's campaign is placed on; -1 (by key) when the value names no placed campaign."""
    try:
        campaign_id = ParticipationEvent.from_json(value).campaign_id
    except Exception:  # noqa: BLE001 - not an event: it goes back by key and is dead-lettered again
        return -1
    with engine.connect() as conn:
        placed = conn.scalar(select(campaign.c.kafka_partition).where(campaign.c.id == campaign_id))
    return -1 if placed is None else int(placed)


def _publish_back(producer: Producer, settings: Settings, found: StoredDeadLetter, partition: int) -> Message:
    """Publish a dead letter's key and value to the participation topic (to its campaign's partition);
    return the acknowledged message."""
    delivered: list[Message] = []
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(msg)

    source = f"{settings.dlq_topic}/{found.partition}@{found.offset}"
    producer.produce(
        settings.kafka_topic,
        found.letter.value,
        found.letter.key,
        partition,
        on_delivery=on_delivery,
        headers={REPLAYED_FROM: source.encode()},
    )
    producer.flush(settings.kafka_produce_timeout_ms / 1000 + 1)
    if errors or not delivered:
        raise RuntimeError(errors[0] if errors else "no acknowledgement from Kafka")
    return delivered[0]
