"""Exam results: bulk import (CSV or JSON rows) with a per-row report, listing, and candidates' photos.

An ID number lives only in memory here: a result keeps its keyed HMAC, the masked form and the birth
date. No report, error or log line carries an ID number or a name; rows are named by line number and
zip entries by position.

Import rules, in the order each row is checked (the first failure is the row's one error):
``malformed_row`` (wrong number of fields, wrong JSON shape, over-long fields), ``invalid_id_number``,
``duplicate_candidate`` (the same ID number on an earlier row of this upload), ``missing_name``,
``score_out_of_range`` (anything but a whole number 0..100: decimals, words, an empty cell),
``holder_too_young`` / ``holder_too_old`` (age on the exam date), ``trained_by_exam_point`` (教考分离),
then against what is stored: identical → ``unchanged`` (not an error: a re-import is a no-op), different
→ ``result_conflict`` (results are immutable), ``retakes_exhausted`` (more earlier fails of this item
within the pass validity than ``CERTSEAL_EXAM_RETAKES``), and ``over_capacity`` (rows beyond the
exam point's capacity per session, counting the results already stored).

The import holds the session row's lock (``SELECT ... FOR UPDATE``; SQLite's write transaction
serialises) from its first read to its commit, so two concurrent imports of one session run one after
the other: the second sees the first's rows as ``unchanged`` and capacity is never counted twice.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import bindparam, func, insert, update
from sqlmodel import Session, select

import crypto
from crypto import CST
from schemas.dates import add_months
from schemas.exams import (
    MAX_RESULT_ROWS,
    RESULTS_CSV_HEADER,
    ImportReport,
    PhotoIssue,
    PhotoReport,
    RowIssue,
    could_be_code,
)
from schemas.idnumber import InvalidIdNumber, age_on, birth_date, normalize_id_number

from ..db import read_transaction, write_transaction
from ..models import ExamPoint, ExamPointExclusion, ExamResult, ExamSession, TrainingInstitution, new_id
from ..security import id_number_hmac
from ..settings import Settings
from .errors import (
    Busy,
    Conflict,
    ExamPointNotFound,
    ExamSessionNotFound,
    InvalidPhoto,
    PhotoTooLarge,
    PhotoTooManyPixels,
    Unprocessable,
)
from .photos import clean_photo_bytes

CHUNK_ROWS = 1000  # rows decided and inserted per step (one executemany; one tick of a progress bar)
IN_LIST = 500  # bounded IN lists: SQLite allows 32,766 parameters
MAX_ZIP_ENTRIES = 10_000  # the largest session (capacity_per_session is at most 10,000)
ZIP_INFLATION = 8  # JPEG and PNG barely compress: a zip declaring more than this times the upload limit is a bomb
PHOTO_WRITE_CHUNK = 100  # cleaned photos written per transaction
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


class InvalidCsvHeader(Unprocessable):
    """The CSV's first line is not the fixed header."""

    code = "invalid_csv_header"
    message = "the first line must be exactly: " + ",".join(RESULTS_CSV_HEADER)


class InvalidEncoding(Unprocessable):
    """The upload is not UTF-8 text."""

    code = "invalid_encoding"
    message = "the CSV must be UTF-8 (with or without a byte-order mark)"


class InvalidResultsBody(Unprocessable):
    """The JSON body is not a list of rows."""

    code = "invalid_results_body"
    message = "the body must be a JSON list of result rows"


class TooManyRows(Unprocessable):
    """More rows than one upload may carry."""

    code = "too_many_rows"
    message = f"an upload carries at most {MAX_RESULT_ROWS} rows"


class InvalidZip(Unprocessable):
    """The photo upload is not a readable zip, or has too many entries, or would inflate too far."""

    code = "invalid_zip"
    message = "the photos must come as a zip file"


class ExamNotHeld(Conflict):
    """The session's exam date is still ahead: there are no results yet."""

    code = "exam_not_held"
    message = "the exam session's date is in the future"


class MalformedCsv(Unprocessable):
    """The CSV's quoting is broken (a quote left open or stray): rows cannot be told apart reliably."""

    code = "malformed_csv"
    message = "the CSV's quoting is broken"


@dataclass(frozen=True)
class ResultRow:
    """One row as uploaded; ``problem`` is set for a row whose shape is already wrong (``malformed_row``)."""

    line: int
    id_number: object = None
    name: object = None
    theory_score: object = None
    practical_score: object = None
    training_institution: object = None
    problem: str | None = None
    from_json: bool = False  # JSON scores are integers; only a CSV cell's text of digits is a score


# --- Reading uploads ---------------------------------------------------------------------------------


def parse_csv(data: bytes) -> list[ResultRow]:
    """The rows of a results CSV (UTF-8, with or without BOM; the fixed header on line 1; blank lines skipped).

    ``line`` is the physical line a row starts on. :class:`InvalidEncoding`, :class:`InvalidCsvHeader`,
    :class:`TooManyRows`.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidEncoding() from None
    if "\x00" in text:  # no text file holds NUL, and the database could not store it
        raise InvalidEncoding("the CSV holds NUL characters: not a text file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[ResultRow] = []
    try:
        header = next(reader, None)
        if header is None or tuple(field.strip() for field in header) != RESULTS_CSV_HEADER:
            raise InvalidCsvHeader()
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields or fields == [""]:
                continue
            if len(rows) >= MAX_RESULT_ROWS:
                raise TooManyRows()
            if len(fields) != len(RESULTS_CSV_HEADER):
                rows.append(ResultRow(line, problem=f"the row has {len(fields)} fields, not {len(RESULTS_CSV_HEADER)}"))
                continue
            rows.append(ResultRow(line, *fields))
    except csv.Error:
        # A quote left open or stray: the report could not name its line reliably from here on.
        raise MalformedCsv() from None
    return rows


_JSON_FIELDS = frozenset({"id_number", "name", "theory_score", "practical_score", "training_institution"})


def parse_json(data: bytes) -> list[ResultRow]:
    """The rows of a JSON list; ``line`` is the 1-based position. :class:`InvalidResultsBody`, :class:`TooManyRows`."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise InvalidResultsBody("the body is not valid JSON") from None
    except RecursionError:  # lists or objects nested deeper than the parser's stack: no row is that deep
        raise InvalidResultsBody("the body nests too deeply to be a list of rows") from None
    if not isinstance(body, list):
        raise InvalidResultsBody()
    if len(body) > MAX_RESULT_ROWS:
        raise TooManyRows()
    rows: list[ResultRow] = []
    for position, item in enumerate(body, start=1):
        if not isinstance(item, dict):
            rows.append(ResultRow(position, problem="the row is not a JSON object"))
        elif not _JSON_FIELDS.issuperset(item):
            rows.append(ResultRow(position, problem=f"the row has {len(set(item) - _JSON_FIELDS)} unknown field(s)"))
        else:
            rows.append(
                ResultRow(
                    position,
                    item.get("id_number"),
                    item.get("name"),
                    item.get("theory_score"),
                    item.get("practical_score"),
                    item.get("training_institution"),
                    from_json=True,
                )
            )
    return rows


# --- Checking rows ---------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    """A row that passed the checks needing no database: what would be stored."""

    line: int
    number: str
    name: str
    theory: int
    practical: int
    institution: str | None


def _score(value: object, *, text: bool) -> int | None:
    """A whole number 0..100 from a JSON integer or (``text``: a CSV cell) a text of digits; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 100 else None
    if text and isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 100:
            return int(text)
    return None


def _check_row(row: ResultRow, *, exam_date: date, settings: Settings) -> _Candidate | RowIssue:
    """The row's candidate, or its first problem that needs no database."""
    if row.problem is not None:
        return RowIssue(line=row.line, code="malformed_row", message=row.problem)
    if not isinstance(row.id_number, str):
        return RowIssue(line=row.line, code="invalid_id_number", message="the ID number must be text")
    try:
        number = normalize_id_number(row.id_number)
    except InvalidIdNumber as exc:
        return RowIssue(line=row.line, code="invalid_id_number", message=str(exc))
    institution = row.training_institution
    if isinstance(institution, str):
        institution = institution.strip() or None
    if institution is not None and not isinstance(institution, str):
        return RowIssue(line=row.line, code="malformed_row", message="training_institution must be text")
    if institution is not None and not could_be_code(institution):
        return RowIssue(
            line=row.line,
            code="invalid_training_institution",
            message="training_institution must be a code of letters, digits, '.', '_' and '-' (at most 32 characters)",
        )
    if row.name is not None and not isinstance(row.name, str):
        return RowIssue(line=row.line, code="malformed_row", message="the name must be text")
    name = unicodedata.normalize("NFC", row.name.strip()) if row.name is not None else ""
    if not name:
        return RowIssue(line=row.line, code="missing_name", message="the name is missing")
    if problem := crypto.holder_name_problem(name):  # a name no certificate could carry is refused now
        return RowIssue(line=row.line, code="invalid_name", message=problem)
    theory = _score(row.theory_score, text=not row.from_json)
    practical = _score(row.practical_score, text=not row.from_json)
    if theory is None or practical is None:
        which = "theory_score" if theory is None else "practical_score"
        return RowIssue(
            line=row.line, code="score_out_of_range", message=f"{which} must be a whole number from 0 to 100"
        )
    age = age_on(number, exam_date)
    if age < settings.minimum_age:
        return RowIssue(
            line=row.line, code="holder_too_young", message=f"candidates must be at least {settings.minimum_age}"
        )
    if age > settings.maximum_age:
        return RowIssue(
            line=row.line, code="holder_too_old", message=f"candidates must be at most {settings.maximum_age}"
        )
    return _Candidate(row.line, number, name, theory, practical, institution)


def passes(theory: int, practical: int, settings: Settings) -> bool:
    """The pass rule: both the theory and the practical score at least the pass score (80 by default)."""
    return theory >= settings.exam_pass_score and practical >= settings.exam_pass_score


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _earlier_fails(
    session: Session, *, exam_session: ExamSession, hashes: Sequence[bytes], months: int
) -> dict[bytes, int]:
    """Fails of these candidates (any key version's hash) in other sessions of the same item within ``months``."""
    fails: dict[bytes, int] = {}
    since = add_months(exam_session.exam_date, -months)
    for chunk in _chunks(hashes, IN_LIST):
        rows = session.exec(
            select(ExamResult.id_hmac, func.count())
            .join(ExamSession, ExamSession.id == ExamResult.session_id)  # type: ignore[arg-type]
            .where(
                ExamSession.operation == exam_session.operation,
                ExamSession.id != exam_session.id,
                ExamSession.exam_date >= since,
                ExamSession.exam_date <= exam_session.exam_date,
                ExamResult.passed == False,  # noqa: E712 -- a SQL comparison
                ExamResult.id_hmac.in_(chunk),  # type: ignore[attr-defined]
            )
            .group_by(ExamResult.id_hmac)
        ).all()
        fails.update(rows)
    return fails


def _registered(session: Session, codes: set[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(sorted(codes), IN_LIST):
        found.update(
            session.exec(select(TrainingInstitution.code).where(TrainingInstitution.code.in_(chunk))).all()  # type: ignore[attr-defined]
        )
    return found


def import_results(
    session: Session,
    *,
    exam_session: ExamSession,
    rows: Sequence[ResultRow],
    settings: Settings,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Record the good rows of an upload and report every row; run inside one write transaction.

    Good rows are recorded even when others are refused. ``progress`` is told how many rows each step
    handled (steps of :data:`CHUNK_ROWS`).
    """
    locked = session.exec(
        select(ExamSession)
        .where(ExamSession.id == exam_session.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if locked is None:
        raise ExamSessionNotFound()
    if locked.exam_date > now.astimezone(CST).date():
        raise ExamNotHeld()
    point = session.get(ExamPoint, locked.exam_point_id)
    if point is None:
        raise ExamPointNotFound()
    keys = settings.id_hmac_keys
    current_key = keys[settings.id_hmac_key_version]
    excluded = set(
        session.exec(
            select(TrainingInstitution.code)
            .join(ExamPointExclusion, ExamPointExclusion.training_institution_id == TrainingInstitution.id)  # type: ignore[arg-type]
            .where(ExamPointExclusion.exam_point_id == point.id)
        ).all()
    )
    stored: dict[bytes, tuple[str, int, int, str | None]] = {
        row[0]: (row[1], row[2], row[3], row[4])
        for row in session.exec(
            select(
                ExamResult.id_hmac,
                ExamResult.holder_name,
                ExamResult.theory_score,
                ExamResult.practical_score,
                ExamResult.training_institution_code,
            ).where(ExamResult.session_id == locked.id)
        ).all()
    }
    room = point.capacity_per_session - len(stored)
    checked = [_check_row(row, exam_date=locked.exam_date, settings=settings) for row in rows]
    codes = {item.institution for item in checked if isinstance(item, _Candidate) and item.institution}
    registered = _registered(session, codes)
    usable_until = add_months(locked.exam_date, settings.exam_pass_valid_months)
    errors: list[RowIssue] = []
    warnings: list[RowIssue] = []
    seen: set[bytes] = set()
    accepted = unchanged = passed = 0
    for chunk in _chunks(checked, CHUNK_ROWS):
        hashes = {
            item.line: [id_number_hmac(item.number, key) for key in keys.values()]
            for item in chunk
            if isinstance(item, _Candidate)
        }
        fails = _earlier_fails(
            session,
            exam_session=locked,
            hashes=[digest for digests in hashes.values() for digest in digests],
            months=settings.exam_pass_valid_months,
        )
        new_rows: list[dict[str, Any]] = []
        for item in chunk:
            if isinstance(item, RowIssue):
                errors.append(item)
                continue
            current = id_number_hmac(item.number, current_key)
            if current in seen:
                errors.append(
                    RowIssue(
                        line=item.line, code="duplicate_candidate", message="the same candidate is on an earlier row"
                    )
                )
                continue
            seen.add(current)
            if item.institution is not None and item.institution in excluded:
                errors.append(
                    RowIssue(
                        line=item.line,
                        code="trained_by_exam_point",
                        message="this exam point may not examine candidates of this training institution (教考分离)",
                    )
                )
                continue
            before = next((stored[digest] for digest in hashes[item.line] if digest in stored), None)
            if before is not None:
                if before == (item.name, item.theory, item.practical, item.institution):
                    unchanged += 1
                else:
                    errors.append(
                        RowIssue(
                            line=item.line,
                            code="result_conflict",
                            message="recorded in this session with other data; results are immutable",
                        )
                    )
                continue
            earlier = sum(fails.get(digest, 0) for digest in hashes[item.line])
            if earlier > settings.exam_retakes:
                errors.append(
                    RowIssue(
                        line=item.line,
                        code="retakes_exhausted",
                        message=f"{earlier} earlier fails of this item within {settings.exam_pass_valid_months} months",
                    )
                )
                continue
            if room <= 0:
                errors.append(
                    RowIssue(
                        line=item.line,
                        code="over_capacity",
                        message=f"the exam point examines at most {point.capacity_per_session} candidates a session",
                    )
                )
                continue
            room -= 1
            is_pass = passes(item.theory, item.practical, settings)
            known = item.institution is None or item.institution in registered
            if not known:
                warnings.append(
                    RowIssue(
                        line=item.line,
                        code="unregistered_training_institution",
                        message="the training institution is not registered; recorded as given",
                    )
                )
            new_rows.append(
                {
                    "id": new_id(),
                    "session_id": locked.id,
                    "issuer_id": locked.issuer_id,
                    "holder_name": item.name,
                    "masked_id": crypto.mask_visible(item.number),
                    "id_hmac": current,
                    "id_hmac_version": settings.id_hmac_key_version,
                    "birth_date": birth_date(item.number),
                    "theory_score": item.theory,
                    "practical_score": item.practical,
                    "passed": is_pass,
                    "attempt": earlier + 1,
                    "training_institution_code": item.institution,
                    "training_institution_registered": item.institution is not None and known,
                    "usable_until": usable_until,
                    "created_at": now,
                }
            )
            accepted += 1
            passed += is_pass
        if new_rows:
            session.execute(insert(ExamResult), new_rows)  # one executemany per chunk
        if progress is not None:
            progress(len(chunk))
    return ImportReport(
        rows=len(rows),
        accepted=accepted,
        unchanged=unchanged,
        passed=passed,
        rejected=len(errors),
        errors=errors,
        warnings=warnings,
    )


# --- Reading results -------------------------------------------------------------------------------------


def _result_columns() -> tuple[Any, ...]:
    from ..models import Certificate

    return (
        ExamResult.id,
        ExamResult.session_id,
        ExamResult.issuer_id,
        ExamResult.holder_name,
        ExamResult.masked_id,
        ExamResult.theory_score,
        ExamResult.practical_score,
        ExamResult.passed,
        ExamResult.attempt,
        ExamResult.training_institution_code,
        ExamResult.training_institution_registered,
        ExamResult.usable_until,
        ExamResult.photo.is_not(None).label("has_photo"),  # type: ignore[union-attr]
        Certificate.id.label("certificate_id"),  # type: ignore[attr-defined]
        Certificate.serial.label("certificate_serial"),  # type: ignore[attr-defined]
        ExamResult.bar_override_reason,
        ExamResult.bar_override_by,
        ExamResult.created_at,
    )


def _result_query() -> Any:
    from ..models import Certificate

    return select(*_result_columns()).outerjoin(Certificate, Certificate.exam_result_id == ExamResult.id)  # type: ignore[arg-type]


def session_results(session: Session, *, exam_session: ExamSession, limit: int, offset: int) -> tuple[int, list[Any]]:
    """One page of a session's results (without photo bytes), in the order they were recorded."""
    total = session.exec(select(func.count()).where(ExamResult.session_id == exam_session.id)).one()
    rows = session.execute(
        _result_query()
        .where(ExamResult.session_id == exam_session.id)
        .order_by(ExamResult.created_at, ExamResult.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return total, list(rows)


def find_result(session: Session, *, result_id: str, owner: str | None) -> Any:
    """One result row (as :func:`session_results` gives them) if the caller may see it, else None."""
    row = session.execute(_result_query().where(ExamResult.id == result_id)).first()
    if row is None or (owner is not None and row.issuer_id != owner):
        return None
    return row


def override_reapplication_bar(session: Session, *, result_id: str, reason: str, actor: str) -> None:
    """Lift the 3-year bar after a revocation for this result's certificate (run inside a write transaction).

    Only the admin decides this; the reason and who gave it stay on the result for the audit trail.
    """
    session.execute(
        update(ExamResult)
        .where(ExamResult.id == result_id)  # type: ignore[arg-type]
        .values(bar_override_reason=reason, bar_override_by=actor)
        .execution_options(synchronize_session=False)
    )


def display_masked(masked_id: str) -> str:
    """The masked ID as people read it (``4401**********123X``)."""
    return crypto.display_masked(masked_id)


# --- Photos ----------------------------------------------------------------------------------------------


def set_photo(session: Session, *, result_id: str, photo: tuple[bytes, str]) -> None:
    """Store a cleaned photo on a result (run inside a write transaction)."""
    session.execute(
        update(ExamResult)
        .where(ExamResult.id == result_id)  # type: ignore[arg-type]
        .values(photo=photo[0], photo_type=photo[1])
        .execution_options(synchronize_session=False)
    )


def _entry_number(name: str) -> str | None:
    """The ID number a zip entry's file name gives (``<ID number>.jpg|.jpeg|.png``, any folder), or None.

    A name that climbs out of the zip (``..``), starts at a root or a drive (``/``, ``C:``) or hides a NUL
    (``<ID number>.jpg\\0.exe``) is an attack on whoever unpacks the zip, never a photo: None.
    """
    path = PurePosixPath(name.replace("\\", "/"))
    if "\x00" in name or path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        return None
    if path.suffix.lower() not in PHOTO_SUFFIXES:
        return None
    try:
        return normalize_id_number(path.stem)
    except InvalidIdNumber:
        return None


def import_photo_zip(session: Session, *, exam_session: ExamSession, data: bytes, settings: Settings) -> PhotoReport:
    """Match each zip entry to a result of the session by keyed hash, clean it and store it on that result.

    Opens its own transactions: the session's results are read once, each photo is decoded outside any
    transaction (a decoder wait holds no connection), and cleaned photos are written in short write
    transactions of :data:`PHOTO_WRITE_CHUNK`. Names are never stored or echoed; an entry is named by its
    1-based position. Zip bombs: at most :data:`MAX_ZIP_ENTRIES` entries, each at most
    ``CERTSEAL_MAX_PHOTO_BYTES`` packed and unpacked (read with that bound whatever the header claims), and
    at most :data:`ZIP_INFLATION` times the upload limit declared in all.
    """
    limit = settings.max_photo_bytes
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise InvalidZip() from None
    if len(entries) > MAX_ZIP_ENTRIES:
        raise InvalidZip(f"a photo zip holds at most {MAX_ZIP_ENTRIES} entries")
    if sum(entry.file_size for entry in entries) > ZIP_INFLATION * settings.max_upload_bytes:
        raise InvalidZip("the zip would unpack to far more than its size: refused as a zip bomb")
    with read_transaction(session):
        stored = dict(
            session.exec(
                select(ExamResult.id_hmac, ExamResult.id).where(ExamResult.session_id == exam_session.id)
            ).all()
        )
    keys = list(settings.id_hmac_keys.values())
    errors: list[PhotoIssue] = []
    pending: list[dict[str, Any]] = []
    done: set[str] = set()
    matched = 0

    def refuse(position: int, code: str, message: str) -> None:
        errors.append(PhotoIssue(entry=position, code=code, message=message))

    def flush() -> None:
        if pending:
            with write_transaction(session):
                table = ExamResult.__table__  # type: ignore[attr-defined]
                session.execute(  # the table, not the entity: one plain executemany by id
                    update(table)
                    .where(table.c.id == bindparam("result_id"))
                    .values(photo=bindparam("photo_bytes"), photo_type=bindparam("media_type")),
                    pending,
                )
            pending.clear()

    for position, entry in enumerate(entries, start=1):
        if entry.is_dir():
            continue
        number = _entry_number(entry.orig_filename)  # as in the archive: ZipInfo cuts filename at a NUL
        if number is None:
            refuse(
                position, "invalid_file_name", "the file name must be the candidate's ID number and .jpg, .jpeg or .png"
            )
            continue
        result_id = next((stored[digest] for key in keys if (digest := id_number_hmac(number, key)) in stored), None)
        if result_id is None:
            refuse(position, "unmatched_photo", "no result of this session has this candidate")
            continue
        if result_id in done:
            refuse(position, "duplicate_photo", "an earlier entry has this candidate's photo")
            continue
        if entry.file_size > limit or entry.compress_size > limit:
            refuse(position, "photo_too_large", f"a photo is at most {limit} bytes")
            continue
        if entry.flag_bits & 0x1:
            refuse(position, "invalid_photo", "encrypted entries are not read")
            continue
        try:
            with archive.open(entry) as handle:
                raw = handle.read(limit + 1)  # bounded whatever the header claims
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError):
            refuse(position, "invalid_photo", "the entry cannot be unpacked")
            continue
        if len(raw) > limit:
            refuse(position, "photo_too_large", f"a photo is at most {limit} bytes")
            continue
        try:
            photo = clean_photo_bytes(raw, max_bytes=limit)
        except PhotoTooLarge:
            refuse(position, "photo_too_large", f"a photo is at most {limit} bytes")
            continue
        except (InvalidPhoto, PhotoTooManyPixels) as exc:
            refuse(position, "invalid_photo", exc.message)
            continue
        except Busy:
            flush()  # what was cleaned so far is kept; the caller may send the zip again
            raise
        done.add(result_id)
        matched += 1
        pending.append({"result_id": result_id, "photo_bytes": photo[0], "media_type": photo[1]})
        if len(pending) >= PHOTO_WRITE_CHUNK:
            flush()
    flush()
    return PhotoReport(entries=sum(not entry.is_dir() for entry in entries), matched=matched, errors=errors)
