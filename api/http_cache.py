"""HTTP validators for the public, cacheable documents (status lists, trust list): strong ETags and If-None-Match."""

from __future__ import annotations

import hashlib


def etag_of(token: bytes) -> str:
    """A strong ETag for a signed token."""
    return '"' + hashlib.sha256(token).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag``: ``*``, or any listed tag by weak comparison (RFC 9110 §13.1.2).

    A proxy or CDN that compresses a response may weaken its ETag (``W/"…"``); the client then sends it back so.
    """
    if if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in (tag.removeprefix("W/") for tag in tags)
