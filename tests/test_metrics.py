"""Prometheus metrics at /metrics: the families, what they count, labels that never carry client data, multiprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from conftest import TEST_ID_NUMBER, certseal_environment, metric, metric_samples
from sqlalchemy.exc import OperationalError

from api import metrics
from api.services.events import EventRecorder

METRIC_FAMILIES = {
    "certseal_verifications",
    "certseal_verification_reject_reasons",
    "certseal_http_request_duration_seconds",
    "certseal_certificates_issued",
    "certseal_certificate_status_changes",
    "certseal_registry_read_errors",
    "certseal_verification_events_queued",
    "certseal_verification_events_dropped",
    "certseal_db_pool_connections",
    "certseal_db_pool_connections_in_use",
    "certseal_db_threads_waiting_tasks",
    "certseal_verify_lane_queued_calls",
}


def test_metrics_exposes_every_family(app_client):
    """GET /metrics answers Prometheus' text format with every certseal metric family, labelled or not yet."""
    response = app_client.get("/metrics")

    families = {family.name for family in _families(response.text)}
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert families >= METRIC_FAMILIES


def test_metrics_count_an_accept_and_a_reject_with_its_reason(app_client, issuer, issue, verify, scrape):
    """An accept and a revoked reject move the decision counters and the `revoked` reason by one each."""
    good = issue(issuer)["qr_text"]
    revoked = issue(issuer)
    answer = app_client.post(
        f"/v1/certificates/{revoked['id']}/revoke", json={"reason": "fraud"}, headers=issuer.headers
    )
    assert answer.status_code == 200, answer.text
    before = scrape()

    accepted = verify(good)
    rejected = verify(revoked["qr_text"])

    after = scrape()
    assert (accepted["decision"], rejected["decision"], rejected["reasons"]) == ("accept", "reject", ["revoked"])
    for name, labels in (
        ("certseal_verifications_total", {"decision": "accept"}),
        ("certseal_verifications_total", {"decision": "reject"}),
        ("certseal_verification_reject_reasons_total", {"reason": "revoked"}),
    ):
        assert metric(after, name, **labels) - metric(before, name, **labels) == 1, (name, labels)


def test_metrics_count_issuance_and_status_changes_by_issuer(app_client, issuer, other_issuer, issue, scrape):
    """Issuing two certificates for CN-44 and one for CN-11, and suspending one, counts each under its issuer."""
    before = scrape()

    first = issue(issuer)
    issue(issuer)
    issue(other_issuer)
    suspended = app_client.post(
        f"/v1/certificates/{first['id']}/suspend", json={"reason": "audit"}, headers=issuer.headers
    )

    after = scrape()
    assert suspended.status_code == 200, suspended.text
    issued = "certseal_certificates_issued_total"
    changes = "certseal_certificate_status_changes_total"
    assert metric(after, issued, issuer="CN-44") - metric(before, issued, issuer="CN-44") == 2
    assert metric(after, issued, issuer="CN-11") - metric(before, issued, issuer="CN-11") == 1
    assert (
        metric(after, changes, issuer="CN-44", action="suspend")
        - metric(before, changes, issuer="CN-44", action="suspend")
        == 1
    )


def test_latency_is_labelled_by_route_template_and_unknown_paths_share_one_label(app_client, issuer, scrape):
    """A certificate path counts under its template and unknown paths under `<unmatched>`; no path appears."""
    count = "certseal_http_request_duration_seconds_count"
    template = {"method": "GET", "route": "/v1/certificates/{certificate_id}", "status": "404"}
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    before = scrape()

    app_client.get(f"/v1/certificates/{TEST_ID_NUMBER}", headers=issuer.headers)
    app_client.get(f"/no/such/{TEST_ID_NUMBER}")
    app_client.get("/another/unknown/path")
    body = app_client.get("/metrics").text

    after = metric_samples(body)
    assert metric(after, count, **template) - metric(before, count, **template) == 1
    assert metric(after, count, **unmatched) - metric(before, count, **unmatched) == 2
    assert TEST_ID_NUMBER not in body
    assert "/no/such" not in body


def test_an_invented_http_method_counts_as_other(app_client, scrape):
    """A method the client made up is labelled OTHER, so clients cannot add label values."""
    labels = {"method": "OTHER", "route": "/healthz", "status": "405"}
    before = scrape()

    app_client.request("BREW", "/healthz")

    after = scrape()
    assert (
        metric(after, "certseal_http_request_duration_seconds_count", **labels)
        - metric(before, "certseal_http_request_duration_seconds_count", **labels)
        == 1
    )


def test_registry_read_errors_are_counted(app, app_client, issuer, issue, scrape, monkeypatch):
    """A verify that cannot read the database answers 503 and adds one database_error registry read error."""
    qr = issue(issuer)["qr_text"]
    before = scrape()

    def unavailable(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionError("database is down"))

    monkeypatch.setattr(app.state.engine, "raw_connection", unavailable)
    verified = app_client.post("/v1/verify", json={"qr": qr})

    after = scrape()
    errors = "certseal_registry_read_errors_total"
    assert verified.status_code == 503
    assert metric(after, errors, cause="database_error") - metric(before, errors, cause="database_error") == 1


def test_pool_gauges_are_read_at_scrape_time(app_client, settings, scrape):
    """The pool gauges show the configured pool size and no connection held between requests."""
    # A background thread (the batch runner's poll) may hold a connection for a moment; a leaked one stays.
    deadline = time.monotonic() + 5

    samples = scrape()
    while metric(samples, "certseal_db_pool_connections_in_use") != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        samples = scrape()

    assert metric(samples, "certseal_db_pool_connections") == settings.db_pool_size
    assert metric(samples, "certseal_db_pool_connections_in_use") == 0
    assert metric(samples, "certseal_verification_events_queued") >= 0


def test_dropped_events_are_counted(app):
    """An event queue over its limit drops the oldest events and counts every one dropped."""
    from api.db import make_engine

    engine = make_engine(app.state.settings.database_url)
    recorder = EventRecorder(engine, max_queued=2)
    before = metric(metric_samples(metrics.exposition().decode()), "certseal_verification_events_dropped_total")

    for _ in range(5):
        recorder.record(decision="accept")

    after = metric(metric_samples(metrics.exposition().decode()), "certseal_verification_events_dropped_total")
    engine.dispose()
    assert (recorder.queued, after - before) == (2, 3)


def test_prepare_multiprocess_metrics_dir_empties_the_directory_and_sets_the_variable(tmp_path, monkeypatch):
    """Preparing a directory removes an earlier run's files and points PROMETHEUS_MULTIPROC_DIR at it."""
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")

    prepared = metrics.prepare_multiprocess_metrics_dir(directory)

    assert prepared == directory
    assert list(directory.iterdir()) == []
    assert os.environ[metrics.MULTIPROC_ENV] == str(directory)


WORKER = """
import sys
from api import metrics
metrics.count_verification("reject", ["revoked"])
metrics.EVENTS_QUEUED.set(int(sys.argv[1]))
if sys.argv[2] == "exits":
    metrics.mark_process_dead()
"""


@pytest.mark.slow
def test_multiprocess_metrics_are_summed_over_processes(tmp_path, start_serve, make_settings):
    """A served /metrics in multiprocess mode sums its own counts and those of two other processes.

    Counters keep the count of a process that exited; a gauge (livesum) keeps only the processes alive.
    """
    directory = tmp_path / "prometheus"
    directory.mkdir()
    database = make_settings().database_url
    env = certseal_environment(PROMETHEUS_MULTIPROC_DIR=str(directory), CERTSEAL_DATABASE_URL=database)
    server = start_serve("--demo", env=env)
    for queued, fate in (("3", "exits"), ("5", "stays")):
        done = subprocess.run([sys.executable, "-c", WORKER, queued, fate], env=env, check=False, capture_output=True)
        assert done.returncode == 0, done.stderr

    answer = httpx.post(f"{server.base_url}/v1/verify", json={"qr": "12345"}, timeout=10)
    samples = _scrape_until_events_written(server.base_url)

    assert answer.status_code == 200
    assert metric(samples, "certseal_verifications_total", decision="reject") == 3
    assert metric(samples, "certseal_verification_reject_reasons_total", reason="revoked") == 2
    assert metric(samples, "certseal_verification_events_queued") == 5  # the server's queue is empty


def _scrape_until_events_written(base_url):
    """Scrape the server until its own event queue is empty again (its writer flushes every 0.25 s)."""
    deadline = time.monotonic() + 5
    while True:
        samples = metric_samples(httpx.get(f"{base_url}/metrics", timeout=10).text)
        if metric(samples, "certseal_verification_events_queued") <= 5 or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def _families(text):
    from prometheus_client.parser import text_string_to_metric_families

    return list(text_string_to_metric_families(text))
