"""The issuers' status lists (IETF Token Status List): kept in step with the registry, signed on demand.

Each issuer's certificates are spread over lists of :data:`crypto.LIST_SIZE` two-bit entries. A
list's compressed array (``status_lists.lst``) is rebuilt inside the very transaction that changes a
status in it, holding the list row's lock, so two changes in one list never overwrite each other and
the array always matches the committed registry. The token served is signed from that array with the
issuer's active ``status_list`` key, and re-signed whenever it is older than the list's ``ttl``: a
verifier's "status as of" is at most ``ttl`` old, and a change is in the very next list fetched.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

import crypto
from crypto import LIST_SIZE, Status, StatusList

from ..http_cache import etag_of
from ..keyring import Keyring
from ..models import Certificate, Issuer, SigningKeyRow, StatusListRow
from ..settings import Settings
from .errors import IssuerNotFound, StatusIndexesExhausted, StatusListNotFound, StatusListUnavailable

STATUS_VALUES = {
    "valid": Status.VALID,
    "revoked": Status.REVOKED,
    "suspended": Status.SUSPENDED,
    "superseded": Status.SUPERSEDED,
}
# A new list opens once the random draws average half a list per open list: collisions stay rare
# (at most one draw in two is retried) and every list still hides its holders among many.
DRAWS_PER_LIST = LIST_SIZE // 2
MAX_DRAWS = 64
STATUS_LISTS_PATH = "/v1/status-lists"


def status_base(public_base_url: str, issuer_code: str) -> str:
    """The ``status_base`` of an issuer: its lists are ``<status_base>/<list number>``."""
    return f"{public_base_url.rstrip('/')}{STATUS_LISTS_PATH}/{issuer_code}"


def draw_status_index(session: Session, issuer: Issuer) -> int:
    """Draw an unused status index at random over the issuer's open lists (from list 1 on); never sequential.

    The caller holds the issuer row's lock (issuance takes it first), so no concurrent issuance of
    this issuer can draw the same index between the check and the insert; the unique index on
    ``(issuer_id, status_index)`` backs that up.
    """
    row = session.execute(
        update(Issuer)
        .where(Issuer.id == issuer.id)  # type: ignore[arg-type]
        .values(random_indexes_drawn=Issuer.random_indexes_drawn + 1)
        .returning(Issuer.random_indexes_drawn, Issuer.first_random_list)
    ).first()
    if row is None:
        raise IssuerNotFound()
    drawn, first_list = row
    open_lists = 1 + (drawn - 1) // DRAWS_PER_LIST
    # Open lists are at most about half full, so a draw is taken with probability <= 1/2 and 64 taken
    # draws in a row mean something is wrong (e.g. lists filled outside this function): refuse, never loop.
    for _ in range(MAX_DRAWS):
        candidate = LIST_SIZE * (first_list + secrets.randbelow(open_lists)) + secrets.randbelow(LIST_SIZE)
        taken = session.exec(
            select(Certificate.id).where(Certificate.issuer_id == issuer.id, Certificate.status_index == candidate)
        ).first()
        if taken is None:
            return candidate
    raise StatusIndexesExhausted()


def draw_status_indexes(session: Session, issuer: Issuer, count: int) -> list[int]:
    """Draw ``count`` distinct unused status indexes at random, as :func:`draw_status_index` draws one.

    For a batch: ``random_indexes_drawn`` moves by ``count`` in one update (so the lists open exactly as
    ``count`` single draws would open them), and the candidates are checked against the registry in
    bounded ``IN`` queries instead of one query each. The caller holds the issuer row's lock.
    """
    if count <= 0:
        return []
    row = session.execute(
        update(Issuer)
        .where(Issuer.id == issuer.id)  # type: ignore[arg-type]
        .values(random_indexes_drawn=Issuer.random_indexes_drawn + count)
        .returning(Issuer.random_indexes_drawn, Issuer.first_random_list)
    ).first()
    if row is None:
        raise IssuerNotFound()
    drawn, first_list = row
    open_lists = 1 + (drawn - 1) // DRAWS_PER_LIST
    chosen: dict[int, None] = {}  # in draw order: a set of ints would iterate nearly sorted
    # Each round keeps the free candidates and redraws the rest; open lists are at most about half full,
    # so the missing part halves (at least) every round and 64 rounds are never needed unless broken.
    for _ in range(MAX_DRAWS):
        missing = count - len(chosen)
        if missing == 0:
            return list(chosen)
        candidates: dict[int, None] = {}
        while len(candidates) < missing:
            candidate = LIST_SIZE * (first_list + secrets.randbelow(open_lists)) + secrets.randbelow(LIST_SIZE)
            if candidate not in chosen:
                candidates[candidate] = None
        ordered = list(candidates)
        for start in range(0, len(ordered), 500):  # bounded IN lists (SQLite's parameter limit)
            taken = session.exec(
                select(Certificate.status_index).where(
                    Certificate.issuer_id == issuer.id,
                    Certificate.status_index.in_(ordered[start : start + 500]),  # type: ignore[attr-defined]
                )
            ).all()
            for index in taken:
                del candidates[index]
        chosen.update(candidates)
    raise StatusIndexesExhausted()


def list_numbers(session: Session, issuer: Issuer) -> range:
    """The issuer's lists: 0 on (the sequential indexes issued before random draws), to the last open list."""
    highest = session.exec(select(func.max(Certificate.status_index)).where(Certificate.issuer_id == issuer.id)).first()
    drawn = issuer.random_indexes_drawn
    last_open = issuer.first_random_list + (drawn - 1) // DRAWS_PER_LIST if drawn else 0
    return range(max(last_open, (highest or 0) >> crypto.statuslist.LIST_INDEX_BITS) + 1)


def status_list_keyless_issuers(session: Session) -> list[str]:
    """Codes of the issuers with no active status-list key (e.g. made before migration 0006, or compromised)."""
    keyed = select(SigningKeyRow.issuer_id).where(SigningKeyRow.use == "status_list", SigningKeyRow.state == "active")
    return list(session.exec(select(Issuer.code).where(Issuer.id.not_in(keyed)).order_by(Issuer.code)).all())  # type: ignore[attr-defined]


def build_status_list(session: Session, *, issuer_id: str, number: int) -> StatusList:
    """Build list ``number`` of an issuer from the registry (only the certificates that are not valid are read)."""
    first = number * LIST_SIZE
    status_list = StatusList.new()
    rows = session.exec(
        select(Certificate.status_index, Certificate.status).where(
            Certificate.issuer_id == issuer_id,
            Certificate.status != "valid",
            Certificate.status_index >= first,
            Certificate.status_index < first + LIST_SIZE,
        )
    ).all()
    for status_index, status in rows:
        status_list.set(status_index - first, STATUS_VALUES[status])
    return status_list


@dataclass(frozen=True)
class SignedStatusList:
    """A status list token ready to serve."""

    token: bytes
    etag: str
    iat: datetime
    expires_cache_at: datetime  # iat + ttl: when the service signs a newer one


class StatusLists:
    """Builds, signs and serves the status lists of every issuer."""

    @classmethod
    def from_settings(cls, settings: Settings, keyring: Keyring) -> StatusLists:
        """The status lists as the settings configure them."""
        return cls(
            keyring,
            public_base_url=settings.public_base_url,
            ttl=timedelta(seconds=settings.status_list_ttl_seconds),
            lifetime=timedelta(hours=settings.status_list_lifetime_hours),
        )

    def __init__(self, keyring: Keyring, *, public_base_url: str, ttl: timedelta, lifetime: timedelta) -> None:
        self._keyring = keyring
        self.public_base_url = public_base_url
        self.ttl = ttl
        self.lifetime = lifetime

    def uri(self, issuer_code: str, status_index: int) -> str:
        """The URI (``sub``) of the list that holds ``status_index``."""
        return crypto.status_list_uri(status_base(self.public_base_url, issuer_code), status_index)

    def record_change(self, session: Session, *, issuer_id: str, status_index: int, now: datetime) -> None:
        """Rebuild the list holding ``status_index`` in the caller's transaction and sign it at once."""
        number = status_index >> crypto.statuslist.LIST_INDEX_BITS
        row = self._locked_row(session, issuer_id=issuer_id, number=number, now=now)
        row.lst = build_status_list(session, issuer_id=issuer_id, number=number).compressed()
        row.built_at = now
        self._sign(session, row, now=now)

    def all_uris(self, session: Session) -> list[str]:
        """Every list of every issuer that has a status-list key (the draft's Status List Aggregation)."""
        issuers = session.exec(
            select(Issuer)
            .join(SigningKeyRow, SigningKeyRow.issuer_id == Issuer.id)  # type: ignore[arg-type]
            .where(SigningKeyRow.use == "status_list", SigningKeyRow.state == "active")
            .order_by(Issuer.code)
        ).all()
        base = self.public_base_url
        return [
            f"{status_base(base, issuer.code)}/{number}"
            for issuer in issuers
            for number in list_numbers(session, issuer)
        ]

    def fresh_token(self, session: Session, *, issuer: Issuer, number: int, now: datetime) -> SignedStatusList | None:
        """The stored token if it can be served as is (younger than ``ttl``, signed by the active key)."""
        row = session.get(StatusListRow, (issuer.id, number))
        # Also never past the token's own exp (signed under an older, shorter lifetime setting).
        if row is None or not row.token or now >= min(row.iat + self.ttl, row.exp):
            return None
        key = self._active_key(session, issuer.id)
        if key is None or key.kid != row.kid:
            return None
        return self._served(row)

    def signed_token(self, session: Session, *, issuer: Issuer, number: int, now: datetime) -> SignedStatusList:
        """Sign list ``number`` now unless another request just did (call in a write transaction)."""
        if number not in list_numbers(session, issuer):
            raise StatusListNotFound()
        row = self._locked_row(session, issuer_id=issuer.id, number=number, now=now)
        if not row.lst:  # first request for this list: build it from the registry
            row.lst = build_status_list(session, issuer_id=issuer.id, number=number).compressed()
            row.built_at = now
        fresh = self.fresh_token(session, issuer=issuer, number=number, now=now)
        if fresh is not None:
            return fresh
        if not self._sign(session, row, now=now):
            raise StatusListUnavailable()
        return self._served(row)

    def _served(self, row: StatusListRow) -> SignedStatusList:
        return SignedStatusList(
            token=row.token, etag=etag_of(row.token), iat=row.iat, expires_cache_at=min(row.iat + self.ttl, row.exp)
        )

    def _active_key(self, session: Session, issuer_id: str) -> SigningKeyRow | None:
        return session.exec(
            select(SigningKeyRow).where(
                SigningKeyRow.issuer_id == issuer_id,
                SigningKeyRow.use == "status_list",
                SigningKeyRow.state == "active",
            )
        ).first()

    def _sign(self, session: Session, row: StatusListRow, *, now: datetime) -> bool:
        """Sign ``row.lst``; without an active status-list key the token is cleared (nothing stale is served)."""
        key_row = self._active_key(session, row.issuer_id)
        issuer_code = session.exec(select(Issuer.code).where(Issuer.id == row.issuer_id)).one()
        if key_row is None:
            row.token, row.kid = b"", ""
            session.add(row)
            return False
        status_list = StatusList.from_compressed(crypto.STATUS_BITS, row.lst, max_entries=LIST_SIZE)
        iat = now.replace(microsecond=0)
        row.token = crypto.sign_status_list(
            status_list,
            self._keyring.signing_key(key_row),
            uri=f"{status_base(self.public_base_url, issuer_code)}/{row.number}",
            iat=iat,
            exp=iat + self.lifetime,
            ttl=self.ttl,
        )
        row.kid, row.iat, row.exp = key_row.kid, iat, iat + self.lifetime
        session.add(row)
        return True

    def _locked_row(self, session: Session, *, issuer_id: str, number: int, now: datetime) -> StatusListRow:
        """The list's row, created empty if missing, locked until the transaction ends."""
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(StatusListRow)
            .values(issuer_id=issuer_id, number=number, lst=b"", token=b"", kid="", iat=now, exp=now, built_at=now)
            .on_conflict_do_nothing(index_elements=["issuer_id", "number"])
        )
        return session.exec(
            select(StatusListRow)
            .where(StatusListRow.issuer_id == issuer_id, StatusListRow.number == number)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
