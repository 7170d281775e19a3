"""Envelopes already in the registry are rewritten once to their low-S twin.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08

certseal now signs ES256 with a low s (``s <= n/2``, n the order of P-256) and the profile refuses
the high form of a signature as ``malformed`` (``docs/credential-format.md`` §4). An ES256
signature ``r || s`` and its twin ``r || n - s`` verify alike, so every certificate whose envelope
carries a high s is given its twin: only the last 32 bytes of the envelope (s) change, every other
byte stays as it was, and ``envelope_sha256`` is the SHA-256 of the new bytes. EdDSA envelopes,
low-S ones and anything that is not a certseal ES256 envelope are left alone. The stored responses
of idempotent issuance requests (``idempotency_records``) carry the QR text of the envelope they
issued; its digits are rewritten the same way, so a retry replays the QR text the registry now holds.

Plain SQL on ``op.get_bind()`` in batches of :data:`BATCH_ROWS` rows (keyset pagination by id), the
same on SQLite and PostgreSQL. The envelope is read here with ``cbor2`` rather than through the
app's models or ``crypto``, so that this revision never changes with the code.

Downgrade does nothing: a low-S twin is a valid signature of the same claims, which every earlier
certseal accepts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence

import cbor2
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH_ROWS = 500
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
COSE_SIGN1_TAG = 18
ES256 = -7
SIGNATURE_HEAD = b"\x58\x40"  # CBOR byte string of 64 bytes: the raw r || s, last in the envelope

# QR text digits (docs/credential-format.md §2): 17 digits for every 7 bytes, a final group of 1-6 bytes.
GROUP_BYTES, GROUP_DIGITS = 7, 17
TAIL_DIGITS = {1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15}
TAIL_BYTES = {digits: count for count, digits in TAIL_DIGITS.items()}

UPDATE_ENVELOPE = sa.text(
    "UPDATE certificates SET envelope = :envelope, envelope_sha256 = :envelope_sha256 WHERE id = :id"
).bindparams(sa.bindparam("envelope", type_=sa.LargeBinary()))
UPDATE_RESPONSE = sa.text("UPDATE idempotency_records SET response_body = :body WHERE id = :id").bindparams(
    sa.bindparam("body", type_=sa.LargeBinary())
)


def low_s_twin(envelope: bytes) -> bytes | None:
    """The envelope with its high s replaced by ``n - s``; None unless it is an ES256 envelope with a high s."""
    if len(envelope) < 66 or envelope[-66:-64] != SIGNATURE_HEAD:
        return None
    try:
        message = cbor2.loads(envelope)
        if not (
            isinstance(message, cbor2.CBORTag)
            and message.tag == COSE_SIGN1_TAG
            and isinstance(message.value, list)
            and len(message.value) == 4
            and isinstance(message.value[0], bytes)
        ):
            return None
        protected = cbor2.loads(message.value[0])
    except (cbor2.CBORError, ValueError, TypeError):
        return None
    # ES256, and the signature really is the envelope's last 64 bytes.
    if not (isinstance(protected, dict) and protected.get(1) == ES256 and message.value[3] == envelope[-64:]):
        return None
    s = int.from_bytes(envelope[-32:], "big")
    if not P256_ORDER // 2 < s < P256_ORDER:
        return None
    return envelope[:-32] + (P256_ORDER - s).to_bytes(32, "big")


def pack_digits(data: bytes) -> str:
    """The decimal digits of ``data`` as the QR text carries them."""
    full = len(data) - len(data) % GROUP_BYTES
    groups = range(0, full, GROUP_BYTES)
    parts = [f"{int.from_bytes(data[i : i + GROUP_BYTES], 'big'):0{GROUP_DIGITS}d}" for i in groups]
    if tail := data[full:]:
        parts.append(f"{int.from_bytes(tail, 'big'):0{TAIL_DIGITS[len(tail)]}d}")
    return "".join(parts)


def unpack_digits(digits: str) -> bytes | None:
    """The bytes of QR text digits, or None if they are not a valid packing."""
    full, remainder = divmod(len(digits), GROUP_DIGITS)
    if not (digits.isascii() and digits.isdigit()) or (remainder and remainder not in TAIL_BYTES):
        return None
    end = full * GROUP_DIGITS
    try:
        groups = range(0, end, GROUP_DIGITS)
        data = b"".join(int(digits[i : i + GROUP_DIGITS]).to_bytes(GROUP_BYTES, "big") for i in groups)
        return data + (int(digits[end:]).to_bytes(TAIL_BYTES[remainder], "big") if remainder else b"")
    except OverflowError:
        return None


def low_s_response(body: bytes) -> bytes | None:
    """A stored issuance response with its QR text's digits those of the low-S twin; None if nothing changes."""
    try:
        response = json.loads(body)
    except ValueError:
        return None
    qr_text = response.get("qr_text") if isinstance(response, dict) else None
    digits = qr_text.partition("#")[2] if isinstance(qr_text, str) else ""
    envelope = unpack_digits(digits) if digits else None
    twin = low_s_twin(envelope) if envelope else None
    if twin is None:
        return None
    return body.replace(digits.encode("ascii"), pack_digits(twin).encode("ascii"))


def batches(table: str, column: str) -> Iterator[list[sa.Row[tuple[str, bytes]]]]:
    """The rows (id, ``column``) of ``table`` in batches of :data:`BATCH_ROWS`, by id."""
    select = sa.text(f"SELECT id, {column} FROM {table} WHERE id > :after ORDER BY id LIMIT :limit")  # noqa: S608
    after = ""
    while rows := op.get_bind().execute(select, {"after": after, "limit": BATCH_ROWS}).all():
        yield list(rows)
        after = rows[-1][0]


def upgrade() -> None:
    """Rewrite every high-S ES256 envelope to its low-S twin, its SHA-256, and the QR text of stored responses."""
    bind = op.get_bind()
    for rows in batches("certificates", "envelope"):
        changes = []
        for certificate_id, envelope in rows:
            twin = low_s_twin(bytes(envelope))
            if twin is not None:
                changes.append(
                    {"id": certificate_id, "envelope": twin, "envelope_sha256": hashlib.sha256(twin).hexdigest()}
                )
        if changes:
            bind.execute(UPDATE_ENVELOPE, changes)
    for rows in batches("idempotency_records", "response_body"):
        responses = []
        for record_id, body in rows:
            rewritten = low_s_response(bytes(body))
            if rewritten is not None:
                responses.append({"id": record_id, "body": rewritten})
        if responses:
            bind.execute(UPDATE_RESPONSE, responses)


def downgrade() -> None:
    """Nothing to undo: the low-S twins stay valid signatures of the same claims."""
