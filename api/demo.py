"""The demo data set: the published demo issuer, its API key and four certificates (demo mode only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from crypto import CST, SigningKey
from schemas.api import CertificateCreate
from schemas.dates import add_years
from schemas.idnumber import check_character

from .db import write_transaction
from .deployment import DemoIssuerConflict, demo_issuer_ids, flag_demo_data
from .models import ApiKey, Certificate, ExamPoint, ExamPointExclusion, ExamSession, Issuer, TrainingInstitution
from .runtime import Runtime
from .security import hash_api_key
from .services import issuance
from .settings import DEMO_ISSUER_API_KEY, DEMO_ISSUER_API_KEY_PREFIX, Settings

DEMO_ISSUER = {
    "code": "CN-44",
    "name": "广东省应急管理厅（演示）",
    "region": "广东省",
    "operations": ["1.1", "1.2", "2.1", "2.2", "2.3", "3.1"],
}


DEMO_HOLDERS = ("张伟", "李强", "王芳", "陈杰")
DEMO_TRUST_ANCHOR_FILE = "certseal-demo-trust-anchor.pem"


def ensure_demo_trust_anchor(settings: Settings) -> Settings:
    """In demo mode without a configured anchor, these settings with a demo anchor (made once, beside the database).

    Its private key is encrypted under the published demo passphrase, like every demo secret: the demo
    trust list proves the mechanism, not trust. Outside demo mode the settings are returned unchanged.
    """
    if not settings.demo or settings.trust_anchor_key_file or settings.trust_anchor_public_key_file:
        return settings
    url = make_url(settings.database_url)
    folder = Path(url.database).parent if url.get_backend_name() == "sqlite" and url.database else Path.cwd()
    path = (folder / DEMO_TRUST_ANCHOR_FILE).resolve()
    if not path.exists():
        key = SigningKey.generate("ES256")
        pem = key.to_pem(settings.require("trust_anchor_passphrase").encode())
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
    return settings.model_copy(update={"trust_anchor_key_file": path})


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
                        rt.status_lists,
                        certificate=certificate,
                        action=action,
                        reason="演示：证件被吊销 (demo revocation)",
                        actor="demo",
                        now=now,
                    )
            rt.trust_lists.key_changed(session, now=now)
        rows = sorted(
            session.exec(select(Certificate).where(Certificate.issuer_id == issuer.id)).all(),
            key=lambda row: DEMO_HOLDERS.index(row.holder_name),  # the order of the plan, whatever the indexes
        )
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


DEMO_EXAM_POINT = "GD-EP-001"
DEMO_RESULTS_CSV = "examples/exam-results.csv"
# GD-TI-003 is the exam point's own training arm: 教考分离 forbids it to examine that institution's trainees.
DEMO_TRAINING_INSTITUTIONS = (
    ("GD-TI-001", "广州市安全技术培训中心（演示）"),
    ("GD-TI-002", "佛山市焊接技术培训学校（演示）"),
    ("GD-TI-003", "天河考试点附属培训部（演示）"),
)


def seed_demo_exam(rt: Runtime) -> str:
    """Create, if absent, the demo's training institutions, exam point and a welding exam session; return its id.

    The session (item 2.1, three days ago, practical on real equipment) is where
    ``examples/exam-results.csv`` goes, so a newcomer can run exam → import → batch → printed cards.
    """
    if not rt.settings.demo:
        raise RuntimeError("demo data is only seeded in demo mode (--demo or CERTSEAL_DEMO=true)")
    with Session(rt.engine, expire_on_commit=False) as session, write_transaction(session):
        issuer = session.exec(select(Issuer).where(Issuer.code == DEMO_ISSUER["code"])).one()
        point = session.exec(select(ExamPoint).where(ExamPoint.code == DEMO_EXAM_POINT)).first()
        if point is None:
            today = rt.clock.now().astimezone(CST).date()
            institutions = [
                TrainingInstitution(code=code, issuer_id=issuer.id, name=name, region="广东省")
                for code, name in DEMO_TRAINING_INSTITUTIONS
            ]
            point = ExamPoint(
                code=DEMO_EXAM_POINT,
                issuer_id=issuer.id,
                name="广州市安全生产考试点（天河，演示）",
                region="广东省",
                address="广州市天河区演示路 1 号",
                operations=["2.1", "2.2", "3.1"],
                capacity_per_session=60,
                accredited_from=date(2024, 1, 1),
                accredited_until=add_years(today, 3),
            )
            session.add_all(institutions)
            session.add(point)
            session.flush()
            session.add(ExamPointExclusion(exam_point_id=point.id, training_institution_id=institutions[2].id))
            session.add(
                ExamSession(
                    issuer_id=issuer.id,
                    exam_point_id=point.id,
                    operation="2.1",
                    exam_date=today - timedelta(days=3),
                    theory_exam=True,
                    practical_exam=True,
                    real_equipment=True,
                    proctor_ids=["GD-P-1001", "GD-P-1002"],
                )
            )
            session.flush()
        exam = session.exec(
            select(ExamSession).where(ExamSession.exam_point_id == point.id).order_by(ExamSession.created_at)  # type: ignore[arg-type]
        ).first()
        if exam is None:
            raise RuntimeError(f"the demo exam point {DEMO_EXAM_POINT} has no session")
        return exam.id
