"""General CWT (RFC 8392) claim checks that do not depend on the certseal profile."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .errors import Expired, Malformed, NotYetValid, PolicyError
from .policy import CLOCK_SKEW

CLAIM_EXP = 4
CLAIM_NBF = 5
CLAIM_IAT = 6


def _numeric_date(claims: Mapping[Any, Any], label: int) -> int | float | None:
    """Return the NumericDate (RFC 8392 section 2) under ``label``, None if absent, or raise :class:`Malformed`."""
    if label not in claims:
        return None
    value = claims[label]
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return value
    raise Malformed(f"claim {label} is not a NumericDate")


def check_times(claims: Mapping[Any, Any], now: datetime, skew: timedelta = CLOCK_SKEW) -> None:
    """Raise :class:`NotYetValid` before ``nbf`` or ``iat``, :class:`Expired` from ``exp`` on, give or take ``skew``."""
    if not isinstance(claims, Mapping):
        raise Malformed("CWT claims are not a map")
    if now.tzinfo is None:
        raise PolicyError("verification time must carry a time zone")
    instant = now.timestamp()
    tolerance = skew.total_seconds()
    expires = _numeric_date(claims, CLAIM_EXP)
    not_before = _numeric_date(claims, CLAIM_NBF)
    issued_at = _numeric_date(claims, CLAIM_IAT)
    if not_before is not None and instant + tolerance < not_before:
        raise NotYetValid(f"nbf {not_before} > now {instant:.0f}")
    if issued_at is not None and instant + tolerance < issued_at:
        raise NotYetValid(f"iat {issued_at} > now {instant:.0f}")
    if expires is not None and instant - tolerance >= expires:
        raise Expired(f"exp {expires} <= now {instant:.0f}")
