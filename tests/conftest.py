"""Shared fixtures: certseal's own vectors (``tests/vectors/certseal``), the fixed test keys, a genuine credential."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

import crypto
from crypto import (
    CST,
    CertificateClaims,
    KeyState,
    KeyUse,
    Operation,
    SigningKey,
    Status,
    StatusList,
    TrustList,
    TrustListContent,
    TrustListIssuer,
    TrustListKey,
    TrustStore,
)

CERTSEAL_VECTOR_DIR = Path(__file__).parent / "vectors" / "certseal"
TEST_KEY_DIR = CERTSEAL_VECTOR_DIR / "keys"
TEST_KEY_PASSPHRASE = b"certseal-test-vectors-only"  # public, test-only (see tests/vectors/make_vectors.py)
TEST_BASE_URL = "https://cert.example.gov.cn"
TEST_ID_NUMBER = "440106198503122432"  # synthetic, valid GB 11643 check character
INSIDE_VALIDITY = datetime(2027, 3, 15, 9, 30, tzinfo=CST)

# Fixture name -> which certseal vectors it is parametrized with (ids = file names).
_VECTOR_FIXTURES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "certseal_vector": lambda vector: True,
    "accept_vector": lambda vector: vector["expected"]["decision"] == "accept",
    "reject_vector": lambda vector: vector["expected"]["decision"] == "reject",
    "envelope_vector": lambda vector: vector["envelope_hex"] is not None,
}


def _load_certseal_vectors() -> list[tuple[str, dict[str, Any]]]:
    paths = sorted(CERTSEAL_VECTOR_DIR.glob("*.json"))
    return [(path.name, json.loads(path.read_text(encoding="utf-8"))) for path in paths]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``certseal_vector``, ``accept_vector``, ``reject_vector`` and ``envelope_vector``."""
    for name, wanted in _VECTOR_FIXTURES.items():
        if name in metafunc.fixturenames:
            chosen = [(file, vector) for file, vector in _load_certseal_vectors() if wanted(vector)]
            metafunc.parametrize(name, [vector for _, vector in chosen], ids=[file for file, _ in chosen])


def _load_test_key(name: str) -> SigningKey:
    return SigningKey.from_pem((TEST_KEY_DIR / f"{name}.pem").read_bytes(), TEST_KEY_PASSPHRASE)


@pytest.fixture(scope="session")
def es256_key() -> SigningKey:
    """The committed ES256 test issuer key."""
    return _load_test_key("es256-issuer")


@pytest.fixture(scope="session")
def eddsa_key() -> SigningKey:
    """The committed Ed25519 test issuer key."""
    return _load_test_key("eddsa-issuer")


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    """A second ES256 test key that no test trust store trusts."""
    return _load_test_key("es256-other")


@pytest.fixture(scope="session")
def trust(es256_key: SigningKey, eddsa_key: SigningKey) -> TrustStore:
    """A trust store with both test issuer keys under their SPKI kids."""
    store = TrustStore()
    store.add(es256_key.public_key)
    store.add(eddsa_key.public_key)
    return store


@pytest.fixture(scope="session")
def full_claims() -> CertificateClaims:
    """A welding certificate with every field, valid 2025-05-02 through 2031-05-01 (CST)."""
    return CertificateClaims.issue(
        issuer="CN-44",
        holder_name="欧阳晓峰",
        masked_id=crypto.mask_visible(TEST_ID_NUMBER),
        operation=Operation(2, 1),
        valid_from=date(2025, 5, 2),
        valid_until=date(2031, 5, 1),
        review_due=date(2028, 5, 1),
        photo_digest=crypto.photo_digest(b"certseal test photo"),
        status_index=1_048_577,
        serial=bytes.fromhex("5a17c0de00000001"),
        issued_at=datetime(2025, 4, 28, 10, 0, tzinfo=CST),
    )


@pytest.fixture(scope="session")
def genuine_envelope(full_claims: CertificateClaims, es256_key: SigningKey) -> bytes:
    """The full certificate signed by the library with the ES256 test key."""
    return crypto.sign_certificate(full_claims, es256_key)


@pytest.fixture(scope="session")
def genuine_qr_text(genuine_envelope: bytes) -> str:
    """The QR text of :func:`genuine_envelope` under the test base URL."""
    return crypto.encode_qr_text(genuine_envelope, TEST_BASE_URL)


@pytest.fixture(scope="session")
def vector_trust() -> Callable[[dict[str, Any]], TrustStore]:
    """Return a function that builds a vector's trust store (its trust key, else its signer key)."""

    def build(vector: dict[str, Any]) -> TrustStore:
        store = TrustStore()
        store.add(crypto.load_public_key(vector.get("trust_public_key_pem", vector["public_key_pem"]).encode()))
        return store

    return build


def verdict_of(run: Callable[[], Any]) -> tuple[str | None, Any]:
    """Run a verification and return ``(None, result)`` or ``(error code, None)``."""
    try:
        return None, run()
    except crypto.VerificationError as error:
        return error.code, None


# n of P-256, written out here rather than taken from the code under test.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def signature_s(envelope: bytes) -> int:
    """The ``s`` of an ES256 envelope's raw ``r || s`` signature (its last 32 bytes)."""
    return int.from_bytes(envelope[-32:], "big")


def high_s_twin(envelope: bytes) -> bytes:
    """An ES256 envelope with ``s`` replaced by ``n - s``: the other valid form of the same signature."""
    return envelope[:-32] + (P256_ORDER - signature_s(envelope)).to_bytes(32, "big")


def high_s_twin_text(qr_text: str, *, allow_insecure_localhost: bool = False) -> str:
    """The QR text of the high-S twin of the envelope ``qr_text`` carries, under the same base URL."""
    base = qr_text.partition("#")[0].removesuffix(crypto.VERSION_PATH)
    twin = high_s_twin(crypto.envelope_from_qr_text(qr_text))
    return crypto.encode_qr_text(twin, base, allow_insecure_localhost=allow_insecure_localhost)


@pytest.fixture(scope="session")
def verdict() -> Callable[[Callable[[], Any]], tuple[str | None, Any]]:
    """Return :func:`verdict_of`: a verification's error code or its result."""
    return verdict_of


# ---------------------------------------------------------------------------------------------------
# API fixtures (tests/test_api_*.py): a fresh app on a temporary SQLite file per test.
# ---------------------------------------------------------------------------------------------------

import os  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import closing, contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import timedelta  # noqa: E402

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import MetaData, create_engine, text  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from api import migrate  # noqa: E402
from api.db import make_engine  # noqa: E402
from api.main import create_app  # noqa: E402
from api.models import Issuer, SigningKeyRow  # noqa: E402
from api.settings import DEMO_SECRETS, Settings  # noqa: E402
from schemas.idnumber import check_character  # noqa: E402

API_ADMIN_TOKEN = DEMO_SECRETS["admin_token"]
API_ISSUER_OPERATIONS = ["2.1", "2.2", "1.2"]


def id_number_for(birth: date, *, region: str = "440106", sequence: int = 123, check: str | None = None) -> str:
    """A valid GB 11643 number for ``birth``; with ``check``, the first sequence from ``sequence`` ending in it."""
    for candidate in range(sequence, sequence + 1000):
        first17 = f"{region}{birth:%Y%m%d}{candidate % 1000:03d}"
        if check is None or check_character(first17) == check:
            return first17 + check_character(first17)
    raise AssertionError(f"no sequence gives check character {check}")


# The instant the in-process apps see (their clock is a FixedClock): mid-morning, far from midnight in
# China and from 29 February, so no test depends on when it runs.
TEST_NOW = datetime(2026, 6, 15, 10, 0, tzinfo=CST)
TEST_TODAY = TEST_NOW.date()


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The instant the test set, in UTC as the system clock gives it."""
        return self.at.astimezone(UTC)

    def advance(self, **delta: float) -> None:
        """Move the clock forward by a ``timedelta(**delta)``."""
        self.at += timedelta(**delta)


@pytest.fixture
def clock() -> FixedClock:
    """This test's clock, at :data:`TEST_NOW`; every app and runtime the test builds shares it."""
    return FixedClock(TEST_NOW)


@pytest.fixture
def make_app(clock: FixedClock) -> Callable[[Settings], FastAPI]:
    """Return a function building the app for some settings on this test's clock."""

    def build(settings: Settings) -> FastAPI:
        return create_app(settings, clock=clock)

    return build


@dataclass(frozen=True)
class ApiIssuer:
    """An issuer created through the API, with the bearer headers of its API key."""

    code: str
    headers: dict[str, str]
    body: dict[str, Any]


def migrate_sqlite_file(path: Path) -> Path:
    """Create a SQLite file at ``path`` migrated to head, as one self-contained file (no WAL beside it)."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")  # make_engine switches WAL back on when it opens a copy
    return path


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per session; tests copy it rather than migrate their own."""
    return migrate_sqlite_file(tmp_path_factory.mktemp("schema") / "template.db")


@pytest.fixture
def migrated_sqlite(migrated_sqlite_template: Path) -> Callable[[Path], Path]:
    """Return a function copying the migrated template to a path (a file) and returning that path."""

    def copy(path: Path) -> Path:
        shutil.copyfile(migrated_sqlite_template, path)
        return path

    return copy


# With CERTSEAL_TEST_POSTGRES_URL set (a server URL), every test that uses ``database_url`` runs on a fresh
# PostgreSQL database instead of a SQLite file, and only those tests run (see pytest_collection_modifyitems).
POSTGRES_UNDER_TEST = os.environ.get("CERTSEAL_TEST_POSTGRES_URL", "")
POSTGRES_SERVER_URL = POSTGRES_UNDER_TEST or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL run keep the database-backed tests that the SQLite run did not already run there."""
    if not POSTGRES_UNDER_TEST:
        return
    kept, dropped = [], []
    for item in items:
        on_database = "database_url" in getattr(item, "fixturenames", ())
        already_on_postgres = item.get_closest_marker("postgres") is not None
        runs = on_database and not already_on_postgres and item.get_closest_marker("browser") is None
        (kept if runs else dropped).append(item)
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


@contextmanager
def postgres_database(*, template: str | None = None, prefix: str = "certseal_test") -> Iterator[str]:
    """A new PostgreSQL database (its URL), a copy of database ``template`` if given; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_SERVER_URL, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        yield POSTGRES_SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def stored_bytes(engine: Any, folder: Path) -> bytes:
    """Everything the test database holds: the SQLite files in ``folder`` byte for byte (free pages too),
    or on PostgreSQL every value of every table (bytea raw, the rest as text)."""
    if engine.dialect.name == "sqlite":
        return b"".join(path.read_bytes() for path in sorted(folder.glob("certseal.db*")))
    parts: list[bytes] = []
    metadata = MetaData()
    with engine.connect() as connection:
        metadata.reflect(connection)
        for table in metadata.sorted_tables:
            for row in connection.execute(table.select()):
                for value in row:
                    parts.append(bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode())
    return b"\x00".join(parts)


def hold_write_lock(engine: Any, table: str) -> Any:
    """A raw connection of its own holding the lock writers of ``table`` wait on; the caller rolls it back.

    SQLite: the database's write lock (``BEGIN IMMEDIATE``). PostgreSQL: ``LOCK TABLE … IN EXCLUSIVE MODE``,
    which still lets plain reads through, as SQLite's WAL does.
    """
    connection = engine.raw_connection()
    cursor = connection.cursor()
    if engine.dialect.name == "sqlite":
        cursor.execute("BEGIN IMMEDIATE")
    else:
        cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")  # psycopg has begun a transaction
    return connection


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a PostgreSQL database migrated to head once per session (a template: never connect to it)."""
    with postgres_database(prefix="certseal_template") as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()  # CREATE DATABASE ... TEMPLATE needs the template without connections
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database migrated to head (a copy of the session's template), dropped afterwards."""
    with postgres_database(template=postgres_template) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sqlite_or_postgres_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Callable[[Path], Path]
) -> str:
    """A fresh database migrated to head: a SQLite file, then (a second run of the test) a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{migrated_sqlite(tmp_path / 'certseal.db')}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def database_url(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    migrated_sqlite: Callable[[Path], Path],
    request: pytest.FixtureRequest,
) -> str:
    """This test's database migrated to head, as a URL; every CERTSEAL_* variable is removed.

    A copy of the migrated SQLite template, or on the PostgreSQL run a fresh copy of the PostgreSQL template.
    """
    for name in list(os.environ):
        if name.startswith("CERTSEAL_"):
            monkeypatch.delenv(name)
    if POSTGRES_UNDER_TEST:
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{migrated_sqlite(tmp_path / 'certseal.db')}"


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Build demo settings on this test's SQLite file (a copy of the migrated template), ignoring CERTSEAL_*."""

    def build(**overrides: Any) -> Settings:
        return Settings.for_demo(**{"database_url": database_url, **overrides})

    return build


def random_secrets() -> dict[str, str]:
    """The four secrets as fresh random values, by setting name (each different, each strong)."""
    return {name: secrets.token_urlsafe(24) for name in DEMO_SECRETS}


PRODUCTION_BASE_URL = "https://cert.example.gov.cn"


@pytest.fixture
def production_secrets() -> dict[str, str]:
    """This test's four random secrets, by setting name (the same for every app the test starts)."""
    return random_secrets()


@pytest.fixture
def make_production_settings(database_url: str, production_secrets: dict[str, str]) -> Callable[..., Settings]:
    """Build settings outside demo mode (this test's random secrets, an https base URL) on this test's SQLite file."""

    def build(**overrides: Any) -> Settings:
        return Settings(
            **{"database_url": database_url, "public_base_url": PRODUCTION_BASE_URL, **production_secrets, **overrides}
        )

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings], request: pytest.FixtureRequest) -> Settings:
    """Demo settings on a temporary SQLite file; parametrize indirectly with a dict to override some."""
    return make_settings(**getattr(request, "param", {}))


@pytest.fixture
def app(settings: Settings, make_app: Callable[[Settings], FastAPI]) -> FastAPI:
    """The certseal app for :func:`settings` on this test's clock (the lifespan runs inside :func:`app_client`)."""
    return make_app(settings)


@pytest.fixture
def app_client(app: FastAPI) -> Iterator[TestClient]:
    """A test client with the app's lifespan running."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Bearer headers with the demo admin token."""
    return {"Authorization": f"Bearer {API_ADMIN_TOKEN}"}


@pytest.fixture
def make_issuer(app_client: TestClient, admin_headers: dict[str, str]) -> Callable[..., ApiIssuer]:
    """Return a function creating an issuer and an issuer API key through the admin API."""

    def create(code: str, operations: list[str] | None = None, *, alg: str = "ES256") -> ApiIssuer:
        created = app_client.post(
            "/v1/issuers",
            json={
                "code": code,
                "name": f"{code} 应急管理厅",
                "region": code,
                "operations": operations or ["2.1"],
                "alg": alg,
            },
            headers=admin_headers,
        )
        assert created.status_code == 201, created.text
        key = app_client.post(f"/v1/issuers/{code}/api-keys", json={"label": "tests"}, headers=admin_headers)
        assert key.status_code == 201, key.text
        return ApiIssuer(code, {"Authorization": f"Bearer {key.json()['token']}"}, created.json())

    return create


@pytest.fixture
def issuer(make_issuer: Callable[..., ApiIssuer]) -> ApiIssuer:
    """Issuer CN-44 with operations 2.1, 2.2 and 1.2 and its API key."""
    return make_issuer("CN-44", API_ISSUER_OPERATIONS)


@pytest.fixture
def other_issuer(make_issuer: Callable[..., ApiIssuer]) -> ApiIssuer:
    """A second issuer, CN-11, with operation 2.1 and its own API key."""
    return make_issuer("CN-11", ["2.1"])


def api_certificate_body(**overrides: Any) -> dict[str, Any]:
    """A valid issuance request body (welding 2.1, issued today, holder born 1985-03-12)."""
    body: dict[str, Any] = {
        "holder_name": "张伟",
        "holder_id_number": id_number_for(date(1985, 3, 12)),
        "operation": "2.1",
        "issue_date": TEST_TODAY.isoformat(),
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


@pytest.fixture
def issue(app_client: TestClient) -> Callable[..., dict[str, Any]]:
    """Return a function issuing a certificate for an issuer (body overrides as keywords); asserts 201."""

    def run(by: ApiIssuer, **overrides: Any) -> dict[str, Any]:
        response = app_client.post("/v1/certificates", json=api_certificate_body(**overrides), headers=by.headers)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    return run


@pytest.fixture
def verify(app_client: TestClient) -> Callable[..., dict[str, Any]]:
    """Return a function calling POST /v1/verify with a QR text (and options); asserts 200."""

    def run(qr: str, **options: Any) -> dict[str, Any]:
        response = app_client.post("/v1/verify", json={"qr": qr, **options})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    return run


@pytest.fixture
def issuer_signing_key(app: FastAPI, app_client: TestClient) -> Callable[[str], SigningKey]:
    """Return a function giving an issuer's active private key of a use from the app's own keyring."""

    def get(code: str, use: str = "certificate") -> SigningKey:
        with Session(app.state.engine) as session:
            row = session.exec(
                select(SigningKeyRow)
                .join(Issuer, Issuer.id == SigningKeyRow.issuer_id)  # type: ignore[arg-type]
                .where(Issuer.code == code, SigningKeyRow.state == "active", SigningKeyRow.use == use)
            ).one()
        return app.state.keyring.signing_key(row)  # type: ignore[no-any-return]

    return get


def api_certificate_claims(**overrides: Any) -> CertificateClaims:
    """Claims of a CN-44 welding certificate valid today for six years (for hand-signed credentials)."""
    start = TEST_TODAY
    fields: dict[str, Any] = {
        "issuer": "CN-44",
        "holder_name": "李强",
        "masked_id": crypto.mask_visible(id_number_for(date(1990, 7, 1))),
        "operation": Operation(2, 1),
        "valid_from": start,
        "valid_until": start + timedelta(days=6 * 365),
        "review_due": start + timedelta(days=3 * 365),
    }
    fields.update(overrides)
    return CertificateClaims.issue(**fields)


@pytest.fixture(scope="session")
def make_id_number() -> Callable[..., str]:
    """Return :func:`id_number_for`: a valid ID number for a birth date (optionally with a given check character)."""
    return id_number_for


@pytest.fixture(scope="session")
def certificate_body() -> Callable[..., dict[str, Any]]:
    """Return :func:`api_certificate_body`: a valid issuance body with overrides (None drops a field)."""
    return api_certificate_body


@pytest.fixture(scope="session")
def make_claims() -> Callable[..., CertificateClaims]:
    """Return :func:`api_certificate_claims`: claims for a credential signed by hand in a test."""
    return api_certificate_claims


@pytest.fixture
def qr_cache() -> Iterator[Any]:
    """The process's QR image cache, emptied (and its counters reset) before and after the test."""
    from api.services.qrcache import qr_images

    qr_images.clear()
    yield qr_images
    qr_images.clear()


@pytest.fixture
def busy_photo_decoders(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every photo decode slot taken (as by slow uploads) and a 50 ms wait for one; released afterwards."""
    from api.services import photos

    monkeypatch.setattr(photos, "DECODE_WAIT_SECONDS", 0.05)
    for _ in range(photos.DECODE_SLOTS):
        assert photos._decode_slots.acquire(timeout=5)
    try:
        yield
    finally:
        for _ in range(photos.DECODE_SLOTS):
            photos._decode_slots.release()


@pytest.fixture
def catalogue_file(tmp_path: Path) -> Callable[[Callable[[dict[str, Any]], None]], Path]:
    """Return a function writing the built-in catalogue, changed in place by a function, to a file; returns its path."""
    from schemas.catalogue import BUILTIN_CATALOGUE

    def write(change: Callable[[dict[str, Any]], None]) -> Path:
        data = json.loads(BUILTIN_CATALOGUE.read_text(encoding="utf-8"))
        change(data)
        path = tmp_path / f"catalogue-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return path

    return write


# ---------------------------------------------------------------------------------------------------
# The command line in this process, and real `certseal serve` processes (tests/test_demo_mode.py, test_serve.py).
# ---------------------------------------------------------------------------------------------------

import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402

from api.cli import main as cli_main  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent
SERVE_START_SECONDS = 60


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Return a function running ``certseal ARGS`` in this process with only the given CERTSEAL_* variables.

    It answers (exit code, stdout, stderr).
    """

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for name in [name for name in os.environ if name.startswith("CERTSEAL_")]:
            monkeypatch.delenv(name)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = cli_main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def certseal_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any CERTSEAL_* variable, plus ``variables``, for a certseal subprocess."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    env["PYTHONPATH"] = str(REPOSITORY)
    env.update(variables)
    return env


def run_certseal(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m api.cli ARGS`` to the end and return what it printed (stdout and stderr apart)."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


@dataclass
class ServeProcess:
    """A running ``certseal serve`` on a free loopback port and everything it has printed so far."""

    process: subprocess.Popen[str]
    base_url: str
    lines: list[str]

    @property
    def output(self) -> str:
        """Everything printed (stdout and stderr together) up to now."""
        return "\n".join(self.lines)

    def stop(self) -> None:
        """Terminate the server (kill it if it hangs) and wait for its output to end."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Return a function starting ``certseal serve ARGS`` (env: CERTSEAL_* given only) and waiting for /healthz.

    Every server started is stopped at the end of the test.
    """
    started: list[ServeProcess] = []

    def start(*args: str, env: dict[str, str]) -> ServeProcess:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        server = ServeProcess(process, f"http://127.0.0.1:{port}", [])
        started.append(server)

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                server.lines.append(line.rstrip("\n"))

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + SERVE_START_SECONDS
        while True:
            assert process.poll() is None, f"certseal serve exited {process.returncode}:\n{server.output}"
            assert time.monotonic() < deadline, f"certseal serve did not answer /healthz:\n{server.output}"
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def seed_demo_data(clock: FixedClock) -> Callable[[Settings], list[Any]]:
    """Return a function seeding the demo data set (as ``serve --demo`` does) into the settings' database."""
    from api.demo import seed_demo, seed_demo_exam
    from api.runtime import runtime

    def seed(settings: Settings) -> list[Any]:
        with runtime(settings, clock=clock) as rt:
            certificates = seed_demo(rt)
            seed_demo_exam(rt)
            return certificates

    return seed


# ---------------------------------------------------------------------------------------------------
# Observability (tests/test_metrics.py, test_access_log.py, test_readiness.py): metric values and log lines.
# ---------------------------------------------------------------------------------------------------

import io  # noqa: E402
import logging  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from api.logs import JsonFormatter, RequestIdFilter  # noqa: E402


def metric_samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition by (sample name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


@pytest.fixture
def scrape(app_client: TestClient) -> Callable[[], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """Return a function reading GET /metrics (asserting 200) into :func:`metric_samples`."""

    def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = app_client.get("/metrics")
        assert response.status_code == 200, response.text
        return metric_samples(response.text)

    return read


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample's value from :func:`metric_samples` (0 when absent: a labelled child not made yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class LogCapture:
    """Log lines written through a JSON handler on the root logger while a test runs."""

    stream: io.StringIO

    @property
    def text(self) -> str:
        """Everything written so far."""
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line so far, parsed with json.loads."""
        return [json.loads(line) for line in self.text.splitlines()]

    def access(self) -> list[dict[str, Any]]:
        """The access lines (logger ``certseal.access``) so far."""
        return [line for line in self.lines() if line["logger"] == "certseal.access"]


@pytest.fixture
def json_logs() -> Iterator[LogCapture]:
    """Capture every record at INFO and above as the service writes it with CERTSEAL_LOG_FORMAT=json.

    The test client's own lines (logger ``httpx``, which quote the full URL it sent) are left out: the
    service never logs through httpx.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(lambda record: not record.name.startswith("httpx"))
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield LogCapture(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# --- Trust lists and offline verdicts (issue 11) -----------------------------------------------------

TRUST_T0 = datetime(2026, 1, 1, tzinfo=UTC)
"""not_before of the current CN-44 keys; the retired key signed until then."""
TRUST_NOW = TEST_NOW.astimezone(UTC)
"""The verification time of the trust-list tests: 2026-06-15T02:00:00Z (10:00 in China)."""
STATUS_BASE = f"{TEST_BASE_URL}/v1/status-lists/CN-44"
STATUS_INDEX = (1 << 17) + 42
"""A certificate's signed status index: list 1, entry 42."""
STATUS_URI = f"{STATUS_BASE}/1"
WELDING = Operation(2, 1)
CERTIFICATE_IAT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class TrustWorld:
    """An anchor, CN-44 (current, retired and status-list keys) and CN-11, with helpers that sign at fixed times."""

    anchor: SigningKey
    certificate_key: SigningKey
    retired_key: SigningKey
    status_key: SigningKey
    other_issuer_key: SigningKey

    def key(
        self,
        signing: SigningKey,
        use: KeyUse = KeyUse.CERTIFICATE,
        *,
        not_before: datetime = TRUST_T0,
        not_after: datetime | None = None,
        verify_until: datetime | None = None,
        state: KeyState = KeyState.ACTIVE,
        compromised_at: datetime | None = None,
    ) -> TrustListKey:
        """A trust-list entry for ``signing``'s public key."""
        return TrustListKey(
            kid=signing.kid,
            use=use,
            public_key=signing.public_key,
            not_before=not_before,
            not_after=not_after,
            verify_until=verify_until,
            state=state,
            compromised_at=compromised_at,
        )

    def cn44_keys(self) -> tuple[TrustListKey, ...]:
        """CN-44's keys: the active ES256 key, the Ed25519 key retired at TRUST_T0, the status-list key."""
        return (
            self.key(self.certificate_key),
            self.key(
                self.retired_key,
                not_before=datetime(2024, 1, 1, tzinfo=UTC),
                not_after=TRUST_T0,
                state=KeyState.RETIRED,
            ),
            self.key(self.status_key, KeyUse.STATUS_LIST),
        )

    def content(self, cn44_keys: tuple[TrustListKey, ...] | None = None) -> TrustListContent:
        """CN-11 (item 1.1) and CN-44 (items 2.1 and 2.2, keys :meth:`cn44_keys` unless given)."""
        return TrustListContent(
            (
                TrustListIssuer(
                    code="CN-11",
                    name="北京市应急管理局",
                    region="北京",
                    operations=("1.1",),
                    status_base=f"{TEST_BASE_URL}/v1/status-lists/CN-11",
                    keys=(self.key(self.other_issuer_key),),
                ),
                TrustListIssuer(
                    code="CN-44",
                    name="广东省应急管理厅",
                    region="广东",
                    operations=("2.1", "2.2"),
                    status_base=STATUS_BASE,
                    keys=self.cn44_keys() if cn44_keys is None else cn44_keys,
                ),
            )
        )

    def signed(
        self,
        content: TrustListContent | None = None,
        *,
        sequence: int = 7,
        iat: datetime = TRUST_NOW - timedelta(hours=1),
        lifetime: timedelta = timedelta(days=30),
    ) -> bytes:
        """The signed trust list over ``content`` (default :meth:`content`)."""
        return crypto.sign_trust_list(
            content or self.content(), self.anchor, sequence=sequence, iat=iat, exp=iat + lifetime
        )

    def trust_list(self, content: TrustListContent | None = None) -> TrustList:
        """:meth:`signed`, verified at TRUST_NOW."""
        return crypto.verify_trust_list(self.signed(content), self.anchor.public_key, now=TRUST_NOW)

    def certificate(
        self,
        key: SigningKey | None = None,
        *,
        issuer: str = "CN-44",
        issued_at: datetime = CERTIFICATE_IAT,
        operation: Operation = WELDING,
        status_index: int | None = STATUS_INDEX,
        valid_until: date = date(2032, 2, 28),
    ) -> str:
        """The QR text of a certificate signed by ``key`` (default the active CN-44 key) at ``issued_at``."""
        claims = CertificateClaims.issue(
            issuer=issuer,
            holder_name="欧阳晓峰",
            masked_id=crypto.mask_visible(TEST_ID_NUMBER),
            operation=operation,
            valid_from=issued_at.astimezone(CST).date(),
            valid_until=valid_until,
            status_index=status_index,
            serial=bytes.fromhex("5a17c0de00000042"),
            issued_at=issued_at,
        )
        return crypto.encode_qr_text(crypto.sign_certificate(claims, key or self.certificate_key), TEST_BASE_URL)

    def status_list(
        self,
        entries: dict[int, Status] | None = None,
        *,
        key: SigningKey | None = None,
        uri: str = STATUS_URI,
        iat: datetime = TRUST_NOW - timedelta(minutes=10),
    ) -> bytes:
        """A Status List Token for ``uri`` (valid 24 h from ``iat``) with ``entries`` set, signed by ``key``."""
        status_list = StatusList.new()
        for index, value in (entries or {}).items():
            status_list.set(index, value)
        return crypto.sign_status_list(status_list, key or self.status_key, uri=uri, iat=iat)


@pytest.fixture(scope="session")
def trust_world(es256_key: SigningKey, eddsa_key: SigningKey, other_key: SigningKey) -> TrustWorld:
    """The trust-list world: fresh anchor and status-list keys, the committed test keys as certificate keys."""
    return TrustWorld(
        anchor=SigningKey.generate("ES256"),
        certificate_key=es256_key,
        retired_key=eddsa_key,
        status_key=SigningKey.generate("ES256"),
        other_issuer_key=other_key,
    )


TRUST_ANCHOR_PASSPHRASE = "trust anchor passphrase for tests"


@pytest.fixture
def anchor(tmp_path: Path) -> tuple[SigningKey, Path, Path]:
    """A fresh ES256 trust anchor: the key, its encrypted PKCS#8 file (TRUST_ANCHOR_PASSPHRASE) and its public PEM."""
    key = SigningKey.generate("ES256")
    private_file = tmp_path / "anchor.key.pem"
    private_file.write_bytes(key.to_pem(TRUST_ANCHOR_PASSPHRASE.encode()))
    public_file = tmp_path / "anchor.pub.pem"
    public_file.write_bytes(key.public_pem())
    return key, private_file, public_file
