"""The certseal FastAPI application: ``create_app(settings)`` builds it; nothing runs at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from schemas.api import ErrorResponse
from schemas.catalogue import BUILTIN_CATALOGUE, load_catalogue

from .db import create_tables, make_engine
from .errors import install_error_handlers
from .keyring import Keyring
from .middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from .routers import certificates, health, issuers, keys, page, verify
from .services.events import EventRecorder
from .services.ratelimit import RateLimiter
from .services.verification import RegistryReader
from .settings import Settings

log = logging.getLogger("certseal")

DESCRIPTION = """Signed QR codes for special-operation (work-safety) certificates.

Issuers sign, suspend, revoke and review certificates; anyone verifies with `POST /v1/verify` and gets
`accept` or `reject` with machine-readable reasons. Every error has the shape
`{"error": {"code", "message", "details"}}`.
"""


def create_app(settings: Settings) -> FastAPI:
    """Build the app; the lifespan opens the database and checks every active signing key decrypts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        create_tables(engine)
        keyring = Keyring(engine, settings.require("key_passphrase").encode())
        settings.require("id_hmac_key")
        settings.require("url_signing_key")
        active = keyring.check_active_keys()  # a key that does not decrypt stops start-up here
        events = EventRecorder(engine, settings.event_flush_seconds)
        events.start()
        app.state.engine, app.state.keyring, app.state.events = engine, keyring, events
        app.state.registry = RegistryReader(engine)
        log.info("certseal ready: %d active signing keys", active)
        try:
            yield
        finally:
            app.state.registry.close()
            events.stop()
            engine.dispose()

    app = FastAPI(
        title="certseal",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={500: {"model": ErrorResponse, "description": "internal error (never a traceback)"}},
    )
    app.state.settings = settings
    app.state.catalogue = load_catalogue(settings.catalogue_path or BUILTIN_CATALOGUE)
    app.state.rate_limiter = RateLimiter()
    install_error_handlers(app)
    # Verify first: routes are matched in order and it is by far the most called.
    for router in (verify.router, health.router, keys.router, certificates.router, issuers.router, page.router):
        app.include_router(router)
    page.mount_static(app)
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        max_age=86400,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
