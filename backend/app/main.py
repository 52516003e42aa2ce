"""The FastAPI application, served by `python -m backend`."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from backend.app.errors import install_error_handlers
from backend.app.lag_sampler import LagSampler
from backend.app.observability import BATCHED, RequestContextMiddleware, configure_logging, metrics_response
from backend.app.periodic import Periodic
from backend.app.rsgi import RsgiApp
from backend.app.serve import follow_server
from backend.app.stop_signal import on_stop_signal
from backend.contract.responses import document_identity
from backend.door.body_deadline import BodyDeadlines
from backend.door.campaign_cache import CampaignCache
from backend.door.decisions import DecisionFeed
from backend.door.handler import ParticipationDoor
from backend.door.intake import Intake
from backend.door.intake_seconds import IntakeSeconds
from backend.door.lookup import Lookups
from backend.door.producer import AsyncProducer
from backend.door.rate_limit import RATE_LIMIT_FILE, Limits, SharedBuckets
from backend.queries.kafka_view import KafkaView
from backend.routes import (
    admin,
    batch,
    campaigns,
    crowd,
    demo,
    health,
    operations,
    page,
    participation,
    stats,
    support,
    switches,
)
from fcfs import heap
from fcfs.aggregation import abandon_orphaned_jobs
from fcfs.clients import ClientAddresses
from fcfs.db import make_engine
from fcfs.kafka import producer_config
from fcfs.request_ids import RequestIdSigner
from fcfs.settings import Settings, get_settings
from fcfs.simulated import SimulationProofs
from fcfs.tokens import UserTokens

log = logging.getLogger(__name__)


def _abandon_orphaned_jobs(engine: Engine) -> None:
    try:
        abandon_orphaned_jobs(engine)
    except Exception as exc:  # noqa: BLE001 - the database may be away at start-up; the next start retries
        log.warning("could not check for abandoned aggregation jobs: %s", exc)


def user_tokens(settings: Settings) -> UserTokens | None:
    """USER_AUTH=jwt: the token verifier (its JWKS refreshed in the background); none: a warning."""
    if settings.user_auth == "none":
        log.warning("USER_AUTH=none: participation trusts the userId in the body; set USER_AUTH=jwt in production")
        return None
    tokens = UserTokens(settings)
    tokens.start()
    return tokens


def create_app(settings: Settings | None = None) -> ParticipationDoor:
    """The FastAPI app behind the participation door (which serves the hot path itself)."""
    settings = settings or get_settings()
    settings.check_secrets(log)
    configure_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        follow_server()
        engine = make_engine(isolation_level="READ COMMITTED", settings=settings)
        app.state.settings = settings
        app.state.engine = engine
        app.state.signer = RequestIdSigner(settings.request_id_secret.get_secret_value())
        feed = DecisionFeed(
            engine,
            group=settings.kafka_consumer_group,
            topic=settings.kafka_topic,
            interval_s=settings.decision_feed_interval_s,
            cache_size=settings.decided_cache_size,
            held_max=settings.wait_max_held,
            held_per_client=settings.wait_max_per_client,
        )
        app.state.lookups = door.lookups = Lookups(
            engine,
            app.state.signer,
            feed,
            group=settings.kafka_consumer_group,
            topic=settings.kafka_topic,
            max_wait_s=settings.wait_max_s,
        )
        app.state.producer = AsyncProducer(producer_config(settings), settings.kafka_produce_timeout_ms / 1000)
        app.state.campaigns = CampaignCache(
            engine, lambda: app.state.producer.partitions(settings.kafka_topic), on_restocked=feed.refollow
        )
        app.state.lookups.campaigns = app.state.campaigns
        app.state.batch_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aggregate")
        app.state.manual_runs = threading.BoundedSemaphore(batch.MAX_MANUAL_RUNS)
        app.state.lock_engine = make_engine(
            pooled=False, settings=settings
        )  # connections that hold an aggregation's lock
        app.state.kafka_view = KafkaView(settings)
        app.state.clients = clients
        limits = Limits(
            SharedBuckets(os.environ.get(RATE_LIMIT_FILE)),
            settings.participation_rate_limit,
            settings.participation_rate_burst,
            settings.participation_user_rate_limit,
            settings.participation_user_rate_burst,
        )
        tokens = user_tokens(settings)
        intake_seconds = IntakeSeconds(engine)
        app.state.intake = door.intake = Intake(
            settings,
            app.state.producer,
            app.state.signer,
            app.state.campaigns,
            limits,
            SimulationProofs(settings.request_id_secret.get_secret_value()),
            tokens,
            intake_seconds,
        )
        # runs a crashed process left STARTED are marked FAILED (off the event loop; the database may be away)
        app.state.batch_executor.submit(_abandon_orphaned_jobs, engine)
        sampler = LagSampler(app.state.kafka_view, engine, settings.lag_sample_interval_s)
        sampler.start()
        switches = Periodic("campaign switches", app.state.campaigns.follow_switches, settings.campaign_refresh_s)
        switches.start()
        feed.start()
        # asked to stop: the held look-ups answered at once, so the server's drain does not wait out their waits
        forget_stop_signal = on_stop_signal(asyncio.get_running_loop(), feed.stop_holding)
        intake_seconds.start()
        metrics_flusher = asyncio.create_task(BATCHED.flush_every(1.0))
        heap.settle()  # start-up is done: what exists now lives as long as the process
        try:
            yield
        finally:
            forget_stop_signal()
            metrics_flusher.cancel()
            BATCHED.flush()
            await sampler.stop()
            await switches.stop()
            await feed.stop()
            app.state.lookups.close()
            await intake_seconds.stop()
            app.state.batch_executor.shutdown(wait=True, cancel_futures=False)
            app.state.lock_engine.dispose()
            app.state.kafka_view.close()
            app.state.producer.close()
            if tokens is not None:
                tokens.close()
            limits.buckets.close()
            bodies.close()
            engine.dispose()

    app = FastAPI(
        title="FCFS campaign API",
        version="1.0.0",
        description="First-come-first-served campaigns: participation through Kafka, live status, operations.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    document_identity(app, settings.user_auth)
    clients = ClientAddresses(settings.trusted_proxies)
    bodies = BodyDeadlines(settings.body_timeout_s, settings.body_pending_per_client)
    app.add_middleware(RequestContextMiddleware)
    app.add_api_route("/metrics", metrics_response, methods=["GET"], include_in_schema=False)
    if settings.api_plane != "ops":  # the participation doors only where the crowd's limits count them
        app.include_router(participation.router)
        app.include_router(page.router)
        if settings.bench_endpoints:
            app.include_router(participation.bench_router)
    app.include_router(participation.lookup_router)
    app.include_router(campaigns.router)
    if settings.api_plane != "public":  # the operators' plane: served apart from the crowd's door (API_PLANE)
        for router in (
            admin.router,
            switches.router,
            batch.router,
            stats.router,
            operations.router,
            support.router,
            demo.router,
            crowd.router,
        ):
            app.include_router(router)
    app.include_router(health.router)
    door = ParticipationDoor(
        app,
        max_body_bytes=settings.max_body_bytes,
        noop=settings.bench_endpoints,
        clients=clients,
        bodies=bodies,
        serves=settings.api_plane != "ops",
    )
    return door


app = create_app()
rsgi_app = RsgiApp(app)  # what `python -m backend` serves: the same app on granian's RSGI interface
