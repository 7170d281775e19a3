"""The verify path's database access: the registry read, the API-key lookup and the holder-check counters.

It runs on the verify lane's threads (:class:`api.db.BlockingLane`), never on the event loop. Each
lane thread keeps one autocommitting DB-API connection of its own: skipping the pool's checkout and
reset-on-return halves the cost of the registry read, and the lane's fixed thread count bounds the
connections. A failed connection is dropped and the thread's next call opens a new one.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..metrics import REGISTRY_READ_ERRORS
from .errors import HolderCheckLimited, RegistryUnavailable

_REGISTRY_SQL = """
    SELECT k.state, i.code, i.name, i.operations, c.id, c.status, c.review_due, c.envelope_sha256, c.id_hmac,
           c.id_hmac_version, c.photo_type, k.not_before, k.not_after, k.compromised_at, c.created_at,
           c.status_changed_at, c.status_index, i.service_phone, e.code, e.name,
           (SELECT s.serial FROM certificates s WHERE s.supersedes_id = c.id) AS superseded_by
    FROM signing_keys k
    JOIN issuers i ON i.id = k.issuer_id
    LEFT JOIN certificates c ON c.serial = {p}
    LEFT JOIN exam_points e ON e.id = c.exam_point_id
    WHERE k.kid = {p} AND k.use = 'certificate'
"""
_API_KEY_SQL = "SELECT id, secret_hash, scope, issuer_id, revoked_at, expires_at FROM api_keys WHERE prefix = {p}"
# Check and count in one statement: the row is created, or counted up only while under the limit;
# no row back means the limit was already reached. Atomic across threads, processes and replicas.
_COUNT_FAILURE_SQL = """
    INSERT INTO holder_check_counters (certificate_id, client, window_start, failures, expires_at)
    VALUES ({p}, {p}, {p}, 1, {p})
    ON CONFLICT (certificate_id, client, window_start)
    DO UPDATE SET failures = holder_check_counters.failures + 1
    WHERE holder_check_counters.failures < {p}
    RETURNING failures
"""
_READ_FAILURES_SQL = """
    SELECT client, failures FROM holder_check_counters
    WHERE certificate_id = {p} AND ((client = {p} AND window_start = {p}) OR (client = '*' AND window_start = {p}))
"""
_PRUNE_SQL = "DELETE FROM holder_check_counters WHERE expires_at < {p}"
ALL_CLIENTS = "*"
CLIENT_WINDOW_SECONDS = 3600
PRUNE_EVERY_SECONDS = 600


@dataclass(frozen=True)
class RegistryEntry:
    """What the registry knows about a credential's key, issuer and certificate."""

    key_state: str
    issuer_code: str
    issuer_name: str
    operations: frozenset[str]
    certificate_id: str | None
    status: str | None
    review_due: date | None
    envelope_sha256: str | None
    id_hmac: bytes | None
    id_hmac_version: int | None
    has_photo: bool
    key_not_before: datetime
    key_not_after: datetime | None
    key_compromised_at: datetime | None
    registered_at: datetime | None  # when the certificate entered the registry
    status_since: datetime | None
    status_index: int | None
    issuer_service_phone: str | None
    exam_point_code: str | None = None  # where the exam behind the certificate was taken (null: no exam recorded)
    exam_point_name: str | None = None
    superseded_by: str | None = None  # the serial of the reissued certificate that replaced this one


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key row as the verify path needs it."""

    id: str
    secret_hash: bytes
    scope: str
    issuer_id: str | None
    revoked: bool
    expires_at: datetime | None = None


@dataclass(frozen=True)
class HolderCheckLimits:
    """Wrong ID numbers allowed per certificate: per client per hour, and for all clients per window."""

    per_client: int
    all_clients: int
    all_clients_window_seconds: int


class VerifyStore:
    """Per-thread autocommitting connections and the few statements the verify path runs."""

    def __init__(self, engine: Engine, *, deadline_ms: int) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._deadline_ms = deadline_ms
        placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = {
            name: statement.format(p=placeholder)
            for name, statement in {
                "registry": _REGISTRY_SQL,
                "api_key": _API_KEY_SQL,
                "count_failure": _COUNT_FAILURE_SQL,
                "read_failures": _READ_FAILURES_SQL,
                "prune": _PRUNE_SQL,
            }.items()
        }
        self._driver_error: type[BaseException] = engine.dialect.loaded_dbapi.Error
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        pooled = self._engine.raw_connection()
        pooled.detach()  # ours for good: never returned to, or reset by, the pool
        connection = pooled.dbapi_connection
        # Lock waits end within half the verify deadline (as on PostgreSQL), so a call stuck on a lock ends
        # by itself and frees its lane thread, while a burst of holder-check writes still queues through.
        if self._sqlite:
            connection.execute(f"PRAGMA busy_timeout = {max(int(self._deadline_ms) // 2, 10)}")
        else:
            connection.autocommit = True  # no transaction held open between reads
            with connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {int(self._deadline_ms)}")
                cursor.execute(f"SET lock_timeout = {max(int(self._deadline_ms) // 2, 10)}")
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._lock:
                self._connections.remove(connection)
            with contextlib.suppress(self._driver_error):  # it may be broken already
                connection.close()

    def close(self) -> None:
        """Close every thread's connection (at shutdown, when the lane threads are idle)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(self._driver_error):
                connection.close()

    def _fetch(self, name: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            cursor = self._connection().cursor()
            try:
                cursor.execute(self._sql[name], params)
                return list(cursor.fetchall())
            finally:
                cursor.close()
        except (SQLAlchemyError, self._driver_error):
            self._drop_connection()
            REGISTRY_READ_ERRORS.labels("database_error").inc()
            raise RegistryUnavailable() from None

    def registry_entry(self, *, serial: str, kid: str) -> RegistryEntry | None:
        """Read the key, issuer and certificate rows in one query."""
        rows = self._fetch("registry", (serial, kid))
        return _entry(rows[0]) if rows else None

    def api_key(self, prefix: str) -> ApiKeyRecord | None:
        """The API key with this lookup prefix, if any."""
        rows = self._fetch("api_key", (prefix,))
        if not rows:
            return None
        key_id, secret_hash, scope, issuer_id, revoked_at, expires_at = rows[0]
        return ApiKeyRecord(key_id, bytes(secret_hash), scope, issuer_id, revoked_at is not None, _utc(expires_at))

    def check_holder_allowed(self, *, certificate_id: str, client: str, limits: HolderCheckLimits, now: float) -> None:
        """Raise :class:`HolderCheckLimited` if this client, or all clients together, used up the limit."""
        at = now
        client_window, all_window = _windows(limits, at)
        rows = self._fetch("read_failures", (certificate_id, client, client_window, all_window))
        free_at = _limited_until(rows, limits, client_window=client_window, all_window=all_window)
        if free_at is not None:
            raise HolderCheckLimited(retry_after=free_at - at)

    def count_holder_failure(self, *, certificate_id: str, client: str, limits: HolderCheckLimits, now: float) -> None:
        """Count a wrong ID number for the client and for all clients, or raise :class:`HolderCheckLimited`.

        Both counters move in one transaction, each by a conditional upsert: a guess past either limit
        counts nowhere and is refused, whatever runs at the same time. The refusal's ``retry_after`` is
        the time until every window at its limit has ended.
        """
        at = now
        client_window, all_window = _windows(limits, at)
        counters = (
            (client, client_window, client_window + CLIENT_WINDOW_SECONDS, limits.per_client),
            (ALL_CLIENTS, all_window, all_window + limits.all_clients_window_seconds, limits.all_clients),
        )
        refused_until: int | None = None
        try:
            connection = self._connection()
            cursor = connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE" if self._sqlite else "BEGIN")
                try:
                    for who, window, expires, limit in counters:
                        cursor.execute(self._sql["count_failure"], (certificate_id, who, window, expires, limit))
                        if cursor.fetchone() is None:
                            refused_until = expires
                            break
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("ROLLBACK" if refused_until is not None else "COMMIT")
                if refused_until is not None:
                    # Which other window is full too (read after the rollback; a refusal is the rare path).
                    cursor.execute(self._sql["read_failures"], (certificate_id, client, client_window, all_window))
                    full = _limited_until(cursor.fetchall(), limits, client_window=client_window, all_window=all_window)
                    raise HolderCheckLimited(retry_after=max(refused_until, full or 0) - at)
                if at >= self._next_prune:
                    self._next_prune = at + PRUNE_EVERY_SECONDS
                    cursor.execute(self._sql["prune"], (int(at),))
            finally:
                cursor.close()
        except (SQLAlchemyError, self._driver_error):
            self._drop_connection()
            REGISTRY_READ_ERRORS.labels("database_error").inc()
            raise RegistryUnavailable() from None


def _windows(limits: HolderCheckLimits, at: float) -> tuple[int, int]:
    seconds = int(at)
    all_clients = limits.all_clients_window_seconds
    return seconds - seconds % CLIENT_WINDOW_SECONDS, seconds - seconds % all_clients


def _limited_until(rows: Any, limits: HolderCheckLimits, *, client_window: int, all_window: int) -> int | None:
    """When the last window at its limit among ``(client, failures)`` rows ends, or None if none is."""
    ends = [
        (all_window + limits.all_clients_window_seconds)
        if client == ALL_CLIENTS
        else (client_window + CLIENT_WINDOW_SECONDS)
        for client, failures in rows
        if failures >= (limits.all_clients if client == ALL_CLIENTS else limits.per_client)
    ]
    return max(ends, default=None)


def _utc(value: datetime | str | None) -> datetime | None:
    """A timestamp column as an aware UTC datetime (SQLite's driver hands back naive UTC text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _entry(row: Any) -> RegistryEntry:
    key_state, issuer_code, issuer_name, operations, certificate_id, status, review_due, envelope_sha256 = row[:8]
    id_hmac, id_hmac_version, photo_type, not_before, not_after, compromised_at, created_at, status_since = row[8:16]
    if isinstance(operations, str):  # SQLite hands JSON columns back as text
        operations = json.loads(operations)
    if isinstance(review_due, str):  # and dates as ISO strings
        review_due = date.fromisoformat(review_due)
    return RegistryEntry(
        key_state=key_state,
        issuer_code=issuer_code,
        issuer_name=issuer_name,
        operations=frozenset(operations or ()),
        certificate_id=certificate_id,
        status=status,
        review_due=review_due,
        envelope_sha256=envelope_sha256,
        id_hmac=bytes(id_hmac) if id_hmac is not None else None,
        id_hmac_version=id_hmac_version,
        has_photo=photo_type is not None,
        key_not_before=_utc(not_before),  # type: ignore[arg-type]  # never NULL
        key_not_after=_utc(not_after),
        key_compromised_at=_utc(compromised_at),
        registered_at=_utc(created_at),
        status_since=_utc(status_since),
        status_index=row[16],
        issuer_service_phone=row[17],
        exam_point_code=row[18],
        exam_point_name=row[19],
        superseded_by=row[20],
    )
