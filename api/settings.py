"""Service settings from ``CERTSEAL_*`` environment variables (pydantic-settings).

Secrets with a ``demo_`` prefix are the published demo values: they are refused unless demo mode is
on, and outside demo mode every secret must be set to a real value of sufficient length.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    holder_check_failures_per_hour: int = Field(default=5, ge=1, le=1000)
    verify_rate_per_minute: int = Field(default=600, ge=1)
    verify_rate_per_minute_with_key: int = Field(default=60_000, ge=1)
    event_flush_seconds: float = Field(default=0.25, gt=0, le=1.0)
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
