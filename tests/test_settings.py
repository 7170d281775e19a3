"""Secrets that are secrets: strength rules, no two alike, previous HMAC keys checked at start, ``_FILE`` forms.

Every refusal names the variable and never its value; all of it happens when the settings load, never
as a 500 at first use.
"""

from __future__ import annotations

import logging
import os

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.runtime import load_settings
from api.settings import (
    DEMO_ISSUER_API_KEY,
    DEMO_SECRETS,
    SECRET_SETTINGS,
    SettingsError,
    describe_database,
    secret_weakness,
)

WEAK_SECRETS = {
    "one-character": "x",
    "fifteen-characters": "k3Jq9vLm2Xp8Rt4",
    "sixteen-as": "a" * 16,
    "sixteen-spaces": " " * 16,
    "changeme-twice": "changemechangeme",
    "changeme-prefix": "Change-Me-Please-Now-2026!",
    "password-prefix": "Password_for_certseal_2026",
    "secret-prefix": "secret-of-the-certseal-service",
    "repeated-pattern": "abcdefghijk" * 3,
    "alphabet-run": "abcdefghijklmnopqrstuvwxyz",
    "descending-run": "zyxwvutsrqponmlkjihg",
}


def _environment(monkeypatch, **variables):
    """Set exactly these CERTSEAL_* variables (and an https base URL) in the environment."""
    for name in [name for name in os.environ if name.startswith("CERTSEAL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CERTSEAL_PUBLIC_BASE_URL", "https://cert.example.gov.cn")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("value", list(WEAK_SECRETS.values()), ids=list(WEAK_SECRETS))
def test_weak_secrets_are_refused_in_every_slot_naming_only_the_variable(make_production_settings, value):
    """Short, low-variety, placeholder, repeated and consecutive secrets are refused for each of the four secrets."""

    refusals = {}
    for name in DEMO_SECRETS:
        with pytest.raises(ValidationError) as refused:
            make_production_settings(**{name: value})
        refusals[name] = str(refused.value)

    for name, message in refusals.items():
        assert f"CERTSEAL_{name.upper()} is too weak" in message
        if len(value.strip()) >= 8:
            assert value not in message


def test_development_mode_refuses_a_trivial_secret(make_production_settings):
    """CERTSEAL_DEV no longer lets an admin token ``x`` through: dev mode keeps the secret rules."""

    with pytest.raises(ValidationError, match="CERTSEAL_ADMIN_TOKEN is too weak"):
        make_production_settings(dev=True, admin_token="x", public_base_url="http://127.0.0.1:8000")


def test_random_secrets_pass_the_rules(production_secrets):
    """Secrets from a random generator (as the README recommends) have no weakness."""

    weaknesses = [secret_weakness(value) for value in production_secrets.values()]

    assert weaknesses == [None] * len(production_secrets)


def test_two_equal_secrets_are_refused(make_production_settings, production_secrets):
    """Setting two of the four secrets to one value is refused, naming both variables and not the value."""
    shared = production_secrets["admin_token"]

    with pytest.raises(ValidationError) as refused:
        make_production_settings(url_signing_key=shared)

    message = str(refused.value)
    assert "CERTSEAL_ADMIN_TOKEN and CERTSEAL_URL_SIGNING_KEY have the same value" in message
    assert shared not in message


@pytest.mark.parametrize("secret", [*DEMO_SECRETS.values(), DEMO_ISSUER_API_KEY])
def test_published_demo_values_are_refused_as_secrets(make_production_settings, secret):
    """No published demo value is accepted as any secret outside demo mode."""

    with pytest.raises(ValidationError, match="is a demo secret"):
        make_production_settings(admin_token=secret)


@pytest.mark.parametrize(
    ("previous", "message"),
    [
        ("garbage", "must be version:key,version:key"),
        ("1:", "must be version:key,version:key"),
        ("x:k3Jq9vLm2Xp8Rt4wZ", "must be version:key,version:key"),
        ("1:k3Jq9vLm2Xp8Rt4wZ,1:m2Xp8Rt4wZk3Jq9vL", "names version 1 twice"),
        ("2:k3Jq9vLm2Xp8Rt4wZ", "names the current CERTSEAL_ID_HMAC_KEY_VERSION"),
        ("1:changemechangeme", "CERTSEAL_ID_HMAC_PREVIOUS_KEYS (version 1) is too weak"),
    ],
    ids=["garbage", "no-key", "bad-version", "twice", "current-version", "weak-key"],
)
def test_previous_hmac_keys_are_checked_when_settings_load(make_production_settings, previous, message):
    """CERTSEAL_ID_HMAC_PREVIOUS_KEYS is parsed and checked at start: format, distinct versions, strength."""

    with pytest.raises(ValidationError) as refused:
        make_production_settings(id_hmac_key_version=2, id_hmac_previous_keys=previous)

    assert message in str(refused.value)
    assert "k3Jq9vLm2Xp8Rt4wZ" not in str(refused.value)


def test_garbage_previous_keys_stop_demo_start_too(make_settings):
    """Even in demo mode a malformed CERTSEAL_ID_HMAC_PREVIOUS_KEYS stops the settings, never a 500 later."""

    with pytest.raises(ValidationError, match="CERTSEAL_ID_HMAC_PREVIOUS_KEYS must be"):
        make_settings(id_hmac_previous_keys="garbage")


def test_previous_hmac_keys_join_the_current_one(make_production_settings, production_secrets):
    """Well-formed previous keys are available by version beside the current key."""
    old = "k3Jq9vLm2Xp8Rt4wZ-old"

    settings = make_production_settings(id_hmac_key_version=3, id_hmac_previous_keys=f"1:{old}, 2:{old}-two")

    assert settings.id_hmac_keys == {
        3: production_secrets["id_hmac_key"].encode(),
        1: old.encode(),
        2: f"{old}-two".encode(),
    }


def test_every_secret_can_come_from_a_file(monkeypatch, tmp_path, production_secrets):
    """Each CERTSEAL_<SECRET>_FILE is read (trailing newline stripped) exactly as the variable would be."""
    values = {
        **production_secrets,
        "id_hmac_previous_keys": "7:k3Jq9vLm2Xp8Rt4wZ-previous",
        "redis_url": "redis://:s3cret-pass@cache.internal:6380/2",
    }
    files = {}
    for name, value in values.items():
        path = tmp_path / name
        path.write_text(value + "\n", encoding="utf-8")
        files[f"CERTSEAL_{name.upper()}_FILE"] = str(path)
    _environment(monkeypatch, **files, CERTSEAL_ID_HMAC_KEY_VERSION="8")

    settings = load_settings(demo=False)

    assert set(values) == set(SECRET_SETTINGS)
    assert {name: settings.require(name) for name in production_secrets} == production_secrets
    assert settings.previous_hmac_keys == {7: "k3Jq9vLm2Xp8Rt4wZ-previous"}
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == values["redis_url"]
    assert "s3cret-pass" not in settings.startup_summary()
    assert "rate_limits=shared in redis cache.internal:6380/2" in settings.startup_summary()


def test_variable_and_file_together_are_refused(monkeypatch, tmp_path, production_secrets):
    """Setting CERTSEAL_ADMIN_TOKEN and CERTSEAL_ADMIN_TOKEN_FILE at once is an error naming both, not a choice."""
    path = tmp_path / "token"
    path.write_text(production_secrets["admin_token"], encoding="utf-8")
    _environment(
        monkeypatch, CERTSEAL_ADMIN_TOKEN=production_secrets["admin_token"], CERTSEAL_ADMIN_TOKEN_FILE=str(path)
    )

    with pytest.raises(SettingsError) as refused:
        load_settings(demo=False)

    assert "set CERTSEAL_ADMIN_TOKEN or CERTSEAL_ADMIN_TOKEN_FILE, not both" in str(refused.value)
    assert production_secrets["admin_token"] not in str(refused.value)


@pytest.mark.parametrize("problem", ["missing", "directory", "empty", "device", "huge"])
def test_unreadable_secret_file_is_a_clear_error(monkeypatch, tmp_path, problem):
    """A secret file that is missing, a directory, empty, a device or huge stops the settings, naming the variable."""
    path = {
        "missing": tmp_path / "absent",
        "directory": tmp_path,
        "empty": tmp_path / "empty",
        "device": "/dev/zero",
        "huge": tmp_path / "huge",
    }[problem]
    if problem == "empty":
        path.write_text("\n", encoding="utf-8")
    if problem == "huge":
        path.write_text("k" * 100_000, encoding="utf-8")
    _environment(monkeypatch, CERTSEAL_KEY_PASSPHRASE_FILE=str(path))

    with pytest.raises(SettingsError) as refused:
        load_settings(demo=False)

    assert str(refused.value).startswith("CERTSEAL_KEY_PASSPHRASE_FILE: the file")


def test_certseal_demo_variable_is_demo_mode(monkeypatch):
    """CERTSEAL_DEMO=true alone gives the same settings as --demo: demo mode with the published secrets."""
    _environment(monkeypatch, CERTSEAL_DEMO="true")

    from_variable = load_settings(demo=False)
    from_flag = load_settings(demo=True)

    assert from_variable.demo is True
    assert from_variable.require("admin_token") == DEMO_SECRETS["admin_token"]
    assert from_variable.model_dump() == from_flag.model_dump()


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("10.0.0.1", "10.0.0.1"), (" 10.0.0.0/8 , ::1 ", "10.0.0.0/8,::1"), ("*", "*")],
    ids=["address", "networks", "everyone"],
)
def test_forwarded_allow_ips_takes_addresses_and_networks(make_production_settings, value, accepted):
    """CERTSEAL_FORWARDED_ALLOW_IPS accepts addresses, networks or *, and trusts nobody by default."""

    settings = make_production_settings(forwarded_allow_ips=value)

    assert settings.forwarded_allow_ips == accepted
    assert make_production_settings().forwarded_allow_ip_list == []


def test_forwarded_allow_ips_refuses_a_host_name(make_production_settings):
    """A host name is not an address: CERTSEAL_FORWARDED_ALLOW_IPS refuses it at start."""

    with pytest.raises(ValidationError, match="give IP addresses or networks"):
        make_production_settings(forwarded_allow_ips="proxy.lan")


def test_log_level_setting_defaults_to_info_and_ignores_case(make_production_settings):
    """CERTSEAL_LOG_LEVEL is INFO by default, accepts lower case and refuses unknown levels."""

    default = make_production_settings()
    debug = make_production_settings(log_level="debug")

    assert default.log_level == "INFO"
    assert debug.log_level == "DEBUG"
    with pytest.raises(ValidationError):
        make_production_settings(log_level="chatty")


@pytest.mark.parametrize(
    ("url", "described"),
    [
        (
            "postgresql+psycopg://certseal:hunter2hunter2@db.internal:5433/registry?sslmode=require",
            "postgresql db.internal:5433/registry",
        ),
        ("sqlite:////var/lib/certseal/certseal.db", "sqlite /var/lib/certseal/certseal.db"),
    ],
    ids=["postgresql", "sqlite"],
)
def test_database_is_described_without_credentials(url, described):
    """The start-up line names the database kind, host and name, never the user, password or parameters."""

    text = describe_database(url)

    assert text == described
    assert "hunter2" not in text


def test_start_up_line_lists_the_settings_that_matter_and_no_secret(
    make_app, make_production_settings, production_secrets, caplog
):
    """The app logs one start-up line with database, base URL, modes, pool and limits, and never a secret."""
    settings = make_production_settings(id_hmac_key_version=2, id_hmac_previous_keys="1:k3Jq9vLm2Xp8Rt4wZ-old")
    caplog.set_level(logging.INFO, logger="certseal")

    with TestClient(make_app(settings)):
        pass

    (line,) = [record.getMessage() for record in caplog.records if "certseal starting" in record.getMessage()]
    backend = settings.database_url.split(":", 1)[0].split("+", 1)[0]  # sqlite, or postgresql on that run
    for expected in (f"database={backend} ", "public_base_url=https://cert.example.gov.cn", "demo=False", "dev=False"):
        assert expected in line
    for expected in ("db_pool_size=8", "verify_rate_per_minute=600", "forwarded_allow_ips=(none)"):
        assert expected in line
    for expected in ("event_retention_days=1095", "idempotency_retention_hours=24", "prune_interval_seconds=3600"):
        assert expected in line
    for value in [*production_secrets.values(), "k3Jq9vLm2Xp8Rt4wZ-old"]:
        assert value not in caplog.text


def test_development_mode_warns_loudly_at_every_start(make_app, make_production_settings, caplog):
    """With CERTSEAL_DEV each start of the app logs a warning naming CERTSEAL_DEV."""
    settings = make_production_settings(dev=True, public_base_url="http://127.0.0.1:8000")
    caplog.set_level(logging.INFO, logger="certseal")

    for _ in range(2):
        with TestClient(make_app(settings)):
            pass

    warnings = [record for record in caplog.records if "CERTSEAL_DEV IS ON" in record.getMessage()]
    assert len(warnings) == 2
    assert {record.levelno for record in warnings} == {logging.WARNING}


def test_settings_without_demo_mode_refuse_http_base_url(make_production_settings):
    """Outside demo and dev mode the public base URL must be https."""

    with pytest.raises(ValidationError, match="CERTSEAL_PUBLIC_BASE_URL must be https"):
        make_production_settings(public_base_url="http://127.0.0.1:8000")


@pytest.mark.parametrize(
    "token", ["with a space inside it 1234", "tab\tseparated-token-1234", "安全令牌一二三四五六七八九十甲乙丙丁"]
)
def test_an_admin_token_that_cannot_be_sent_as_a_header_is_refused(make_production_settings, token):
    """An admin token with whitespace or non-ASCII characters could never authenticate, so start-up refuses it."""

    with pytest.raises(ValidationError, match="must be printable ASCII without spaces"):
        make_production_settings(admin_token=token)


def test_a_previous_hmac_key_equal_to_another_secret_is_refused(make_production_settings, production_secrets):
    """A previous ID-HMAC key may not repeat another secret (here the admin token)."""

    with pytest.raises(ValidationError, match="have the same value"):
        make_production_settings(id_hmac_previous_keys=f"1:{production_secrets['admin_token']}", id_hmac_key_version=2)


def test_a_base_url_with_whitespace_is_refused(make_production_settings):
    """https:// cert.example (a space after the scheme) is not a base URL."""

    with pytest.raises(ValidationError, match="CERTSEAL_PUBLIC_BASE_URL"):
        make_production_settings(public_base_url="https:// cert.example.gov.cn")
