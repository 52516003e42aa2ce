"""I8, property-based: whatever else is written to the topic, the valid requests are decided in log order,
every other message is dead-lettered once, and the worker never stops.

Each example is a fresh topic on the real broker with valid requests (a few users clicking more
than once) interleaved with hostile messages: arbitrary bytes, arbitrary JSON, and events that
look valid but have exactly one thing wrong (a case or whitespace variant of a recorded id, a
forged or another user's id, integers past every bound, a year past 9999, text where a number
goes), plus now and then a value close to the topic's 1 MB limit. The worker runs in this process,
in drain mode, with a batch size drawn too, so hostile messages fall anywhere in a batch.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Producer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from fcfs.events import MAX_USER_ID, ParticipationEvent
from fcfs.kafka import delete_topics, ensure_topics, producer_config, read_topic
from fcfs.settings import Settings
from tests.support import signed
from tests.support.ledger import assert_counters_match_history, history_rows
from tests.support.processes import Processes
from worker.worker import ParticipationWorker

UNKNOWN_CAMPAIGN = 987_654_321


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # the standard library writes integers of any size


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
bad_numbers: st.SearchStrategy[Any] = st.sampled_from(
    [0, -1, 2**53, 2**63, 2**64, 10**40, 1.5, "7", None, True, [], {}]
)
bad_times: st.SearchStrategy[Any] = st.sampled_from(
    [-1, 253_402_300_800_000, 2**48, 2**63, 2**64, 1.5, "1700000000000", None]
)


@st.composite
def one_thing_wrong(draw: st.DrawFn, good: ParticipationEvent, settings: Settings) -> bytes:
    """A valid-looking event with exactly one field broken (so it can never be decided)."""
    doc: dict[str, Any] = orjson.loads(good.to_json())
    rid = good.request_id
    broken = draw(st.sampled_from(["requestId", "campaignId", "userId", "requestedAt", "missing", "foreign"]))
    if broken == "requestId":
        variants = [rid.swapcase(), rid + " ", " " + rid, rid[:-1], rid.upper(), rid.lower(), rid.replace(".", "")]
        variants = [v for v in variants if v != rid]
        doc["requestId"] = draw(st.sampled_from(variants) | st.text(min_size=1, max_size=64) | json_values)
    elif broken == "campaignId":
        doc["campaignId"] = draw(bad_numbers | st.just(good.campaign_id + 1))
    elif broken == "userId":
        doc["userId"] = draw(bad_numbers | st.integers(1, MAX_USER_ID).filter(lambda u: u != good.user_id))
    elif broken == "requestedAt":
        doc["requestedAt"] = draw(bad_times)
    elif broken == "missing":
        del doc[draw(st.sampled_from(["requestId", "campaignId", "userId", "requestedAt"]))]
    else:  # properly signed, for a campaign that does not exist
        return signed(settings, UNKNOWN_CAMPAIGN, good.user_id).to_json()
    return dumps(doc)


@st.composite
def log(draw: st.DrawFn, settings: Settings, campaign_id: int) -> list[tuple[bool, bytes]]:
    """The topic's content in order: (is it a valid request, its value)."""
    users = draw(st.lists(st.integers(1, 12), min_size=1, max_size=40))
    valid = [signed(settings, campaign_id, user, 1_700_000_000_000 + i) for i, user in enumerate(users)]
    hostile = st.one_of(
        st.binary(max_size=300),
        json_values.map(dumps),
        st.sampled_from(valid).flatmap(lambda good: one_thing_wrong(good, settings)),
        st.just(b"\x01" * 900_000),
    )
    messages = [(True, e.to_json()) for e in valid]
    for _ in range(draw(st.integers(1, 40))):
        messages.insert(draw(st.integers(0, len(messages))), (False, draw(hostile)))
    return messages


def expected_outcomes(users: list[int], stock: int) -> list[str]:
    seen: set[int] = set()
    outcomes = []
    for user in users:
        if user in seen:
            outcomes.append("DUPLICATE")
        else:
            outcomes.append("SUCCESS" if len(seen) < stock else "FAIL")
            seen.add(user)
    return outcomes


def test_valid_requests_are_decided_in_order_and_everything_else_is_dead_lettered_once(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)

    @hypothesis_settings(
        max_examples=10,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data(), stock=st.integers(1, 8), batch_size=st.sampled_from([1, 3, 5000]))
    def example(data: st.DataObject, stock: int, batch_size: int) -> None:
        campaign_id = api.create_campaign(total_stock=stock)
        messages = data.draw(log(settings, campaign_id))
        suffix = uuid.uuid4().hex[:10]
        topic_settings = settings.model_copy(
            update={
                "kafka_topic": f"test-hostile-{suffix}",
                "kafka_consumer_group": f"test-hostile-{suffix}",
                "worker_batch_size": batch_size,
            }
        )
        ensure_topics(topic_settings)
        try:
            producer = Producer(producer_config(topic_settings))
            for _, value in messages:
                producer.produce(topic_settings.kafka_topic, value, str(campaign_id).encode())
            assert producer.flush(30) == 0

            started = time.monotonic()
            worker = ParticipationWorker(topic_settings, database, drain=True)
            stats = worker.run(drain_wait_s=30)  # returns: it neither exits nor retries for ever
            assert time.monotonic() - started < 60

            valid_offsets = [offset for offset, (ok, _) in enumerate(messages) if ok]
            users = [orjson.loads(messages[offset][1])["userId"] for offset in valid_offsets]
            rows = history_rows(database, campaign_id)
            assert [r.kafka_offset for r in rows] == valid_offsets
            assert [r.status.value for r in rows] == expected_outcomes(users, stock)
            assert_counters_match_history(database, campaign_id)

            dead = read_topic(topic_settings, topic_settings.dlq_topic)
            sources = sorted(int(dict(m.headers())["dlq.source.offset"]) for m in dead)
            assert sources == [offset for offset, (ok, _) in enumerate(messages) if not ok]  # each once
            assert stats.dead_lettered == len(sources) and stats.db_retries == 0
        finally:
            delete_topics(topic_settings, [topic_settings.kafka_topic, topic_settings.dlq_topic])

    example()
