"""The dead-letter topic: list what landed there and why, and replay messages once their cause is fixed.

A replay publishes the original key and value to the participation topic again, so the message is
decided like any other (its requestId keeps it from being counted twice); each dead letter is
replayed at most once, recorded in `dead_letter_replay`.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from fcfs.db import utcnow
from fcfs.kafka import producer_config
from fcfs.schema import dead_letter_replay
from fcfs.settings import Settings


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    reason: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    key: bytes | None
    value: bytes | None

    def to_json(self, replayed: bool) -> dict[str, Any]:
        text, encoding = _printable(self.value)
        return {
            "dlqPartition": self.partition,
            "dlqOffset": self.offset,
            "timestamp": self.timestamp_ms,
            "reason": self.reason,
            "sourceTopic": self.source_topic,
            "sourcePartition": self.source_partition,
            "sourceOffset": self.source_offset,
            "key": _printable(self.key)[0],
            "value": text,
            "valueEncoding": encoding,
            "replayed": replayed,
        }


def _printable(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


def _from_message(msg: Message) -> DeadLetter:
    raw_headers: list[tuple[str, bytes | None]] = list(msg.headers() or [])  # type: ignore[arg-type]
    headers = {k: v.decode(errors="replace") for k, v in raw_headers if v is not None}

    def as_int(name: str) -> int | None:
        value = headers.get(name)
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    partition, offset = msg.partition(), msg.offset()
    assert partition is not None and offset is not None
    return DeadLetter(
        partition=partition,
        offset=offset,
        timestamp_ms=msg.timestamp()[1],
        reason=headers.get("dlq.reason", ""),
        source_topic=headers.get("dlq.source.topic", ""),
        source_partition=as_int("dlq.source.partition"),
        source_offset=as_int("dlq.source.offset"),
        key=msg.key(),
        value=msg.value(),
    )


def _reader(settings: Settings) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"dlq-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )


def read_dead_letters(settings: Settings, limit: int = 100, timeout_s: float = 10.0) -> list[DeadLetter]:
    """The newest `limit` dead letters of each DLQ partition, newest first, one per source message."""
    topic = settings.dlq_topic
    consumer = _reader(settings)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        letters: list[DeadLetter] = []
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
                    letters.append(_from_message(msg))
                    got += 1
        letters.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset), reverse=True)
        seen: set[tuple[str, int | None, int | None]] = set()
        unique = []
        for letter in reversed(letters):  # keep the first copy of a source message
            source = (letter.source_topic, letter.source_partition, letter.source_offset)
            if letter.source_offset is None or source not in seen:
                seen.add(source)
                unique.append(letter)
        return list(reversed(unique))[:limit]
    finally:
        consumer.close()


def read_dead_letter(settings: Settings, partition: int, offset: int, timeout_s: float = 10.0) -> DeadLetter | None:
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
        letter = read_dead_letter(settings, partition, offset)
        if letter is None:
            results.append({**outcome, "status": "NOT_FOUND"})
            continue
        try:
            target = _publish(producer, settings, letter)
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


def _publish(producer: Producer, settings: Settings, letter: DeadLetter) -> Message:
    """Publish a dead letter's key and value to the participation topic; return the acknowledged message."""
    delivered: list[Message] = []
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(msg)

    source = f"{settings.dlq_topic}/{letter.partition}@{letter.offset}"
    producer.produce(
        settings.kafka_topic,
        letter.value,
        letter.key,
        on_delivery=on_delivery,
        headers={"dlq.replayed-from": source.encode()},
    )
    producer.flush(settings.kafka_produce_timeout_ms / 1000 + 1)
    if errors or not delivered:
        raise RuntimeError(errors[0] if errors else "no acknowledgement from Kafka")
    return delivered[0]
