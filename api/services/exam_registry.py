"""Training institutions, exam points (with 教考分离 exclusions and their status) and exam sessions.

Callers run each function inside one :func:`api.db.read_transaction` or :func:`api.db.write_transaction`.
``owner`` is the calling issuer's id, or None for the admin, who sees every row: another issuer's row is
answered exactly as a missing one. Status changes are conditional updates, so two racing changes cannot
both pass; a new session share-locks its exam point, so it cannot slip in beside a suspension.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from schemas.catalogue import Catalogue
from schemas.exams import could_be_code

from ..models import (
    Certificate,
    ExamPoint,
    ExamPointExclusion,
    ExamResult,
    ExamSession,
    Issuer,
    TrainingInstitution,
    could_be_id,
)
from .errors import (
    Conflict,
    ExamPointExists,
    ExamPointNotActive,
    ExamPointNotFound,
    ExamSessionNotFound,
    Forbidden,
    IssuerNotFound,
    OperationNotAllowed,
    TrainingInstitutionExists,
    TrainingInstitutionNotFound,
    Unprocessable,
)
from .issuance import checked_operations

# From which statuses each change may start, and where it leads: closed is final.
EXAM_POINT_TRANSITIONS = {
    "suspend": ({"active"}, "suspended"),
    "reinstate": ({"suspended"}, "active"),
    "close": ({"active", "suspended"}, "closed"),
}


class ExamPointTransition(Conflict):
    """The exam point's status does not allow this change (closed is final)."""

    code = "invalid_exam_point_transition"
    message = "the exam point's status does not allow this change"


class UnknownTrainingInstitution(Unprocessable):
    """An exclusion names a training institution that is not registered (for this issuer)."""

    code = "unknown_training_institution"
    message = "an excluded training institution is not registered"


class IssuerRequired(Unprocessable):
    """The admin must name the issuer a new row belongs to."""

    code = "issuer_required"
    message = "the admin names the issuer (field issuer)"


class InvalidAccreditation(Unprocessable):
    """The accreditation window ends before it begins."""

    code = "invalid_accreditation"
    message = "accredited_until is before accredited_from"


def owning_issuer(session: Session, *, caller: Issuer | None, code: str | None) -> Issuer:
    """The issuer a new row belongs to: the calling issuer (which may only name itself), or the one the admin names."""
    if caller is not None:
        if code is not None and code != caller.code:
            raise Forbidden("an issuer API key registers for its own issuer only")
        return caller
    if code is None:
        raise IssuerRequired()
    issuer = session.exec(select(Issuer).where(Issuer.code == code)).first()
    if issuer is None:
        raise IssuerNotFound()
    return issuer


def issuer_codes(session: Session, issuer_ids: set[str]) -> dict[str, str]:
    """Issuer codes by id, for answers."""
    if not issuer_ids:
        return {}
    rows = session.exec(select(Issuer.id, Issuer.code).where(Issuer.id.in_(issuer_ids))).all()  # type: ignore[attr-defined]
    return dict(rows)


# --- Training institutions -----------------------------------------------------------------------------


def create_training_institution(
    session: Session, *, issuer: Issuer, code: str, name: str, region: str, now: datetime
) -> TrainingInstitution:
    """Register a training institution; :class:`TrainingInstitutionExists` if the code is taken (anywhere)."""
    if session.exec(select(TrainingInstitution.id).where(TrainingInstitution.code == code)).first() is not None:
        raise TrainingInstitutionExists()
    institution = TrainingInstitution(code=code, issuer_id=issuer.id, name=name, region=region, created_at=now)
    session.add(institution)
    try:
        session.flush()  # a concurrent create of the same code fails here, on the unique index
    except IntegrityError:
        raise TrainingInstitutionExists() from None
    return institution


def find_training_institution(session: Session, *, code: str, owner: str | None) -> TrainingInstitution:
    """The institution with this code if the caller may see it, else :class:`TrainingInstitutionNotFound`."""
    if not could_be_code(code):
        raise TrainingInstitutionNotFound()
    institution = session.exec(select(TrainingInstitution).where(TrainingInstitution.code == code)).first()
    if institution is None or (owner is not None and institution.issuer_id != owner):
        raise TrainingInstitutionNotFound()
    return institution


def list_training_institutions(
    session: Session, *, owner: str | None, limit: int, offset: int
) -> tuple[int, list[TrainingInstitution]]:
    """One page of the caller's institutions (the admin: all), by code, with the total."""
    query = select(TrainingInstitution)
    if owner is not None:
        query = query.where(TrainingInstitution.issuer_id == owner)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(TrainingInstitution.code).offset(offset).limit(limit)).all()  # type: ignore[arg-type]
    return total, list(rows)


# --- Exam points -----------------------------------------------------------------------------------------


def create_exam_point(
    session: Session,
    *,
    issuer: Issuer,
    code: str,
    name: str,
    region: str,
    address: str,
    operations: list[str],
    capacity_per_session: int,
    accredited_from: date,
    accredited_until: date | None,
    excluded_training_institutions: Sequence[str],
    catalogue: Catalogue,
    now: datetime,
) -> ExamPoint:
    """Register an exam point for items within the issuer's scope, with the institutions it must not examine for.

    Exclusions name institutions registered by the same issuer (:class:`UnknownTrainingInstitution` else).
    """
    items = checked_operations(operations, catalogue)
    outside = [item for item in items if item not in issuer.operations]
    if outside:
        raise OperationNotAllowed(f"issuer {issuer.code} may not certify {', '.join(outside)}")
    if accredited_until is not None and accredited_until < accredited_from:
        raise InvalidAccreditation()
    wanted = set(excluded_training_institutions)
    institutions = (
        session.exec(
            select(TrainingInstitution.id, TrainingInstitution.code).where(
                TrainingInstitution.code.in_(wanted),  # type: ignore[attr-defined]
                TrainingInstitution.issuer_id == issuer.id,
            )
        ).all()
        if wanted
        else []
    )
    if len(institutions) != len(wanted):
        raise UnknownTrainingInstitution(f"{len(wanted) - len(institutions)} excluded institution(s) not registered")
    if session.exec(select(ExamPoint.id).where(ExamPoint.code == code)).first() is not None:
        raise ExamPointExists()
    point = ExamPoint(
        code=code,
        issuer_id=issuer.id,
        name=name,
        region=region,
        address=address,
        operations=items,
        capacity_per_session=capacity_per_session,
        accredited_from=accredited_from,
        accredited_until=accredited_until,
        created_at=now,
    )
    session.add(point)
    try:
        session.flush()
    except IntegrityError:
        raise ExamPointExists() from None
    session.add_all(
        ExamPointExclusion(exam_point_id=point.id, training_institution_id=institution_id)
        for institution_id, _code in institutions
    )
    session.flush()
    return point


def find_exam_point(session: Session, *, code: str, owner: str | None) -> ExamPoint:
    """The exam point with this code if the caller may see it, else :class:`ExamPointNotFound`."""
    if not could_be_code(code):
        raise ExamPointNotFound()
    point = session.exec(
        select(ExamPoint).where(ExamPoint.code == code).execution_options(populate_existing=True)
    ).first()
    if point is None or (owner is not None and point.issuer_id != owner):
        raise ExamPointNotFound()
    return point


def excluded_codes(session: Session, point_ids: Sequence[str]) -> dict[str, list[str]]:
    """The codes of the institutions each exam point must not examine for, sorted."""
    excluded: dict[str, list[str]] = {point_id: [] for point_id in point_ids}
    if not point_ids:
        return excluded
    rows = session.exec(
        select(ExamPointExclusion.exam_point_id, TrainingInstitution.code)
        .join(TrainingInstitution, TrainingInstitution.id == ExamPointExclusion.training_institution_id)  # type: ignore[arg-type]
        .where(ExamPointExclusion.exam_point_id.in_(point_ids))  # type: ignore[attr-defined]
        .order_by(TrainingInstitution.code)  # type: ignore[arg-type]
    ).all()
    for point_id, code in rows:
        excluded[point_id].append(code)
    return excluded


def list_exam_points(session: Session, *, owner: str | None, limit: int, offset: int) -> tuple[int, list[ExamPoint]]:
    """One page of the caller's exam points (the admin: all), by code, with the total."""
    query = select(ExamPoint)
    if owner is not None:
        query = query.where(ExamPoint.issuer_id == owner)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(ExamPoint.code).offset(offset).limit(limit)).all()  # type: ignore[arg-type]
    return total, list(rows)


def change_exam_point_status(
    session: Session, *, point: ExamPoint, action: str, reason: str, review_from: date | None = None, now: datetime
) -> ExamPoint:
    """Suspend, reinstate or close in one conditional update; :class:`ExamPointTransition` if the status forbids it."""
    allowed_from, target = EXAM_POINT_TRANSITIONS[action]
    values: dict[str, object] = {"status": target, "status_reason": reason, "status_changed_at": now}
    if action == "close":
        values["review_from"] = review_from
    changed = session.execute(
        update(ExamPoint)
        .where(ExamPoint.id == point.id, ExamPoint.status.in_(allowed_from))  # type: ignore[arg-type,attr-defined]
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(point)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise ExamPointTransition(f"cannot {action} a {point.status} exam point")
    return point


def certificates_to_review(
    session: Session, *, point: ExamPoint, limit: int, offset: int
) -> tuple[int, list[Certificate]]:
    """A closed point's certificates issued from its ``review_from`` on, by issue date (none unless closed)."""
    if point.status != "closed" or point.review_from is None:
        return 0, []
    query = select(Certificate).where(
        Certificate.exam_point_id == point.id, Certificate.issue_date >= point.review_from
    )
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(Certificate.issue_date, Certificate.id).offset(offset).limit(limit)  # type: ignore[arg-type]
    ).all()
    return total, list(rows)


# --- Exam sessions ---------------------------------------------------------------------------------------


def create_exam_session(
    session: Session,
    *,
    point_code: str,
    owner: str | None,
    operation: str,
    exam_date: date,
    theory_exam: bool,
    practical_exam: bool,
    real_equipment: bool,
    proctor_ids: list[str],
    catalogue: Catalogue,
    now: datetime,
) -> ExamSession:
    """Open a session at an active, accredited exam point for one of its items (and its issuer's).

    The point's row is share-locked (PostgreSQL; SQLite's write lock covers it) until the commit, so a
    suspension or closure cannot land between the status check and the new session.
    """
    point = session.exec(
        select(ExamPoint)
        .where(ExamPoint.code == point_code)
        .with_for_update(read=True)
        .execution_options(populate_existing=True)
    ).first()
    if point is None or (owner is not None and point.issuer_id != owner):
        raise ExamPointNotFound()
    (item,) = checked_operations([operation], catalogue)
    issuer = session.get(Issuer, point.issuer_id)
    if issuer is None:
        raise IssuerNotFound()
    if item not in point.operations:
        raise OperationNotAllowed(f"exam point {point.code} is not accredited for {item}")
    if item not in issuer.operations:
        raise OperationNotAllowed(f"issuer {issuer.code} may not certify {item}")
    if point.status != "active":
        raise ExamPointNotActive(f"the exam point is {point.status}")
    if exam_date < point.accredited_from or (point.accredited_until is not None and exam_date > point.accredited_until):
        raise ExamPointNotActive("the exam date is outside the exam point's accreditation")
    exam_session = ExamSession(
        issuer_id=point.issuer_id,
        exam_point_id=point.id,
        operation=item,
        exam_date=exam_date,
        theory_exam=theory_exam,
        practical_exam=practical_exam,
        real_equipment=real_equipment,
        proctor_ids=proctor_ids,
        created_at=now,
    )
    session.add(exam_session)
    session.flush()
    return exam_session


def find_exam_session(session: Session, *, session_id: str, owner: str | None) -> ExamSession:
    """The exam session with this id if the caller may see it, else :class:`ExamSessionNotFound`."""
    exam_session = session.get(ExamSession, session_id) if could_be_id(session_id) else None
    if exam_session is None or (owner is not None and exam_session.issuer_id != owner):
        raise ExamSessionNotFound()
    return exam_session


def list_exam_sessions(
    session: Session, *, owner: str | None, point_code: str | None, limit: int, offset: int
) -> tuple[int, list[ExamSession]]:
    """One page of the caller's sessions (the admin: all), optionally at one exam point; newest exam first."""
    query = select(ExamSession)
    if owner is not None:
        query = query.where(ExamSession.issuer_id == owner)
    if point_code is not None:
        query = query.join(ExamPoint, ExamPoint.id == ExamSession.exam_point_id).where(ExamPoint.code == point_code)  # type: ignore[arg-type]
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(ExamSession.exam_date.desc(), ExamSession.id).offset(offset).limit(limit)  # type: ignore[attr-defined]
    ).all()
    return total, list(rows)


def result_counts(session: Session, session_ids: Sequence[str]) -> dict[str, int]:
    """How many results each session holds."""
    if not session_ids:
        return {}
    rows = session.exec(
        select(ExamResult.session_id, func.count())
        .where(ExamResult.session_id.in_(session_ids))  # type: ignore[attr-defined]
        .group_by(ExamResult.session_id)
    ).all()
    return dict(rows)


def point_codes(session: Session, point_ids: set[str]) -> dict[str, str]:
    """Exam point codes by id, for answers."""
    if not point_ids:
        return {}
    return dict(session.exec(select(ExamPoint.id, ExamPoint.code).where(ExamPoint.id.in_(point_ids))).all())  # type: ignore[attr-defined]
