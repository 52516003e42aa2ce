"""Every Kafka client is built from one base configuration, including what a managed cluster needs.

(Settings are validated from a dict here, so the environment of the test run does not leak in.)"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError

from fcfs.kafka import client_config, consumer_config, producer_config, reader_config
from fcfs.settings import Settings

SASL = {
    "kafka_bootstrap_servers": "broker-1.example:9096,broker-2.example:9096",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "fcfs-app",
    "kafka_sasl_password": "s3cret",
    "kafka_ssl_ca_location": "/etc/ssl/kafka-ca.pem",
}


def test_plaintext_is_the_default_and_carries_no_credentials() -> None:
    config = client_config(Settings.model_validate({"kafka_bootstrap_servers": "10.0.0.5:9092"}))
    assert config["bootstrap.servers"] == "10.0.0.5:9092"
    assert config["security.protocol"] == "PLAINTEXT"
    assert not any(key.startswith(("sasl.", "ssl.")) for key in config)


def test_sasl_settings_reach_every_kind_of_client() -> None:
    settings = Settings.model_validate(SASL)
    wanted = {
        "bootstrap.servers": SASL["kafka_bootstrap_servers"],
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "fcfs-app",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ssl/kafka-ca.pem",
    }
    for config in (
        producer_config(settings),
        consumer_config(settings, "group"),
        reader_config(settings, "reader"),
        client_config(settings),
    ):
        assert {key: config.get(key) for key in wanted} == wanted
    assert producer_config(settings)["acks"] == "all"  # the client settings do not replace the producer's own


def test_librdkafka_accepts_the_sasl_configuration() -> None:
    """The keys and values are librdkafka's own: each client can be constructed with them (no connection yet)."""
    settings = Settings.model_validate({**SASL, "kafka_ssl_ca_location": ""})
    Producer(producer_config(settings)).flush(0)
    Consumer(consumer_config(settings, "group")).close()
    AdminClient(client_config(settings))


def test_sasl_without_credentials_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME"):
        Settings.model_validate({"kafka_security_protocol": "SASL_SSL"})


def test_the_password_is_not_shown_by_the_settings() -> None:
    settings = Settings.model_validate(SASL)
    assert "s3cret" not in repr(settings)
