"""Configuration from environment variables (and `.env`), built once and imported everywhere."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, computed_field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLE_ADMIN_TOKEN = "change-me-admin-token"
EXAMPLE_REQUEST_ID_SECRET = "change-me-request-id-secret"


class Settings(BaseSettings):
    """Every setting of every process; see `.env.example` for what each one means."""

    # hide_input_in_errors: a refused setting is named, never echoed (the input holds every secret of the env)
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    app_env: Literal["development", "test", "production"] = "development"
    database_url: str = "mysql+pymysql://fcfs:fcfs@127.0.0.1:3306/fcfs"
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=30, ge=0)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # how every Kafka client authenticates: plaintext (loopback), TLS, or SASL over TLS (managed Kafka)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_location: str = ""
    kafka_topic: str = "campaign-participation-topic"
    kafka_dlq_topic: str = ""
    kafka_topic_partitions: int = Field(default=1, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int = Field(default=1, ge=1)
    kafka_consumer_group: str = "fcfs-participation-worker"
    kafka_produce_timeout_ms: int = Field(default=5000, ge=100)
    kafka_linger_ms: int = Field(default=2, ge=0)

    # who takes part: "none" trusts the body's userId (demos, benchmarks); "jwt" takes it from a bearer token
    user_auth: Literal["none", "jwt"] = "none"
    jwt_algorithms: str = "HS256"
    jwt_secret: SecretStr = SecretStr("")
    jwt_public_key_file: str = ""
    jwt_jwks: str = ""
    jwt_jwks_refresh_s: float = Field(default=300.0, gt=0)
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway_s: float = Field(default=30.0, ge=0, le=600)

    # with a value, the API's /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (for the scraper)
    metrics_token: SecretStr = SecretStr("")
    admin_token: SecretStr = SecretStr(EXAMPLE_ADMIN_TOKEN)
    request_id_secret: SecretStr = SecretStr(EXAMPLE_REQUEST_ID_SECRET)
    max_body_bytes: int = Field(default=16_384, ge=256)
    # a request's whole body must arrive within this time (408 and the connection closed after it), and one
    # client may have at most this many bodies still arriving at once (429 for the next)
    body_timeout_s: float = Field(default=2.0, ge=0.5, le=120)
    body_pending_per_client: int = Field(default=1024, ge=1, le=100_000)
    # a keep-alive connection with no request coming is closed after this long (and a request's headers must
    # arrive within it)
    idle_timeout_s: float = Field(default=30.0, ge=1, le=3600)
    bulk_max_count: int = Field(default=100_000, ge=1)
    # the most days and requests one "generate demo history" may write (POST /api/admin/demo/history)
    demo_max_days: int = Field(default=30, ge=1, le=30)
    demo_max_rows: int = Field(default=1_000_000, ge=1)
    # bot limits on participation, shared by the API processes of a server (0: off): per client address
    # (generous: many people may share one address) and per user; 429 RATE_LIMITED beyond them
    participation_rate_limit: float = Field(default=100.0, ge=0)
    participation_rate_burst: int = Field(default=200, ge=1)
    participation_user_rate_limit: float = Field(default=2.0, ge=0)
    participation_user_rate_burst: int = Field(default=5, ge=1)
    # proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client; empty: none
    trusted_proxies: str = ""
    # Serve POST .../participation-noop: the participation endpoint without Kafka, for benchmarks.
    bench_endpoints: bool = False

    worker_batch_size: int = Field(default=5000, ge=1)
    worker_poll_timeout_s: float = Field(default=0.2, gt=0)
    worker_retry_max_backoff_s: float = Field(default=5.0, gt=0)
    worker_instance_id: str = ""
    worker_session_timeout_ms: int = Field(default=10_000, ge=6000, le=300_000)
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)
    # a pre-queue is drawn at the first request stamped at or after its campaign's startsAt; with none, this long
    # after startsAt once the worker has read the campaign's partition to its end (fcfs/draw.py)
    pre_queue_grace_s: float = Field(default=2.0, ge=0, le=300)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=2, ge=1)
    # Which routes a server process serves: `public` the crowd's (participation, campaign reads, health),
    # `ops` everything but the participation door (a bot must not find a second door with limits of its own),
    # for the dashboard and operators on a port of its own; `all` everything on one port.
    api_plane: Literal["all", "public", "ops"] = "all"
    # the address the operators' plane listens on (`--plane ops`): loopback unless configured, whatever API_HOST
    # says for the crowd's door
    ops_host: str = "127.0.0.1"
    # requests each API process works on at once (the rest wait in the server's queue); 0: the held look-ups'
    # bound (WAIT_MAX_HELD) + 2,048
    api_backpressure: int = Field(default=0, ge=0)
    # the look-up: each API process learns the worker's decisions in bulk this often (the decision feed), and
    # keeps the answers of this many decided requests (the newest; older ones are read once more on demand)
    decision_feed_interval_s: float = Field(default=0.2, ge=0.02, le=10)
    decided_cache_size: int = Field(default=250_000, ge=1000, le=10_000_000)
    # look-ups held until their decision (waitSeconds): at most this many per API process (503 WAITING_FULL past
    # it), and per client address (429 TOO_MANY_WAITING; generous: many people may share one address)
    wait_max_held: int = Field(default=20_000, ge=0, le=1_000_000)
    wait_max_per_client: int = Field(default=1024, ge=1, le=1_000_000)
    # the longest a look-up is held (a longer waitSeconds is held this long, then answered PENDING: the client
    # asks again, as it does after any PENDING)
    wait_max_s: float = Field(default=30.0, ge=0, le=30)
    # CPU niceness added to this server's processes (0: none): on a machine shared with the operators' plane,
    # the crowd's door at a lower priority leaves the operators' calls the CPU they need during a storm
    api_nice: int = Field(default=0, ge=0, le=19)

    lag_sample_interval_s: float = Field(default=1.0, ge=0)
    # how often each API process reads the switch log (pause, resume, end, a moved end) for switches made through
    # another process: every process honours a switch within this time
    campaign_refresh_s: float = Field(default=1.0, gt=0, le=60)
    # how often the releaser (batch/releaser.py) releases the wins not claimed in time: a win is released, and its
    # unit promoted, within about this long of its deadline
    claim_release_interval_s: float = Field(default=1.0, ge=0.05, le=60)
    # the alerter (batch/alerter.py): webhooks (comma-separated URLs, Slack-compatible JSON), how often it looks,
    # how long a partition's lag must stand still to be STALLED, and the window of the growth/503 alerts
    alert_webhook_urls: str = ""
    alert_interval_s: float = Field(default=5.0, ge=0.2, le=300)
    alert_stalled_s: float = Field(default=30.0, ge=1, le=3600)
    alert_window_s: float = Field(default=60.0, ge=1, le=3600)
    timezone: str = "Asia/Seoul"
    api_base_url: str = "http://127.0.0.1:8000"
    # the address people reach the public door at (the Live page's link and QR code to the participant page,
    # /c/{campaignId}); empty: API_BASE_URL
    public_url: str = ""
    # the dashboard's sign-in password; empty: the admin token
    dashboard_password: SecretStr = SecretStr("")
    # how long a signed-in browser stays signed in (its session cookie), reloads and links included
    dashboard_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # the crowd simulator (`python -m crowd`, the Control page): the door it sends its users to (empty: the
    # public door on this machine, http://127.0.0.1:API_PORT), and whether that may be another machine
    crowd_target_url: str = ""
    crowd_allow_remote: bool = False

    @property
    def crowd_target(self) -> str:
        return (self.crowd_target_url or f"http://127.0.0.1:{self.api_port}").rstrip("/")

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol == "SASL_SSL" and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError("KAFKA_SECURITY_PROTOCOL=SASL_* needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        return self

    @model_validator(mode="after")
    def _jwt_needs_a_key(self) -> Settings:
        if self.user_auth == "jwt" and not (
            self.jwt_secret.get_secret_value() or self.jwt_public_key_file or self.jwt_jwks
        ):
            raise ValueError("USER_AUTH=jwt needs JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWT_JWKS")
        return self

    @model_validator(mode="after")
    def _jwks_over_https(self) -> Settings:
        if "://" in self.jwt_jwks and not self.jwt_jwks.startswith("https://"):
            raise ValueError("JWT_JWKS: an https:// URL or a file (keys fetched in the clear could be anyone's)")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dlq_topic(self) -> str:
        """The dead-letter topic: `KAFKA_DLQ_TOPIC`, or the main topic with `.dlq` appended."""
        return self.kafka_dlq_topic or f"{self.kafka_topic}.dlq"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def check_secrets(self, log: logging.Logger) -> None:
        """Refuse to run in production with the example secrets from `.env.example`; warn anywhere else."""
        examples = [
            name
            for name, value, example in (
                ("ADMIN_TOKEN", self.admin_token.get_secret_value(), EXAMPLE_ADMIN_TOKEN),
                ("REQUEST_ID_SECRET", self.request_id_secret.get_secret_value(), EXAMPLE_REQUEST_ID_SECRET),
            )
            if value == example
        ]
        if not examples:
            return
        if self.app_env == "production":
            raise RuntimeError(f"APP_ENV=production needs {' and '.join(examples)} of your own (not the example)")
        log.warning("%s still the example value: anyone can read it in .env.example", " and ".join(examples))


@lru_cache
def get_settings() -> Settings:
    return Settings()
