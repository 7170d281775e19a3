"""Limits that work: the verify rate limiter and holder-check windows with a true Retry-After, and cached QR images."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date

import pytest
import redis
from conftest import TEST_NOW

import crypto
from api.services import ratelimit
from api.services.errors import HolderCheckLimited, RateLimited
from api.services.qrcache import QR_SCALES, RenderCache
from api.services.verify_store import HolderCheckLimits
from tests.concurrency.harness import free_port

HOUR_START = int(TEST_NOW.timestamp())  # the test clock stands at a whole hour (so a whole minute too)
MINUTE_START = HOUR_START
REDIS_UNIT_DB = 6  # the scale-out tests use 7
assert HOUR_START % 3600 == 0


def _assert_limited(response, code: str) -> int:
    """Assert a 429 with this code whose Retry-After the message repeats; return the seconds."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == code
    seconds = int(response.headers["Retry-After"])
    assert error["message"].endswith(f"retry in {seconds} seconds")
    return seconds


# --- the verify rate limiter -----------------------------------------------------------------------


def test_rate_limiter_counts_per_client_per_minute_and_says_when_it_frees():
    """Past the limit a client gets RateLimited with the seconds to the end of the minute; a new minute resets it."""
    limiter = ratelimit.LocalRateLimiter()
    inside = MINUTE_START + 12.5

    allowed = [limiter.allow("ip:a", 3, now=inside + n) for n in range(3)]
    with pytest.raises(RateLimited) as refused:
        limiter.check("ip:a", 3, now=inside + 3)
    other_client = limiter.allow("ip:b", 3, now=inside + 3)
    next_minute = limiter.allow("ip:a", 3, now=MINUTE_START + 60)

    assert allowed == [True, True, True]
    assert refused.value.retry_after == 45  # 60 - 15.5, rounded up
    assert refused.value.message == "too many verifications; retry in 45 seconds"
    assert other_client is True
    assert next_minute is True


@pytest.fixture
def redis_db() -> Iterator[int]:
    """An emptied Redis database on the local server (the one the scale-out tests do not use)."""
    client = redis.Redis(port=6379, db=REDIS_UNIT_DB)
    client.flushdb()
    yield REDIS_UNIT_DB
    client.flushdb()
    client.close()


def test_shared_limiters_count_one_window_in_redis(redis_db):
    """Two limiters on one Redis (two processes' view) share a client's count, per minute window."""
    first, second = (
        ratelimit.SharedRateLimiter(ratelimit.redis_client(f"redis://127.0.0.1:6379/{redis_db}", timeout_seconds=1))
        for _ in range(2)
    )
    inside = MINUTE_START + 5

    answers = [limiter.allow("ip:a", 3, now=inside) for limiter in (first, second, first, second)]
    with pytest.raises(RateLimited) as refused:
        second.check("ip:a", 3, now=inside + 1)
    next_minute = first.allow("ip:a", 3, now=MINUTE_START + 60)

    assert answers == [True, True, True, False]
    assert refused.value.retry_after == 54
    assert next_minute is True


def test_shared_limiter_falls_back_to_process_counts_and_retries_redis_later(redis_db, monkeypatch, caplog):
    """With Redis unreachable the limiter counts in process (once logged, every fallback counted), then retries."""
    dead = ratelimit.redis_client(f"redis://127.0.0.1:{free_port()}/{redis_db}", timeout_seconds=0.2)
    fallbacks = []
    limiter = ratelimit.SharedRateLimiter(dead, on_fallback=lambda: fallbacks.append(1), retry_seconds=0.3)

    answers = [limiter.allow("ip:a", 2, now=MINUTE_START + n) for n in range(3)]
    down = limiter.using_redis
    time.sleep(0.35)
    tried_again = limiter.using_redis

    assert answers == [True, True, False]
    assert len(fallbacks) == 3
    assert (down, tried_again) == (False, True)
    assert [record.message for record in caplog.records].count(
        "Redis unavailable (ConnectionError): rate limits count in this process; retrying Redis every 0 s"
    ) == 1


@pytest.mark.parametrize(("offset", "seconds"), [(0.0, 60), (0.2, 60), (59.0, 1), (59.99, 1), (30.0, 30)])
def test_rate_limiter_retry_after_is_whole_seconds_to_the_window_end(offset, seconds):
    """Retry-After is the remaining time of the minute rounded up: between 1 and 60 seconds."""
    limiter = ratelimit.LocalRateLimiter()
    limiter.allow("ip:a", 1, now=MINUTE_START + offset)

    with pytest.raises(RateLimited) as refused:
        limiter.check("ip:a", 1, now=MINUTE_START + offset)

    assert refused.value.retry_after == seconds


@pytest.mark.parametrize("settings", [{"verify_rate_per_minute": 2}], indirect=True)
def test_anonymous_verify_past_its_limit_is_429_with_retry_after(app_client, clock, issuer, issue):
    """The third anonymous verify in a minute is 429 rate_limited, Retry-After = seconds to the minute's end."""
    qr = issue(issuer)["qr_text"]
    clock.advance(seconds=17.25)

    answers = [app_client.post("/v1/verify", json={"qr": qr}) for _ in range(3)]

    assert [response.status_code for response in answers[:2]] == [200, 200]
    assert _assert_limited(answers[2], "rate_limited") == 43


@pytest.mark.parametrize(
    "settings", [{"verify_rate_per_minute": 1, "verify_rate_per_minute_with_key": 2}], indirect=True
)
def test_app_key_verify_has_its_own_higher_limit(app_client, clock, admin_headers, issuer, issue):
    """An app key gets its own limit: past it 429 rate_limited with Retry-After, while anonymous counts apart."""
    qr = issue(issuer)["qr_text"]
    token = app_client.post("/v1/apps/api-keys", json={"label": "site"}, headers=admin_headers).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    clock.advance(seconds=50.5)

    keyed = [app_client.post("/v1/verify", json={"qr": qr}, headers=headers) for _ in range(3)]
    anonymous = app_client.post("/v1/verify", json={"qr": qr})

    assert [response.status_code for response in keyed[:2]] == [200, 200]
    assert _assert_limited(keyed[2], "rate_limited") == 10
    assert anonymous.status_code == 200


# --- holder-check windows --------------------------------------------------------------------------


def test_holder_check_refusal_names_the_end_of_the_clients_hour(app, app_client, issuer, issue):
    """Past the per-client limit, Retry-After runs to the end of the clock hour, for checks and counts alike."""
    certificate_id = issue(issuer)["id"]
    store = app.state.verify_store
    limits = HolderCheckLimits(per_client=2, all_clients=30, all_clients_window_seconds=600)
    now = HOUR_START + 100.5
    for _ in range(2):
        store.count_holder_failure(certificate_id=certificate_id, client="ip:a", limits=limits, now=now)

    with pytest.raises(HolderCheckLimited) as counted:
        store.count_holder_failure(certificate_id=certificate_id, client="ip:a", limits=limits, now=now + 1)
    with pytest.raises(HolderCheckLimited) as checked:
        store.check_holder_allowed(certificate_id=certificate_id, client="ip:a", limits=limits, now=now + 1)
    store.check_holder_allowed(certificate_id=certificate_id, client="ip:b", limits=limits, now=now + 1)
    store.check_holder_allowed(certificate_id=certificate_id, client="ip:a", limits=limits, now=HOUR_START + 3600)

    assert counted.value.retry_after == checked.value.retry_after == 3499  # 3600 - 101.5, rounded up
    assert counted.value.message.endswith("; retry in 3499 seconds")


def test_holder_check_refusal_names_the_end_of_the_global_window(app, app_client, issuer, issue):
    """Past the all-clients ceiling, Retry-After runs to the end of that (shorter) window for a fresh client."""
    certificate_id = issue(issuer)["id"]
    store = app.state.verify_store
    limits = HolderCheckLimits(per_client=5, all_clients=2, all_clients_window_seconds=600)
    now = HOUR_START + 1250  # 50 s into a 600 s global window
    for client in ("ip:a", "ip:b"):
        store.count_holder_failure(certificate_id=certificate_id, client=client, limits=limits, now=now)

    with pytest.raises(HolderCheckLimited) as fresh:
        store.count_holder_failure(certificate_id=certificate_id, client="ip:c", limits=limits, now=now)

    assert fresh.value.retry_after == 550


def test_holder_check_refusal_waits_for_every_full_window(app, app_client, issuer, issue):
    """A client at its own limit and at the global ceiling is told to wait until the later of the two ends."""
    certificate_id = issue(issuer)["id"]
    store = app.state.verify_store
    limits = HolderCheckLimits(per_client=1, all_clients=1, all_clients_window_seconds=600)
    now = HOUR_START + 10
    store.count_holder_failure(certificate_id=certificate_id, client="ip:a", limits=limits, now=now)

    with pytest.raises(HolderCheckLimited) as refused:
        store.count_holder_failure(certificate_id=certificate_id, client="ip:a", limits=limits, now=now)

    assert refused.value.retry_after == 3590


@pytest.mark.parametrize("settings", [{"holder_check_failures_per_hour": 1}], indirect=True)
def test_holder_check_429_over_http_carries_the_window_end(app_client, clock, issuer, issue, make_id_number):
    """Over HTTP, 429 holder_check_limited carries Retry-After = seconds to the end of the hour, as its message says."""
    holder = make_id_number(date(1985, 3, 12))
    qr = issue(issuer, holder_id_number=holder)["qr_text"]
    wrong = [make_id_number(date(1985, 3, 12), sequence=200 + 2 * n) for n in range(2)]
    clock.advance(seconds=600.25)
    first = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": wrong[0]})

    limited = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": wrong[1]})
    right = app_client.post("/v1/verify", json={"qr": qr, "holder_id_number": holder})

    assert first.json()["reasons"] == ["holder_mismatch"]
    assert _assert_limited(limited, "holder_check_limited") == 3000
    assert _assert_limited(right, "holder_check_limited") == 3000


# --- QR images: a few scales, rendered once --------------------------------------------------------


@pytest.mark.parametrize("scale", QR_SCALES)
def test_qr_png_at_each_allowed_scale_decodes(app_client, issuer, issue, qr_cache, scale):
    """Each allowed scale gives a PNG of (modules + 8) x scale pixels that decodes to the QR text."""
    certificate = issue(issuer)
    side = crypto.make_symbol(certificate["qr_text"]).size + 8

    png = app_client.get(certificate["links"]["qr_png"], params={"scale": scale})

    assert png.status_code == 200
    assert png.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert crypto.read_qr_texts(png.content) == [certificate["qr_text"]]
    assert png.content[16:24] == (side * scale).to_bytes(4, "big") * 2  # IHDR width and height


@pytest.mark.parametrize("scale", ["1", "5", "32", "64", "0", "-8", "eight"])
def test_qr_png_other_scales_are_422(app_client, issuer, issue, qr_cache, scale):
    """A scale outside 4, 8, 12 and 16 is 422 and renders nothing."""
    certificate = issue(issuer)

    response = app_client.get(certificate["links"]["qr_png"], params={"scale": scale})

    assert response.status_code == 422
    assert response.json()["error"]["code"] in ("unsupported_scale", "validation_error")
    assert qr_cache.stats.renders == 0


def test_qr_images_are_rendered_once_each(app_client, issuer, issue, qr_cache):
    """Repeated PNG and SVG requests render each (certificate, format, scale) once and serve the same bytes."""
    certificate = issue(issuer)
    links = certificate["links"]

    pngs = [app_client.get(links["qr_png"], params={"scale": 8}).content for _ in range(5)]
    svgs = [app_client.get(links["qr_svg"]).content for _ in range(3)]
    large = app_client.get(links["qr_png"], params={"scale": 16}).content

    assert len(set(pngs)) == len(set(svgs)) == 1
    assert large != pngs[0]
    assert (qr_cache.stats.renders, qr_cache.stats.hits) == (3, 6)


def test_unknown_certificate_qr_is_404_and_not_cached(app_client, qr_cache):
    """An unknown id is 404 certificate_not_found each time and leaves nothing in the cache."""
    answers = [app_client.get("/v1/certificates/0123456789abcdef/qr.png") for _ in range(2)]

    assert [answer.status_code for answer in answers] == [404, 404]
    assert answers[0].json()["error"]["code"] == "certificate_not_found"
    assert len(qr_cache) == 0


def test_render_cache_evicts_the_least_recently_used_within_its_bounds():
    """The cache keeps at most max_entries images and max_bytes bytes, evicting the least recently used."""
    cache = RenderCache(max_entries=3, max_bytes=100)

    def key(name: str) -> tuple[str, str, str, int]:
        return ("https://x", name, "png", 8)

    for name in ("a", "b", "c"):
        cache.get_or_render(key(name), lambda: b"." * 30)
    cache.get(key("a"))  # a is now the most recently used
    cache.get_or_render(key("d"), lambda: b"." * 30)
    cache.get_or_render(key("e"), lambda: b"." * 60)
    cache.get_or_render(key("huge"), lambda: b"." * 101)

    assert [cache.get(key(name)) is not None for name in ("a", "b", "c", "d", "e", "huge")] == [
        False,
        False,
        False,
        True,
        True,
        False,
    ]
    assert cache.size_bytes == 90
    assert cache.stats.evictions == 3


@pytest.mark.parametrize("settings", [{"verify_rate_per_minute": 10**9}], indirect=True)
def test_verify_keeps_answering_during_a_qr_image_flood(app_client, issuer, issue, qr_cache):
    """Two threads hammer qr.png at every scale for 2 s: verify still answers accept; each image renders once."""
    certificates = [issue(issuer) for _ in range(3)]
    stop = threading.Event()
    flood: list[int] = []

    def hammer(scales: tuple[int, ...]) -> None:
        count = 0
        while not stop.is_set():
            for certificate in certificates:
                for scale in scales:
                    response = app_client.get(certificate["links"]["qr_png"], params={"scale": scale})
                    assert response.status_code == 200
                    count += 1
        flood.append(count)

    threads = [threading.Thread(target=hammer, args=(scales,)) for scales in (QR_SCALES[:2], QR_SCALES[2:])]
    for thread in threads:
        thread.start()

    verdicts = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < 2.0:
            verdicts.append(app_client.post("/v1/verify", json={"qr": certificates[0]["qr_text"]}))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    elapsed = time.monotonic() - started

    print(
        f"during a QR flood of {sum(flood)} image requests ({sum(flood) / elapsed:.0f}/s, 2 threads): "
        f"{len(verdicts)} verifications ({len(verdicts) / elapsed:.0f}/s)"
    )
    assert len(flood) == 2
    assert verdicts
    assert all(response.status_code == 200 for response in verdicts)
    assert all(response.json()["decision"] == "accept" for response in verdicts)
    assert qr_cache.stats.renders <= len(certificates) * len(QR_SCALES) * 2  # at most a race per image
    assert qr_cache.stats.hits >= sum(flood) - qr_cache.stats.renders
