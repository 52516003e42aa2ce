"""The worker's other duties: dead letters for what can never be decided, and a clean SIGTERM."""

from __future__ import annotations

import hashlib
import re

import orjson
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from sqlalchemy import Engine

from fcfs.kafka import admin_client, producer_config, read_topic, reader_config
from fcfs.settings import Settings
from tests.support import signed, wait_until
from tests.support.ledger import assert_counters_match_history, history_rows
from tests.support.processes import Processes
from worker.store import load_offsets


def test_poison_messages_go_to_the_dlq_once_and_valid_ones_are_decided(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=2)
    key = str(campaign_id).encode()
    valid = [signed(settings, campaign_id, user, 1_700_000_000_000 + i) for i, user in enumerate([1, 2, 2, 3])]
    first = valid[0]

    def event(**changes: object) -> bytes:
        return orjson.dumps({**orjson.loads(first.to_json()), **changes})

    huge = b"\x01" * 900_000  # under the topic's 1 MB limit, too big for the DLQ with headers
    poison: list[tuple[bytes, str, str]] = [  # (value, code, a word of the reason)
        (b"\x00\xff\xfe random bytes", "INVALID_EVENT", "not JSON"),
        (b'{"requestId": "x", "campaignId": 1', "INVALID_EVENT", "not JSON"),
        (b"[1, 2, 3]", "INVALID_EVENT", "not a JSON object"),
        (signed(settings, 987654321, 5).to_json(), "UNKNOWN_CAMPAIGN", "unknown campaign 987654321"),
        (event(userId=-3), "INVALID_EVENT", "userId"),
        (event(userId="7"), "INVALID_EVENT", "userId"),
        (
            b'{"requestId": "p", "campaignId": %d, "userId": %d, "requestedAt": 1}' % (campaign_id, 10**40),
            "INVALID_EVENT",
            "userId",
        ),
        (event(requestedAt=253_402_300_800_000), "INVALID_EVENT", "requestedAt"),  # year 10000: no DATETIME
        (event(requestId=first.request_id.swapcase()), "UNSIGNED_REQUEST", "not issued"),  # a case variant
        (event(requestId=first.request_id + " "), "UNSIGNED_REQUEST", "not issued"),  # a trailing space
        (event(requestId="forged-1", userId=9), "UNSIGNED_REQUEST", "not issued"),
        (event(userId=9), "UNSIGNED_REQUEST", "another user"),  # user 1's id claimed by user 9
        (huge, "INVALID_EVENT", "not JSON"),
    ]
    producer = Producer(producer_config(settings))
    for i, (value, _, _) in enumerate(poison):  # valid and poison interleaved, one partition, one order
        if i < len(valid):
            producer.produce(settings.kafka_topic, valid[i].to_json(), key)
        producer.produce(settings.kafka_topic, value, key)
    assert producer.flush(10) == 0

    worker = processes.worker(settings, "--drain")
    assert worker.wait(60) == 0, worker.log()
    rows = history_rows(database, campaign_id)
    assert [(r.request_id, r.status.value) for r in rows] == [
        (valid[0].request_id, "SUCCESS"),
        (valid[1].request_id, "SUCCESS"),
        (valid[2].request_id, "DUPLICATE"),
        (valid[3].request_id, "FAIL"),
    ]
    assert_counters_match_history(database, campaign_id)
    dead = read_topic(settings, settings.dlq_topic)
    assert len(dead) == len(poison)
    for message, (value, code, word) in zip(
        sorted(dead, key=lambda m: int(dict(m.headers())["dlq.source.offset"])), poison, strict=True
    ):
        headers = {k: v.decode() for k, v in message.headers()}
        assert (headers["dlq.code"], headers["dlq.source.topic"]) == (code, settings.kafka_topic), headers
        assert word in headers["dlq.reason"], (word, headers["dlq.reason"])
        if value is huge:  # kept as a preview, with what it was
            assert message.value() == huge[:65_536]
            assert headers["dlq.truncated"] == "value" and headers["dlq.original.size"] == str(len(huge) + len(key))
            assert headers["dlq.original.sha256"] == hashlib.sha256(key + huge).hexdigest()
        else:
            assert message.value() == value and "dlq.truncated" not in headers

    # The same group from the start of the log as Kafka knows it (its committed offsets reset to 0):
    # the offsets stored with the decisions keep the worker from deciding or dead-lettering anything again.
    admin = admin_client(settings)
    reset = ConsumerGroupTopicPartitions(settings.kafka_consumer_group, [TopicPartition(settings.kafka_topic, 0, 0)])
    admin.alter_consumer_group_offsets([reset])[settings.kafka_consumer_group].result(30)
    again = processes.worker(settings, "--drain")
    assert again.wait(60) == 0, again.log()
    assert f"stored offsets {{0: {len(valid) + len(poison)}}}" in again.log()
    assert len(read_topic(settings, settings.dlq_topic)) == len(poison)
    assert history_rows(database, campaign_id) == rows


def test_sigterm_finishes_the_batch_in_hand_and_exits_cleanly(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=1000)
    with api.client(admin=True) as client:
        r = client.post("/api/admin/test/participate-bulk", json={"campaignId": campaign_id, "count": 20_000})
        assert r.status_code == 202
    worker = processes.worker(settings, WORKER_BATCH_SIZE="100")
    wait_until(lambda: len(history_rows(database, campaign_id)) >= 500, 60, "the worker to get going")
    assert worker.terminate(30) == 0
    assert "stopping after the batch in hand" in worker.log()
    assert_counters_match_history(database, campaign_id)
    stopped_at = len(history_rows(database, campaign_id))
    assert stopped_at < 20_000
    # the batch in hand was committed to both: Kafka's committed offset is the database's, which is
    # exactly the number of requests decided (one partition, every message valid)
    reader = Consumer(reader_config(settings, settings.kafka_consumer_group))
    committed = reader.committed([TopicPartition(settings.kafka_topic, 0)], timeout=10)[0].offset
    reader.close()
    with database.connect() as conn:
        stored = load_offsets(conn, settings.kafka_consumer_group, settings.kafka_topic)
    assert committed == stored[0] == stopped_at

    again = processes.worker(settings, "--drain")
    assert again.wait(120) == 0
    assert re.findall(r"redelivered=(\d+)", again.log())[-1] == "0"  # nothing of the stopped worker's is read again
    assert len(history_rows(database, campaign_id)) == 20_000
    assert assert_counters_match_history(database, campaign_id)["SUCCESS"] == 1000
