"""The ``certseal`` command line: keys, signing and offline verification (no server needed).

Exit codes: 0 success / accept, 1 reject, 2 usage or input error. No input prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import crypto
from crypto import CST, CertsealError, Operation, VerificationError
from schemas.catalogue import load_catalogue
from schemas.idnumber import InvalidIdNumber, normalize_id_number

EXIT_OK = 0
EXIT_REJECT = 1
EXIT_USAGE = 2
VALIDITY_YEARS = 6


class UsageError(Exception):
    """A command-line problem the user can fix; printed without a traceback."""


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read JSON from {path}: {exc.__class__.__name__}") from None


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


def claims_from_json(data: Any, *, issuer: str, base_dir: Path) -> crypto.CertificateClaims:
    """Build certificate claims from the CLAIMS.json shape documented in the README."""
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
    valid_until = _date_field(data, "valid_until") or _add_years(valid_from, VALIDITY_YEARS) - timedelta(days=1)
    serial = data.get("serial")
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
            status_index=data.get("status_index"),
            serial=bytes.fromhex(serial) if isinstance(serial, str) else None,
        )
    except (CertsealError, ValueError) as exc:
        raise UsageError(f"claims: {exc}") from None


def certificate_json(certificate: crypto.SignedCertificate) -> dict[str, Any]:
    """Describe a verified certificate for people and programs (ID number masked)."""
    claims = certificate.claims
    item = load_catalogue().get(claims.operation)
    return {
        "issuer": claims.issuer,
        "serial": claims.serial.hex(),
        "kid": certificate.kid.hex(),
        "holder_name": claims.holder_name,
        "masked_id": claims.masked_id_display,
        "operation": {
            "code": str(claims.operation),
            "zh": item.zh if item else None,
            "en": item.en if item else None,
            "covers_hot_work": claims.operation.category == crypto.policy.HOT_WORK_CATEGORY,
        },
        "valid_from": claims.valid_from.isoformat(),
        "valid_until": claims.valid_until.isoformat(),
        "review_due": claims.review_due.isoformat() if claims.review_due else None,
        "issued_at": datetime.fromtimestamp(claims.issued_at, CST).isoformat(),
        "photo_digest": claims.photo_digest.hex() if claims.photo_digest else None,
        "status_index": claims.status_index,
    }


def offline_verdict(
    qr_text: str, trust: crypto.TrustStore, *, now: datetime, checks: Sequence[crypto.Check]
) -> dict[str, Any]:
    """Verify offline and return the verdict: decision, every failing reason, the decoded certificate."""
    verdict: dict[str, Any] = {
        "decision": "reject",
        "reasons": [],
        "checked_at": now.isoformat(),
        "checks": ["format", "signature"],
        "certificate": None,
    }
    try:
        certificate = crypto.verify_signature(crypto.envelope_from_qr_text(qr_text), trust)
    except VerificationError as error:
        verdict["reasons"] = [error.code]
        return verdict
    policy = crypto.AllOf(checks)
    verdict["checks"] += [check.name for check in checks]
    verdict["reasons"] = [error.code for error in policy.failures(certificate, now)]
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
    pem = key.to_pem(_passphrase())
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
        raise UsageError(f"{exc}: {exc.detail}") from None


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
    claims = claims_from_json(_read_json(args.claims), issuer=args.issuer, base_dir=Path(args.claims).parent)
    try:
        text = crypto.encode_qr_text(
            crypto.sign_certificate(claims, key), args.base_url, allow_insecure_localhost=args.allow_localhost
        )
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
    return moment if moment.tzinfo else moment.replace(tzinfo=CST)


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a QR text or image offline against the given trusted keys and print a JSON verdict."""
    if (args.qr_text is None) == (args.image is None):
        raise UsageError("give either QR_TEXT or --image FILE")
    try:
        trust = crypto.TrustStore.from_pem_files(args.trust)
    except CertsealError as exc:
        raise UsageError(f"--trust: {exc.detail or exc}") from None
    now = _verification_time(args.at)
    if args.image is not None:
        try:
            texts = crypto.read_qr_texts(Path(args.image))
        except CertsealError:
            raise UsageError(f"--image: {args.image} is not a readable image") from None
        qr_text = texts[0] if texts else ""
    else:
        qr_text = args.qr_text
    checks: list[crypto.Check] = [crypto.ValidityPeriod()]
    if not args.no_review:
        checks.append(crypto.ReviewNotOverdue())
    if args.purpose == "hot_work":
        checks.append(crypto.CoversHotWork())
    if args.operation:
        try:
            checks.append(crypto.CoversOperation(Operation.parse(args.operation)))
        except CertsealError:
            raise UsageError("--operation must look like 2.1") from None
    verdict = offline_verdict(qr_text, trust, now=now, checks=checks)
    print(json.dumps(verdict, ensure_ascii=False, indent=2))
    return EXIT_OK if verdict["decision"] == "accept" else EXIT_REJECT


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
    verify.add_argument("--trust", action="append", required=True, help="trusted public key PEM (repeatable)")
    verify.add_argument("--at", help="verification time, ISO 8601 (default now)")
    verify.add_argument("--purpose", choices=["hot_work"], help="require an item that covers hot work")
    verify.add_argument("--no-review", action="store_true", help="skip the review-date (复审) check")
    verify.add_argument("--operation", help="require this catalogue item, e.g. 2.1")
    verify.set_defaults(handler=cmd_verify)
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


if __name__ == "__main__":
    sys.exit(main())
