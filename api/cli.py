"""The ``certseal`` command line: keys, signing and offline verification (no server needed).

Exit codes: 0 success / accept, 1 reject, 2 usage or input error. No input prints a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import crypto
from crypto import CST, CertsealError, Operation, VerificationError
from schemas.catalogue import load_catalogue
from schemas.dates import default_valid_until
from schemas.idnumber import InvalidIdNumber, normalize_id_number

EXIT_OK = 0
EXIT_REJECT = 1
EXIT_USAGE = 2
ISSUER_NOT_AUTHORIZED = "issuer_not_authorized"
ISSUER_RULE = "issuer code must match `[A-Z0-9][A-Z0-9-]{0,15}` (capital letters, digits and -, e.g. CN-44)"


class UsageError(Exception):
    """A command-line problem the user can fix; printed without a traceback."""


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:  # the position only: never the text, which may hold an ID number
        raise UsageError(
            f"--claims {path}: must be UTF-8 JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--claims {path}: cannot read UTF-8 JSON: {exc.__class__.__name__}") from None


def _date_field(data: dict[str, Any], name: str, *, required: bool = False) -> date | None:
    value = data.get(name)
    if value is None:
        if required:
            raise UsageError(f"claims: {name} is required (YYYY-MM-DD)")
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise UsageError(f"claims: {name} must be a date YYYY-MM-DD") from None


def _validity_years() -> int:
    """The default validity in years: ``CERTSEAL_VALIDITY_YEARS``, checked by the service's own setting rule."""
    from pydantic import TypeAdapter, ValidationError

    from .settings import Settings

    field = Settings.model_fields["validity_years"]
    raw = os.environ.get("CERTSEAL_VALIDITY_YEARS")
    if raw is None:
        return int(field.default)
    try:
        years: int = TypeAdapter(Annotated[(int, *field.metadata)]).validate_python(raw.strip(), strict=False)
    except ValidationError as exc:
        problem = exc.errors(include_input=False, include_url=False)[0]["msg"]
        raise UsageError(f"CERTSEAL_VALIDITY_YEARS: {problem}") from None
    return years


# The signing profile's terse problems (crypto's _claims_problem), as the claims field and its rule.
_CLAIMS_RULES = {
    "invalid review date": "review_due must be a date from 1970-01-01 to 2243-10-16",
    "invalid times": "valid_from and valid_until must be dates from 1970 to 2106",
    "invalid times (exp must be after nbf)": "valid_from and valid_until must be dates from 1970 to 2106",
}


def _is_hex(text: str) -> bool:
    try:
        return len(text) % 2 == 0 and bytes.fromhex(text).hex() == text.lower()
    except ValueError:
        return False


def claims_from_json(data: Any, *, issuer: str, base_dir: Path, validity_years: int) -> crypto.CertificateClaims:
    """Build certificate claims from the CLAIMS.json shape documented in the README."""
    if not crypto.keys.ISSUER_PATTERN.fullmatch(issuer):
        raise UsageError(f"--issuer: {ISSUER_RULE}")
    if not isinstance(data, dict) or not isinstance(data.get("holder"), dict):
        raise UsageError("claims: expected an object with a 'holder' object")
    holder = data["holder"]
    if "id_number" in holder:
        try:
            masked = crypto.mask_visible(normalize_id_number(holder["id_number"]))
        except InvalidIdNumber as exc:
            raise UsageError(f"claims: holder.id_number: {exc}") from None
    elif isinstance(holder.get("masked_id"), str):
        masked = holder["masked_id"]
        if not crypto.envelope.MASKED_ID_PATTERN.fullmatch(masked):
            raise UsageError(
                "claims: holder.masked_id must be 7 digits then a digit or X "
                "(the first 4 and the last 4 characters of the ID number)"
            )
    else:
        raise UsageError("claims: holder.id_number (masked before signing) or holder.masked_id is required")
    photo_digest = None
    if holder.get("photo"):
        try:
            photo_digest = crypto.photo_digest((base_dir / str(holder["photo"])).read_bytes())
        except OSError as exc:
            raise UsageError(f"claims: holder.photo: {exc.strerror}") from None
    try:
        operation = Operation.parse(data.get("operation", ""))
    except CertsealError:
        raise UsageError("claims: operation must be a catalogue code such as 2.1") from None
    if load_catalogue().get(operation) is None:
        raise UsageError(f"claims: operation {operation} is not in the catalogue")
    valid_from = _date_field(data, "valid_from", required=True)
    assert valid_from is not None
    try:
        valid_until = _date_field(data, "valid_until") or default_valid_until(valid_from, validity_years)
    except (ValueError, OverflowError):
        raise UsageError("claims: valid_from is too late for a default valid_until") from None
    if valid_until < valid_from:
        raise UsageError("claims: valid_until must be on or after valid_from")
    serial = data.get("serial")
    if serial is not None and not (isinstance(serial, str) and _is_hex(serial) and 8 <= len(serial) // 2 <= 16):
        raise UsageError("claims: serial must be 16 to 32 hex digits (8 to 16 bytes)")
    status_index = data.get("status_index")
    if status_index is not None and not (type(status_index) is int and 0 <= status_index < 2**32):
        raise UsageError("claims: status_index must be an integer from 0 to 4294967295")
    if not isinstance(holder.get("name", ""), str):
        raise UsageError("claims: holder.name must be a string")
    try:
        return crypto.CertificateClaims.issue(
            issuer=issuer,
            holder_name=str(holder.get("name", "")),
            masked_id=masked,
            operation=operation,
            valid_from=valid_from,
            valid_until=valid_until,
            review_due=_date_field(data, "review_due"),
            photo_digest=photo_digest,
            status_index=status_index,
            serial=bytes.fromhex(serial) if isinstance(serial, str) else None,
        )
    except CertsealError as exc:
        detail = _CLAIMS_RULES.get(exc.detail or "", exc.detail or str(exc))
        raise UsageError(f"claims: {detail.replace('holder name', 'holder.name', 1)}") from None
    except ValueError as exc:
        raise UsageError(f"claims: {exc}") from None


def certificate_json(certificate: crypto.SignedCertificate) -> dict[str, Any]:
    """Describe a verified certificate for people and programs (ID number masked)."""
    claims = certificate.claims
    return {
        "issuer": claims.issuer,
        "serial": claims.serial.hex(),
        "kid": certificate.kid.hex(),
        "holder_name": claims.holder_name,
        "masked_id": claims.masked_id_display,
        "operation": load_catalogue().describe(claims.operation),
        "valid_from": claims.valid_from.isoformat(),
        "valid_until": claims.valid_until.isoformat(),
        "review_due": claims.review_due.isoformat() if claims.review_due else None,
        "issued_at": datetime.fromtimestamp(claims.issued_at, CST).isoformat(),
        "photo_digest": claims.photo_digest.hex() if claims.photo_digest else None,
        "status_index": claims.status_index,
    }


def offline_verdict(
    qr_text: str | None, trust: crypto.TrustStore, *, now: datetime, checks: Sequence[crypto.Check]
) -> dict[str, Any]:
    """Verify offline and return the verdict: decision, every failing reason, the checks that ran, the certificate.

    ``qr_text`` is None when an image held no QR code: reason ``no_qr_code`` and no check ran. A
    rejection before the policy checks carries a ``message`` saying what is wrong. When the signing key
    was trusted bound to an issuer code (``--trust CODE=FILE``) the ``issuer`` check runs and a
    different ``iss`` is ``issuer_not_authorized``; ``issuer_checked`` says whether it ran.
    """
    verdict: dict[str, Any] = {
        "decision": "reject",
        "reasons": [],
        "checked_at": now.isoformat(),
        "checks": [],
        "issuer_checked": False,
        "certificate": None,
    }
    try:
        if qr_text is None:
            raise crypto.NoQrCode("the image holds no readable QR code")
        verdict["checks"].append("format")
        envelope = crypto.envelope_from_qr_text(qr_text)
        verdict["checks"].append("signature")
        certificate = crypto.verify_signature(envelope, trust)
    except VerificationError as error:
        verdict["reasons"] = [error.code]
        verdict["message"] = error.detail or str(error)
        return verdict
    trusted = trust.get(certificate.kid)
    verdict["issuer_checked"] = trusted is not None and trusted.issuer is not None
    if verdict["issuer_checked"]:
        verdict["checks"].append("issuer")
        if trust.issuer_mismatch(certificate.kid, certificate.claims.issuer):
            verdict["reasons"].append(ISSUER_NOT_AUTHORIZED)
    policy = crypto.AllOf(checks)
    verdict["checks"] += [check.name for check in checks]
    verdict["reasons"] += [error.code for error in policy.failures(certificate, now)]
    verdict["certificate"] = certificate_json(certificate)
    verdict["decision"] = "reject" if verdict["reasons"] else "accept"
    return verdict


def _passphrase() -> bytes:
    try:
        return crypto.keys.passphrase_from_environment()
    except CertsealError as exc:
        raise UsageError(f"{exc}: {exc.detail}") from None


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write a new encrypted signing key and print its kid."""
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite")
    key = crypto.SigningKey.generate(args.alg)
    try:
        pem = key.to_pem(_passphrase())
    except CertsealError as exc:
        raise UsageError(f"{exc}: {exc.detail}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    print(key.kid.hex())
    return EXIT_OK


def _load_key(path: str) -> crypto.SigningKey:
    try:
        return crypto.SigningKey.load(path, _passphrase())
    except CertsealError as exc:
        raise UsageError(f"key {path}: {exc}: {exc.detail}") from None


def cmd_pubkey(args: argparse.Namespace) -> int:
    """Write the public key of a signing key as PEM."""
    pem = _load_key(args.key).public_pem()
    if args.out:
        Path(args.out).write_bytes(pem)
    else:
        sys.stdout.write(pem.decode())
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign the claims file and print the QR text; optionally write PNG and SVG."""
    key = _load_key(args.key)
    claims = claims_from_json(
        _read_json(args.claims), issuer=args.issuer, base_dir=Path(args.claims).parent, validity_years=_validity_years()
    )
    try:
        envelope = crypto.sign_certificate(claims, key)
    except CertsealError as exc:
        raise UsageError(f"claims: {exc.detail or exc}") from None
    try:
        text = crypto.encode_qr_text(envelope, args.base_url, allow_insecure_localhost=args.allow_localhost)
    except CertsealError as exc:
        raise UsageError(f"--base-url: {exc.detail or exc}") from None
    try:
        if args.png or args.svg:
            symbol = crypto.make_symbol(text, error_level=args.error_level)
            if args.png:
                Path(args.png).write_bytes(crypto.render_png(symbol))
            if args.svg:
                Path(args.svg).write_text(crypto.render_svg(symbol), encoding="utf-8")
    except CertsealError as exc:
        raise UsageError(f"{exc}: {exc.detail}") from None
    print(text)
    return EXIT_OK


def _verification_time(at: str | None) -> datetime:
    if at is None:
        return datetime.now(CST)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise UsageError("--at must be an ISO 8601 time, e.g. 2027-01-01T08:00:00+08:00") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=CST)
    try:  # the checks convert to UTC and CST: refuse a time at the edge of datetime's range now
        moment.astimezone(UTC)
        moment.astimezone(CST)
    except OverflowError:
        raise UsageError("--at is out of range") from None
    return moment


def trust_store(entries: Sequence[str]) -> crypto.TrustStore:
    """Build the trust store from ``--trust`` values: ``CODE=FILE`` binds the key to an issuer, ``FILE`` does not.

    A value is ``CODE=FILE`` when the text before its first ``=`` holds no ``/``; give a file whose
    name contains ``=`` with a path (``./a=b.pem``).
    """
    store = crypto.TrustStore()
    for entry in entries:
        code, separator, path = entry.partition("=")
        if not separator or "/" in code:
            code, path = "", entry
        elif not crypto.keys.ISSUER_PATTERN.fullmatch(code):
            raise UsageError(f"--trust CODE=FILE: {ISSUER_RULE}")
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"--trust: cannot read the public key file {path}: {exc.strerror}") from None
        try:
            store.add(crypto.load_public_key(data), issuer=code or None)
        except CertsealError as exc:
            raise UsageError(
                f"--trust {path}: must be a public key (PEM or DER SubjectPublicKeyInfo): {exc.detail or exc}"
            ) from None
    return store


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a QR text or image offline against the given trusted keys and print a JSON verdict.

    With ``--trust-list`` (and ``--anchor``, required: an unchecked trust list would let anyone name
    the keys) the verdict is the full offline one of :func:`crypto.verify_offline`, status included.
    """
    if (args.qr_text is None) == (args.image is None):
        raise UsageError("give either QR_TEXT or --image FILE")
    if (not args.trust) == (args.trust_list is None):
        raise UsageError("give either --trust FILE... (keys only) or --trust-list FILE --anchor FILE (full verdict)")
    if args.trust_list is None and (args.status_list or args.anchor or args.allow_stale):
        raise UsageError("--status-list, --anchor and --allow-stale go with --trust-list")
    if args.trust_list is not None and args.anchor is None:
        raise UsageError(
            "--trust-list needs --anchor ANCHOR.pub.pem: a trust list whose signature is not checked proves nothing"
        )
    now = _verification_time(args.at)
    if args.image is not None:
        try:
            texts = crypto.read_qr_texts(Path(args.image))
        except CertsealError:
            raise UsageError(f"--image: {args.image} is not a readable image") from None
        qr_text = texts[0] if texts else None
    else:
        qr_text = args.qr_text
    checks: list[crypto.Check] = []  # the verifier's own checks; the validity period always runs
    if not args.no_review:
        checks.append(crypto.ReviewNotOverdue())
    if args.purpose == "hot_work":
        checks.append(crypto.CoversHotWork())
    if args.operation:
        try:
            checks.append(crypto.CoversOperation(Operation.parse(args.operation)))
        except CertsealError:
            raise UsageError("--operation must look like 2.1") from None
    if args.trust_list is not None:
        lists = [
            _read_file(str(path), "--status-list", limit=crypto.statuslist.MAX_TOKEN_BYTES)
            for path in _status_list_files(args.status_list)
        ]
        trust_list = _given_trust_list(args, now)
        if trust_list is None:
            return EXIT_REJECT
        verdict = trust_list_verdict(
            qr_text,
            trust_list,
            lists,
            now=now,
            allow_stale=args.allow_stale,
            checks=checks,
        )
    else:
        verdict = offline_verdict(qr_text, trust_store(args.trust), now=now, checks=[crypto.ValidityPeriod(), *checks])
    print(json.dumps(verdict, ensure_ascii=False, indent=2))
    if verdict["reasons"] == [crypto.NoQrCode.code]:
        print(f"certseal: no QR code found in {args.image}: nothing was verified", file=sys.stderr)
    return EXIT_OK if verdict["decision"] == "accept" else EXIT_REJECT


# --- trust lists, status lists and the full offline verdict (issue 11) ---------------------------------

FETCH_TIMEOUT_SECONDS = 30.0


def _status_list_files(entries: Sequence[str]) -> list[Path]:
    """The files ``--status-list`` names: each FILE, and every ``*.cwt`` in each DIR (sorted)."""
    files: list[Path] = []
    for entry in entries:
        path = Path(entry)
        files += sorted(path.glob("*.cwt")) if path.is_dir() else [path]
    return files


def _read_file(path: str, option: str, *, limit: int | None = None) -> bytes:
    """The file's bytes; with ``limit``, at most ``limit`` + 1 of them (one too many is enough to refuse it).

    A verifier given a huge file or a device such as /dev/zero refuses it by size instead of reading it all.
    """
    try:
        if limit is None:
            return Path(path).read_bytes()
        with Path(path).open("rb") as file:
            return file.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path}: {exc.strerror}") from None


def _anchor_key(path: str) -> crypto.keys.PublicKey:
    try:
        key = crypto.load_public_key(_read_file(path, "--anchor", limit=64 * 1024))
    except CertsealError as exc:
        raise UsageError(
            f"--anchor {path}: must be a public key (PEM or DER SubjectPublicKeyInfo): {exc.detail}"
        ) from None
    return key


def _verified_trust_list(data: bytes, anchor_path: str, *, now: datetime, allow_stale: bool) -> crypto.TrustList:
    """Verify trust-list bytes with the anchor in ``anchor_path``; a failure is the :class:`VerificationError`."""
    anchor = _anchor_key(anchor_path)
    try:
        return crypto.verify_trust_list(data, anchor, now=now, allow_expired=allow_stale)
    except VerificationError:
        raise
    except CertsealError as exc:  # an anchor that is not ES256
        raise UsageError(f"--anchor {anchor_path}: {exc.detail or exc}") from None


def _read_trust_list(path: str, anchor_path: str, *, now: datetime, allow_stale: bool) -> crypto.TrustList:
    return _verified_trust_list(
        _read_file(path, "--trust-list", limit=crypto.trustlist.MAX_TRUST_LIST_BYTES),
        anchor_path,
        now=now,
        allow_stale=allow_stale,
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _trust_list_rejected(error: VerificationError, now: datetime) -> dict[str, Any]:
    return {
        "decision": "reject",
        "reasons": [error.code],
        "checked_at": now.isoformat(),
        "message": f"trust list: {error.detail or error}",
    }


def _given_trust_list(args: argparse.Namespace, now: datetime) -> crypto.TrustList | None:
    """The ``--trust-list`` verified under ``--anchor``; None after printing the rejection (exit 1)."""
    try:
        return _read_trust_list(args.trust_list, args.anchor, now=now, allow_stale=args.allow_stale)
    except VerificationError as error:
        print(json.dumps(_trust_list_rejected(error, now), ensure_ascii=False, indent=2))
        return None


def trust_list_summary(trust_list: crypto.TrustList, now: datetime) -> dict[str, Any]:
    """Describe a verified trust list: sequence, times, anchor kid, issuers and their keys (no key material)."""
    content = trust_list.content.to_json()
    for issuer in content["issuers"]:
        for key in issuer["keys"]:
            pem = key.pop("public_key_pem")
            algorithm = crypto.keys._algorithms.algorithm_for_key(crypto.load_public_key(pem.encode("ascii")))
            key["alg"] = crypto.keys._algorithms.ALGORITHM_NAMES[algorithm]
    return {
        "seq": trust_list.sequence,
        "iat": _iso(trust_list.iat),
        "exp": _iso(trust_list.exp),
        "expired": trust_list.is_expired(now),
        "anchor_kid": trust_list.anchor_kid.hex(),
        "issuers": content["issuers"],
    }


def trust_list_verdict(
    qr_text: str | None,
    trust_list: crypto.TrustList,
    status_lists: Sequence[bytes],
    *,
    now: datetime,
    allow_stale: bool,
    checks: Sequence[crypto.Check],
) -> dict[str, Any]:
    """The full offline verdict (:func:`crypto.verify_offline`) as JSON: the offline verdict's fields and the status."""
    if qr_text is None:
        nothing = offline_verdict(None, crypto.TrustStore(), now=now, checks=checks)
        nothing.update(status=None, status_source="none", status_as_of=None, stale_by_seconds=None, status_list=None)
        return nothing
    result = crypto.verify_offline(qr_text, trust_list, status_lists, now=now, allow_stale=allow_stale, checks=checks)
    verdict: dict[str, Any] = {
        "decision": result.decision,
        "reasons": list(result.reasons),
        "checked_at": now.isoformat(),
        "checks": ["format", "signature"],
        "issuer_checked": result.certificate is not None,
        "certificate": None,
        "status": None if result.status is None else result.status.name.lower(),
        "status_source": result.status_source,
        "status_as_of": _iso(result.status_as_of),
        "stale_by_seconds": None if result.stale_by is None else int(result.stale_by.total_seconds()),
        "status_list": None
        if result.status_list_uri is None
        else {"uri": result.status_list_uri, "idx": result.status_list_idx},
        "trust_list": {
            "seq": trust_list.sequence,
            "iat": _iso(trust_list.iat),
            "exp": _iso(trust_list.exp),
            "expired": trust_list.is_expired(now),
        },
    }
    if result.certificate is not None:
        verdict["checks"] += ["issuer", "key_window", "key_state", "scope", "validity"]
        verdict["checks"] += [check.name for check in checks] + ["status"]
        verdict["certificate"] = certificate_json(result.certificate)
    if result.message:
        verdict["message"] = result.message
    return verdict


def _write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Create ``path`` with ``data``; an existing file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise UsageError(f"{path} exists; a trust-anchor key is never overwritten") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def cmd_trust_anchor_keygen(args: argparse.Namespace) -> int:
    """Create the ES256 trust-anchor key (encrypted PKCS#8) and print its public PEM."""
    out = Path(args.out)
    public_out = Path(args.public_out) if args.public_out else None
    for path in (out, public_out):
        if path is not None and path.exists():
            raise UsageError(f"{path} exists; a trust-anchor key is never overwritten")
    try:
        passphrase = crypto.keys.passphrase_from(crypto.keys.TRUST_ANCHOR_PASSPHRASE_ENV)
    except CertsealError as exc:
        raise UsageError(f"{exc}: {exc.detail}") from None
    key = crypto.SigningKey.generate("ES256")
    try:
        pem = key.to_pem(passphrase)
    except CertsealError as exc:
        raise UsageError(f"{crypto.keys.TRUST_ANCHOR_PASSPHRASE_ENV}: {exc.detail}") from None
    _write_new(out, pem, mode=0o600)
    if public_out is not None:
        _write_new(public_out, key.public_pem(), mode=0o644)
    sys.stdout.write(key.public_pem().decode("ascii"))
    print(f"certseal: trust anchor kid {key.kid.hex()} written to {out}", file=sys.stderr)
    return EXIT_OK


def _load_anchor_signing_key(path: str) -> crypto.SigningKey:
    try:
        passphrase = crypto.keys.passphrase_from(crypto.keys.TRUST_ANCHOR_PASSPHRASE_ENV)
        key = crypto.SigningKey.load(path, passphrase)
    except CertsealError as exc:
        raise UsageError(f"--key {path}: {exc}: {exc.detail}") from None
    if key.alg != crypto.keys._algorithms.ES256:
        raise UsageError(f"--key {path}: the trust anchor is an ES256 key")
    return key


def cmd_trust_sign(args: argparse.Namespace) -> int:
    """Sign a trust list from CONTENT.json with the trust-anchor key and write it."""
    from datetime import timedelta

    try:
        data = json.loads(_read_file(args.content, "--content").decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--content {args.content}: must be UTF-8 JSON: {exc}") from None
    try:
        content = crypto.TrustListContent.from_json(data)
    except CertsealError as exc:
        raise UsageError(f"--content {args.content}: {exc.detail}") from None
    if args.sequence < 1:
        raise UsageError("--sequence must be a positive integer, higher than the last published one")
    if not 1 <= args.lifetime_days <= 366:
        raise UsageError("--lifetime-days must be from 1 to 366")
    key = _load_anchor_signing_key(args.key)
    iat = (_verification_time(args.at) if args.at else datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    exp = iat + timedelta(days=args.lifetime_days)
    try:
        signed = crypto.sign_trust_list(content, key, sequence=args.sequence, iat=iat, exp=exp)
    except CertsealError as exc:
        raise UsageError(f"{exc.detail or exc}") from None
    _write_atomic(Path(args.out), signed)
    summary = {"seq": args.sequence, "iat": iat.isoformat(), "exp": exp.isoformat(), "bytes": len(signed)}
    print(json.dumps(summary | {"anchor_kid": key.kid.hex(), "out": args.out}, indent=2))
    return EXIT_OK


def cmd_trust_verify(args: argparse.Namespace) -> int:
    """Verify a trust list with the anchor's public key and print what it lists; exit 1 if rejected."""
    now = _verification_time(args.at)
    trust_list = _given_trust_list(args, now)
    if trust_list is None:
        return EXIT_REJECT
    summary = {"decision": "accept"} | trust_list_summary(trust_list, now)
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return EXIT_OK


def _http_get(url: str, *, limit: int) -> bytes:
    """GET ``url`` (http or https) and return the body; more than ``limit`` bytes or a non-200 answer is refused."""
    import httpx

    if not url.startswith(("https://", "http://")):
        raise UsageError(f"--url {url}: must be an http or https URL")
    try:
        with httpx.stream("GET", url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=True) as response:
            if response.status_code != 200:
                raise UsageError(f"GET {url}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise UsageError(f"GET {url}: more than {limit} bytes")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise UsageError(f"GET {url}: {exc.__class__.__name__}: {exc}") from None


class TrustListRollback(VerificationError):
    """A fetched trust list older (lower ``seq``) than the one already saved: a verifier never goes back."""

    code = "trust_list_sequence"
    message = "the trust list is older than the one already saved"


def _kept_sequence(path: Path, anchor_path: str, *, now: datetime) -> int | None:
    """The ``seq`` of the trust list saved at ``path`` if it verifies under the anchor (expired or not), else None."""
    try:
        data = _read_file(str(path), "--out", limit=crypto.trustlist.MAX_TRUST_LIST_BYTES)
    except UsageError:  # nothing saved yet, or unreadable: nothing to compare with
        return None
    try:
        return _verified_trust_list(data, anchor_path, now=now, allow_stale=True).sequence
    except VerificationError:  # another anchor's, or damaged: replaced as before
        return None


def cmd_trust_fetch(args: argparse.Namespace) -> int:
    """Download a trust list, verify it when --anchor is given, and save it atomically."""
    now = _verification_time(args.at)
    data = _http_get(args.url, limit=crypto.trustlist.MAX_TRUST_LIST_BYTES)
    if args.anchor:
        try:
            trust_list = _verified_trust_list(data, args.anchor, now=now, allow_stale=args.allow_stale)
        except VerificationError as error:
            print(json.dumps(_trust_list_rejected(error, now), ensure_ascii=False, indent=2))
            print(f"certseal: {args.url} rejected; {args.out} left unchanged", file=sys.stderr)
            return EXIT_REJECT
        kept = _kept_sequence(Path(args.out), args.anchor, now=now)
        if kept is not None and trust_list.sequence < kept:
            error = TrustListRollback(f"seq {trust_list.sequence} is below the saved list's {kept}")
            print(json.dumps(_trust_list_rejected(error, now), ensure_ascii=False, indent=2))
            print(f"certseal: {args.url} rejected; {args.out} left unchanged", file=sys.stderr)
            return EXIT_REJECT
    _write_atomic(Path(args.out), data)
    if args.anchor:
        summary = {"decision": "accept", "out": args.out} | trust_list_summary(trust_list, now)
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(f"certseal: saved {len(data)} bytes to {args.out} WITHOUT checking the signature (no --anchor)")
    return EXIT_OK


def cmd_status_list_fetch(args: argparse.Namespace) -> int:
    """Fetch every status list the aggregation names under a listed issuer's status_base, verified, into a folder."""
    now = _verification_time(args.at)
    trust_list = _given_trust_list(args, now)
    if trust_list is None:
        return EXIT_REJECT
    base = args.base_url.rstrip("/")
    try:
        uris = json.loads(_http_get(f"{base}/v1/status-lists", limit=16 * 1024 * 1024))["status_lists"]
    except (ValueError, KeyError, TypeError):
        uris = None
    if not (isinstance(uris, list) and all(isinstance(uri, str) for uri in uris)):
        raise UsageError(f'{base}/v1/status-lists: not the aggregation JSON {{"status_lists": [...]}}') from None
    out_dir = Path(args.out_dir)
    saved, refused = [], []
    for uri in uris:
        issuer = next((i for i in trust_list.content.issuers if uri.startswith(i.status_base + "/")), None)
        number = uri.rsplit("/", 1)[-1]
        if issuer is None or not number.isdigit():
            refused.append({"uri": uri, "reason": "not under a status_base of the trust list"})
            continue
        data = _http_get(uri, limit=crypto.statuslist.MAX_TOKEN_BYTES)
        problem = _status_list_problem(data, issuer, uri, now)
        if problem:
            refused.append({"uri": uri, "reason": problem})
            continue
        path = out_dir / f"{issuer.code}-{int(number)}.cwt"
        _write_atomic(path, data)
        saved.append({"uri": uri, "file": str(path)})
    print(json.dumps({"saved": saved, "refused": refused}, ensure_ascii=False, indent=2))
    return EXIT_OK if not refused else EXIT_REJECT


def _status_list_problem(data: bytes, issuer: crypto.TrustListIssuer, uri: str, now: datetime) -> str | None:
    """The error code of a fetched list under every status-list key of its issuer, or None if one verifies it."""
    code = crypto.UnknownKey.code
    for key in issuer.keys:
        if key.use is not crypto.KeyUse.STATUS_LIST or key.state is crypto.KeyState.COMPROMISED:
            continue
        trusted = crypto.TrustedKey(kid=key.kid, public_key=key.public_key)
        try:
            crypto.verify_status_list_token(data, trusted, expected_uri=uri, now=now, allow_expired=True)
        except VerificationError as error:
            if error.code != crypto.UnknownKey.code:
                code = error.code
            continue
        return None
    return code


def _service_settings(args: argparse.Namespace) -> Any:
    from .runtime import load_settings
    from .settings import SettingsError

    overrides: dict[str, object] = {}
    if getattr(args, "database", None):
        overrides["database_url"] = args.database
    if getattr(args, "public_base_url", None):
        overrides["public_base_url"] = args.public_base_url
    if getattr(args, "forwarded_allow_ips", None) is not None:
        overrides["forwarded_allow_ips"] = args.forwarded_allow_ips
    elif getattr(args, "port", None) and "CERTSEAL_PUBLIC_BASE_URL" not in os.environ:
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104 -- compared, not bound
        overrides["public_base_url"] = f"http://{host}:{args.port}"
    try:
        return load_settings(demo=getattr(args, "demo", False), **overrides)
    except SettingsError as exc:
        raise UsageError(f"settings: {exc}") from None


@contextmanager
def _open_runtime(settings: Any) -> Iterator[Any]:
    """Open the runtime; a missing secret, undecryptable key or unreachable database is a usage error."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from .runtime import runtime

    try:
        with runtime(settings) as rt:
            yield rt
    except (CertsealError, RuntimeError) as exc:
        detail = getattr(exc, "detail", None)
        raise UsageError(f"{exc}: {detail}" if detail else str(exc)) from None
    except SQLAlchemyError as exc:  # the message of the driver only: never the URL or statement parameters
        reason = exc.orig if isinstance(exc, DBAPIError) else exc.__class__.__name__
        raise UsageError(f"database (--database / CERTSEAL_DATABASE_URL): {reason}") from None


def _print_demo(rt: Any, demo: Sequence[Any], exam_session_id: str) -> None:
    """Print the demo secrets, each demo certificate's QR URL, QR image link and a curl line, and the exam chain."""
    from sqlmodel import Session

    from .demo import DEMO_EXAM_POINT, DEMO_RESULTS_CSV
    from .models import Certificate
    from .services.issuance import qr_text_of
    from .settings import DEMO_ISSUER_API_KEY, DEMO_SECRETS

    base = rt.settings.public_base_url.rstrip("/")
    print("certseal demo — published demo secrets, never use them in production")
    print(f"  admin token:      {DEMO_SECRETS['admin_token']}")
    print(f"  issuer API key:   {DEMO_ISSUER_API_KEY}  (issuer CN-44)")
    if rt.trust_lists.anchor.public_pem:
        print(f"  trust anchor:     {rt.settings.trust_anchor_key_file} (public key below; pinned in the page)")
        print("    " + rt.trust_lists.anchor.public_pem.strip().replace("\n", "\n    "))
    with Session(rt.engine) as session:
        for item in demo:
            certificate = session.get(Certificate, item.certificate_id)
            assert certificate is not None
            text = qr_text_of(certificate, rt.settings)
            print(f"\n  {item.label}: expect {item.expected}")
            print(f"    URL:  {text}")
            print(f"    QR:   {base}/v1/certificates/{item.certificate_id}/qr.png")
            print(
                f"    try:  curl -s -X POST {base}/v1/verify -H 'Content-Type: application/json' "
                f'-d \'{{"qr": "{text}", "purpose": "hot_work"}}\''
            )
    auth = f"-H 'Authorization: Bearer {DEMO_ISSUER_API_KEY}'"
    print(f"\n  From exam to card: exam session {exam_session_id} (welding 2.1 at exam point {DEMO_EXAM_POINT})")
    print(f"    1 results: curl -s -X POST {base}/v1/exam-sessions/{exam_session_id}/results {auth} \\")
    print(f"                 -H 'Content-Type: text/csv' --data-binary @{DEMO_RESULTS_CSV}")
    print(f"    2 issue:   curl -s -X POST {base}/v1/certificate-batches {auth} -H 'Idempotency-Key: demo-1' \\")
    print(f"                 -H 'Content-Type: application/json' -d '{{\"session\": \"{exam_session_id}\"}}'")
    print(f"    3 cards:   curl -s -o cards.pdf {base}/v1/certificate-batches/<batch id>/cards.pdf {auth}")
    print(f"    or: certseal exam import --demo --session {exam_session_id} {DEMO_RESULTS_CSV}")
    print(f"        certseal batch issue --demo --session {exam_session_id}")
    print()


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--workers must be a whole number from 1 to 64") from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError("--workers must be a whole number from 1 to 64")
    return count


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the HTTP service (uvicorn) on a database at the newest schema revision.

    Without demo mode (--demo or CERTSEAL_DEMO=true) a database that is behind, or that holds demo data,
    is refused (``certseal db upgrade`` / ``certseal demo purge`` first); demo mode upgrades its SQLite
    database itself, then seeds and prints the demo data, all before uvicorn starts. Logging stays as
    configured here (uvicorn gets no logging configuration of its own), and X-Forwarded-For is believed
    only from CERTSEAL_FORWARDED_ALLOW_IPS / --forwarded-allow-ips (by default from nobody).
    """
    import uvicorn

    from .demo import ensure_demo_trust_anchor, seed_demo, seed_demo_exam
    from .main import create_app
    from .metrics import prepare_multiprocess_metrics_dir
    from .serving import (
        WORKER_APP_FACTORY,
        configure_service_logging,
        cpu_slots_for_workers,
        export_settings_for_workers,
        pin_to_one_cpu,
        tune_garbage_collector,
    )
    from .settings import REQUIRED_SECRETS

    settings = _service_settings(args)
    configure_service_logging(
        settings.log_level,
        verbose=args.verbose,
        log_format=settings.log_format_in_effect,
        access_log=settings.access_log or args.access_log,
    )
    if not settings.demo:
        values = {f"CERTSEAL_{name.upper()}": getattr(settings, name) for name in REQUIRED_SECRETS}
        missing = [name for name, value in values.items() if not (value and value.get_secret_value())]
        if missing:
            raise UsageError(f"settings: set {', '.join(missing)} (or run with --demo)")
    else:
        _upgrade_demo_database(settings)
        settings = ensure_demo_trust_anchor(settings)
    try:
        # Checks the schema is current and the keys decrypt before binding the port.
        with _open_runtime(settings) as rt:
            if settings.demo:
                _print_demo(rt, seed_demo(rt), seed_demo_exam(rt))
    except (CertsealError, RuntimeError) as exc:
        raise UsageError(f"cannot start: {exc} {getattr(exc, 'detail', '')}".strip()) from None
    sys.stdout.flush()  # the demo lines come before uvicorn's log even when stdout is a pipe (docker logs)
    trusted = settings.forwarded_allow_ips
    with contextlib.ExitStack() as stack:
        if args.workers > 1:
            # Each worker process imports the app factory and reads the same settings from the environment;
            # migrations and demo seeding ran once, above, before any worker starts.
            export_settings_for_workers(
                settings, verbose=args.verbose, access_log=settings.access_log or args.access_log
            )
            metrics_dir = prepare_multiprocess_metrics_dir()  # /metrics then sums every worker's values
            stack.callback(shutil.rmtree, metrics_dir, ignore_errors=True)
            if args.pin_cpus:
                stack.enter_context(cpu_slots_for_workers())  # each worker pins itself to the next CPU
            app: Any = WORKER_APP_FACTORY
        else:
            if args.pin_cpus:
                pin_to_one_cpu(0)
            tune_garbage_collector()
            app = create_app(settings)
        uvicorn.run(
            app,
            factory=args.workers > 1,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_config=None,  # keep the logging configured above (and in each worker, by the factory)
            log_level=settings.log_level.lower(),
            access_log=False,  # the service logs each request itself (JSON, request id, route template)
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or "",  # never uvicorn's default (127.0.0.1) or FORWARDED_ALLOW_IPS
        )
    return EXIT_OK


def _database_settings(args: argparse.Namespace) -> Any:
    """Settings for the ``db`` commands: only the database URL (--database or CERTSEAL_DATABASE_URL) counts.

    Loaded as the other admin commands load them, but in the lenient demo mode: a migration needs no
    secret and no public base URL, so their absence or checks must not stop it.
    """
    from .runtime import load_settings
    from .settings import SettingsError

    overrides: dict[str, object] = {"database_url": args.database} if args.database else {}
    try:
        return load_settings(demo=True, **overrides)
    except SettingsError as exc:
        raise UsageError(f"settings: {exc}") from None


@contextmanager
def _migration_engine(settings: Any) -> Iterator[Any]:
    """An engine on the settings' database; an unreachable database or failed migration is a usage error."""
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from .db import make_engine

    try:
        engine = make_engine(settings.database_url, limits=settings.database_limits)
        try:
            yield engine
        finally:
            engine.dispose()
    except CommandError as exc:  # e.g. an unknown revision, or a downgrade below the base
        raise UsageError(f"migration: {exc}") from None
    except SQLAlchemyError as exc:  # the message of the driver only: never the URL or statement parameters
        reason = exc.orig if isinstance(exc, DBAPIError) else exc.__class__.__name__
        raise UsageError(f"database (--database / CERTSEAL_DATABASE_URL): {reason}") from None


def _upgrade_demo_database(settings: Any) -> None:
    """``serve --demo`` upgrades its SQLite database (a fresh one, or ./certseal.db made by older code)."""
    from . import migrate

    with _migration_engine(settings) as engine:
        if engine.dialect.name == "sqlite":
            migrate.upgrade(engine)


def _revision_label(revision: str | None, head: str) -> str:
    if revision is None:
        return "<empty>"
    return f"{revision} (head)" if revision == head else revision


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Upgrade the database schema (default: to head) and print the revisions before and after."""
    from . import migrate

    with _migration_engine(_database_settings(args)) as engine:
        result = migrate.upgrade(engine, revision=args.revision)
    head = migrate.head_revision()
    if result.stamped_legacy:
        print(f"database made before migrations: stamped at revision {result.before}, data kept")
    if result.before == result.after:
        print(f"database {'at' if result.stamped_legacy else 'already at'} {_revision_label(result.after, head)}")
    else:
        print(f"database upgraded: {_revision_label(result.before, head)} -> {_revision_label(result.after, head)}")
    return EXIT_OK


def cmd_db_current(args: argparse.Namespace) -> int:
    """Print the database's revision with `` (head)`` (exit 0), or how it is behind (exit 1)."""
    from . import migrate

    with _migration_engine(_database_settings(args)) as engine:
        try:
            migrate.require_current_schema(engine)
        except migrate.SchemaNotCurrent as exc:
            print(exc)
            return EXIT_REJECT
    print(f"{migrate.head_revision()} (head)")
    return EXIT_OK


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    """Downgrade the database schema (``-1``: one revision; ``base``: no tables) and print the revisions."""
    from . import migrate

    if (args.revision is None) == (args.steps is None):
        raise UsageError("give the target: a REVISION such as -1, 0001 or base, or --steps N")
    if args.steps is not None and args.steps < 1:
        raise UsageError("--steps must be at least 1")
    revision = args.revision if args.revision is not None else f"-{args.steps}"
    with _migration_engine(_database_settings(args)) as engine:
        result = migrate.downgrade(engine, revision=revision)
    head = migrate.head_revision()
    print(f"database downgraded: {_revision_label(result.before, head)} -> {_revision_label(result.after, head)}")
    return EXIT_OK


def cmd_db_prune(args: argparse.Namespace) -> int:
    """Prune verification events (counted per day first), holder-check counters and idempotency records.

    Periods from CERTSEAL_EVENT_RETENTION_DAYS and CERTSEAL_IDEMPOTENCY_RETENTION_HOURS, time from the
    system clock; ``--dry-run`` only counts. Safe beside ``serve``'s periodic pruning and another prune.
    """
    from . import migrate
    from .clock import SystemClock
    from .services import retention

    settings = _database_settings(args)
    policy = retention.RetentionPolicy.from_settings(settings)
    with _migration_engine(settings) as engine:
        try:
            migrate.require_current_schema(engine)
        except migrate.SchemaNotCurrent as exc:
            raise UsageError(str(exc)) from None
        now = SystemClock().now()
        if args.dry_run:
            result = retention.count_prunable(engine, now=now, policy=policy)
        else:
            result = retention.prune(engine, now=now, policy=policy)
    cutoff = policy.event_cutoff(now).date().isoformat()
    print(f"{'would prune (dry run, nothing changed)' if args.dry_run else 'pruned'}:")
    counted = "" if args.dry_run else f"; {result.daily_rows} rows of verification_daily written"
    print(f"  verification events:   {result.verification_events} (CST days before {cutoff}, counted per day{counted})")
    print(f"  holder-check counters: {result.holder_check_counters} (windows ended)")
    print(f"  idempotency records:   {result.idempotency_records} (older than {policy.idempotency_hours} h)")
    return EXIT_OK


def _field_problems(exc: Any) -> str:
    """Each field a pydantic model refused, as its CLI option and the rule it breaks (never the input)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        option = "--" + str(error["loc"][0]).removeprefix("holder_").replace("_", "-")
        if option == "--code" and error["type"] == "string_pattern_mismatch":
            problems.append(f"--code: {ISSUER_RULE}")
        else:
            problems.append(f"{option}: {error['msg']}")
    return "; ".join(problems)


def _issuer(session: Any, code: str) -> Any:
    from sqlmodel import select

    from .models import Issuer

    issuer = session.exec(select(Issuer).where(Issuer.code == code)).first()
    if issuer is None:
        raise UsageError(f"no issuer {code}")
    return issuer


def _admin_task(args: argparse.Namespace, task: Callable[[Any, Any], str], *, read_only: bool = False) -> int:
    from sqlmodel import Session

    from .db import read_transaction, write_transaction
    from .services.errors import ServiceError

    settings = _service_settings(args)
    transaction = read_transaction if read_only else write_transaction
    with _open_runtime(settings) as rt, Session(rt.engine, expire_on_commit=False) as session:
        try:
            with transaction(session):
                output = task(rt, session)
        except ServiceError as exc:
            raise UsageError(f"{exc.code}: {exc.message}") from None
    print(output)
    return EXIT_OK


def cmd_issuer_create(args: argparse.Namespace) -> int:
    """Create an issuer and its first signing key; print its kid."""
    from pydantic import ValidationError

    from schemas.api import IssuerCreate

    from .services import issuance

    for code in args.operations.split(","):
        try:
            Operation.parse(code.strip())
        except CertsealError:
            raise UsageError("--operations: each item code must look like 2.1 (comma-separated: 2.1,2.2)") from None
    try:  # the same rules as POST /v1/issuers
        request = IssuerCreate(
            code=args.code,
            name=args.name,
            region=args.region,
            operations=[code.strip() for code in args.operations.split(",")],
            alg=args.alg,
        )
    except ValidationError as exc:
        raise UsageError(f"invalid issuer fields: {_field_problems(exc)}") from None

    def task(rt: Any, session: Any) -> str:
        _issuer_row, key = issuance.create_issuer(
            session,
            rt.keyring,
            code=request.code,
            name=request.name,
            region=request.region,
            operations=request.operations,
            alg=request.alg,
            catalogue=rt.catalogue,
            now=rt.clock.now(),
        )
        rt.trust_lists.key_changed(session, now=rt.clock.now())
        return f"issuer {request.code} created; signing key {key.kid}"

    return _admin_task(args, task)


def cmd_issuer_api_key(args: argparse.Namespace) -> int:
    """Create an issuer API key (optionally expiring) and print it once."""
    from datetime import timedelta

    from .services import api_keys

    now = datetime.now(UTC)
    if args.expires_in_days is not None and not 1 <= args.expires_in_days <= 3650:
        raise UsageError("--expires-in-days must be from 1 to 3650")
    expires_at = _cli_time(args.expires_at, "--expires-at") if args.expires_at else None
    if args.expires_in_days is not None:
        expires_at = now + timedelta(days=args.expires_in_days)

    def task(_rt: Any, session: Any) -> str:
        issuer = _issuer(session, args.code)
        _row, token = api_keys.create_api_key(session, issuer=issuer, label=args.label, expires_at=expires_at, now=now)
        return str(token)

    return _admin_task(args, task)


def _cli_time(text: str, option: str) -> datetime:
    """An ISO 8601 date or time from the command line; without an offset it is China Standard Time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option} must be an ISO 8601 date or time, e.g. 2027-01-01 or 2027-01-01T08:00+08:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def _shown(moment: datetime | None) -> str:
    return moment.astimezone(CST).isoformat(timespec="seconds") if moment else "-"


def cmd_api_key_list(args: argparse.Namespace) -> int:
    """Print API keys (all, one issuer's, or the apps'): prefix, scope, issuer, state, times and label."""
    from .services import api_keys
    from .services.api_keys import KeyOwner

    def task(_rt: Any, session: Any) -> str:
        if args.issuer:
            owner = KeyOwner.of_issuer(_issuer(session, args.issuer))
        else:
            owner = KeyOwner.apps() if args.apps else KeyOwner()
        now = datetime.now(UTC)
        lines = [
            f"{'PREFIX':<13} {'SCOPE':<6} {'ISSUER':<8} {'STATE':<8} {'CREATED':<25} {'LAST USED':<25} "
            f"{'EXPIRES':<25} LABEL"
        ]
        for key, code in api_keys.list_api_keys(session, owner=owner):
            lines.append(
                f"{key.prefix:<13} {key.scope:<6} {code or '-':<8} {api_keys.key_state(key, now=now):<8} "
                f"{_shown(key.created_at):<25} {_shown(key.last_used_at):<25} {_shown(key.expires_at):<25} "
                f"{key.label}"
            )
        return "\n".join(lines)

    return _admin_task(args, task, read_only=True)


def cmd_api_key_revoke(args: argparse.Namespace) -> int:
    """Revoke an API key by its prefix: every request with it is refused from now on."""
    from .services import api_keys
    from .services.api_keys import KeyOwner

    def task(_rt: Any, session: Any) -> str:
        key, _code = api_keys.revoke_api_key(session, prefix=args.prefix, owner=KeyOwner(), now=datetime.now(UTC))
        return f"API key {key.prefix} revoked at {_shown(key.revoked_at)}"

    return _admin_task(args, task)


def cmd_api_key_expire(args: argparse.Namespace) -> int:
    """Set (--at) or remove (--never) an API key's expiry; a past time expires it at once."""
    from .services import api_keys
    from .services.api_keys import KeyOwner

    expires_at = None if args.never else _cli_time(args.at, "--at")

    def task(_rt: Any, session: Any) -> str:
        key, _code = api_keys.set_api_key_expiry(session, prefix=args.prefix, owner=KeyOwner(), expires_at=expires_at)
        if key.expires_at is None:
            return f"API key {key.prefix} never expires"
        return f"API key {key.prefix} expires at {_shown(key.expires_at)}"

    return _admin_task(args, task)


def cmd_demo_purge(args: argparse.Namespace) -> int:
    """Remove the demo issuers with their keys, API keys, certificates and the demo flag, in one transaction."""
    from . import deployment, migrate

    with _migration_engine(_database_settings(args)) as engine:
        try:
            migrate.require_current_schema(engine)
        except migrate.SchemaNotCurrent as exc:
            raise UsageError(str(exc)) from None
        result = deployment.purge_demo_data(engine)
    if not result.removed_anything:
        print("no demo data in this database; nothing removed")
    else:
        print(
            f"demo data removed: issuer {', '.join(result.issuers) or '-'}, {result.certificates} certificates, "
            f"{result.api_keys} API keys; the database may now be used without demo mode"
        )
    return EXIT_OK


def cmd_issuer_rotate(args: argparse.Namespace) -> int:
    """Retire the issuer's active key of ``--use`` and start a new one; print the new kid."""
    from .services import issuance

    def task(rt: Any, session: Any) -> str:
        now = rt.clock.now()
        row = issuance.rotate_key(
            session, rt.keyring, issuer=_issuer(session, args.code), use=args.use, alg=args.alg, now=now
        )
        rt.trust_lists.key_changed(session, now=row.not_before)  # the rotation's time, after any wait for the lock
        return str(row.kid)

    return _admin_task(args, task)


def cmd_issuer_update(args: argparse.Namespace) -> int:
    """Change an issuer's name, region or service phone (``--service-phone ""`` removes it)."""
    from pydantic import ValidationError

    from schemas.api import IssuerUpdate

    from .services import issuance

    given = {"name": args.name, "region": args.region, "service_phone": args.service_phone}
    changes = {field: value for field, value in given.items() if value is not None}
    if not changes:
        raise UsageError("give --name, --region or --service-phone")
    try:  # the same rules as PATCH /v1/issuers/{code}
        checked = IssuerUpdate(**{field: value or None for field, value in changes.items()})
    except ValidationError as exc:
        raise UsageError(f"invalid issuer fields: {_field_problems(exc)}") from None

    def task(rt: Any, session: Any) -> str:
        issuer = issuance.update_issuer(
            session, issuer=_issuer(session, args.code), changes=checked.model_dump(exclude_unset=True)
        )
        rt.trust_lists.key_changed(session, now=rt.clock.now())
        return f"issuer {issuer.code}: {issuer.name}, {issuer.region}, service phone {issuer.service_phone or '-'}"

    return _admin_task(args, task)


def cmd_issuer_reissue_list(args: argparse.Namespace) -> int:
    """Print the certificates of a compromised key registered before the compromise (id, serial, status)."""
    from .services import issuance

    def task(_rt: Any, session: Any) -> str:
        key, rows = issuance.certificates_to_reissue(
            session, issuer=_issuer(session, args.code), kid=args.kid, after=None, limit=10**9
        )
        if key.compromised_at is None:
            return f"key {key.kid} is not compromised: nothing to reissue"
        lines = [f"key {key.kid} compromised at {_shown(key.compromised_at)}: {len(rows)} to reissue"]
        lines += [f"{row.id} {row.serial} {row.status}" for row in rows]
        return "\n".join(lines)

    return _admin_task(args, task, read_only=True)


def cmd_issue(args: argparse.Namespace) -> int:
    """Issue one certificate from the command line and print its QR text."""
    from pydantic import ValidationError

    from schemas.api import CertificateCreate

    from .services import issuance

    id_number = sys.stdin.readline().strip() if args.id_number == "-" else args.id_number
    try:
        request = CertificateCreate(
            holder_name=args.name,
            holder_id_number=id_number,
            operation=args.operation,
            issue_date=args.issue_date,
            valid_until=args.valid_until,
            review_due=args.review_due,
            basis=args.basis,
        )
    except ValidationError as exc:
        raise UsageError(f"invalid certificate fields: {_field_problems(exc)}") from None
    if not crypto.keys.ISSUER_PATTERN.fullmatch(args.issuer):
        raise UsageError(f"--issuer: {ISSUER_RULE}")
    try:
        normalize_id_number(request.holder_id_number)
    except InvalidIdNumber as exc:
        raise UsageError(f"--id-number: {exc}") from None

    def task(rt: Any, session: Any) -> str:
        certificate = issuance.issue_certificate(
            session,
            rt.keyring,
            issuer=_issuer(session, args.issuer),
            request=request,
            settings=rt.settings,
            catalogue=rt.catalogue,
            now=rt.clock.now(),
        )
        return issuance.qr_text_of(certificate, rt.settings)

    return _admin_task(args, task)


def _batch_report(view: Any) -> str:
    """A batch as the command line prints it: id, counts, then one line per refused result."""
    batch = view.batch
    lines = [
        f"batch {batch.id}: {batch.status}, {batch.done} of {batch.total} results, "
        f"{len(view.certificate_ids)} certificates, {len(batch.errors)} errors"
    ]
    lines += [f"  {error['result_id'] or '(batch)'}: {error['code']}: {error['message']}" for error in batch.errors]
    return "\n".join(lines)


def cmd_batch_issue(args: argparse.Namespace) -> int:
    """Issue the certificates of an exam session in this process, with a progress bar; print the batch."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from sqlmodel import Session

    from .services import batches
    from .services.errors import ServiceError
    from .services.signing_pool import SigningPool, default_processes

    settings = _service_settings(args)
    with _open_runtime(settings) as rt, Session(rt.engine, expire_on_commit=False, autobegin=False) as session:
        pool = SigningPool(
            rt.keyring,
            settings.require("key_passphrase").encode(),
            processes=default_processes(settings.batch_signing_processes),
        )
        worker = batches.BatchWorker(rt.engine, rt.keyring, pool, settings=settings, clock=rt.clock)
        try:
            issuer = batches.session_issuer(session, args.session)
            batch = batches.submit_batch(
                session,
                issuer=issuer,
                request=batches.BatchRequest(session_id=args.session),
                idempotency_key=args.idempotency_key,
                actor="admin:cli",
                now=rt.clock.now(),
                lease_owner=worker.owner,
                lease_seconds=settings.batch_lease_seconds,
            )
            print(f"batch {batch.id}: {batch.total} results", flush=True)
            columns = (TextColumn("issuing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, transient=True) as bar:
                task = bar.add_task("issuing", total=batch.total, completed=batch.done)
                ours = batch.status == "running" and batch.lease_owner == worker.owner
                if ours or worker.claim(batch.id):
                    worker.run(batch.id, on_progress=lambda progress: bar.update(task, completed=progress.done))
                # Held by another process (a server, or a run of this command): follow it to the end.
                while (view := batches.batch_view(session, batch.id)).batch.status in ("queued", "running"):
                    bar.update(task, completed=view.batch.done)
                    time.sleep(0.5)
        except ServiceError as exc:
            raise UsageError(f"{exc.code}: {exc.message}") from None
        except KeyboardInterrupt:
            # The chunk in flight rolled back; a rerun (or the server) continues at once, not after the lease.
            worker.release()
            raise
        finally:
            pool.close()
    print(_batch_report(view))
    return EXIT_OK if view.batch.status == "done" else EXIT_REJECT


def cmd_batch_cards(args: argparse.Namespace) -> int:
    """Write a finished batch's printable cards (A4 sheets of 10 ID-1 cards with crop marks) to a PDF file."""
    from sqlmodel import Session

    from .db import read_transaction
    from .models import Issuer
    from .services import batches, cards
    from .services.errors import ServiceError

    settings = _service_settings(args)
    with _open_runtime(settings) as rt, Session(rt.engine, expire_on_commit=False, autobegin=False) as session:
        batch = batches.find_batch(session, args.batch_id)
        if batch is None:
            raise UsageError("batch_not_found: no such certificate batch")
        with read_transaction(session):
            issuer = session.get(Issuer, batch.issuer_id)
        if issuer is None:
            raise UsageError("issuer_not_found: the batch's issuer no longer exists")
        try:
            pdf = cards.batch_cards(session, batch=batch, issuer=issuer, catalogue=rt.catalogue, settings=settings)
        except ServiceError as exc:
            raise UsageError(f"{exc.code}: {exc.message}") from None
    _write_atomic(args.out, pdf, mode=0o600)  # personal data: readable by its owner only
    print(f"wrote {args.out}: the cards of batch {batch.id} ({len(pdf):,} bytes)")
    return EXIT_OK


def cmd_batch_status(args: argparse.Namespace) -> int:
    """Print a batch's status, counts and per-result errors."""
    from sqlmodel import Session

    from .services import batches

    settings = _service_settings(args)
    with _open_runtime(settings) as rt, Session(rt.engine, expire_on_commit=False, autobegin=False) as session:
        if batches.find_batch(session, args.batch_id) is None:
            raise UsageError("batch_not_found: no such certificate batch")
        view = batches.batch_view(session, args.batch_id)
    print(_batch_report(view))
    return EXIT_OK


def cmd_exam_import(args: argparse.Namespace) -> int:
    """Import an exam session's results CSV into the database: progress bar, per-row report, summary line.

    Exit 0 when every row is recorded (new or unchanged), 1 when some rows were refused, 2 on usage errors.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlmodel import Session

    from .db import write_transaction
    from .services import exam_registry, exam_results
    from .services.errors import ServiceError

    try:
        data = Path(args.file).read_bytes()
        rows = exam_results.parse_csv(data)
    except ServiceError as exc:
        raise UsageError(f"{args.file}: {exc.code}: {exc.message}") from None
    settings = _service_settings(args)
    with _open_runtime(settings) as rt, Session(rt.engine, expire_on_commit=False) as session:
        columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        # The bar goes to stderr, so the report on stdout can be piped or saved as it is.
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            bar = progress.add_task("rows", total=len(rows))
            try:
                with write_transaction(session):
                    exam_session = exam_registry.find_exam_session(session, session_id=args.session, owner=None)
                    report = exam_results.import_results(
                        session,
                        exam_session=exam_session,
                        rows=rows,
                        settings=rt.settings,
                        now=rt.clock.now(),
                        progress=lambda done: progress.advance(bar, done),
                    )
            except ServiceError as exc:
                raise UsageError(f"{exc.code}: {exc.message}") from None
    for issue in sorted([*report.errors, *report.warnings], key=lambda issue: issue.line):
        kind = "warning" if issue in report.warnings else "error"
        print(f"line {issue.line}: {kind} {issue.code}: {issue.message}")
    print(
        f"{report.rows} rows: {report.accepted} recorded ({report.passed} passed), {report.unchanged} unchanged, "
        f"{report.rejected} refused, {len(report.warnings)} warnings"
    )
    return EXIT_REJECT if report.rejected else EXIT_OK


def openapi_yaml() -> str:
    """The service's OpenAPI schema as YAML, exactly as ``openapi.yaml`` holds it."""
    import yaml

    from .main import create_app
    from .settings import Settings

    schema = create_app(Settings.for_demo()).openapi()
    return yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=120)


def cmd_openapi(args: argparse.Namespace) -> int:
    """Write (or with --check, compare) openapi.yaml."""
    text = openapi_yaml()
    path = Path(args.out)
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run certseal openapi --out {path}", file=sys.stderr)
            return EXIT_REJECT
        return EXIT_OK
    path.write_text(text, encoding="utf-8")
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"certseal: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = _Parser(prog="certseal", description="Signed QR credentials for special-operation certificates.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details of failures to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    keygen = sub.add_parser("keygen", help="create an encrypted signing key (passphrase: CERTSEAL_KEY_PASSPHRASE)")
    keygen.add_argument("--alg", choices=sorted(crypto.keys._algorithms.SIGNING_ALGORITHMS), default="ES256")
    keygen.add_argument("--out", required=True, help="where to write the encrypted PKCS#8 PEM")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
    keygen.set_defaults(handler=cmd_keygen)

    pubkey = sub.add_parser("pubkey", help="write the public key of a signing key")
    pubkey.add_argument("key")
    pubkey.add_argument("--out")
    pubkey.set_defaults(handler=cmd_pubkey)

    sign = sub.add_parser("sign", help="sign a certificate and print its QR text")
    sign.add_argument("--key", required=True)
    sign.add_argument("--issuer", required=True, help="issuer code, e.g. CN-44")
    sign.add_argument("--claims", required=True, help="CLAIMS.json (shape in the README)")
    sign.add_argument("--base-url", required=True, help="public https base URL of the verifier page")
    sign.add_argument("--png")
    sign.add_argument("--svg")
    sign.add_argument("--error-level", choices=["L", "M", "Q", "H"], default="Q")
    sign.add_argument("--allow-localhost", action="store_true", help="allow http://localhost (demo and tests)")
    sign.set_defaults(handler=cmd_sign)

    verify = sub.add_parser("verify", help="verify a QR text or image offline; exit 0 accept, 1 reject")
    verify.add_argument("qr_text", nargs="?", metavar="QR_TEXT")
    verify.add_argument("--image", help="read the QR code from a PNG/JPEG photo")
    verify.add_argument(
        "--trust",
        action="append",
        default=[],
        help="trusted public key: CODE=FILE binds it to issuer CODE (iss checked); FILE alone: no issuer check",
    )
    verify.add_argument("--trust-list", metavar="FILE", help="signed trust list (full verdict; needs --anchor)")
    verify.add_argument("--anchor", metavar="ANCHOR.pub.pem", help="trust-anchor public key that signed --trust-list")
    verify.add_argument(
        "--status-list",
        action="append",
        default=[],
        metavar="FILE|DIR",
        help="a Status List Token file, or a folder of *.cwt (certseal status-list fetch); repeatable",
    )
    verify.add_argument(
        "--allow-stale", action="store_true", help="use an expired trust list or status list and say how stale"
    )
    verify.add_argument("--at", help="verification time, ISO 8601 (default now)")
    verify.add_argument("--purpose", choices=["hot_work"], help="require an item that covers hot work")
    verify.add_argument("--no-review", action="store_true", help="skip the review-date (复审) check")
    verify.add_argument("--operation", help="require this catalogue item, e.g. 2.1")
    verify.set_defaults(handler=cmd_verify)

    anchor = sub.add_parser("trust-anchor", help="the trust-anchor key that signs trust lists (keep it offline)")
    anchor_sub = anchor.add_subparsers(dest="anchor_command", required=True, parser_class=_Parser)
    anchor_keygen = anchor_sub.add_parser(
        "keygen", help="create the ES256 trust-anchor key (passphrase: CERTSEAL_TRUST_ANCHOR_PASSPHRASE[_FILE])"
    )
    anchor_keygen.add_argument("--out", required=True, help="encrypted PKCS#8 PEM (never overwritten)")
    anchor_keygen.add_argument("--public-out", metavar="ANCHOR.pub.pem", help="also write the public key here")
    anchor_keygen.set_defaults(handler=cmd_trust_anchor_keygen)

    trust = sub.add_parser("trust", help="sign, verify and fetch signed trust lists")
    trust_sub = trust.add_subparsers(dest="trust_command", required=True, parser_class=_Parser)
    trust_sign = trust_sub.add_parser("sign", help="sign a trust list from CONTENT.json with the trust-anchor key")
    trust_sign.add_argument(
        "--content", required=True, help="the content as JSON (format in docs/credential-format.md)"
    )
    trust_sign.add_argument("--key", required=True, help="the trust-anchor key (encrypted PKCS#8 PEM)")
    trust_sign.add_argument("--sequence", type=int, required=True, help="higher than the last published one")
    trust_sign.add_argument("--lifetime-days", type=int, default=30, help="exp = iat + this many days (default 30)")
    trust_sign.add_argument("--at", help="iat, ISO 8601 (default now)")
    trust_sign.add_argument("--out", required=True)
    trust_sign.set_defaults(handler=cmd_trust_sign)
    trust_verify = trust_sub.add_parser("verify", help="verify a trust list and print it; exit 0 ok, 1 rejected")
    trust_verify.add_argument("trust_list", metavar="TRUST_LIST")
    trust_verify.add_argument("--anchor", required=True, metavar="ANCHOR.pub.pem")
    trust_verify.add_argument("--at", help="verification time, ISO 8601 (default now)")
    trust_verify.add_argument("--allow-stale", action="store_true", help="accept a trust list past its exp")
    trust_verify.set_defaults(handler=cmd_trust_verify)
    trust_fetch = trust_sub.add_parser("fetch", help="download a trust list (verified first with --anchor)")
    trust_fetch.add_argument("--url", required=True, help="e.g. https://cert.example.gov.cn/v1/trust-list")
    trust_fetch.add_argument("--out", required=True)
    trust_fetch.add_argument("--anchor", metavar="ANCHOR.pub.pem", help="verify before saving (strongly advised)")
    trust_fetch.add_argument("--at", help="verification time, ISO 8601 (default now)")
    trust_fetch.add_argument("--allow-stale", action="store_true", help="save a trust list past its exp")
    trust_fetch.set_defaults(handler=cmd_trust_fetch)

    status_list = sub.add_parser("status-list", help="fetch signed status lists for offline verification")
    status_list_sub = status_list.add_subparsers(dest="status_list_command", required=True, parser_class=_Parser)
    status_fetch = status_list_sub.add_parser(
        "fetch", help="fetch every list of <base>/v1/status-lists under a listed issuer, verified, into --out-dir"
    )
    status_fetch.add_argument("--base-url", required=True, help="the service, e.g. https://cert.example.gov.cn")
    status_fetch.add_argument("--trust-list", required=True, metavar="FILE")
    status_fetch.add_argument("--anchor", required=True, metavar="ANCHOR.pub.pem")
    status_fetch.add_argument("--out-dir", required=True)
    status_fetch.add_argument("--at", help="verification time, ISO 8601 (default now)")
    status_fetch.add_argument("--allow-stale", action="store_true", help="use a trust list past its exp")
    status_fetch.set_defaults(handler=cmd_status_list_fetch)

    serve = sub.add_parser("serve", help="run the HTTP service (settings: CERTSEAL_* environment variables)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--database", help="database URL (default sqlite:///./certseal.db)")
    serve.add_argument("--public-base-url", help="base URL printed in QR codes")
    serve.add_argument(
        "--demo", action="store_true", help="demo mode (also CERTSEAL_DEMO=true): demo secrets, issuer and certificates"
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request (the default unless CERTSEAL_ACCESS_LOG=false)"
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        help="worker processes sharing the port (default 1; one per core is a good start)",
    )
    serve.add_argument(
        "--pin-cpus",
        action="store_true",
        help="pin each worker process to one CPU (worker n on the n-th allowed CPU): ~15%% less CPU per "
        "verify; only when the workers have the cores to themselves (one worker per core)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="proxies whose X-Forwarded-For is believed: addresses or networks, comma-separated, or * "
        "(default: CERTSEAL_FORWARDED_ALLOW_IPS, else nobody)",
    )
    serve.set_defaults(handler=cmd_serve)

    db = sub.add_parser("db", help="schema migrations and pruning (needs only the database URL, no secrets)")
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    db_upgrade = db_sub.add_parser("upgrade", help="upgrade the schema to the newest revision (or REVISION)")
    db_upgrade.add_argument("revision", nargs="?", default="head", metavar="REVISION", help="default: head")
    db_current = db_sub.add_parser("current", help="print the schema revision; exit 1 if it is not head")
    db_downgrade = db_sub.add_parser("downgrade", help="downgrade the schema, e.g. by one revision: downgrade -1")
    db_downgrade.add_argument("revision", nargs="?", metavar="REVISION", help="-1, -2, a revision id, or base")
    db_downgrade.add_argument("--steps", type=int, help="revisions to go back (the same as REVISION -N)")
    db_prune = db_sub.add_parser(
        "prune",
        help="delete verification events (counted per day first), holder-check counters and idempotency "
        "records past their retention periods (CERTSEAL_EVENT_RETENTION_DAYS, CERTSEAL_IDEMPOTENCY_RETENTION_HOURS)",
    )
    db_prune.add_argument("--dry-run", action="store_true", help="only count what would be pruned")
    for command, handler in (
        (db_upgrade, cmd_db_upgrade),
        (db_current, cmd_db_current),
        (db_downgrade, cmd_db_downgrade),
        (db_prune, cmd_db_prune),
    ):
        command.add_argument(
            "--database", help="database URL (default: CERTSEAL_DATABASE_URL, else sqlite:///./certseal.db)"
        )
        command.set_defaults(handler=handler)

    def service_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--database", help="database URL (default: CERTSEAL_DATABASE_URL)")
        command.add_argument("--demo", action="store_true", help="use the demo secrets")

    issuer = sub.add_parser("issuer", help="administer issuers directly in the database")
    issuer_sub = issuer.add_subparsers(dest="issuer_command", required=True, parser_class=_Parser)
    create = issuer_sub.add_parser("create", help="create an issuer and its first signing key")
    create.add_argument("--code", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--region", required=True)
    create.add_argument("--operations", required=True, help="comma-separated item codes, e.g. 2.1,2.2")
    create.add_argument("--alg", choices=["ES256", "EdDSA"], default="ES256")
    service_options(create)
    create.set_defaults(handler=cmd_issuer_create)
    api_key = issuer_sub.add_parser("api-key", help="create an issuer API key (printed once)")
    api_key.add_argument("code")
    api_key.add_argument("--label", default="")
    key_expiry = api_key.add_mutually_exclusive_group()
    key_expiry.add_argument("--expires-at", metavar="DATE", help="ISO 8601 date or time (no offset: China time)")
    key_expiry.add_argument("--expires-in-days", type=int, metavar="N", help="expire N days from now (1 to 3650)")
    service_options(api_key)
    api_key.set_defaults(handler=cmd_issuer_api_key)
    rotate = issuer_sub.add_parser("rotate-key", help="retire the active key of a use and start a new one")
    rotate.add_argument("code")
    rotate.add_argument("--use", choices=["certificate", "status_list"], default="certificate")
    rotate.add_argument("--alg", choices=["ES256", "EdDSA"])
    service_options(rotate)
    rotate.set_defaults(handler=cmd_issuer_rotate)
    update = issuer_sub.add_parser("update", help="change an issuer's name, region or service phone")
    update.add_argument("code")
    update.add_argument("--name")
    update.add_argument("--region")
    update.add_argument("--service-phone", help='the number site managers call about a refused card ("" removes it)')
    service_options(update)
    update.set_defaults(handler=cmd_issuer_update)
    reissue = issuer_sub.add_parser(
        "reissue-list", help="list the certificates of a compromised key registered before the compromise"
    )
    reissue.add_argument("code")
    reissue.add_argument("kid")
    service_options(reissue)
    reissue.set_defaults(handler=cmd_issuer_reissue_list)

    issue = sub.add_parser("issue", help="issue one certificate and print its QR text")
    issue.add_argument("--issuer", required=True)
    issue.add_argument("--name", required=True)
    issue.add_argument("--id-number", required=True, help="18 characters, or - to read it from stdin")
    issue.add_argument("--operation", required=True)
    issue.add_argument("--issue-date", required=True)
    issue.add_argument("--valid-until")
    issue.add_argument("--review-due")
    issue.add_argument(
        "--basis",
        choices=["reissue", "renewal", "legacy_migration"],
        help="why there is no exam result (required unless CERTSEAL_DIRECT_ISSUANCE=allowed)",
    )
    service_options(issue)
    issue.set_defaults(handler=cmd_issue)

    batch = sub.add_parser("batch", help="certificate batches: issue a whole exam session at once")
    batch_sub = batch.add_subparsers(dest="batch_command", required=True, parser_class=_Parser)
    batch_issue = batch_sub.add_parser(
        "issue", help="issue the certificates of every passed, uncertified result of an exam session"
    )
    batch_issue.add_argument("--session", required=True, metavar="ID", help="the exam session's id")
    batch_issue.add_argument(
        "--idempotency-key", metavar="KEY", help="a rerun with the same key continues the same batch"
    )
    service_options(batch_issue)
    batch_issue.set_defaults(handler=cmd_batch_issue)
    batch_cards = batch_sub.add_parser("cards", help="write a finished batch's printable cards to a PDF file")
    batch_cards.add_argument("batch_id", metavar="ID")
    batch_cards.add_argument("--out", required=True, type=Path, metavar="FILE", help="the PDF to write")
    service_options(batch_cards)
    batch_cards.set_defaults(handler=cmd_batch_cards)
    batch_status = batch_sub.add_parser("status", help="print a batch's progress and per-result errors")
    batch_status.add_argument("batch_id", metavar="ID")
    service_options(batch_status)
    batch_status.set_defaults(handler=cmd_batch_status)

    keys = sub.add_parser("api-key", help="list, revoke and expire issuer and app API keys")
    keys_sub = keys.add_subparsers(dest="api_key_command", required=True, parser_class=_Parser)
    key_list = keys_sub.add_parser("list", help="list API keys (never their tokens)")
    whose = key_list.add_mutually_exclusive_group()
    whose.add_argument("--issuer", metavar="CODE", help="only this issuer's keys")
    whose.add_argument("--apps", action="store_true", help="only the third-party app keys")
    service_options(key_list)
    key_list.set_defaults(handler=cmd_api_key_list)
    key_revoke = keys_sub.add_parser("revoke", help="revoke an API key by its prefix (for good, at once)")
    key_revoke.add_argument("prefix", metavar="PREFIX", help="the 12 hex digits after cs_ in the token")
    service_options(key_revoke)
    key_revoke.set_defaults(handler=cmd_api_key_revoke)
    key_expire = keys_sub.add_parser("expire", help="set or remove an API key's expiry")
    key_expire.add_argument("prefix", metavar="PREFIX")
    when = key_expire.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", metavar="DATE", help="ISO 8601 date or time (no offset: China time); past: at once")
    when.add_argument("--never", action="store_true", help="remove the expiry")
    service_options(key_expire)
    key_expire.set_defaults(handler=cmd_api_key_expire)

    demo = sub.add_parser("demo", help="the demo data set")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True, parser_class=_Parser)
    purge = demo_sub.add_parser(
        "purge", help="remove the demo issuer, its keys, API keys and certificates (needs only the database URL)"
    )
    purge.add_argument("--database", help="database URL (default: CERTSEAL_DATABASE_URL, else sqlite:///./certseal.db)")
    purge.set_defaults(handler=cmd_demo_purge)

    exam = sub.add_parser("exam", help="exam sessions and their results, directly in the database")
    exam_sub = exam.add_subparsers(dest="exam_command", required=True, parser_class=_Parser)
    exam_import = exam_sub.add_parser(
        "import",
        help="import a session's results CSV (header: id_number,name,theory_score,practical_score,"
        "training_institution); exit 0 all recorded, 1 some rows refused",
    )
    exam_import.add_argument("--session", required=True, metavar="ID", help="the exam session's id")
    exam_import.add_argument("file", metavar="results.csv")
    service_options(exam_import)
    exam_import.set_defaults(handler=cmd_exam_import)

    openapi = sub.add_parser("openapi", help="write the service's OpenAPI schema as YAML")
    openapi.add_argument("--out", default="openapi.yaml")
    openapi.add_argument("--check", action="store_true", help="exit 1 if the file differs from the app")
    openapi.set_defaults(handler=cmd_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"certseal: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # an output file that cannot be written, and the like
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"certseal: error: {where}{exc.strerror or exc.__class__.__name__}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
