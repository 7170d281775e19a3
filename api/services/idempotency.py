"""The one rule for an ``Idempotency-Key``, shared by every endpoint that takes one and by the CLI."""

from __future__ import annotations

import re

from .errors import InvalidIdempotencyKey

MAX_IDEMPOTENCY_KEY_CHARS = 200
_IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e](?:[\x20-\x7e]{{0,{MAX_IDEMPOTENCY_KEY_CHARS - 2}}}[\x21-\x7e])?")


def check_idempotency_key(key: str | None) -> None:
    """:class:`InvalidIdempotencyKey` unless ``key`` is None or 1..200 printable ASCII characters (no edge spaces).

    A blank key would be one shared key (the second blank batch submission once hit the unique index: a
    500); a non-ASCII one arrives as whatever bytes the client's library chose, so it could never be repeated.
    """
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidIdempotencyKey()
