"""The signed trust list: every issuer, its scope, its status-list base and its keys with their lifecycle.

Two ways to keep it current, both supported. With ``CERTSEAL_TRUST_ANCHOR_KEY_FILE`` the service signs
a new list (next sequence number) in the same transaction as every key change, and again when the
newest is half-way to its ``exp``. Without it, the anchor stays offline: an administrator exports the
content (``GET /v1/trust-list/content``), signs it with ``certseal trust sign`` and uploads it
(``PUT /v1/trust-list``), which is accepted only if the pinned anchor signed it and its sequence
number is higher than the stored one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, text
from sqlmodel import Session, select

import crypto
from crypto import CST, KeyState, KeyUse, TrustListContent, TrustListIssuer, TrustListKey

from ..models import Certificate, Issuer, SigningKeyRow, TrustListRow
from ..settings import Settings
from ..trust_anchor import TrustAnchor
from .errors import TrustAnchorNotConfigured, TrustListRejected, TrustListSequenceConflict
from .status_lists import status_base

# Publications take this PostgreSQL advisory lock, so two never pick the same sequence number
# (SQLite's write lock already serializes them).
_PUBLISH_LOCK = 0x6365727474727374  # "certtrst"
# The highest sequence number this service stores (trust_lists.sequence is a 32-bit INTEGER on
# PostgreSQL): a publication a second would take 68 years to reach it.
MAX_STORED_SEQUENCE = 2**31 - 1


@dataclass(frozen=True)
class PublishedTrustList:
    """The newest trust list, ready to serve."""

    token: bytes
    sequence: int
    iat: datetime
    exp: datetime


class TrustLists:
    """Builds, signs (when the service holds the anchor), accepts and serves trust lists."""

    def __init__(
        self, anchor: TrustAnchor, *, public_base_url: str, lifetime: timedelta, status_list_lifetime: timedelta
    ) -> None:
        self.anchor = anchor
        self.public_base_url = public_base_url
        self.lifetime = lifetime
        self.status_list_lifetime = status_list_lifetime

    @classmethod
    def from_settings(cls, settings: Settings, anchor: TrustAnchor) -> TrustLists:
        """The trust lists as the settings configure them."""
        return cls(
            anchor,
            public_base_url=settings.public_base_url,
            lifetime=timedelta(days=settings.trust_list_lifetime_days),
            status_list_lifetime=timedelta(hours=settings.status_list_lifetime_hours),
        )

    @property
    def signs(self) -> bool:
        """Whether this service holds the anchor's private key."""
        return self.anchor.signing_key is not None

    def content(self, session: Session) -> TrustListContent:
        """What the trust list says now, from the registry."""
        issuers = session.exec(select(Issuer).order_by(Issuer.code)).all()
        keys = session.exec(select(SigningKeyRow).order_by(SigningKeyRow.not_before, SigningKeyRow.kid)).all()
        # Only keys that stopped signing need their certificates' last day: one index lookup each
        # (certificates (kid, valid_until)), never a scan of the registry.
        last_valid_day = {
            row.kid: session.exec(select(func.max(Certificate.valid_until)).where(Certificate.kid == row.kid)).one()
            for row in keys
            if row.not_after is not None and row.use == KeyUse.CERTIFICATE
        }
        by_issuer: dict[str, list[TrustListKey]] = {}
        for row in keys:
            by_issuer.setdefault(row.issuer_id, []).append(self._key(row, last_valid_day.get(row.kid)))
        return TrustListContent(
            issuers=tuple(
                TrustListIssuer(
                    code=issuer.code,
                    name=issuer.name,
                    region=issuer.region,
                    operations=tuple(issuer.operations),
                    status_base=status_base(self.public_base_url, issuer.code),
                    keys=tuple(by_issuer.get(issuer.id, ())),
                )
                for issuer in issuers
            )
        )

    def _key(self, row: SigningKeyRow, last_valid_day: date | None) -> TrustListKey:
        verify_until = None
        if row.not_after is not None:
            if row.use == KeyUse.STATUS_LIST:
                verify_until = row.not_after + self.status_list_lifetime  # the last list it signed expires then
            elif last_valid_day is not None:
                end_of_day = datetime.combine(last_valid_day, time.max, tzinfo=CST).replace(microsecond=0)
                verify_until = max(row.not_after, end_of_day)
            else:
                verify_until = row.not_after
        return TrustListKey(
            kid=bytes.fromhex(row.kid),
            use=KeyUse(row.use),
            public_key=crypto.load_public_key(row.public_key_pem.encode()),
            not_before=_seconds(row.not_before),
            not_after=_seconds(row.not_after) if row.not_after else None,
            verify_until=_seconds(verify_until) if verify_until else None,
            state=KeyState(row.state),
            compromised_at=_seconds(row.compromised_at) if row.compromised_at else None,
        )

    def newest(self, session: Session) -> TrustListRow | None:
        """The newest published trust list, if any."""
        return session.exec(select(TrustListRow).order_by(TrustListRow.sequence.desc()).limit(1)).first()  # type: ignore[attr-defined]

    def needs_signing(self, newest: TrustListRow | None, *, now: datetime) -> bool:
        """Whether the service should sign a new list now (it holds the anchor and the newest is half-way to exp)."""
        if not self.signs:
            return False
        return newest is None or now >= newest.iat + (newest.exp - newest.iat) / 2

    def key_changed(self, session: Session, *, now: datetime) -> None:
        """Sign a new trust list in the caller's transaction, if the service holds the anchor."""
        if self.signs:
            self.publish(session, now=now)

    def publish_if_outdated(self, session: Session, *, now: datetime) -> TrustListRow | None:
        """At start-up: sign a new list if the newest no longer says what the registry says (in a write transaction).

        E.g. after ``certseal demo purge``, after key changes made while the service held no anchor, or when
        the anchor itself was replaced. Replicas starting together publish once (the lock, then the check).
        """
        if not self.signs or self.anchor.public_pem is None:
            return None
        self._lock(session)
        newest = self.newest(session)
        if newest is not None and not self.needs_signing(newest, now=now):
            anchor = crypto.load_public_key(self.anchor.public_pem.encode())
            try:
                published = crypto.verify_trust_list(newest.token, anchor, now=now, allow_expired=True)
            except crypto.VerificationError:
                published = None  # signed by another anchor: replace it
            if published is not None and published.content.to_json() == self.content(session).to_json():
                return None
        return self.publish(session, now=now)

    def publish(self, session: Session, *, now: datetime) -> TrustListRow:
        """Sign the registry's trust list under the next sequence number (call in a write transaction)."""
        key = self.anchor.signing_key
        if key is None:
            raise TrustAnchorNotConfigured()
        self._lock(session)
        newest = self.newest(session)
        iat = now.replace(microsecond=0)
        sequence = (newest.sequence if newest else 0) + 1
        if sequence > MAX_STORED_SEQUENCE:
            raise TrustListSequenceConflict("the trust list sequence numbers are exhausted")
        token = crypto.sign_trust_list(self.content(session), key, sequence=sequence, iat=iat, exp=iat + self.lifetime)
        row = TrustListRow(
            sequence=sequence, token=token, iat=iat, exp=iat + self.lifetime, source="service", published_at=now
        )
        session.add(row)
        session.flush()
        return row

    def upload(self, session: Session, token: bytes, *, now: datetime) -> TrustListRow:
        """Store a trust list signed offline: the pinned anchor must have signed it, with a higher sequence number."""
        if self.anchor.public_pem is None:
            raise TrustAnchorNotConfigured()
        anchor = crypto.load_public_key(self.anchor.public_pem.encode())
        try:
            trust_list = crypto.verify_trust_list(token, anchor, now=now)
        except crypto.VerificationError as error:
            raise TrustListRejected(f"the trust list is refused: {error.code}") from None
        if trust_list.iat > now + crypto.CLOCK_SKEW:  # signed on a machine whose clock runs ahead: refuse it
            raise TrustListRejected(f"the trust list is refused: not_yet_valid (iat {trust_list.iat.isoformat()})")
        if trust_list.sequence > MAX_STORED_SEQUENCE:
            raise TrustListRejected(f"the trust list is refused: seq is above {MAX_STORED_SEQUENCE}")
        self._lock(session)
        self._refuse_lifted_compromises(session, trust_list)
        newest = self.newest(session)
        if newest is not None and trust_list.sequence <= newest.sequence:
            raise TrustListSequenceConflict(f"sequence {trust_list.sequence} is not above {newest.sequence}")
        row = TrustListRow(
            sequence=trust_list.sequence,
            token=token,
            iat=trust_list.iat,
            exp=trust_list.exp,
            source="uploaded",
            published_at=now,
        )
        session.add(row)
        session.flush()
        return row

    @staticmethod
    def _refuse_lifted_compromises(session: Session, trust_list: crypto.TrustList) -> None:
        """Refuse a list that leaves out or lifts a compromise the registry holds (e.g. content exported before it).

        Offline verifiers believe the newest list: one signed from an outdated export would make a stolen
        key trusted again. Every key compromised in the registry that the list names must be listed
        compromised, since no later.
        """
        compromised = session.exec(select(SigningKeyRow).where(SigningKeyRow.state == KeyState.COMPROMISED.value)).all()
        listed = {key.kid: key for issuer in trust_list.content.issuers for key in issuer.keys}
        for row in compromised:
            key = listed.get(bytes.fromhex(row.kid))
            since = _seconds(row.compromised_at) if row.compromised_at else None
            if (
                key is None
            ):  # left out: offline verifiers refuse its certificates as unknown_key, as safe as compromised
                continue
            if key.compromised_at is None or (since is not None and key.compromised_at > since):
                raise TrustListRejected(
                    f"the trust list is refused: outdated (key {row.kid} is compromised since "
                    f"{since.isoformat() if since else '?'}; export the content again and sign it)"
                )

    @staticmethod
    def _lock(session: Session) -> None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_PUBLISH_LOCK))


def _seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
