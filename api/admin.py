"""Administration outside HTTP: settings loading, the demo data set, and the CLI's admin tasks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from crypto import CST
from schemas.api import CertificateCreate
from schemas.catalogue import BUILTIN_CATALOGUE, Catalogue, load_catalogue
from schemas.dates import add_years
from schemas.idnumber import check_character

from .db import make_engine, write_transaction
from .keyring import Keyring
from .migrate import require_current_schema
from .models import ApiKey, Certificate, Issuer
from .security import hash_api_key
from .services import issuance
from .settings import Settings

DEMO_ISSUER = {
    "code": "CN-44",
    "name": "广东省应急管理厅（演示）",
    "region": "广东省",
    "operations": ["1.1", "1.2", "2.1", "2.2", "2.3", "3.1"],
}
# A fixed, published issuer API key, accepted only because demo secrets only ever exist in demo mode.
DEMO_ISSUER_API_KEY = "cs_de0de0de0de0_demo_issuer_api_key_do_not_use"


class SettingsError(Exception):
    """Settings are invalid; the message names the variables, never their values."""


def load_settings(*, demo: bool, **overrides: object) -> Settings:
    """Load settings from the environment (plus overrides) without echoing any value on error."""
    try:
        return Settings.for_demo(**overrides) if demo else Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"CERTSEAL_{'_'.join(str(p) for p in error['loc']).upper() or 'SETTINGS'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise SettingsError(problems) from None


@dataclass
class Runtime:
    """An engine, keyring and catalogue for work outside a request."""

    settings: Settings
    engine: Engine
    keyring: Keyring
    catalogue: Catalogue


@contextmanager
def runtime(settings: Settings) -> Iterator[Runtime]:
    """Open the database (refusing one not at the newest schema revision) and the keyring; dispose afterwards."""
    engine = make_engine(settings.database_url, limits=settings.database_limits)
    try:
        require_current_schema(engine)
        keyring = Keyring(engine, settings.require("key_passphrase").encode())
        keyring.check_active_keys()
        yield Runtime(settings, engine, keyring, load_catalogue(settings.catalogue_path or BUILTIN_CATALOGUE))
    finally:
        engine.dispose()


def demo_id_number(birth: str, sequence: str) -> str:
    """A checksum-valid (fictitious) Guangzhou ID number for demo data."""
    first17 = f"440106{birth}{sequence}"
    return first17 + check_character(first17)


@dataclass(frozen=True)
class DemoCertificate:
    """One demo certificate and what verifying it should say."""

    label: str
    certificate_id: str
    expected: str


def seed_demo(rt: Runtime) -> list[DemoCertificate]:
    """Create, if absent, the demo issuer, its API key and four certificates; return them."""
    with Session(rt.engine, expire_on_commit=False) as session, write_transaction(session):
        issuer = session.exec(select(Issuer).where(Issuer.code == DEMO_ISSUER["code"])).first()
        if issuer is None:
            issuer, _ = issuance.create_issuer(session, rt.keyring, alg="ES256", catalogue=rt.catalogue, **DEMO_ISSUER)  # type: ignore[arg-type]
            session.add(
                ApiKey(
                    prefix=DEMO_ISSUER_API_KEY.split("_")[1],
                    secret_hash=hash_api_key(DEMO_ISSUER_API_KEY),
                    scope="issuer",
                    issuer_id=issuer.id,
                    label="demo",
                )
            )
            now = datetime.now(CST)
            today = now.date()
            plans = [
                (
                    CertificateCreate(
                        holder_name="张伟",
                        holder_id_number=demo_id_number("19900307", "123"),
                        operation="2.1",
                        issue_date=add_years(today, -1),
                    ),
                    None,
                ),
                (
                    CertificateCreate(
                        holder_name="李强",
                        holder_id_number=demo_id_number("19851120", "245"),
                        operation="2.1",
                        issue_date=add_years(today, -2),
                    ),
                    "revoke",
                ),
                (
                    CertificateCreate(
                        holder_name="王芳",
                        holder_id_number=demo_id_number("19780615", "062"),
                        operation="2.2",
                        issue_date=date(2018, 3, 1),
                        valid_until=date(2024, 2, 29),
                        review_due=date(2030, 1, 1),
                    ),
                    None,
                ),
                (
                    CertificateCreate(
                        holder_name="陈杰",
                        holder_id_number=demo_id_number("19950811", "371"),
                        operation="1.2",
                        issue_date=add_years(today, -1),
                    ),
                    None,
                ),
            ]
            for request, action in plans:
                certificate = issuance.issue_certificate(
                    session,
                    rt.keyring,
                    issuer=issuer,
                    request=request,
                    settings=rt.settings,
                    catalogue=rt.catalogue,
                    now=now,
                )
                if action:
                    session.flush()
                    issuance.change_status(
                        session,
                        certificate=certificate,
                        action=action,
                        reason="演示：证件被吊销 (demo revocation)",
                        actor="demo",
                    )
        rows = session.exec(
            select(Certificate).where(Certificate.issuer_id == issuer.id).order_by(Certificate.created_at)
        ).all()  # type: ignore[arg-type]
    expected = {
        "2.1": "accept",
        "2.2": "reject: expired",
        "1.2": "reject: operation_not_covered (with purpose hot_work)",
    }
    return [
        DemoCertificate(
            label=f"{row.holder_name} {row.operation}",
            certificate_id=row.id,
            expected="reject: revoked" if row.status == "revoked" else expected[row.operation],
        )
        for row in rows
    ]
