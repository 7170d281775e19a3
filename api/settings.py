"""Service settings from ``CERTSEAL_*`` environment variables (pydantic-settings).

Secrets with a ``demo_`` prefix, and the demo issuer API key, are the published demo values: they exist
only in demo mode. Outside demo mode every secret must be a real one (:func:`secret_weakness`), no two
secrets may be equal, and each may come from a file named by ``CERTSEAL_<NAME>_FILE`` (Docker and
Kubernetes secrets). Every problem is reported at start with the variable's name, never its value.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from .db import DatabaseLimits

DEMO_PREFIX = "demo_"
MIN_SECRET_CHARS = 16
MIN_DISTINCT_CHARS = 10
# Compared with the secret lower-cased and stripped of everything but letters and digits.
PLACEHOLDER_PREFIXES = (
    "changeme",
    "changethis",
    "replaceme",
    "password",
    "passw0rd",
    "secret",
    "placeholder",
    "example",
    "default",
    "dummy",
    "todo",
    "xxx",
)

DEMO_SECRETS = {
    "admin_token": "demo_admin_token_do_not_use_in_production",
    "key_passphrase": "demo_key_passphrase_do_not_use",
    "id_hmac_key": "demo_id_hmac_key_do_not_use_in_production",
    "url_signing_key": "demo_url_signing_key_do_not_use_in_production",
    "trust_anchor_passphrase": "demo_trust_anchor_passphrase_do_not_use",
}
# The demo issuer's API key, printed by ``certseal serve --demo``: published, so only ever valid in demo mode.
DEMO_ISSUER_API_KEY = "cs_de0de0de0de0_demo_issuer_api_key_do_not_use"
DEMO_ISSUER_API_KEY_PREFIX = DEMO_ISSUER_API_KEY.split("_")[1]
# The secrets every service needs (the trust anchor's passphrase only with CERTSEAL_TRUST_ANCHOR_KEY_FILE).
REQUIRED_SECRETS = ("admin_token", "key_passphrase", "id_hmac_key", "url_signing_key")
PUBLISHED_DEMO_TOKENS = frozenset({*DEMO_SECRETS.values(), DEMO_ISSUER_API_KEY})
# Every secret setting; each may instead be read from the file named by CERTSEAL_<NAME>_FILE.
SECRET_SETTINGS = (*DEMO_SECRETS, "id_hmac_previous_keys", "redis_url")


class SettingsError(ValueError):
    """Settings are invalid; the message names the variables, never their values."""


def variable(name: str) -> str:
    """The environment variable of a setting: ``admin_token`` -> ``CERTSEAL_ADMIN_TOKEN``."""
    return f"CERTSEAL_{name.upper()}"


def is_published_demo_token(token: str) -> bool:
    """True for a published demo secret or the demo issuer API key (also under its lookup prefix)."""
    return token in PUBLISHED_DEMO_TOKENS or token.startswith(f"cs_{DEMO_ISSUER_API_KEY_PREFIX}_")


def secret_weakness(value: str) -> str | None:
    """Why a secret is too weak to use, or None: length, variety, placeholders and patterns (never the value)."""
    if len(value) < MIN_SECRET_CHARS:
        return f"shorter than {MIN_SECRET_CHARS} characters"
    if len(set(value)) < MIN_DISTINCT_CHARS:
        return f"fewer than {MIN_DISTINCT_CHARS} distinct characters"
    letters = "".join(character for character in value.lower() if character.isalnum())
    if letters.startswith(PLACEHOLDER_PREFIXES):
        return "a placeholder (changeme…, password…, secret…)"
    for period in range(1, len(value) // 2 + 1):
        if all(value[index] == value[index % period] for index in range(period, len(value))):
            return "a repeated pattern"
    steps = {ord(after) - ord(before) for before, after in itertools.pairwise(value)}
    if steps <= {1} or steps <= {-1}:
        return "a run of consecutive characters"
    return None


MAX_SECRET_FILE_BYTES = 4096


def read_secret_file(name: str, path: str) -> str:
    """The secret in the file ``CERTSEAL_<NAME>_FILE`` names, without its trailing newline."""
    try:
        file = Path(path)
        if not file.is_file():  # not a directory, FIFO or device (/dev/zero would never end)
            raise SettingsError(f"{variable(name)}_FILE: the file is not a regular file")
        with file.open("rb") as handle:
            raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
        if len(raw) > MAX_SECRET_FILE_BYTES:
            raise SettingsError(f"{variable(name)}_FILE: the file is longer than {MAX_SECRET_FILE_BYTES} bytes")
        value = raw.decode("utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SettingsError(f"{variable(name)}_FILE: the file cannot be read ({reason})") from None
    if not value:
        raise SettingsError(f"{variable(name)}_FILE: the file is empty")
    return value


def parse_previous_hmac_keys(text: str) -> dict[int, str]:
    """``version:key,version:key`` as a dict; :class:`SettingsError` naming the variable on any problem."""
    keys: dict[int, str] = {}
    where = variable("id_hmac_previous_keys")
    for entry in text.split(","):
        version, colon, key = entry.strip().partition(":")
        if not colon or not version.isdigit() or not key or not 1 <= int(version) <= 2**31:
            raise SettingsError(f"{where} must be version:key,version:key (versions 1 to 2147483648)")
        if int(version) in keys:
            raise SettingsError(f"{where} names version {int(version)} twice")
        keys[int(version)] = key
    return keys


class _SecretFiles(PydanticBaseSettingsSource):
    """Secrets from the files named by ``CERTSEAL_<NAME>_FILE``; setting both forms of one is an error."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every secret at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_SETTINGS:
            path = os.environ.get(f"{variable(name)}_FILE")
            if not path:
                continue
            if os.environ.get(variable(name)) is not None:
                raise SettingsError(f"set {variable(name)} or {variable(name)}_FILE, not both")
            values[name] = read_secret_file(name, path)
        return values


class Settings(BaseSettings):
    """Everything the service reads from its environment; see the README's settings table."""

    # hide_input_in_errors: a validation error's text never carries a value (a secret) that was given.
    model_config = SettingsConfigDict(env_prefix="CERTSEAL_", extra="ignore", frozen=True, hide_input_in_errors=True)

    database_url: str = "sqlite:///./certseal.db"
    public_base_url: str = "http://127.0.0.1:8000"
    demo: bool = False
    # Development escape hatch: allows an http://localhost base URL outside --demo (secrets must still be
    # real ones); every start logs a warning.
    dev: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # One JSON object per line for log collectors, or text for people; unset: json, but text in demo mode
    # (someone is reading the terminal). See log_format_in_effect.
    log_format: Literal["json", "text"] | None = None
    # One access line per request (the service's own, with the request id; uvicorn's is always off).
    access_log: bool = True
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated addresses or networks,
    # or "*"); by default nobody's, so a client cannot choose the address its rate limit is counted under.
    forwarded_allow_ips: str = ""

    admin_token: SecretStr | None = None
    key_passphrase: SecretStr | None = None
    id_hmac_key: SecretStr | None = None
    id_hmac_key_version: int = Field(default=1, ge=1, le=2**31)
    # Older HMAC keys still needed to match rows written before a rotation: "version:key,version:key".
    id_hmac_previous_keys: SecretStr | None = None
    url_signing_key: SecretStr | None = None

    review_required: bool = True
    review_interval_years: int = Field(default=3, ge=1, le=10)
    validity_years: int = Field(default=6, ge=1, le=20)
    minimum_age: int = Field(default=18, ge=14, le=30)
    maximum_age: int = Field(default=70, ge=40, le=100)

    max_body_bytes: int = Field(default=1_048_576, ge=4096)
    # Exam results (up to 20,000 rows) and photo zips: the only paths allowed bodies above max_body_bytes.
    max_upload_bytes: int = Field(default=33_554_432, ge=4096)
    max_photo_bytes: int = Field(default=512_000, ge=1024)
    photo_url_ttl_seconds: int = Field(default=300, ge=10, le=86_400)
    # Wrong holder ID numbers one client may submit for one certificate per hour, and a higher ceiling
    # for all clients together in a short window against guessing spread over many clients.
    holder_check_failures_per_hour: int = Field(default=5, ge=1, le=1000)
    holder_check_global_failures: int = Field(default=30, ge=1, le=100_000)
    holder_check_global_window_seconds: int = Field(default=600, ge=10, le=86_400)
    verify_rate_per_minute: int = Field(default=600, ge=1)
    verify_rate_per_minute_with_key: int = Field(default=60_000, ge=1)
    event_flush_seconds: float = Field(default=0.25, gt=0, le=1.0)
    # Retention (docs/operations.md): verification events are counted per day into verification_daily and
    # deleted after this many days; idempotency records (stored issuance answers) after this many hours.
    event_retention_days: int = Field(default=1095, ge=1, le=36_500)
    idempotency_retention_hours: int = Field(default=24, ge=1, le=8760)
    # How often `serve` prunes (one instance at a time: a PostgreSQL advisory lock elects it).
    prune_interval_seconds: int = Field(default=3600, ge=60, le=604_800)

    # Database bounds: the pool and the worker threads that use it are one size, so a burst queues for a
    # thread instead of timing out on a connection; every call has a deadline (see docs/operations.md).
    db_pool_size: int = Field(default=8, ge=1, le=200)
    db_pool_timeout_seconds: float = Field(default=10, gt=0, le=120)
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=60)
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=600_000)
    db_lock_timeout_ms: int = Field(default=2000, ge=10, le=600_000)
    db_tcp_user_timeout_ms: int = Field(default=5000, ge=500, le=600_000)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=10, le=60_000)
    verify_db_threads: int = Field(default=4, ge=1, le=64)
    verify_db_deadline_ms: int = Field(default=1000, ge=50, le=30_000)
    # Shared rate limits across workers and replicas (redis://, rediss:// or unix://; may hold a password,
    # hence secret and readable from CERTSEAL_REDIS_URL_FILE). Unset: limits count per process.
    redis_url: SecretStr | None = None
    redis_timeout_ms: int = Field(default=100, ge=5, le=5000)
    cors_origins: str = "*"
    official_origins: str = ""
    catalogue_path: Path | None = None
    # The site's own rule for an amber (not fully checked) verdict, shown on the page when set.
    page_amber_advice_zh: str | None = Field(default=None, max_length=300)
    page_amber_advice_en: str | None = Field(default=None, max_length=300)
    # Status lists: verifiers refetch after ttl; a list is current until exp = iat + lifetime.
    status_list_ttl_seconds: int = Field(default=600, ge=10, le=86_400)
    status_list_lifetime_hours: int = Field(default=24, ge=1, le=720)
    # The trust anchor: its public key is pinned by the page and checks uploaded trust lists; given its
    # private key (encrypted PKCS#8), the service re-signs the trust list on every key change.
    trust_anchor_public_key_file: Path | None = None
    trust_anchor_key_file: Path | None = None
    trust_anchor_passphrase: SecretStr | None = None
    trust_list_lifetime_days: int = Field(default=7, ge=1, le=366)
    # From exam to card. Issuance without an exam result: allowed (default in demo mode), with_basis (the
    # request names reissue, renewal or legacy_migration; the default otherwise) or off.
    direct_issuance: Literal["allowed", "with_basis", "off"] | None = None
    exam_pass_score: int = Field(default=80, ge=1, le=100)  # theory and practical, each out of 100
    exam_retakes: int = Field(default=1, ge=0, le=5)
    exam_pass_valid_months: int = Field(default=12, ge=1, le=60)
    reapplication_bar_years: int = Field(default=3, ge=0, le=20)  # after a revocation, per operation item
    batch_lease_seconds: int = Field(default=30, ge=2, le=3600)
    batch_signing_processes: int | None = Field(default=None, ge=1, le=64)  # default: one per CPU
    # A TrueType-outline CJK font for printed cards (ReportLab embeds a subset); default: Droid Sans Fallback.
    card_font_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then ``CERTSEAL_<NAME>_FILE`` files for the secrets."""
        return init_settings, env_settings, _SecretFiles(settings_cls), dotenv_settings, file_secret_settings

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case_format(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError("give IP addresses or networks (e.g. 10.0.0.0/8), comma-separated, or *") from None
        return ",".join(entries)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if urlsplit(value.get_secret_value().strip()).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("give a redis://, rediss:// or unix:// URL")
        return SecretStr(value.get_secret_value().strip())

    @model_validator(mode="after")
    def _require_https_base_url(self) -> Settings:
        from crypto import InvalidInput, normalize_base_url

        try:
            if any(character.isspace() for character in self.public_base_url):
                raise InvalidInput("whitespace in the base URL")
            normalize_base_url(self.public_base_url, allow_insecure_localhost=self.demo or self.dev)
        except InvalidInput:
            raise ValueError("CERTSEAL_PUBLIC_BASE_URL must be https://host (http://localhost only in demo)") from None
        return self

    @model_validator(mode="after")
    def _status_list_lifetime_exceeds_ttl(self) -> Settings:
        if self.status_list_lifetime_hours * 3600 <= self.status_list_ttl_seconds:
            raise ValueError("CERTSEAL_STATUS_LIST_LIFETIME_HOURS must exceed CERTSEAL_STATUS_LIST_TTL_SECONDS")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Settings:
        previous = self.previous_hmac_keys  # checked in every mode: never a 500 at first use
        if self.id_hmac_key_version in previous:
            raise ValueError(
                "CERTSEAL_ID_HMAC_PREVIOUS_KEYS names the current CERTSEAL_ID_HMAC_KEY_VERSION; "
                "give only older versions"
            )
        if self.demo:
            return self
        values = {variable(name): self._secret_value(name) for name in DEMO_SECRETS}
        values |= {f"{variable('id_hmac_previous_keys')} (version {v})": key for v, key in previous.items()}
        for where, value in values.items():
            if not value:
                continue  # a missing secret is named by whatever needs it (serve names them all)
            if value.startswith(DEMO_PREFIX) or value in PUBLISHED_DEMO_TOKENS:
                raise ValueError(f"{where} is a demo secret; it is refused outside --demo")
            if reason := secret_weakness(value):
                raise ValueError(f"{where} is too weak: {reason}")
        token = values[variable("admin_token")]
        if token and not (token.isascii() and token.isprintable() and not any(c.isspace() for c in token)):
            raise ValueError(
                f"{variable('admin_token')} must be printable ASCII without spaces (it is sent as a header)"
            )
        named = [(where, value) for where, value in values.items() if value]
        for index, (first, value) in enumerate(named):
            for second, other in named[index + 1 :]:
                if value == other:
                    raise ValueError(f"{first} and {second} have the same value; every secret must be different")
        return self

    def _secret_value(self, name: str) -> str:
        secret: SecretStr | None = getattr(self, name)
        return secret.get_secret_value() if secret else ""

    @classmethod
    def for_demo(cls, **overrides: object) -> Settings:
        """Demo settings with the published demo secrets filled in where the environment has none."""
        return cls(demo=True, **overrides).with_demo_secrets()  # type: ignore[arg-type]

    def with_demo_secrets(self) -> Settings:
        """In demo mode (``--demo`` or ``CERTSEAL_DEMO=true``), these settings with the unset secrets filled in
        with the published demo values; outside demo mode, these settings unchanged."""
        if not self.demo:
            return self
        filled = {name: SecretStr(value) for name, value in DEMO_SECRETS.items() if getattr(self, name) is None}
        return self.model_copy(update=filled)

    def require(self, name: str) -> str:
        """Return a secret's value or raise a start-up error naming the missing variable."""
        secret: SecretStr | None = getattr(self, name)
        if secret is None or not secret.get_secret_value():
            raise RuntimeError(f"CERTSEAL_{name.upper()} is not set")
        return secret.get_secret_value()

    @cached_property
    def database_limits(self) -> DatabaseLimits:
        """The pool size and timeouts the engine is made with."""
        from .db import DatabaseLimits

        return DatabaseLimits(
            pool_size=self.db_pool_size,
            pool_timeout_seconds=self.db_pool_timeout_seconds,
            connect_timeout_seconds=self.db_connect_timeout_seconds,
            statement_timeout_ms=self.db_statement_timeout_ms,
            lock_timeout_ms=self.db_lock_timeout_ms,
            tcp_user_timeout_ms=self.db_tcp_user_timeout_ms,
            sqlite_busy_timeout_ms=self.sqlite_busy_timeout_ms,
        )

    @cached_property
    def log_format_in_effect(self) -> Literal["json", "text"]:
        """``CERTSEAL_LOG_FORMAT``, or when unset json (text in demo mode)."""
        if self.log_format is not None:
            return self.log_format
        return "text" if self.demo else "json"

    @cached_property
    def allow_insecure_localhost(self) -> bool:
        """http://localhost base URLs are for demo and development only."""
        return self.demo or self.dev

    @cached_property
    def previous_hmac_keys(self) -> dict[int, str]:
        """``CERTSEAL_ID_HMAC_PREVIOUS_KEYS`` by version (empty when unset)."""
        text = self._secret_value("id_hmac_previous_keys").strip()
        return parse_previous_hmac_keys(text) if text else {}

    @cached_property
    def id_hmac_keys(self) -> dict[int, bytes]:
        """Every ID-number HMAC key by version, the current one included."""
        keys = {self.id_hmac_key_version: self.require("id_hmac_key").encode()}
        for version, key in self.previous_hmac_keys.items():
            keys.setdefault(version, key.encode())
        return keys

    @cached_property
    def direct_issuance_in_effect(self) -> Literal["allowed", "with_basis", "off"]:
        """``CERTSEAL_DIRECT_ISSUANCE``, or when unset ``allowed`` in demo mode and ``with_basis`` otherwise."""
        if self.direct_issuance is not None:
            return self.direct_issuance
        return "allowed" if self.demo else "with_basis"

    @cached_property
    def forwarded_allow_ip_list(self) -> list[str]:
        """Whose X-Forwarded-For is believed (empty: nobody's)."""
        return [entry for entry in self.forwarded_allow_ips.split(",") if entry]

    def startup_summary(self) -> str:
        """The settings that matter at start, for the log: never a secret, never a database password."""
        limits = (
            f"verify_rate_per_minute={self.verify_rate_per_minute} "
            f"verify_rate_per_minute_with_key={self.verify_rate_per_minute_with_key} "
            f"holder_check_failures_per_hour={self.holder_check_failures_per_hour} "
            f"holder_check_global_failures={self.holder_check_global_failures}/"
            f"{self.holder_check_global_window_seconds}s max_body_bytes={self.max_body_bytes}"
        )
        redis = self.redis_url.get_secret_value() if self.redis_url else None
        return (
            f"database={describe_database(self.database_url)} public_base_url={self.public_base_url} "
            f"demo={self.demo} dev={self.dev} db_pool_size={self.db_pool_size} "
            f"verify_db_threads={self.verify_db_threads} verify_db_deadline_ms={self.verify_db_deadline_ms} "
            f"{limits} forwarded_allow_ips={self.forwarded_allow_ips or '(none)'} cors_origins={self.cors_origins} "
            f"review_required={self.review_required} catalogue={self.catalogue_path or 'built-in'} "
            f"event_retention_days={self.event_retention_days} "
            f"idempotency_retention_hours={self.idempotency_retention_hours} "
            f"prune_interval_seconds={self.prune_interval_seconds} "
            f"rate_limits={'shared in ' + describe_redis(redis) if redis else 'per process'} "
            f"id_hmac_key_version={self.id_hmac_key_version} "
            f"previous_hmac_versions={sorted(self.previous_hmac_keys) or '(none)'} log_level={self.log_level} "
            f"log_format={self.log_format_in_effect} access_log={self.access_log} "
            f"direct_issuance={self.direct_issuance_in_effect} exam_pass_score={self.exam_pass_score} "
            f"exam_retakes={self.exam_retakes} exam_pass_valid_months={self.exam_pass_valid_months} "
            f"reapplication_bar_years={self.reapplication_bar_years}"
        )

    @cached_property
    def official_origin_list(self) -> list[str]:
        """Origins whose QR URLs are genuine; the public base URL's origin is always one."""
        extra = [origin.strip().rstrip("/") for origin in self.official_origins.split(",") if origin.strip()]
        return [self.public_base_url.rstrip("/"), *extra]


def describe_redis(url: str) -> str:
    """Where Redis is, without a password."""
    parsed = urlsplit(url)
    if parsed.scheme == "unix":
        return f"redis {parsed.path}"
    return f"redis {parsed.hostname or 'localhost'}:{parsed.port or 6379}{parsed.path or ''}"


def describe_database(url: str) -> str:
    """The database kind and where it is, without user, password or query parameters."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(unparseable URL)"
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite {parsed.database or ':memory:'}"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.get_backend_name()} {parsed.host or 'localhost'}{port}/{parsed.database or ''}"
