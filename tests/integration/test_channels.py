"""I7 one door per campaign: each participation path refuses the other's campaigns, so none overtakes."""

from __future__ import annotations

from confluent_kafka import Producer
from sqlalchemy import Engine

from fcfs.kafka import end_offsets, producer_config, read_topic
from fcfs.settings import Settings
from tests.support import signed
from tests.support.ledger import assert_counters_match_history, history_counts
from tests.support.processes import Processes


def test_each_path_refuses_the_other_doors_campaigns(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    api = processes.api(settings)
    kafka = api.create_campaign(total_stock=1)  # KAFKA is the default
    sync = api.create_campaign(total_stock=1, mode="SYNC")
    with api.client(admin=True) as client:
        listed = {c["id"]: c["mode"] for c in client.get("/api/admin/campaigns").json()["data"]}
        assert (listed[kafka], listed[sync]) == ("KAFKA", "SYNC")
        bad = client.post("/api/admin/campaigns", json={"name": "x", "totalStock": 1, "mode": "CARRIER_PIGEON"})
        assert (bad.status_code, bad.json()["errorCode"]) == (422, "VALIDATION_ERROR")
        before = end_offsets(settings)

        # the scene I7 prevents: stock 1, a request accepted through Kafka, then a later synchronous one
        first = client.post(f"/api/campaigns/{kafka}/participation", json={"userId": 1})
        assert first.status_code == 202
        later = client.post(f"/api/campaigns/{kafka}/participation-sync", json={"userId": 2})
        assert (later.status_code, later.json()["errorCode"]) == (409, "WRONG_CHANNEL")
        assert "participation" in later.json()["message"]

        r = client.post(f"/api/campaigns/{sync}/participation", json={"userId": 3})
        assert (r.status_code, r.json()["errorCode"]) == (409, "WRONG_CHANNEL")
        assert "participation-sync" in r.json()["message"]
        bulk = client.post("/api/admin/test/participate-bulk", json={"campaignId": sync, "count": 5})
        assert (bulk.status_code, bulk.json()["errorCode"]) == (409, "WRONG_CHANNEL")
        assert sum(end_offsets(settings).values()) == sum(before.values()) + 1  # only the accepted request

        won = client.post(f"/api/campaigns/{sync}/participation-sync", json={"userId": 3})
        assert won.status_code == 200 and won.json()["data"]["status"] == "SUCCESS"
    assert processes.worker(settings, "--drain").wait(60) == 0
    assert history_counts(database, kafka) == {"SUCCESS": 1, "FAIL": 0, "DUPLICATE": 0}
    assert api.status(kafka)["successCount"] == 1


def test_a_kafka_message_for_a_synchronous_campaign_is_dead_lettered(
    settings: Settings, database: Engine, processes: Processes
) -> None:
    """Whoever writes to the topic cannot make the worker decide a SYNC campaign's requests."""
    api = processes.api(settings)
    sync = api.create_campaign(total_stock=5, mode="SYNC")
    kafka = api.create_campaign(total_stock=5)
    producer = Producer(producer_config(settings))
    for i, campaign_id in enumerate((sync, kafka, sync)):
        event = signed(settings, campaign_id, 100 + i)
        producer.produce(settings.kafka_topic, event.to_json(), event.key())
    assert producer.flush(10) == 0
    assert processes.worker(settings, "--drain").wait(60) == 0

    assert history_counts(database, sync) == {"SUCCESS": 0, "FAIL": 0, "DUPLICATE": 0}
    assert assert_counters_match_history(database, kafka) == {"SUCCESS": 1, "FAIL": 0, "DUPLICATE": 0}
    dead = read_topic(settings, settings.dlq_topic)
    reasons = sorted(dict(m.headers())["dlq.reason"].decode() for m in dead)
    assert reasons == [f"campaign {sync} takes part synchronously (SYNC mode), not through Kafka"] * 2
    assert api.status(sync)["currentStock"] == 5
