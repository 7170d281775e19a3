"""The certseal FastAPI application: ``create_app(settings)`` builds it; nothing runs at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.routing import Mount
from starlette.types import ASGIApp

from schemas.api import ErrorResponse
from schemas.catalogue import BUILTIN_CATALOGUE, load_catalogue

from . import metrics
from .clock import Clock, SystemClock
from .db import BlockingLane, write_transaction
from .deployment import open_checked_database
from .errors import install_error_handlers
from .fastpath import VerifyFastPath
from .keyring import Keyring
from .middleware import (
    BodyLimitMiddleware,
    LeanCORSMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from .pruner import PeriodicPruner
from .routers import (
    cards,
    catalogue,
    certificate_batches,
    certificates,
    exam_points,
    exam_results,
    exam_sessions,
    health,
    issuers,
    keys,
    page,
    status_lists,
    training_institutions,
    trust_list,
    verify,
)
from .routers import metrics as metrics_router
from .services.batches import BatchRunner
from .services.cards import DEFAULT_CARD_FONT
from .services.events import EventRecorder
from .services.key_usage import KeyUsage
from .services.ratelimit import LocalRateLimiter, SharedRateLimiter, redis_client
from .services.retention import RetentionPolicy
from .services.status_lists import StatusLists, status_list_keyless_issuers
from .services.trust_lists import TrustLists
from .services.verify_store import VerifyStore
from .settings import Settings
from .trust_anchor import TrustAnchor, load_trust_anchor

log = logging.getLogger("certseal")

DESCRIPTION = """Signed QR codes for special-operation (work-safety) certificates.

Issuers sign, suspend, revoke and review certificates; anyone verifies with `POST /v1/verify` and gets
`accept` or `reject` with machine-readable reasons. Every error has the shape
`{"error": {"code", "message", "details"}}`.
"""


def _close(verify_store: VerifyStore, events: EventRecorder, engine: Engine) -> None:
    verify_store.close()
    events.stop()
    engine.dispose()


def log_mode_warnings(settings: Settings) -> None:
    """Say loudly, at every start, that demo or development mode is on."""
    if settings.demo:
        log.warning(
            "DEMO MODE: the published demo admin token and issuer API key authenticate; "
            "never expose this server or its database"
        )
    if settings.card_font_file is None and not DEFAULT_CARD_FONT.is_file():
        log.warning(
            "no font for printed cards at %s (Debian: apt-get install fonts-droid-fallback): card PDFs answer "
            "503 card_font_missing until CERTSEAL_CARD_FONT_FILE names a TrueType CJK font",
            DEFAULT_CARD_FONT,
        )
    if settings.dev:
        log.warning(
            "CERTSEAL_DEV IS ON: development mode (an http://localhost base URL is allowed); "
            "never run production with CERTSEAL_DEV=true"
        )


class CertsealApp(FastAPI):
    """FastAPI with :class:`RequestContextMiddleware` outside everything, Starlette's error layer included.

    So the request id is on every response (a 500 too) and in every line logged during the request,
    and the access line and latency are those the client saw.
    """

    def build_middleware_stack(self) -> ASGIApp:
        mounts = [route.path for route in self.routes if isinstance(route, Mount)]
        return RequestContextMiddleware(super().build_middleware_stack(), mounts=mounts)


def _prepare_published_lists(engine: Engine, trust_lists: TrustLists, clock: Clock) -> None:
    """Name the issuers whose status lists cannot be signed, and bring a service-signed trust list up to date."""
    with Session(engine, expire_on_commit=False) as session, write_transaction(session):
        lacking = status_list_keyless_issuers(session)
        if lacking:
            log.warning(
                "issuers without an active status-list key (their status lists answer 404 until "
                "`certseal issuer rotate-key CODE --use status_list`): %s",
                ", ".join(lacking),
            )
        published = trust_lists.publish_if_outdated(session, now=clock.now())
        if published is not None:
            log.info("trust list %d signed: the newest no longer matched the registry", published.sequence)


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """Build the app; the lifespan opens the database and checks every active signing key decrypts.

    Outside demo mode it refuses a database holding the demo data (``certseal demo purge`` removes it).
    Every handler reads the time from ``clock`` (the system clock unless a test passes its own).
    """

    def open_database() -> tuple[Engine, Keyring, int, TrustAnchor]:
        settings.require("id_hmac_key")
        settings.require("url_signing_key")
        if settings.card_font_file is not None and not settings.card_font_file.is_file():
            raise RuntimeError(f"CERTSEAL_CARD_FONT_FILE: no such file: {settings.card_font_file}")
        anchor = load_trust_anchor(settings)  # before the database: a bad anchor file stops start-up
        return (*open_checked_database(settings), anchor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("certseal starting: %s", settings.startup_summary())
        log_mode_warnings(settings)
        engine, keyring, active, anchor = await to_thread.run_sync(open_database)
        # Request threads and pooled connections are one number: a thread never waits for a connection.
        thread_limiter = to_thread.current_default_thread_limiter()
        thread_limiter.total_tokens = settings.db_pool_size
        key_usage = KeyUsage(engine)
        # The event writer's thread also samples the gauges (pool, queues) for the other workers' scrapes.
        events = EventRecorder(
            engine, settings.event_flush_seconds, also_flush=[key_usage.flush, lambda: metrics.sample(app.state)]
        )
        events.start()
        verify_store = VerifyStore(engine, deadline_ms=settings.verify_db_deadline_ms)
        verify_lane = BlockingLane(
            threads=settings.verify_db_threads,
            deadline_seconds=settings.verify_db_deadline_ms / 1000,
            name="certseal-verify",
        )
        app.state.engine, app.state.keyring, app.state.events = engine, keyring, events
        app.state.status_lists = StatusLists.from_settings(settings, keyring)
        app.state.trust_lists = TrustLists.from_settings(settings, anchor)
        await to_thread.run_sync(_prepare_published_lists, engine, app.state.trust_lists, app.state.clock)
        app.state.key_usage, app.state.thread_limiter = key_usage, thread_limiter
        app.state.verify_store, app.state.verify_lane = verify_store, verify_lane
        redis = None
        if settings.redis_url:
            redis = redis_client(
                settings.redis_url.get_secret_value(), timeout_seconds=settings.redis_timeout_ms / 1000
            )
            app.state.rate_limiter = SharedRateLimiter(redis, on_fallback=metrics.RATE_LIMIT_FALLBACKS.inc)
            health.register_readiness_check(app, "redis", redis.ping, required=False)
        else:
            app.state.rate_limiter = LocalRateLimiter()
        pruner = PeriodicPruner(
            engine,
            policy=RetentionPolicy.from_settings(settings),
            clock=app.state.clock,
            interval_seconds=settings.prune_interval_seconds,
        )
        pruner.start()
        app.state.pruner = pruner
        # Certificate batches: a thread claiming batches by lease, woken by each submission.
        app.state.batch_runner = BatchRunner.started(engine, keyring, settings=settings, clock=app.state.clock)
        log.info("certseal ready: %d active signing keys", active)
        try:
            yield
        finally:
            await pruner.stop()
            await to_thread.run_sync(app.state.batch_runner.stop)
            verify_lane.close()
            if redis is not None:
                await to_thread.run_sync(redis.close)
            await to_thread.run_sync(_close, verify_store, events, engine)
            metrics.mark_process_dead()  # this worker's live gauges leave the sum (multiprocess mode)

    app = CertsealApp(
        title="certseal",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={500: {"model": ErrorResponse, "description": "internal error (never a traceback)"}},
        # FastAPI's built-in OpenTelemetry hooks: unused here (metrics are Prometheus), and with them on
        # every request pays for three provider look-ups (~10 µs).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.catalogue = load_catalogue(settings.catalogue_path or BUILTIN_CATALOGUE)
    # Run by /readyz after the database and schema checks; see api.routers.health.register_readiness_check.
    app.state.readiness_checks = []
    install_error_handlers(app)
    # Verify first: routes are matched in order and it is by far the most called.
    for router in (
        verify.router,
        health.router,
        metrics_router.router,
        keys.router,
        status_lists.router,
        trust_list.router,
        catalogue.router,
        certificates.router,
        cards.router,
        certificate_batches.router,
        issuers.router,
        training_institutions.router,
        exam_points.router,
        exam_sessions.router,
        exam_results.router,
        page.router,
    ):
        app.include_router(router)
    page.mount_static(app)
    # Innermost: POST /v1/verify is answered here, inside every middleware below and any added later.
    app.add_middleware(VerifyFastPath)
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    app.add_middleware(
        LeanCORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        max_age=86400,
    )
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, upload_max_bytes=settings.max_upload_bytes
    )
    app.add_middleware(SecurityHeadersMiddleware)
    return app
