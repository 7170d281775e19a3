"""The trust-list commands and ``certseal verify --trust-list``: keygen, sign, verify, fetch, full offline verdicts."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import STATUS_URI, TRUST_NOW, TrustWorld

import crypto
from crypto import Status, TrustListContent

ANCHOR_PASSPHRASE = "trust anchor: a long test passphrase"
ANCHOR_ENV = {"CERTSEAL_TRUST_ANCHOR_PASSPHRASE": ANCHOR_PASSPHRASE}
AT = TRUST_NOW.isoformat()
IDX = 42
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def anchor_files(tmp_path: Path, run_cli: Run) -> tuple[Path, Path]:
    """A trust-anchor key made by ``certseal trust-anchor keygen``: (encrypted key, public PEM)."""
    key, public = tmp_path / "anchor.pem", tmp_path / "anchor.pub.pem"
    code, _out, err = run_cli("trust-anchor", "keygen", "--out", str(key), "--public-out", str(public), env=ANCHOR_ENV)
    assert code == 0, err
    return key, public


@pytest.fixture
def signed_trust_list(
    tmp_path: Path, run_cli: Run, anchor_files: tuple[Path, Path], trust_world: TrustWorld
) -> Callable[..., Path]:
    """Return a function that writes the world's content as JSON and signs it with ``certseal trust sign``."""

    def sign(content: Any = None, *, sequence: int = 1, at: str = AT, name: str = "trust.cbor") -> Path:
        content_file = tmp_path / f"content-{sequence}.json"
        content_file.write_text(json.dumps(content or trust_world.content().to_json()), encoding="utf-8")
        out = tmp_path / name
        code, _out, err = run_cli(
            "trust", "sign", "--content", str(content_file), "--key", str(anchor_files[0]),
            "--sequence", str(sequence), "--at", at, "--out", str(out), env=ANCHOR_ENV,
        )  # fmt: skip
        assert code == 0, err
        return out

    return sign


def _status_file(tmp_path: Path, world: TrustWorld, entries: dict[int, Status] | None = None, **kwargs: Any) -> Path:
    path = tmp_path / "list-1.cwt"
    path.write_bytes(world.status_list(entries, **kwargs))
    return path


def test_anchor_keygen_writes_an_encrypted_key_and_prints_the_public_pem(tmp_path: Path, run_cli: Run) -> None:
    """``trust-anchor keygen`` writes encrypted PKCS#8 (mode 600) and the public PEM, and prints the latter."""
    key, public = tmp_path / "a.pem", tmp_path / "a.pub.pem"

    code, out, _err = run_cli("trust-anchor", "keygen", "--out", str(key), "--public-out", str(public), env=ANCHOR_ENV)

    assert code == 0
    assert out == public.read_text(encoding="ascii")
    assert out.startswith("-----BEGIN PUBLIC KEY-----")
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_anchor_keygen_refuses_to_overwrite(anchor_files: tuple[Path, Path], run_cli: Run) -> None:
    """An existing anchor key is never overwritten: usage error, file unchanged."""
    before = anchor_files[0].read_bytes()

    code, _out, err = run_cli("trust-anchor", "keygen", "--out", str(anchor_files[0]), env=ANCHOR_ENV)

    assert code == 2
    assert "exists" in err
    assert anchor_files[0].read_bytes() == before


def test_anchor_keygen_reads_the_passphrase_file(tmp_path: Path, run_cli: Run) -> None:
    """Without the variable the passphrase comes from CERTSEAL_TRUST_ANCHOR_PASSPHRASE_FILE; with neither, exit 2."""
    secret = tmp_path / "passphrase"
    secret.write_text(ANCHOR_PASSPHRASE + "\n", encoding="utf-8")

    made = run_cli("trust-anchor", "keygen", "--out", str(tmp_path / "a.pem"), env={
        "CERTSEAL_TRUST_ANCHOR_PASSPHRASE_FILE": str(secret)})  # fmt: skip
    refused = run_cli("trust-anchor", "keygen", "--out", str(tmp_path / "b.pem"), env={})

    assert made[0] == 0
    assert refused[0] == 2
    assert "CERTSEAL_TRUST_ANCHOR_PASSPHRASE" in refused[2]
    assert not (tmp_path / "b.pem").exists()


def test_sign_then_verify(
    signed_trust_list: Callable[..., Path], anchor_files: tuple[Path, Path], run_cli: Run
) -> None:
    """``trust verify`` accepts a list made by ``trust sign`` and prints seq, times, issuers and keys."""
    trust_list = signed_trust_list(sequence=5)

    code, out, _err = run_cli("trust", "verify", str(trust_list), "--anchor", str(anchor_files[1]), "--at", AT)
    shown = json.loads(out)

    assert code == 0
    assert (shown["decision"], shown["seq"], shown["expired"]) == ("accept", 5, False)
    assert shown["iat"] == "2026-06-15T02:00:00+00:00"
    assert shown["exp"] == "2026-07-15T02:00:00+00:00"
    assert [issuer["code"] for issuer in shown["issuers"]] == ["CN-11", "CN-44"]
    assert [key["use"] for key in shown["issuers"][1]["keys"]] == ["certificate", "certificate", "status_list"]
    assert "public_key_pem" not in out


def test_verify_with_another_anchor_is_rejected(
    signed_trust_list: Callable[..., Path], tmp_path: Path, run_cli: Run, trust_world: TrustWorld
) -> None:
    """Another anchor's public key: exit 1, ``unknown_key``."""
    other = tmp_path / "other.pub.pem"
    other.write_bytes(trust_world.status_key.public_pem())

    code, out, _err = run_cli("trust", "verify", str(signed_trust_list()), "--anchor", str(other), "--at", AT)

    assert code == 1
    assert json.loads(out)["reasons"] == ["unknown_key"]


def test_expired_trust_list_is_rejected_unless_stale_allowed(
    signed_trust_list: Callable[..., Path], anchor_files: tuple[Path, Path], run_cli: Run
) -> None:
    """Past its exp: exit 1 ``trust_list_expired``; with --allow-stale exit 0 and ``expired`` true."""
    trust_list, later = signed_trust_list(), (TRUST_NOW + timedelta(days=31)).isoformat()

    strict = run_cli("trust", "verify", str(trust_list), "--anchor", str(anchor_files[1]), "--at", later)
    stale = run_cli(
        "trust", "verify", str(trust_list), "--anchor", str(anchor_files[1]), "--at", later, "--allow-stale"
    )

    assert strict[0] == 1
    assert json.loads(strict[1])["reasons"] == ["trust_list_expired"]
    assert stale[0] == 0
    assert json.loads(stale[1])["expired"] is True


def test_sign_names_the_wrong_content_field(
    tmp_path: Path, anchor_files: tuple[Path, Path], run_cli: Run, trust_world: TrustWorld
) -> None:
    """Content with a wrong kid is a usage error naming the field; nothing is written."""
    content = trust_world.content().to_json()
    content["issuers"][1]["keys"][0]["kid"] = "00" * 8
    content_file = tmp_path / "content.json"
    content_file.write_text(json.dumps(content), encoding="utf-8")

    code, _out, err = run_cli(
        "trust", "sign", "--content", str(content_file), "--key", str(anchor_files[0]), "--sequence", "1",
        "--out", str(tmp_path / "trust.cbor"), env=ANCHOR_ENV,
    )  # fmt: skip

    assert code == 2
    assert "issuers[1].keys[0].kid" in err
    assert not (tmp_path / "trust.cbor").exists()


def test_offline_verify_accepts_then_rejects_after_revocation(
    signed_trust_list: Callable[..., Path],
    anchor_files: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Run,
    trust_world: TrustWorld,
) -> None:
    """End to end: the certificate is accepted with a fresh list, and rejected once the list revokes it."""
    trust_list, qr_text = signed_trust_list(), trust_world.certificate()
    base = ("verify", "--trust-list", str(trust_list), "--anchor", str(anchor_files[1]), "--at", AT)

    valid = run_cli(*base, "--status-list", str(_status_file(tmp_path, trust_world)), qr_text)
    revoked = run_cli(*base, "--status-list", str(_status_file(tmp_path, trust_world, {IDX: Status.REVOKED})), qr_text)
    accepted, rejected = json.loads(valid[1]), json.loads(revoked[1])

    assert valid[0] == 0
    assert (accepted["decision"], accepted["status"], accepted["status_source"]) == ("accept", "valid", "list")
    assert accepted["status_as_of"] == (TRUST_NOW - timedelta(minutes=10)).isoformat()
    assert accepted["status_list"] == {"uri": STATUS_URI, "idx": IDX}
    assert accepted["certificate"]["issuer"] == "CN-44"
    assert "key_window" in accepted["checks"]
    assert revoked[0] == 1
    assert (rejected["reasons"], rejected["status"]) == (["revoked"], "revoked")


def test_offline_verify_stale_list(
    signed_trust_list: Callable[..., Path],
    anchor_files: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Run,
    trust_world: TrustWorld,
) -> None:
    """An expired list: ``status_unknown`` (exit 1); with --allow-stale, accepted and how stale in seconds."""
    stale_list = _status_file(tmp_path, trust_world, iat=TRUST_NOW - timedelta(hours=25))
    base = ("verify", "--trust-list", str(signed_trust_list()), "--anchor", str(anchor_files[1]), "--at", AT)

    strict = run_cli(*base, "--status-list", str(stale_list), trust_world.certificate())
    stale = run_cli(*base, "--status-list", str(stale_list), "--allow-stale", trust_world.certificate())

    assert strict[0] == 1
    assert json.loads(strict[1])["reasons"] == ["status_unknown"]
    assert stale[0] == 0
    assert json.loads(stale[1])["status_source"] == "stale"
    assert json.loads(stale[1])["stale_by_seconds"] == 3600


def test_offline_verify_without_a_list_is_status_unknown(
    signed_trust_list: Callable[..., Path], anchor_files: tuple[Path, Path], run_cli: Run, trust_world: TrustWorld
) -> None:
    """No --status-list: the signature may be fine, but the status is unknown: exit 1."""
    code, out, _err = run_cli(
        "verify", "--trust-list", str(signed_trust_list()), "--anchor", str(anchor_files[1]), "--at", AT,
        trust_world.certificate(),
    )  # fmt: skip

    assert code == 1
    assert json.loads(out)["reasons"] == ["status_unknown"]
    assert json.loads(out)["status_source"] == "none"


def test_offline_verify_with_a_tampered_trust_list_is_rejected(
    signed_trust_list: Callable[..., Path],
    anchor_files: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Run,
    trust_world: TrustWorld,
) -> None:
    """A trust list changed after signing rejects every certificate (``bad_signature``), naming the trust list."""
    trust_list = signed_trust_list()
    data = bytearray(trust_list.read_bytes())
    position = data.index(b"2.2")
    data[position : position + 3] = b"1.1"
    trust_list.write_bytes(bytes(data))

    code, out, _err = run_cli(
        "verify", "--trust-list", str(trust_list), "--anchor", str(anchor_files[1]), "--at", AT,
        "--status-list", str(_status_file(tmp_path, trust_world)), trust_world.certificate(),
    )  # fmt: skip

    assert code == 1
    assert json.loads(out)["reasons"] == ["bad_signature"]
    assert json.loads(out)["message"].startswith("trust list:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trust-list", "trust.cbor"], "--anchor"),
        (["--trust", "a.pem", "--trust-list", "trust.cbor", "--anchor", "a.pem"], "either --trust"),
        (["--trust", "a.pem", "--status-list", "x.cwt"], "go with --trust-list"),
        ([], "either --trust"),
    ],
    ids=["no-anchor", "both", "list-without-trust-list", "neither"],
)
def test_verify_usage_errors(run_cli: Run, trust_world: TrustWorld, args: list[str], message: str) -> None:
    """A trust list without its anchor, or keys and a trust list at once, is a usage error naming the option."""
    code, out, err = run_cli("verify", *args, trust_world.certificate())

    assert code == 2
    assert out == ""
    assert message in err


class _Served:
    """A local HTTP server answering fixed paths with fixed bytes (and 404 for anything else)."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = routes.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def served() -> Iterator[_Served]:
    """A local HTTP server for the fetch commands, shut down after the test."""
    server = _Served()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_trust_fetch_verifies_before_saving(
    served: _Served, tmp_path: Path, anchor_files: tuple[Path, Path], run_cli: Run, trust_world: TrustWorld
) -> None:
    """``trust fetch --anchor`` saves a genuine list and refuses (exit 1, nothing written) another anchor's."""
    genuine = tmp_path / "genuine.cbor"
    served.routes["/v1/trust-list"] = trust_world.signed()
    wrong_anchor = tmp_path / "world-anchor.pub.pem"
    wrong_anchor.write_bytes(trust_world.anchor.public_pem())

    saved = run_cli("trust", "fetch", "--url", f"{served.base}/v1/trust-list", "--out", str(genuine),
                    "--anchor", str(wrong_anchor), "--at", AT)  # fmt: skip
    refused = run_cli("trust", "fetch", "--url", f"{served.base}/v1/trust-list", "--out", str(tmp_path / "no.cbor"),
                      "--anchor", str(anchor_files[1]), "--at", AT)  # fmt: skip
    missing = run_cli("trust", "fetch", "--url", f"{served.base}/nothing", "--out", str(tmp_path / "no.cbor"))

    assert saved[0] == 0
    assert genuine.read_bytes() == served.routes["/v1/trust-list"]
    assert refused[0] == 1
    assert json.loads(refused[1])["reasons"] == ["unknown_key"]
    assert missing[0] == 2
    assert "HTTP 404" in missing[2]
    assert not (tmp_path / "no.cbor").exists()


def test_trust_fetch_never_goes_back_to_a_lower_sequence(
    served: _Served, tmp_path: Path, run_cli: Run, trust_world: TrustWorld
) -> None:
    """A server (or a cache in between) answering an older, still unexpired list does not replace the newer one saved:
    the older one may still call a since-compromised key active."""
    out = tmp_path / "trust.cbor"
    anchor = tmp_path / "world-anchor.pub.pem"
    anchor.write_bytes(trust_world.anchor.public_pem())

    lists = {sequence: trust_world.signed(sequence=sequence) for sequence in (5, 7, 8)}

    def fetch(sequence: int) -> tuple[int, str, str]:
        served.routes["/v1/trust-list"] = lists[sequence]
        return run_cli("trust", "fetch", "--url", f"{served.base}/v1/trust-list", "--out", str(out),
                       "--anchor", str(anchor), "--at", AT)  # fmt: skip

    first = fetch(7)
    older = fetch(5)
    kept = out.read_bytes()
    same = fetch(7)
    newer = fetch(8)

    assert (first[0], same[0], newer[0]) == (0, 0, 0)
    assert older[0] == 1
    assert json.loads(older[1])["reasons"] == ["trust_list_sequence"]
    assert kept == lists[7]
    assert out.read_bytes() == lists[8]


def test_status_list_fetch_saves_the_verified_lists(
    served: _Served, tmp_path: Path, run_cli: Run, trust_world: TrustWorld
) -> None:
    """``status-list fetch`` saves each aggregated list its issuer's status key signed, and refuses the others."""
    content = trust_world.content().to_json()
    for issuer in content["issuers"]:
        issuer["status_base"] = issuer["status_base"].replace("https://cert.example.gov.cn", served.base)
    anchor, trust_list = tmp_path / "anchor.pub.pem", tmp_path / "trust.cbor"
    anchor.write_bytes(trust_world.anchor.public_pem())
    trust_list.write_bytes(trust_world.signed(TrustListContent.from_json(content)))
    genuine_uri, forged_uri = f"{served.base}/v1/status-lists/CN-44/1", f"{served.base}/v1/status-lists/CN-44/2"
    served.routes["/v1/status-lists"] = json.dumps(
        {"status_lists": [genuine_uri, forged_uri, "https://elsewhere.example/lists/1"]}
    ).encode()
    served.routes["/v1/status-lists/CN-44/1"] = trust_world.status_list({IDX: Status.SUSPENDED}, uri=genuine_uri)
    served.routes["/v1/status-lists/CN-44/2"] = trust_world.status_list(key=trust_world.certificate_key, uri=forged_uri)

    code, out, _err = run_cli(
        "status-list", "fetch", "--base-url", served.base, "--trust-list", str(trust_list), "--anchor", str(anchor),
        "--out-dir", str(tmp_path / "lists"), "--at", AT,
    )  # fmt: skip
    result = json.loads(out)
    verdict = run_cli(
        "verify", "--trust-list", str(trust_list), "--anchor", str(anchor), "--at", AT,
        "--status-list", str(tmp_path / "lists"), trust_world.certificate(),
    )  # fmt: skip

    assert code == 1
    assert result["saved"] == [{"uri": genuine_uri, "file": str(tmp_path / "lists" / "CN-44-1.cwt")}]
    assert [item["reason"] for item in result["refused"]] == [
        "unknown_key",
        "not under a status_base of the trust list",
    ]
    assert not (tmp_path / "lists" / "CN-44-2.cwt").exists()
    assert verdict[0] == 1
    assert json.loads(verdict[1])["reasons"] == ["suspended"]


@pytest.mark.parametrize(
    ("trust_list", "anchor", "extra", "expected"),
    [
        ("garbage.cbor", "anchor", [], 1),
        ("status.cwt", "anchor", [], 1),
        (".", "anchor", [], 2),
        ("missing.cbor", "anchor", [], 2),
        ("trust", "garbage.cbor", [], 2),
        ("trust", "eddsa.pub.pem", [], 2),
        ("trust", "anchor", ["--status-list", "missing.cwt"], 2),
        ("trust", "anchor", ["--status-list", "garbage.cbor"], 1),
        ("trust", "anchor", ["--at", "next tuesday"], 2),
    ],
    ids=[
        "garbage-list",
        "status-list-as-trust-list",
        "list-directory",
        "list-missing",
        "anchor-garbage",
        "anchor-ed25519",
        "status-list-missing",
        "status-list-garbage",
        "bad-at",
    ],
)
def test_hostile_trust_list_input_is_a_reject_or_usage_error(
    signed_trust_list: Callable[..., Path],
    anchor_files: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Run,
    trust_world: TrustWorld,
    trust_list: str,
    anchor: str,
    extra: list[str],
    expected: int,
) -> None:
    """Damaged or wrong files are a JSON reject (1) or a usage error naming the option (2), never an accept."""
    (tmp_path / "garbage.cbor").write_bytes(b"\xff not CBOR")
    (tmp_path / "status.cwt").write_bytes(trust_world.status_list(key=trust_world.anchor))
    (tmp_path / "eddsa.pub.pem").write_bytes(trust_world.retired_key.public_pem())
    files = {"trust": str(signed_trust_list()), "anchor": str(anchor_files[1])}

    def resolve(name: str) -> str:
        return files.get(name, str(tmp_path / name))

    code, out, err = run_cli(
        "verify", "--trust-list", resolve(trust_list), "--anchor", resolve(anchor), "--at", AT,
        *[resolve(item) if item.endswith((".cwt", ".cbor")) else item for item in extra], trust_world.certificate(),
    )  # fmt: skip

    assert code == expected, err
    if code == 1:
        assert json.loads(out)["decision"] == "reject"
    else:
        assert out == ""
        assert err.startswith("certseal: error: --")


def test_offline_verify_reads_an_image_and_runs_the_verifiers_checks(
    signed_trust_list: Callable[..., Path],
    anchor_files: tuple[Path, Path],
    tmp_path: Path,
    run_cli: Run,
    trust_world: TrustWorld,
) -> None:
    """``--image`` works with a trust list, and ``--operation`` adds its own reason to the full verdict."""
    image = tmp_path / "card.png"
    image.write_bytes(crypto.render_png(crypto.make_symbol(trust_world.certificate())))
    base = (
        "verify", "--trust-list", str(signed_trust_list()), "--anchor", str(anchor_files[1]), "--at", AT,
        "--status-list", str(_status_file(tmp_path, trust_world)), "--image", str(image),
    )  # fmt: skip

    accepted = run_cli(*base)
    other_item = run_cli(*base, "--operation", "2.2")

    assert accepted[0] == 0
    assert json.loads(accepted[1])["status"] == "valid"
    assert other_item[0] == 1
    assert json.loads(other_item[1])["reasons"] == ["operation_not_covered"]
    assert "operation" in json.loads(other_item[1])["checks"]
