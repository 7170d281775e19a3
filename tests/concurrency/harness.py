"""Real servers, real databases and real concurrent HTTP, shared by the concurrency tests and bench/bench_load.py.

Nothing here imports the service: servers run as ``python3 -m api.cli serve`` subprocesses on a database
migrated with ``python3 -m api.cli db upgrade`` and are provisioned over HTTP only, as a deployment is.

* :class:`Server` — one ``certseal serve`` process on a free loopback port (stopped by :meth:`Server.stop`).
* :func:`deploy` — a database (a temporary SQLite file, or a fresh PostgreSQL database that is dropped
  afterwards) with one or more servers on it, optionally reaching PostgreSQL through a
  :class:`FreezableProxy`.
* :class:`FreezableProxy` — a TCP proxy whose ``freeze()`` stops every byte in both directions without
  closing a socket (a frozen link), and ``thaw()`` lets them flow again.
* :func:`fire_together` — send many requests at once (all released by one event) and return every
  answer with its status, error code and time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx

from schemas.idnumber import check_character

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
REDIS_PORT = 6379
POSTGRES_ADMIN_URL = f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres"
PUBLIC_BASE_URL = "https://cert.test.example"
CST = timezone(timedelta(hours=8))
START_TIMEOUT_SECONDS = 60.0

# Settings every test server gets. The per-address verify rate limit (600/min) is lifted: all test
# clients share 127.0.0.1, and it is not what these tests are about (the holder-check limits are).
BASE_SETTINGS: dict[str, str] = {"CERTSEAL_VERIFY_RATE_PER_MINUTE": "100000000"}


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def a_month_ago() -> date:
    """An issue date 30 days back (CST): valid in the server's eyes even if midnight passes during the test."""
    return datetime.now(CST).date() - timedelta(days=30)


_sequences = itertools.count(1)


def id_number(birth: date = date(1985, 3, 12), sequence: int | None = None) -> str:
    """A checksum-valid, fictitious Guangzhou ID number (a new sequence each call unless given)."""
    number = next(_sequences) if sequence is None else sequence
    first17 = f"440106{birth:%Y%m%d}{number % 1000:03d}"
    return first17 + check_character(first17)


def wrong_id_numbers(holder: str, count: int) -> list[str]:
    """``count`` distinct, checksum-valid ID numbers with the holder's birth date, none of them the holder's."""
    birth = datetime.strptime(holder[6:14], "%Y%m%d").date()
    own = int(holder[14:17])
    return [id_number(birth, (own + offset) % 1000) for offset in range(1, count + 1)]


@dataclass(frozen=True)
class Secrets:
    """The four secrets a non-demo server needs; every server on one database shares them."""

    admin_token: str
    key_passphrase: str
    id_hmac_key: str
    url_signing_key: str

    @classmethod
    def new(cls) -> Secrets:
        """Fresh random secrets for one run."""
        return cls(*(secrets.token_urlsafe(32) for _ in range(4)))

    def environment(self) -> dict[str, str]:
        """As ``CERTSEAL_*`` variables."""
        return {
            "CERTSEAL_ADMIN_TOKEN": self.admin_token,
            "CERTSEAL_KEY_PASSPHRASE": self.key_passphrase,
            "CERTSEAL_ID_HMAC_KEY": self.id_hmac_key,
            "CERTSEAL_URL_SIGNING_KEY": self.url_signing_key,
        }


def server_environment(secrets_: Secrets, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any inherited ``CERTSEAL_*``, plus the secrets and ``settings``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(secrets_.environment())
    env["CERTSEAL_PUBLIC_BASE_URL"] = PUBLIC_BASE_URL
    env.update(BASE_SETTINGS)
    env.update(settings or {})
    return env


def certseal(*args: str, env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``certseal`` command line (``python3 -m api.cli``) from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def migrate(database_url: str, env: Mapping[str, str]) -> None:
    """Bring the database schema up to date with ``certseal db upgrade``."""
    result = certseal("db", "upgrade", "--database", database_url, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"certseal db upgrade failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@contextmanager
def postgres_database(prefix: str = "certseal_race") -> Iterator[str]:
    """A fresh, empty PostgreSQL database (its SQLAlchemy URL), dropped afterwards even if still in use."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(database_url: str) -> str:
    """The database name at the end of a PostgreSQL URL."""
    return database_url.rsplit("/", 1)[1]


def via_port(database_url: str, port: int) -> str:
    """The same PostgreSQL URL, reached on another local port (e.g. a proxy's)."""
    return database_url.replace(f"@{POSTGRES_HOST}:{POSTGRES_PORT}/", f"@127.0.0.1:{port}/")


@dataclass
class Server:
    """One ``certseal serve`` process on a free loopback port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, database_url: str, env: Mapping[str, str], log: Path, *, workers: int = 1) -> Server:
        """Start the server and wait until ``/healthz`` answers; a server that exits or stays silent is an error."""
        port = free_port()
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "api.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--database",
                    database_url,
                    "--workers",
                    str(workers),
                ],
                cwd=ROOT,
                env=dict(env),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = cls(process, port, log)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"certseal serve exited with {process.returncode}:\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"certseal serve did not answer /healthz within {START_TIMEOUT_SECONDS:.0f} s")

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop within 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log (stdout and stderr)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class FreezableProxy:
    """A TCP proxy on 127.0.0.1 to an upstream port, whose link can be frozen and thawed.

    ``freeze()`` stops forwarding bytes in both directions and stops connecting new clients upstream,
    but closes nothing: to both ends the link looks alive and silent, like a cable cut behind a router.
    ``thaw()`` lets the held bytes through. The proxy runs its own event loop in a daemon thread.
    """

    def __init__(self, upstream_port: int = POSTGRES_PORT, upstream_host: str = POSTGRES_HOST) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="freezable-proxy", daemon=True)
        self._ready = threading.Event()
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def start(self) -> FreezableProxy:
        """Listen on a free port (``self.port``) and start forwarding."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.connections += 1
        self._writers.add(writer)
        upstream_writer = None
        try:
            await self._flowing.wait()  # a new connection while frozen: accepted, never answered
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(upstream_writer)
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        except OSError:
            pass
        finally:
            for end in (writer, upstream_writer):
                if end is not None:
                    self._writers.discard(end)
                    end.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()  # bytes read just before a freeze are held, not forwarded
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def freeze(self) -> None:
        """Stop every byte in both directions; keep every socket open."""
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def thaw(self) -> None:
        """Let bytes flow again (held bytes first)."""
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        """Close the listener and every connection, stop the loop and its thread."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            assert self._server is not None
            assert self._flowing is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            self._flowing.set()

        with contextlib.suppress(TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass
class Deployment:
    """Servers on one database, and how to call them."""

    backend: str
    database_url: str
    servers: list[Server]
    secrets: Secrets
    settings: dict[str, str]
    proxy: FreezableProxy | None = None
    folder: Path | None = None

    @property
    def admin_headers(self) -> dict[str, str]:
        """Bearer headers with the admin token."""
        return {"Authorization": f"Bearer {self.secrets.admin_token}"}

    def url(self, index: int = 0) -> str:
        """The base URL of server ``index`` modulo the server count (so requests alternate between servers)."""
        return self.servers[index % len(self.servers)].base_url

    def setting(self, name: str, default: int) -> int:
        """An integer ``CERTSEAL_*`` setting the servers were started with, else its default."""
        return int(self.settings.get(f"CERTSEAL_{name.upper()}", default))

    def logs(self) -> str:
        """The tail of every server's log, for failure messages."""
        return "\n".join(f"--- {server.base_url} ({server.log.name})\n{server.log_tail()}" for server in self.servers)

    @property
    def sqlite_path(self) -> Path:
        """The SQLite database file (SQLite deployments only)."""
        assert self.backend == "sqlite"
        return Path(self.database_url.removeprefix("sqlite:///"))


@contextmanager
def deploy(
    backend: str,
    folder: Path,
    *,
    settings: Mapping[str, str] | None = None,
    server_count: int | None = None,
    workers: int = 1,
    via_proxy: bool = False,
) -> Iterator[Deployment]:
    """A migrated database with ``server_count`` servers on it (SQLite: 1, PostgreSQL: 2 by default).

    With ``via_proxy`` (PostgreSQL only) every server reaches the database through one
    :class:`FreezableProxy`. Each server runs ``workers`` processes on its port. Servers are started
    one after the other; everything is stopped, closed and dropped on exit, also when starting fails
    half-way.
    """
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unknown backend {backend}")
    if via_proxy and backend != "postgresql":
        raise ValueError("only PostgreSQL is reached over TCP")
    folder.mkdir(parents=True, exist_ok=True)
    secrets_ = Secrets.new()
    env = server_environment(secrets_, settings)
    with ExitStack() as stack:
        if backend == "sqlite":
            database_url = f"sqlite:///{folder / 'certseal.db'}"
        else:
            database_url = stack.enter_context(postgres_database())
        migrate(database_url, env)
        proxy = None
        serve_url = database_url
        if via_proxy:
            proxy = FreezableProxy().start()
            stack.callback(proxy.close)
            serve_url = via_port(database_url, proxy.port)
        servers: list[Server] = []
        for index in range(server_count or (1 if backend == "sqlite" else 2)):
            server = Server.start(serve_url, env, folder / f"server-{index}.log", workers=workers)
            stack.callback(server.stop)
            servers.append(server)
        yield Deployment(backend, database_url, servers, secrets_, dict(settings or {}), proxy, folder)


# ---------------------------------------------------------------------------------------------------
# Provisioning over HTTP (sequential, one call at a time).
# ---------------------------------------------------------------------------------------------------


def _expect(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise AssertionError(
            f"{response.request.method} {response.request.url.path}: expected {status}, "
            f"got {response.status_code} {response.text[:500]}"
        )
    return response.json()


def issuer_body(code: str, operations: Sequence[str] = ("2.1",)) -> dict[str, Any]:
    """A POST /v1/issuers body."""
    return {"code": code, "name": f"{code} 应急管理厅", "region": "广东省", "operations": list(operations)}


def holder_name_for(n: int) -> str:
    """A distinct valid holder name for ``n`` (names are letters only: digits spelt as Chinese numerals)."""
    return "工人" + "".join("零一二三四五六七八九"[int(digit)] for digit in str(n))


def certificate_body(holder_id_number: str, *, name: str = "张伟", operation: str = "2.1") -> dict[str, Any]:
    """A valid POST /v1/certificates body, issued a month ago, without an exam result (so it names its basis)."""
    return {
        "holder_name": name,
        "holder_id_number": holder_id_number,
        "operation": operation,
        "issue_date": a_month_ago().isoformat(),
        "basis": "legacy_migration",  # the servers run outside demo mode: CERTSEAL_DIRECT_ISSUANCE=with_basis
    }


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate issued over HTTP, with its holder's full ID number."""

    id: str
    qr_text: str
    holder_id_number: str
    status_index: int


@dataclass
class Provisioner:
    """Creates issuers, keys and certificates over HTTP on a deployment (admin token from its secrets)."""

    deployment: Deployment
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(timeout=60)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def __enter__(self) -> Provisioner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def create_issuer(self, code: str, operations: Sequence[str] = ("2.1",)) -> dict[str, Any]:
        """Create an issuer with its first signing key."""
        response = self.client.post(
            f"{self.deployment.url()}/v1/issuers",
            json=issuer_body(code, operations),
            headers=self.deployment.admin_headers,
        )
        return _expect(response, 201)

    def issuer_key(self, code: str) -> dict[str, str]:
        """Bearer headers with a new API key of issuer ``code``."""
        response = self.client.post(
            f"{self.deployment.url()}/v1/issuers/{code}/api-keys",
            json={"label": "concurrency tests"},
            headers=self.deployment.admin_headers,
        )
        return {"Authorization": f"Bearer {_expect(response, 201)['token']}"}

    def app_key(self, label: str) -> dict[str, str]:
        """Bearer headers with a new third-party app API key."""
        response = self.client.post(
            f"{self.deployment.url()}/v1/apps/api-keys", json={"label": label}, headers=self.deployment.admin_headers
        )
        return {"Authorization": f"Bearer {_expect(response, 201)['token']}"}

    def issue(self, issuer_headers: Mapping[str, str], *, holder_id_number: str | None = None) -> IssuedCertificate:
        """Issue one certificate (a fresh holder unless given)."""
        holder = holder_id_number or id_number()
        response = self.client.post(
            f"{self.deployment.url()}/v1/certificates", json=certificate_body(holder), headers=dict(issuer_headers)
        )
        body = _expect(response, 201)
        return IssuedCertificate(body["id"], body["qr_text"], holder, body["status_index"])

    def change_status(self, issuer_headers: Mapping[str, str], certificate_id: str, action: str) -> dict[str, Any]:
        """Suspend, reinstate or revoke; expects 200."""
        response = self.client.post(
            f"{self.deployment.url()}/v1/certificates/{certificate_id}/{action}",
            json={"reason": f"{action} (arrange)"},
            headers=dict(issuer_headers),
        )
        return _expect(response, 200)

    def certificate(self, issuer_headers: Mapping[str, str], certificate_id: str, server: int = 0) -> dict[str, Any]:
        """GET /v1/certificates/{id} on server ``server``."""
        response = self.client.get(
            f"{self.deployment.url(server)}/v1/certificates/{certificate_id}", headers=dict(issuer_headers)
        )
        return _expect(response, 200)

    def issuer(self, code: str) -> dict[str, Any]:
        """GET /v1/issuers/{code} (admin)."""
        response = self.client.get(f"{self.deployment.url()}/v1/issuers/{code}", headers=self.deployment.admin_headers)
        return _expect(response, 200)

    def verify(self, body: Mapping[str, Any], *, server: int = 0, headers: Mapping[str, str] | None = None) -> Answer:
        """POST /v1/verify once, returning the :class:`Answer` (whatever its status)."""
        started = time.perf_counter()
        try:
            response = self.client.post(f"{self.deployment.url(server)}/v1/verify", json=dict(body), headers=headers)
        except httpx.HTTPError as exc:
            return Answer("verify", None, None, None, time.perf_counter() - started, type(exc).__name__)
        return Answer.of("verify", response, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------------
# Concurrent requests.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP request to send; ``label`` names it in tallies (e.g. ``revoke``)."""

    method: str
    url: str
    json: Any = None
    headers: Mapping[str, str] | None = None
    label: str = ""


@dataclass(frozen=True)
class Answer:
    """What came back for one :class:`Call`: status and error code, or the transport error; and how long it took."""

    label: str
    status: int | None
    code: str | None
    body: Any
    seconds: float
    error: str | None = None

    @classmethod
    def of(cls, label: str, response: httpx.Response, seconds: float) -> Answer:
        """Read a response: its JSON body and, for an error, ``error.code``."""
        try:
            body = response.json()
        except ValueError:
            body = response.text[:200]
        code = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
        return cls(label, response.status_code, code, body, seconds)

    @property
    def outcome(self) -> str:
        """``"200"``, ``"409 invalid_transition"``, ``"200 reject holder_mismatch"`` or ``"ReadTimeout"``."""
        if self.status is None:
            return str(self.error)
        text = str(self.status)
        if self.code:
            text += f" {self.code}"
        elif isinstance(self.body, dict) and "decision" in self.body:
            text += f" {self.body['decision']}"
            if self.body.get("reasons"):
                text += " " + ",".join(self.body["reasons"])
        return text

    @property
    def server_error(self) -> bool:
        """A 5xx other than the documented 503 ``registry_unavailable``, or no answer at all."""
        return self.status is None or (self.status >= 500 and self.code != "registry_unavailable")


async def fire(calls: Sequence[Call], *, timeout: float = 60.0) -> list[Answer]:
    """Send every call at once: each waits on one event, released when all are ready; answers in call order."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        go = asyncio.Event()

        async def send(call: Call) -> Answer:
            await go.wait()
            started = time.perf_counter()
            try:
                response = await client.request(call.method, call.url, json=call.json, headers=dict(call.headers or {}))
            except httpx.HTTPError as exc:
                return Answer(call.label, None, None, None, time.perf_counter() - started, type(exc).__name__)
            return Answer.of(call.label, response, time.perf_counter() - started)

        tasks = [asyncio.create_task(send(call)) for call in calls]
        await asyncio.sleep(0)  # every task is now parked on the event
        go.set()
        return list(await asyncio.gather(*tasks))


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a new event loop in its own thread.

    Its own thread because the calling thread may already run a loop (Playwright's sync API keeps
    one running in the main thread for the whole browser test session).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-coroutine") as runner:
        return runner.submit(asyncio.run, coroutine).result()


def fire_together(calls: Sequence[Call], *, timeout: float = 60.0) -> list[Answer]:
    """:func:`fire` from synchronous code."""
    return run_coroutine(fire(calls, timeout=timeout))


def tally(answers: Iterable[Answer], *, by_label: bool = False) -> Counter[str]:
    """Count answers by outcome (``"revoke: 409 invalid_transition"`` with ``by_label``)."""
    return Counter(f"{answer.label}: {answer.outcome}" if by_label else answer.outcome for answer in answers)


def describe(counts: Mapping[str, int]) -> str:
    """A tally as one line, most frequent first."""
    return ", ".join(f"{count}× {outcome}" for outcome, count in sorted(counts.items(), key=lambda item: -item[1]))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def race_rounds(default: int) -> int:
    """Rounds per race test: ``default``, or ``CERTSEAL_RACE_ROUNDS`` when set (longer runs)."""
    value = os.environ.get("CERTSEAL_RACE_ROUNDS")
    return int(value) if value else default


async def poll_until(
    url: str, body: Mapping[str, Any], *, ok: Any, within: float, interval: float = 0.2, timeout: float = 5.0
) -> tuple[float | None, list[str]]:
    """POST ``body`` to ``url`` until ``ok(answer)``; return the seconds it took (None: never) and every outcome."""
    seen: list[str] = []
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout) as client:
        while time.perf_counter() - started < within:
            sent = time.perf_counter()
            try:
                answer = Answer.of("poll", await client.post(url, json=dict(body)), time.perf_counter() - sent)
            except httpx.HTTPError as exc:
                answer = Answer("poll", None, None, None, time.perf_counter() - sent, type(exc).__name__)
            seen.append(answer.outcome)
            if ok(answer):
                return time.perf_counter() - started, seen
            await asyncio.sleep(interval)
    return None, seen


async def fire_while_sampling(
    calls: Sequence[Call], sample_urls: Sequence[str], *, timeout: float = 10.0
) -> tuple[list[Answer], list[Answer]]:
    """:func:`fire` the calls while :func:`sample_get` polls every sample URL; return both sets of answers."""
    stop = asyncio.Event()
    samplers = [asyncio.create_task(sample_get(url, stop, timeout=timeout)) for url in sample_urls]
    await asyncio.sleep(0.02)  # the samplers' first requests go out before the load
    try:
        answers = await fire(calls, timeout=timeout)
    finally:
        stop.set()
    samples = [answer for sampler in samplers for answer in await sampler]
    return answers, samples


async def sample_get(url: str, stop: asyncio.Event, *, interval: float = 0.05, timeout: float = 5.0) -> list[Answer]:
    """GET ``url`` over and over (one at a time, ``interval`` apart) until ``stop`` is set; at least once."""
    answers: list[Answer] = []
    async with httpx.AsyncClient(timeout=timeout) as client:
        while True:
            sent = time.perf_counter()
            try:
                answers.append(Answer.of("sample", await client.get(url), time.perf_counter() - sent))
            except httpx.HTTPError as exc:
                answers.append(Answer("sample", None, None, None, time.perf_counter() - sent, type(exc).__name__))
            if stop.is_set():
                return answers
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
