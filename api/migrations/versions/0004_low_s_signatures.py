"""Envelopes already in the registry are rewritten once to their low-S twin.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08

certseal now signs ES256 with a low s (``s <= n/2``, n the order of P-256) and the profile refuses
the high form of a signature as ``malformed`` (``docs/credential-format.md`` §4). An ES256
signature ``r || s`` and its twin ``r || n - s`` verify alike, so every certificate whose envelope
carries a high s is given its twin: only the last 32 bytes of the envelope (s) change, every other
byte stays as it was, and ``envelope_sha256`` is the SHA-256 of the new bytes. EdDSA envelopes,
low-S ones and anything that is not a certseal ES256 envelope are left alone.

Plain SQL on ``op.get_bind()`` in batches of :data:`BATCH_ROWS` rows (keyset pagination by id), the
same on SQLite and PostgreSQL. The envelope is read here with ``cbor2`` rather than through the
app's models or ``crypto``, so that this revision never changes with the code.

Downgrade does nothing: a low-S twin is a valid signature of the same claims, which every earlier
certseal accepts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

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

SELECT_BATCH = sa.text("SELECT id, envelope FROM certificates WHERE id > :after ORDER BY id LIMIT :limit").bindparams(
    sa.bindparam("after", type_=sa.String()), sa.bindparam("limit", type_=sa.Integer())
)
UPDATE_ENVELOPE = sa.text(
    "UPDATE certificates SET envelope = :envelope, envelope_sha256 = :envelope_sha256 WHERE id = :id"
).bindparams(sa.bindparam("envelope", type_=sa.LargeBinary()))


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


def upgrade() -> None:
    """Rewrite every high-S ES256 envelope to its low-S twin and update its SHA-256."""
    bind = op.get_bind()
    after = ""
    while True:
        rows = bind.execute(SELECT_BATCH, {"after": after, "limit": BATCH_ROWS}).all()
        if not rows:
            return
        changes = []
        for certificate_id, envelope in rows:
            twin = low_s_twin(bytes(envelope))
            if twin is not None:
                changes.append(
                    {"id": certificate_id, "envelope": twin, "envelope_sha256": hashlib.sha256(twin).hexdigest()}
                )
        if changes:
            bind.execute(UPDATE_ENVELOPE, changes)
        after = rows[-1][0]


def downgrade() -> None:
    """Nothing to undo: the low-S twins stay valid signatures of the same claims."""
