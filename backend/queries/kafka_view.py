"""What operators see of Kafka: per partition end offset, committed offset and lag; the group's state."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from fcfs.kafka import admin_client, reader_config
from fcfs.settings import Settings


class KafkaView:
    """A long-lived, read-only view on the workers' consumer group (never joins it, never commits)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._admin = admin_client(settings)

    def _reader(self) -> Consumer:
        if self._consumer is None:
            # the workers' group, to read its committed offsets; it never subscribes
            self._consumer = Consumer(
                reader_config(
                    self.settings,
                    self.settings.kafka_consumer_group,
                    **{"client.id": f"kafka-view-{uuid.uuid4().hex[:6]}"},
                )
            )
        return self._consumer

    def lag(self, timeout_s: float = 5.0, with_group_state: bool = True) -> dict[str, Any]:
        """Partitions of the participation topic with end offset, committed offset and lag."""
        with self._lock:
            per_partition = partition_lag(self._reader(), self.settings.kafka_topic, timeout_s)
        partitions = [
            {"partition": p, "endOffset": end, "committedOffset": committed, "lag": lag}
            for p, (end, committed, lag) in sorted(per_partition.items())
        ]
        return {
            "topic": self.settings.kafka_topic,
            "consumerGroup": self.settings.kafka_consumer_group,
            "groupState": self.group_state(timeout_s) if with_group_state else None,
            "totalLag": sum(p["lag"] for p in partitions),
            "partitions": partitions,
        }

    def group_state(self, timeout_s: float = 5.0) -> str:
        try:
            future = self._admin.describe_consumer_groups(
                [self.settings.kafka_consumer_group], request_timeout=timeout_s
            )
            description = future[self.settings.kafka_consumer_group].result()
        except KafkaException:
            return "UNKNOWN"
        return str(description.state.name)

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None


def partition_lag(consumer: Consumer, topic: str, timeout_s: float = 5.0) -> dict[int, tuple[int, int, int]]:
    """Per partition of `topic`: (end offset, committed offset, lag) for the consumer's group."""
    meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    partitions = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
    committed = consumer.committed(partitions, timeout=timeout_s)
    result: dict[int, tuple[int, int, int]] = {}
    for tp in committed:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout_s, cached=False)
        done = tp.offset if tp.offset >= 0 else low
        result[tp.partition] = (high, done, max(high - done, 0))
    return result
