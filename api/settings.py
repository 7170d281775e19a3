"""Service settings from ``CERTSEAL_*`` environment variables (pydantic-settings).

Secrets with a ``demo_`` prefix are the published demo values: they are refused unless demo mode is
on, and outside demo mode every secret must be set to a real value of sufficient length.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from .db import DatabaseLimits

DEMO_PREFIX = "demo_"
MIN_SECRET_CHARS = 16
PLACEHOLDERS = frozenset({"change-me", "changeme", "secret", "password", "placeholder", "xxx", "todo"})

DEMO_SECRETS = {
    "admin_token": "demo_admin_token_do_not_use_in_production",
    "key_passphrase": "demo_key_passphrase_do_not_use",
    "id_hmac_key": "demo_id_hmac_key_do_not_use_in_production",
    "url_signing_key": "demo_url_signing_key_do_not_use_in_production",
}


class Settings(BaseSettings):
    """Everything the service reads from its environment; see the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="CERTSEAL_", extra="ignore", frozen=True)

    database_url: str = "sqlite:///./certseal.db"
    public_base_url: str = "http://127.0.0.1:8000"
    demo: bool = False
    # Development escape hatch: allows placeholder secrets and http://localhost outside --demo.
    dev: bool = False

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
    cors_origins: str = "*"
    official_origins: str = ""
    catalogue_path: Path | None = None

    @model_validator(mode="after")
    def _require_https_base_url(self) -> Settings:
        from crypto import InvalidInput, normalize_base_url

        try:
            normalize_base_url(self.public_base_url, allow_insecure_localhost=self.demo or self.dev)
        except InvalidInput:
            raise ValueError("CERTSEAL_PUBLIC_BASE_URL must be https://host (http://localhost only in demo)") from None
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Settings:
        for name in DEMO_SECRETS:
            secret: SecretStr | None = getattr(self, name)
            value = secret.get_secret_value() if secret else ""
            if self.demo:
                continue
            if value.startswith(DEMO_PREFIX):
                raise ValueError(f"CERTSEAL_{name.upper()} is a demo secret; it is refused outside --demo")
            if not self.dev and value and (value.lower() in PLACEHOLDERS or len(value) < MIN_SECRET_CHARS):
                raise ValueError(f"CERTSEAL_{name.upper()} is a placeholder or shorter than {MIN_SECRET_CHARS}")
        return self

    @classmethod
    def for_demo(cls, **overrides: object) -> Settings:
        """Settings with the published demo secrets filled in where the environment has none."""
        base = cls(demo=True, **overrides)  # type: ignore[arg-type]
        filled = {name: value for name, value in DEMO_SECRETS.items() if getattr(base, name) is None}
        return base.model_copy(update={name: SecretStr(value) for name, value in filled.items()})

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
    def allow_insecure_localhost(self) -> bool:
        """http://localhost base URLs are for demo and development only."""
        return self.demo or self.dev

    @cached_property
    def id_hmac_keys(self) -> dict[int, bytes]:
        """Every ID-number HMAC key by version, the current one included."""
        keys = {self.id_hmac_key_version: self.require("id_hmac_key").encode()}
        if self.id_hmac_previous_keys:
            for entry in self.id_hmac_previous_keys.get_secret_value().split(","):
                version, _, key = entry.strip().partition(":")
                if not version.isdigit() or not key:
                    raise RuntimeError("CERTSEAL_ID_HMAC_PREVIOUS_KEYS must be version:key,version:key")
                keys.setdefault(int(version), key.encode())
        return keys

    @cached_property
    def official_origin_list(self) -> list[str]:
        """Origins whose QR URLs are genuine; the public base URL's origin is always one."""
        extra = [origin.strip().rstrip("/") for origin in self.official_origins.split(",") if origin.strip()]
        return [self.public_base_url.rstrip("/"), *extra]
