"""Settings and an open database for work outside a request: the CLI's tasks, the demo seeder, bench scripts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy.engine import Engine

from schemas.catalogue import BUILTIN_CATALOGUE, Catalogue, load_catalogue

from .clock import Clock, SystemClock
from .deployment import open_checked_database
from .keyring import Keyring
from .services.status_lists import StatusLists
from .services.trust_lists import TrustLists
from .settings import Settings, SettingsError
from .trust_anchor import load_trust_anchor


def _problem(error: object) -> str:
    """One pydantic error as "CERTSEAL_NAME: message" (a whole-model check names its variables itself)."""
    assert isinstance(error, dict)
    message = str(error["msg"]).removeprefix("Value error, ")
    location = "_".join(str(part) for part in error["loc"]).upper()
    return f"CERTSEAL_{location}: {message}" if location else message


def load_settings(*, demo: bool, **overrides: object) -> Settings:
    """Load settings from the environment (plus overrides) without echoing any value on error.

    ``demo`` (``--demo``) and ``CERTSEAL_DEMO=true`` are the same: either fills in the published demo
    secrets that the environment leaves unset.
    """
    try:
        settings = Settings(demo=True, **overrides) if demo else Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError("; ".join(map(_problem, exc.errors(include_input=False, include_url=False)))) from None
    return settings.with_demo_secrets()


@dataclass
class Runtime:
    """An engine, keyring, catalogue, clock, status lists and trust lists for work outside a request."""

    settings: Settings
    engine: Engine
    keyring: Keyring
    catalogue: Catalogue
    status_lists: StatusLists
    trust_lists: TrustLists
    clock: Clock = field(default_factory=SystemClock)


@contextmanager
def runtime(settings: Settings, *, clock: Clock | None = None) -> Iterator[Runtime]:
    """Open the database and the keyring; dispose afterwards.

    Refuses a database not at the newest schema revision and, outside demo mode, one holding demo data,
    and stops on a trust anchor file that cannot be read.
    """
    anchor = load_trust_anchor(settings)
    engine, keyring, _active = open_checked_database(settings)
    try:
        catalogue = load_catalogue(settings.catalogue_path or BUILTIN_CATALOGUE)
        yield Runtime(
            settings,
            engine,
            keyring,
            catalogue,
            StatusLists.from_settings(settings, keyring),
            TrustLists.from_settings(settings, anchor),
            clock or SystemClock(),
        )
    finally:
        engine.dispose()
