"""Request and response shapes of API-key administration: create with an expiry, list, revoke, (re)set expiry.

A key's token is returned once, by the create call (:class:`ApiKeyCreated`); listings describe a key by its
lookup prefix and never carry the token or its hash.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from .api import Strict

MAX_EXPIRY_DAYS = 3650


class _ExpiryFields(Strict):
    """An expiry as a time (``expires_at``, with its offset) or as days from now (``expires_in_days``)."""

    expires_at: AwareDatetime | None = Field(default=None, examples=["2027-06-30T00:00:00+08:00"])
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_EXPIRY_DAYS, examples=[90])

    @model_validator(mode="after")
    def _not_both(self) -> _ExpiryFields:
        if self.expires_at is not None and self.expires_in_days is not None:
            raise ValueError("give expires_at or expires_in_days, not both")
        return self

    def expiry(self, *, now: datetime) -> datetime | None:
        """The moment the key stops working (None: never)."""
        if self.expires_in_days is not None:
            return now + timedelta(days=self.expires_in_days)
        return self.expires_at


class IssuerApiKeyCreate(_ExpiryFields):
    """A new issuer API key: a label and, optionally, when it expires."""

    label: str = Field(default="", max_length=200)


class AppApiKeyCreate(_ExpiryFields):
    """A third-party app that calls the verify API with higher limits, and optionally when its key expires."""

    label: str = Field(min_length=1, max_length=200, examples=["site-safety-platform"])


class ApiKeyExpiryUpdate(_ExpiryFields):
    """A key's new expiry: exactly one of ``expires_at`` or ``expires_in_days``.

    ``expires_at`` is a time (a past one expires the key at once) or ``null`` (never expires).
    """

    @model_validator(mode="after")
    def _exactly_one(self) -> ApiKeyExpiryUpdate:
        if len(self.model_fields_set & {"expires_at", "expires_in_days"}) != 1:
            raise ValueError("give expires_at (a time, or null for never) or expires_in_days")
        return self


class ApiKeyCreated(BaseModel):
    """A new API key: the token is shown this once and never again."""

    id: str
    token: str = Field(examples=["cs_1a2b3c4d5e6f_..."])
    prefix: str = Field(examples=["1a2b3c4d5e6f"], description="names the key in listings, revocation and expiry")
    scope: Literal["issuer", "app"]
    issuer: str | None
    label: str
    expires_at: datetime | None


class ApiKeyInfo(BaseModel):
    """An API key as an admin sees it: never its token."""

    id: str
    prefix: str = Field(examples=["1a2b3c4d5e6f"])
    scope: Literal["issuer", "app"]
    issuer: str | None
    label: str
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    last_used_at: datetime | None = Field(description="updated at most once a minute")
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyList(BaseModel):
    """API keys, oldest first."""

    items: list[ApiKeyInfo]
