"""``certseal serve --demo`` as a user runs it: the printed curl lines, the QR image links, a restart.

``--demo`` migrates its SQLite database itself before seeding: a fresh file, and a ./certseal.db left by
the code before migrations (``tests/fixtures/legacy-7b6b110.sqlite``), both start.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import crypto
from api import migrate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LEGACY = ROOT / "tests" / "fixtures" / "legacy-7b6b110.sqlite"
STARTUP_SECONDS = 60
STARTED = "Uvicorn running on"
BLOCK = re.compile(r"^  (?P<label>\S.*): expect (?P<expected>.+)$")
FIELD = re.compile(r"^    (?P<name>URL|QR|try):\s+(?P<value>.+)$")
API_KEY = re.compile(r"^  issuer API key:\s+(?P<key>\S+)")


@dataclass
class DemoCertificate:
    """One certificate block of the demo output."""

    label: str
    expected: str
    url: str = ""
    qr: str = ""
    curl: str = ""


@dataclass
class DemoRun:
    """A running ``certseal serve --demo`` and what it printed before uvicorn started."""

    process: subprocess.Popen[str]
    base: str
    lines: list[str]
    certificates: list[DemoCertificate]
    api_key: str


def free_port():
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse(lines):
    """The certificate blocks and the issuer API key in the demo output."""
    certificates = []
    api_key = ""
    for line in lines:
        if match := API_KEY.match(line):
            api_key = match["key"]
        elif match := BLOCK.match(line):
            certificates.append(DemoCertificate(match["label"], match["expected"]))
        elif (match := FIELD.match(line)) and certificates:
            setattr(certificates[-1], match["name"].lower().replace("try", "curl"), match["value"])
    return certificates, api_key


def healthy(base):
    """Whether ``/healthz`` answers 200."""
    try:
        return httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def start(database, tmp_path):
    """Start the demo on a free port, read its output up to uvicorn's startup line and wait for /healthz."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--demo",
            "--database",
            f"sqlite:///{database}",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()  # also keeps the pipe drained while the server runs
    run = DemoRun(process, f"http://127.0.0.1:{port}", [], [], "")
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not any(STARTED in line for line in run.lines):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "the demo stopped before uvicorn started:\n" + "\n".join(run.lines)
            run.lines.append(line)
        while not healthy(run.base):
            assert time.monotonic() < deadline, "no /healthz"
            time.sleep(0.1)
    except BaseException:
        stop(run)
        raise
    run.certificates, run.api_key = parse(run.lines)
    return run


def stop(run):
    """Stop the server (terminate, then wait; kill if it hangs)."""
    run.process.terminate()
    try:
        run.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait(timeout=15)


@dataclass(frozen=True)
class Demo:
    """The demo's first run (stopped) and its restart on the same database (running)."""

    first: DemoRun
    second: DemoRun
    database: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run the demo on a fresh SQLite file, stop it, and start it again on the same file."""
    tmp_path = tmp_path_factory.mktemp("demo")
    database = tmp_path / "demo.db"
    first = start(database, tmp_path)
    stop(first)
    second = start(database, tmp_path)
    try:
        yield Demo(first, second, database)
    finally:
        stop(second)


def run_curl(command):
    """Run a printed curl command exactly as printed, in a shell, and return its JSON answer."""
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30, check=False)  # noqa: S602 -- the line the demo prints
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def certificate_expecting(run, expected):
    """The demo certificate whose announced expectation starts with ``expected``."""
    (found,) = [certificate for certificate in run.certificates if certificate.expected.startswith(expected)]
    return found


def test_demo_prints_four_certificates_with_curl_lines(demo):
    """The demo prints four certificate blocks, each with its QR URL, QR image link and a curl line."""

    certificates = demo.second.certificates

    assert [certificate.expected.split(" (")[0] for certificate in certificates] == [
        "accept",
        "reject: revoked",
        "reject: expired",
        "reject: operation_not_covered",
    ]
    for certificate in certificates:
        assert re.fullmatch(re.escape(demo.second.base) + r"/c1#[0-9]+", certificate.url)
        assert re.fullmatch(re.escape(demo.second.base) + r"/v1/certificates/[0-9a-f]+/qr\.png", certificate.qr)
        assert certificate.curl.startswith(f"curl -s -X POST {demo.second.base}/v1/verify ")
        assert certificate.url in certificate.curl


def test_curl_valid_welder_accepts(demo):
    """The printed curl line of the valid welder answers accept with no reasons."""
    certificate = certificate_expecting(demo.second, "accept")

    answer = run_curl(certificate.curl)

    assert (answer["decision"], answer["reasons"]) == ("accept", [])
    assert answer["certificate"]["holder_name"] == "张伟"
    assert answer["certificate"]["operation"]["code"] == "2.1"
    assert answer["certificate"]["status"] == "valid"


def test_curl_revoked_welder_rejects_revoked(demo):
    """The printed curl line of the revoked welder answers reject ["revoked"]."""
    certificate = certificate_expecting(demo.second, "reject: revoked")

    answer = run_curl(certificate.curl)

    assert (answer["decision"], answer["reasons"]) == ("reject", ["revoked"])


def test_curl_expired_certificate_rejects_expired(demo):
    """The printed curl line of the expired certificate answers reject with expired among the reasons."""
    certificate = certificate_expecting(demo.second, "reject: expired")

    answer = run_curl(certificate.curl)

    assert answer["decision"] == "reject"
    assert "expired" in answer["reasons"]


def test_curl_electrician_rejects_operation_not_covered(demo):
    """The printed curl line of the electrician (1.2, purpose hot_work) answers reject ["operation_not_covered"]."""
    certificate = certificate_expecting(demo.second, "reject: operation_not_covered")

    answer = run_curl(certificate.curl)

    assert (answer["decision"], answer["reasons"]) == ("reject", ["operation_not_covered"])


def test_qr_image_link_decodes_to_printed_url(demo):
    """Each printed QR image link serves a PNG that decodes (zxing-cpp) to the printed QR URL."""

    responses = [httpx.get(certificate.qr, timeout=10) for certificate in demo.second.certificates]

    for certificate, response in zip(demo.second.certificates, responses, strict=True):
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert crypto.read_qr_texts(response.content) == [certificate.url]


def certificate_id(certificate):
    """The certificate id in a printed QR image link."""
    return certificate.qr.rsplit("/", 2)[1]


def test_restart_on_same_database_creates_no_duplicates(demo):
    """Restarting on the same database prints the same four certificates and CN-44 still has exactly four."""

    listed = httpx.get(
        f"{demo.second.base}/v1/certificates",
        headers={"Authorization": f"Bearer {demo.second.api_key}"},
        timeout=10,
    )
    with sqlite3.connect(demo.database) as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM certificates c JOIN issuers i ON i.id = c.issuer_id WHERE i.code = 'CN-44'"
        ).fetchone()
        (issuers,) = connection.execute("SELECT count(*) FROM issuers").fetchone()

    assert (count, issuers) == (4, 1)
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 4
    assert {item["id"] for item in listed.json()["items"]} == set(map(certificate_id, demo.second.certificates))
    assert list(map(certificate_id, demo.first.certificates)) == list(map(certificate_id, demo.second.certificates))
    first_digits = [certificate.url.partition("#")[2] for certificate in demo.first.certificates]
    assert first_digits == [certificate.url.partition("#")[2] for certificate in demo.second.certificates]


def test_demo_output_has_no_traceback_and_only_demo_secrets(demo):
    """Neither run prints a traceback, and the secrets they print are the published demo ones."""

    output = "\n".join(demo.first.lines + demo.second.lines)

    assert "Traceback" not in output
    assert "admin token:      demo_" in output
    assert "_demo_issuer_api_key_" in demo.second.api_key


def test_demo_upgrades_a_database_made_before_migrations(tmp_path):
    """On a demo database made before migrations, ``--demo`` upgrades it and serves its own four certificates."""
    database = Path(shutil.copyfile(LEGACY, tmp_path / "certseal.db"))
    with sqlite3.connect(database) as connection:
        kept = {row[0] for row in connection.execute("SELECT id FROM certificates")}

    run = start(database, tmp_path)
    try:
        answer = run_curl(certificate_expecting(run, "accept").curl)
    finally:
        stop(run)

    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert set(map(certificate_id, run.certificates)) == kept
    assert (answer["decision"], answer["reasons"]) == ("accept", [])
    assert revision == migrate.head_revision()
