"""The demo data set: the published demo issuer, its API key and four certificates (demo mode only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, select

from crypto import CST
from schemas.api import CertificateCreate
from schemas.dates import add_years
from schemas.idnumber import check_character

from .db import write_transaction
from .deployment import DemoIssuerConflict, demo_issuer_ids, flag_demo_data
from .models import ApiKey, Certificate, Issuer
from .runtime import Runtime
from .security import hash_api_key
from .services import issuance
from .settings import DEMO_ISSUER_API_KEY, DEMO_ISSUER_API_KEY_PREFIX

DEMO_ISSUER = {
    "code": "CN-44",
    "name": "广东省应急管理厅（演示）",
    "region": "广东省",
    "operations": ["1.1", "1.2", "2.1", "2.2", "2.3", "3.1"],
}


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
    """Create, if absent, the demo issuer, its API key and four certificates, and flag the database; return them.

    Only in demo mode: the demo API key is published. An issuer with the demo code that is not demo
    data is never adopted (:class:`DemoIssuerConflict`), so ``certseal demo purge`` removes only the demo.
    """
    if not rt.settings.demo:
        raise RuntimeError("demo data is only seeded in demo mode (--demo or CERTSEAL_DEMO=true)")
    with Session(rt.engine, expire_on_commit=False) as session, write_transaction(session):
        issuer = session.exec(select(Issuer).where(Issuer.code == DEMO_ISSUER["code"])).first()
        if issuer is not None and issuer.id not in demo_issuer_ids(session.connection()):
            raise DemoIssuerConflict(issuer.code)
        now = rt.clock.now()
        if issuer is None:
            issuer, _ = issuance.create_issuer(
                session,
                rt.keyring,
                alg="ES256",
                catalogue=rt.catalogue,
                now=now,
                **DEMO_ISSUER,  # type: ignore[arg-type]
            )
            session.flush()
            flag_demo_data(session.connection(), issuer_id=issuer.id)
            session.add(
                ApiKey(
                    prefix=DEMO_ISSUER_API_KEY_PREFIX,
                    secret_hash=hash_api_key(DEMO_ISSUER_API_KEY),
                    scope="issuer",
                    issuer_id=issuer.id,
                    label="demo",
                )
            )
            today = now.astimezone(CST).date()
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
                        now=now,
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
