#!/usr/bin/env python3
"""Benchmark certseal's offline verification and QR rendering against their baselines.

Run from the project root: ``python3 bench/bench_verify.py`` (options: ``--help``). Not part of the
test run. See ``bench/README.md`` for what the figures mean.

Over N >= 1000 distinct certificates (one ES256 key; distinct serials, names, dates, hence distinct
signatures) it measures, in interleaved rounds so that machine noise hits every side alike, and
reports the best round of each:

1. ``crypto.verify_qr_text(text, trust, now=...)``: QR text -> verdict, fully offline, nothing cached;
2. the raw ``cryptography`` ES256 verification of the same messages (pre-built Sig_structure bytes and
   DER signatures): the floor any verifier in Python pays;
3. the ``cwt`` package verifying the same envelopes (``cwt.COSE.decode`` and ``cwt.decode``);
4. QR rendering: ``make_symbol`` + ``render_png`` against the ``qrcode`` package's plain default
   ``qrcode.make(text).save(BytesIO())``.
"""

from __future__ import annotations

import argparse
import gc
import io
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cbor2  # noqa: E402
import cwt  # noqa: E402
import qrcode  # noqa: E402
from cryptography.hazmat.backends.openssl import backend  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402

import crypto  # noqa: E402
from crypto import CST, CertificateClaims, Operation, SigningKey, TrustStore  # noqa: E402

GOAL_RATIO = 0.70
BASE_URL = "https://tzzy.yjgl.gd.gov.cn/cert"  # 32 characters, like a provincial deployment
NOW = datetime(2027, 3, 15, 9, 30, tzinfo=CST)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def build_corpus(count: int) -> tuple[SigningKey, list[bytes], list[str]]:
    """Sign ``count`` distinct full certificates; return the key, the envelopes and their QR texts."""
    key = SigningKey.generate("ES256")
    envelopes = []
    for i in range(count):
        # Valid from 2025 for 6 years: cwt.decode checks exp and nbf against the real clock.
        valid_from = date(2025, 1, 1) + timedelta(days=i % 365)
        claims = CertificateClaims.issue(
            issuer=f"CN-{11 + i % 55}",
            holder_name=SURNAMES[i % len(SURNAMES)] + GIVEN[i // len(SURNAMES) % len(GIVEN)] + GIVEN[i % len(GIVEN)],
            masked_id=f"{4401 + i % 97:04d}{i % 10000:04d}",
            operation=Operation(2, 1 + i % 3),
            valid_from=valid_from,
            valid_until=valid_from + timedelta(days=6 * 365),
            review_due=valid_from + timedelta(days=3 * 365),
            photo_digest=crypto.photo_digest(i.to_bytes(4, "big")),
            status_index=i,
            serial=(0x5A17C0DE00000000 + i).to_bytes(8, "big"),
            issued_at=datetime(2024, 12, 20, 9, 0, tzinfo=CST) + timedelta(minutes=i),
        )
        envelopes.append(crypto.sign_certificate(claims, key))
    if len(set(envelopes)) != count:
        raise SystemExit("corpus has duplicate envelopes")
    return key, envelopes, [crypto.encode_qr_text(envelope, BASE_URL) for envelope in envelopes]


def raw_messages(envelopes: list[bytes]) -> list[tuple[bytes, bytes]]:
    """(DER signature, Sig_structure) of each envelope, built with cbor2 (not the library)."""
    messages = []
    for envelope in envelopes:
        protected, _unprotected, payload, signature = cbor2.loads(envelope).value
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        messages.append((der, bytes(cbor2.dumps(["Signature1", protected, b"", payload]))))
    return messages


def timed(run: Callable[[], object]) -> float:
    """Seconds one call of ``run`` takes, with the garbage collector out of the way for both sides alike."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        gc.enable()


def interleaved(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Time every run once per round, in an order that rotates from round to round."""
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        if r % 2:
            order.reverse()
        for name in order:
            times[name].append(timed(runs[name]))
    return times


def main() -> None:
    """Build the corpus, check every path gives the right verdict, then measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--certificates", type=int, default=1000, help="distinct certificates (>= 1000)")
    parser.add_argument("--rounds", type=int, default=11, help="interleaved verification rounds (best is kept)")
    parser.add_argument("--render", type=int, default=30, help="distinct texts per QR rendering round")
    parser.add_argument("--render-rounds", type=int, default=3, help="interleaved QR rendering rounds")
    args = parser.parse_args()
    if args.certificates < 1000:
        parser.error("use at least 1000 distinct certificates")

    print(f"building {args.certificates} distinct certificates ...", file=sys.stderr)
    key, envelopes, texts = build_corpus(args.certificates)
    trust = TrustStore()
    trust.add(key.public_key)
    public_key = key.public_key
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    messages = raw_messages(envelopes)
    cose_key = cwt.COSEKey.from_pem(key.public_pem(), alg="ES256", kid=key.kid)
    cose = cwt.COSE.new()

    # Correctness first: every path accepts every certificate, and a flipped signature bit is refused.
    for text, envelope, (der, message) in zip(texts, envelopes, messages, strict=True):
        assert crypto.verify_qr_text(text, trust, now=NOW).envelope == envelope
        public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        payload = cose.decode(envelope, cose_key)
        assert cwt.decode(envelope, cose_key) == cbor2.loads(payload)
    try:
        crypto.verify_qr_text(crypto.encode_qr_text(envelopes[0][:-1] + b"\x00", BASE_URL), trust, now=NOW)
        raise SystemExit("a forged signature was accepted")
    except crypto.BadSignature:
        pass

    def certseal_verify() -> None:
        for text in texts:
            crypto.verify_qr_text(text, trust, now=NOW)

    def raw_es256() -> None:
        for der, message in messages:
            public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))

    def cwt_cose_decode() -> None:
        for envelope in envelopes:
            cose.decode(envelope, cose_key)

    def cwt_decode() -> None:
        for envelope in envelopes:
            cwt.decode(envelope, cose_key)

    parsed = [crypto.envelope._parse_envelope(envelope) for envelope in envelopes]

    def stage_unpack() -> None:
        for text in texts:
            crypto.envelope_from_qr_text(text)

    def stage_signature() -> None:
        for envelope in envelopes:
            alg, kid, _payload, signature, signed = crypto.envelope._parse_envelope(envelope)
            crypto.cose.verify_parts(alg, kid, signature, signed, trust)

    def stage_claims() -> None:
        for _alg, _kid, payload, _signature, _signed in parsed:
            crypto.envelope.decode_claims(payload)

    labels = {
        "certseal": "(1)  certseal verify_qr_text: QR text -> verdict",
        "raw": "(2)  cryptography ES256 verify, raw",
        "cwt-cose": "(3a) cwt COSE.decode (signature + payload)",
        "cwt": "(3b) cwt.decode (+ CWT claim checks)",
    }
    print(f"measuring verification: {args.rounds} interleaved rounds ...", file=sys.stderr)
    times = interleaved(
        {
            "certseal": certseal_verify,
            "raw": raw_es256,
            "cwt-cose": cwt_cose_decode,
            "cwt": cwt_decode,
            "unpack": stage_unpack,
            "signature": stage_signature,
            "claims": stage_claims,
        },
        args.rounds,
    )

    render_texts = texts[: args.render]

    def certseal_render() -> None:
        for text in render_texts:
            crypto.render_png(crypto.make_symbol(text))

    def qrcode_default() -> None:
        for text in render_texts:
            qrcode.make(text).save(io.BytesIO())

    print(f"measuring QR rendering: {args.render_rounds} interleaved rounds ...", file=sys.stderr)
    render_times = interleaved({"certseal": certseal_render, "qrcode": qrcode_default}, args.render_rounds)
    ours = crypto.make_symbol(texts[0])
    theirs = qrcode.QRCode()
    theirs.add_data(texts[0])
    theirs.make(fit=True)

    n = len(texts)
    rate = {name: n / min(values) for name, values in times.items()}
    print()
    print(f"certseal offline verification: {n} distinct ES256 certificates, best of {args.rounds} interleaved rounds")
    print(
        f"Python {platform.python_version()} | cryptography {version('cryptography')} "
        f"({backend.openssl_version_text()}) | cwt {version('cwt')} | qrcode {version('qrcode')} | "
        f"{platform.machine()}"
    )
    print(f"{'':52} {'verify/s':>10} {'us each':>9} {'vs raw':>7} {'spread':>7}")
    for name, label in labels.items():
        best, median = min(times[name]), statistics.median(times[name])
        print(
            f"{label:52} {rate[name]:>10,.0f} {1e6 * best / n:>9.1f} {rate[name] / rate['raw']:>7.2f} "
            f"{median / best - 1:>6.0%}"
        )
    ratio = rate["certseal"] / rate["raw"]
    verdict = "meets" if ratio >= GOAL_RATIO else "BELOW"
    print(f"ratio (1)/(2) = {ratio:.2f}  ({verdict} the goal of >= {GOAL_RATIO:.2f})")
    print(f"ratio (1)/(3a) = {rate['certseal'] / rate['cwt-cose']:.2f}  (certseal vs the cwt package)")
    stages = {name: 1e6 * min(times[name]) / n for name in ("unpack", "signature", "claims")}
    print(
        "where (1) spends its time, us each: "
        + ", ".join(f"{name} {value:.1f}" for name, value in stages.items())
        + f"; rest (policy, calls) {1e6 * min(times['certseal']) / n - sum(stages.values()):.1f}"
    )

    m = len(render_texts)
    render_rate = {name: m / min(values) for name, values in render_times.items()}
    print()
    print(
        f"QR rendering: {m} distinct {len(texts[0])}-character texts, best of {args.render_rounds} interleaved rounds"
    )
    print(f"{'':52} {'images/s':>10} {'ms each':>9} {'ratio':>7}")
    print(
        f"{f'(4a) certseal make_symbol + render_png (v{ours.version}-{ours.error_level})':52} "
        f"{render_rate['certseal']:>10,.1f} {1e3 / render_rate['certseal']:>9.1f} "
        f"{render_rate['certseal'] / render_rate['qrcode']:>7.2f}"
    )
    print(
        f"{f'(4b) qrcode.make(text).save(BytesIO()) (v{theirs.version}-M)':52} "
        f"{render_rate['qrcode']:>10,.1f} {1e3 / render_rate['qrcode']:>9.1f} {1.0:>7.2f}"
    )


if __name__ == "__main__":
    main()
