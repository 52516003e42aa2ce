"""The worker's other duties: dead letters for what can never be decided, and a clean SIGTERM."""

from __future__ import annotations

import orjson
from confluent_kafka import Producer
from sqlalchemy import Engine

from fcfs.events import ParticipationEvent
from fcfs.kafka import producer_config, read_topic
from fcfs.settings import Settings
from tests.support import Processes, assert_counters_match_history, history_rows, wait_until


def test_poison_messages_go_to_the_dlq_once_and_valid_ones_are_decided(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    campaign_id = api.create_campaign(total_stock=2)
    key = str(campaign_id).encode()
    poison = [
        b"\x00\xff\xfe random bytes",
        b'{"requestId": "x", "campaignId": 1',
        b"[1, 2, 3]",
        orjson.dumps({"requestId": "p-unknown", "campaignId": 987654321, "userId": 5, "requestedAt": 1}),
        orjson.dumps({"requestId": "p-neg", "campaignId": campaign_id, "userId": -3, "requestedAt": 1}),
        orjson.dumps({"requestId": "p-str", "campaignId": campaign_id, "userId": "7", "requestedAt": 1}),
        b'{"requestId": "p-huge", "campaignId": %d, "userId": %d, "requestedAt": 1}' % (campaign_id, 10**40),
    ]
    valid = [
        ParticipationEvent(f"valid-{i}", campaign_id, user, 1_700_000_000_000 + i)
        for i, user in enumerate([1, 2, 2, 3])
    ]
    producer = Producer(producer_config(settings))
    for i, event in enumerate(valid):  # valid and poison interleaved, one partition, one order
        producer.produce(settings.kafka_topic, event.to_json(), key)
        producer.produce(settings.kafka_topic, poison[i], key)
    for message in poison[len(valid) :]:
        producer.produce(settings.kafka_topic, message, key)
    assert producer.flush(10) == 0

    worker = processes.worker(settings, "--drain")
    assert worker.wait(60) == 0, worker.log()
    rows = history_rows(database, campaign_id)
    assert [(r.request_id, r.status.value) for r in rows] == [
        ("valid-0", "SUCCESS"),
        ("valid-1", "SUCCESS"),
        ("valid-2", "DUPLICATE"),
        ("valid-3", "FAIL"),
    ]
    assert_counters_match_history(database, campaign_id)
    dead = read_topic(settings, settings.dlq_topic)
    assert sorted(m.value() for m in dead) == sorted(poison)  # each poison message once, as it was
    for message in dead:
        headers = dict(message.headers())
        assert headers["dlq.reason"]
        assert headers["dlq.source.topic"].decode() == settings.kafka_topic
    reasons = {m.value(): dict(m.headers())["dlq.reason"].decode() for m in dead}
    assert "unknown campaign 987654321" in reasons[poison[3]]
    assert "userId" in reasons[poison[4]]

    # run again from the start of the log: the stored offsets keep the DLQ from getting copies
    again = processes.worker(settings, "--drain")
    assert again.wait(60) == 0
    assert len(read_topic(settings, settings.dlq_topic)) == len(poison)


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

    assert processes.worker(settings, "--drain").wait(120) == 0
    assert len(history_rows(database, campaign_id)) == 20_000
    assert assert_counters_match_history(database, campaign_id)["SUCCESS"] == 1000
