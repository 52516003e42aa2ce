"""Kafka client configuration and topic administration shared by the API, the worker and the tools."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from fcfs.settings import Settings

log = logging.getLogger(__name__)


def client_config(settings: Settings) -> dict[str, Any]:
    """What every client of this system (producer, consumer, admin) needs to reach the cluster.

    The one place that knows where Kafka is and how to authenticate to it: plaintext on loopback,
    TLS, or SASL (PLAIN / SCRAM) over TLS for a managed cluster.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
        "socket.connection.setup.timeout.ms": 3000,
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_ca_location and settings.kafka_security_protocol != "PLAINTEXT":
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    return config


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """A producer that only reports success once every in-sync replica has the message (I5)."""
    config: dict[str, Any] = {
        **client_config(settings),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": settings.kafka_linger_ms,
        "compression.type": "lz4",
        # Same key -> same partition as Java clients (murmur2), so every tool agrees on the placement.
        "partitioner": "murmur2_random",
        "message.timeout.ms": settings.kafka_produce_timeout_ms,
        "request.timeout.ms": min(settings.kafka_produce_timeout_ms, 30_000),
        "reconnect.backoff.max.ms": 1000,
        "topic.metadata.refresh.interval.ms": 10_000,  # partitions added online are known within seconds
    }
    config.update(overrides)
    return config


def consumer_config(settings: Settings, group: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A group consumer that never commits on its own: offsets move only after the database commit."""
    config: dict[str, Any] = {
        **client_config(settings),
        "group.id": group or settings.kafka_consumer_group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": settings.worker_session_timeout_ms,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 300_000,
        "fetch.wait.max.ms": 50,
        "queued.max.messages.kbytes": 65536,
        "topic.metadata.refresh.interval.ms": 5000,  # partitions added online are assigned within seconds
    }
    if settings.worker_instance_id:
        # Static membership: a restarted worker takes its partitions back at once, without a rebalance.
        config["group.instance.id"] = settings.worker_instance_id
    config.update(overrides)
    return config


def reader_config(settings: Settings, group: str, **overrides: Any) -> dict[str, Any]:
    """A consumer that only reads by explicit assignment: it never joins `group` and never commits.

    `group` only names whose committed offsets it may look up (the lag view reads the workers').
    """
    return {**client_config(settings), "group.id": group, "enable.auto.commit": False, **overrides}


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def ensure_topics(settings: Settings, timeout_s: float = 60.0) -> None:
    """Create the participation topic and its dead-letter topic if missing (waits for the broker)."""
    admin = admin_client(settings)
    wanted = {
        settings.kafka_topic: settings.kafka_topic_partitions,
        settings.dlq_topic: 1,
    }
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            existing = admin.list_topics(timeout=5).topics
            break
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise
            log.info("waiting for Kafka: %s", exc)
            time.sleep(1)
    config = {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
    missing = [
        NewTopic(name, num_partitions=partitions, replication_factor=settings.kafka_replication_factor, config=config)
        for name, partitions in wanted.items()
        if name not in existing
    ]
    for name, partitions in wanted.items():
        if name in existing and len(existing[name].partitions) != partitions:
            log.warning(
                "topic %s has %d partitions, settings say %d (grow it with: python -m fcfs.provision --partitions N)",
                name,
                len(existing[name].partitions),
                partitions,
            )
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=30).items():
        try:
            future.result()
            log.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: someone else was quicker
                raise
    wait_for_leaders(admin, [t.topic for t in missing], deadline)


def wait_for_leaders(admin: AdminClient, topics: list[str], deadline: float, partitions: int = 1) -> None:
    """Until every partition of the topics (at least `partitions` of each) has a leader."""
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=5).topics
        if all(
            t in meta
            and len(meta[t].partitions) >= partitions
            and all(p.leader >= 0 for p in meta[t].partitions.values())
            for t in topics
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topics {topics} have no leaders yet")


def delete_topics(settings: Settings, topics: list[str]) -> None:
    admin = admin_client(settings)
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != 3:  # UNKNOWN_TOPIC_OR_PART
                raise


def end_offsets(settings: Settings, topic: str | None = None) -> dict[int, int]:
    """Each partition's end offset (the offset the next message will get)."""
    topic = topic or settings.kafka_topic
    consumer = Consumer(reader_config(settings, "fcfs-end-offsets"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str | None = None, timeout_s: float = 30) -> list[Any]:
    """Every message of a topic, partition by partition, in log order."""
    topic = topic or settings.kafka_topic
    consumer = Consumer(reader_config(settings, "topic-reader"))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        messages: list[Any] = []
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            got: list[Any] = []
            deadline = time.monotonic() + timeout_s
            while len(got) < high - low and time.monotonic() < deadline:
                got.extend(m for m in consumer.consume(10_000, 0.5) if not m.error())
            if len(got) != high - low:
                raise TimeoutError(f"read {len(got)} of {high - low} messages of {topic}[{p}]")
            messages.extend(got)
        return messages
    finally:
        consumer.close()
