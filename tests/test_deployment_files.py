"""Static checks of the deployment files: docker-compose.yml, the Dockerfile, the Caddyfile and requirements.lock.

No Docker engine runs where the suite runs, so nothing here starts a container: the files are parsed
(YAML, the Dockerfile's instructions, the lock's pins) and held to the rules the deployment depends on.
Each rule is a function that lists problems; the real files must have none, and a copy broken on
purpose must be caught, so a rule that could never fail would show up here.
"""

from __future__ import annotations

import copy
import importlib.metadata
import ipaddress
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from api.db import AUXILIARY_CONNECTIONS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
LOCK_FILE = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
# The optional extras the image installs (pyproject's [project.optional-dependencies]).
IMAGE_EXTRAS = ("postgres", "redis")
POSTGRES_DATA = "/var/lib/postgresql/data"
SECRET_NAME = re.compile(r"(TOKEN|KEY|KEYS|PASSPHRASE|PASSWORD|SECRET)$")
DIGEST = r"@sha256:[0-9a-f]{64}"
EXACT_TAG = r":\d+\.\d+\.\d+[\w.-]*"  # a patch release: python:3.11.14-slim-bookworm
VERSION_TAG = r":\d+(?:\.\d+)+[\w.-]*"  # the server images' own versions: postgres:17.6-bookworm
PINNED_IMAGE = re.compile(rf"^[\w./-]+(?:{EXACT_TAG}{DIGEST}|{EXACT_TAG}|:[\w.-]+{DIGEST})$")
# Connections one certseal process opens at most (docs/operations.md): the pool, AUXILIARY_CONNECTIONS
# more for the background threads and start-up work, and the verify lane's threads.
CONNECTION_HEADROOM = 0.8


# --- docker-compose.yml -------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    """docker-compose.yml as a dict, YAML anchors and merge keys resolved."""
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return compose


def command_of(service: dict[str, Any]) -> list[str]:
    """A service's command as a list of words (compose allows a list or a string)."""
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def environment_of(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a dict (compose allows a mapping or a list of NAME=value)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = [entry.partition("=") for entry in environment]
        return {name: value if sep else None for name, sep, value in pairs}
    return {name: None if value is None else str(value) for name, value in environment.items()}


def replicas(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run ``certseal serve``."""
    return {name: svc for name, svc in compose["services"].items() if command_of(svc)[:2] == ["certseal", "serve"]}


def service_by_image(compose: dict[str, Any], prefix: str) -> str:
    """The name of the one service whose image starts with ``prefix`` (e.g. ``postgres:``)."""
    names = [name for name, svc in compose["services"].items() if str(svc.get("image", "")).startswith(prefix)]
    assert len(names) == 1, f"expected one service with an image {prefix}…, found {names}"
    return names[0]


def migrate_service(compose: dict[str, Any]) -> str:
    """The name of the one service that runs ``certseal db upgrade``."""
    names = [name for name, svc in compose["services"].items() if command_of(svc) == ["certseal", "db", "upgrade"]]
    assert len(names) == 1, f"expected one migrate service, found {names}"
    return names[0]


def proxy_service(compose: dict[str, Any]) -> str:
    """The name of the reverse proxy's service (Caddy or nginx)."""
    names = [
        name
        for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith(("caddy:", "nginx:", "nginxinc/"))
    ]
    assert len(names) == 1, f"expected one reverse proxy, found {names}"
    return names[0]


def is_one_shot(compose: dict[str, Any], name: str) -> bool:
    """True for a service that is never restarted and that another service waits on to complete."""
    waited_on = any(
        (svc.get("depends_on") or {}).get(name, {}).get("condition") == "service_completed_successfully"
        for other, svc in compose["services"].items()
        if other != name and isinstance(svc.get("depends_on"), dict)
    )
    return str(compose["services"][name].get("restart", "no")) == "no" and waited_on


def healthcheck_problems(compose: dict[str, Any]) -> list[str]:
    """Services that neither have a health check nor are one-shot jobs."""
    problems = []
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        if is_one_shot(compose, name):
            continue
        if not check.get("test") or check.get("disable"):
            problems.append(f"{name}: no health check")
    return problems


def postgres_volume_problems(compose: dict[str, Any]) -> list[str]:
    """PostgreSQL's data directory must be a named volume (the registry and the encrypted keys live there)."""
    postgres = compose["services"][service_by_image(compose, "postgres:")]
    named = set(compose.get("volumes") or {})
    for mount in postgres.get("volumes") or []:
        source, _, rest = mount.partition(":") if isinstance(mount, str) else (mount.get("source", ""), "", "")
        target = rest.split(":")[0] if isinstance(mount, str) else mount.get("target")
        if target == POSTGRES_DATA:
            return [] if source in named else [f"postgres: {POSTGRES_DATA} is on {source!r}, not a named volume"]
    return [f"postgres: nothing is mounted at {POSTGRES_DATA}"]


def dependency_problems(compose: dict[str, Any]) -> list[str]:
    """Each replica waits for the migration to complete and for PostgreSQL and Redis to be healthy."""
    wanted = {
        migrate_service(compose): "service_completed_successfully",
        service_by_image(compose, "postgres:"): "service_healthy",
        service_by_image(compose, "redis:"): "service_healthy",
    }
    problems = []
    for name, service in replicas(compose).items():
        depends_on = service.get("depends_on") or {}
        for dependency, condition in wanted.items():
            found = depends_on.get(dependency, {}).get("condition") if isinstance(depends_on, dict) else None
            if found != condition:
                problems.append(f"{name}: depends on {dependency} with {found!r}, not {condition!r}")
    return problems


def url_password(url: str) -> str | None:
    """The password in a URL (SQLAlchemy's parsing), or None."""
    try:
        return make_url(url).password
    except ArgumentError:
        return None


def inline_secret_problems(compose: dict[str, Any]) -> list[str]:
    """Secret-named variables with values, ``_FILE`` variables outside the service's secrets, passwords in URLs."""
    problems = []
    declared = compose.get("secrets") or {}
    for name, service in compose["services"].items():
        mounted = {entry if isinstance(entry, str) else entry["source"] for entry in service.get("secrets") or []}
        for variable, value in environment_of(service).items():
            if SECRET_NAME.search(variable) and value:
                problems.append(f"{name}: {variable} has a value inline")
            if variable.endswith("_FILE") and value:
                secret = value.removeprefix("/run/secrets/")
                if secret == value or secret not in mounted or secret not in declared:
                    problems.append(f"{name}: {variable} is not one of the service's declared secrets")
            if variable.endswith("_URL") and value and not value.startswith("${") and url_password(value):
                problems.append(f"{name}: {variable} carries a password")
    for secret, source in declared.items():
        if "file" not in source:
            problems.append(f"secret {secret}: not read from a file")
    return problems


def forwarded_for_problems(compose: dict[str, Any]) -> list[str]:
    """Replicas believe X-Forwarded-For from exactly the proxy's fixed address, on a network they share."""
    proxy = proxy_service(compose)
    networks = compose["services"][proxy].get("networks")
    if not isinstance(networks, dict):
        return [f"{proxy}: no network with a fixed address"]
    fixed = {net: (cfg or {}).get("ipv4_address") for net, cfg in networks.items() if (cfg or {}).get("ipv4_address")}
    if len(fixed) != 1:
        return [f"{proxy}: expected one fixed address, found {fixed}"]
    ((network, address),) = fixed.items()
    problems = []
    subnets = [entry["subnet"] for entry in (compose["networks"][network].get("ipam") or {}).get("config", [])]
    if not any(ipaddress.ip_address(address) in ipaddress.ip_network(subnet) for subnet in subnets):
        problems.append(f"{proxy}: {address} is outside {network}'s subnets {subnets}")
    for name, service in replicas(compose).items():
        trusted = environment_of(service).get("CERTSEAL_FORWARDED_ALLOW_IPS")
        if trusted != address:
            problems.append(f"{name}: CERTSEAL_FORWARDED_ALLOW_IPS is {trusted!r}, not the proxy's {address}")
        if network not in (service.get("networks") or []):
            problems.append(f"{name}: not on {network} with the proxy")
    return problems


def option_value(command: list[str], option: str, default: str) -> str:
    """The value of ``--option N`` or ``--option=N`` in a command, or the default."""
    for index, word in enumerate(command):
        if word == option and index + 1 < len(command):
            return command[index + 1]
        if word.startswith(f"{option}="):
            return word.split("=", 1)[1]
    return default


def connection_budget(compose: dict[str, Any]) -> tuple[int, int]:
    """PostgreSQL connections all replicas may open at most, and the server's max_connections."""
    used = 0
    for service in replicas(compose).values():
        environment = environment_of(service)
        workers = int(option_value(command_of(service), "--workers", "1"))
        pool = int(environment.get("CERTSEAL_DB_POOL_SIZE") or 8)
        verify_threads = int(environment.get("CERTSEAL_VERIFY_DB_THREADS") or 4)
        used += workers * (pool + AUXILIARY_CONNECTIONS + verify_threads)
    postgres = compose["services"][service_by_image(compose, "postgres:")]
    maximum = int(option_value(command_of(postgres), "-c", "max_connections=100").split("=", 1)[1])
    return used, maximum


def test_compose_runs_two_replicas_with_several_workers_behind_one_proxy():
    """The compose file has a proxy, PostgreSQL, Redis, a migration job and at least two multi-worker replicas."""
    compose = load_compose()

    found = replicas(compose)

    assert len(found) >= 2
    assert all(int(option_value(command_of(svc), "--workers", "1")) >= 2 for svc in found.values())
    assert {proxy_service(compose), migrate_service(compose)} <= set(compose["services"])


def test_every_long_running_service_has_a_health_check():
    """Every service has a health check, except one-shot jobs another service waits on to complete."""
    compose = load_compose()
    broken = copy.deepcopy(compose)
    del broken["services"][service_by_image(broken, "redis:")]["healthcheck"]
    broken["services"][migrate_service(broken)]["restart"] = "on-failure"

    problems, broken_problems = healthcheck_problems(compose), healthcheck_problems(broken)

    assert problems == []
    assert len(broken_problems) == 2


def test_replicas_probe_readiness_and_the_proxy_routes_only_to_ready_replicas():
    """Replicas' health checks ask /readyz, and the Caddyfile balances over every replica, checking /readyz."""
    compose = load_compose()
    caddyfile = CADDYFILE.read_text(encoding="utf-8")

    upstreams = re.search(r"reverse_proxy\s+([^{]+)\{", caddyfile)

    assert all("/readyz" in " ".join(svc["healthcheck"]["test"]) for svc in replicas(compose).values())
    assert upstreams is not None
    assert set(upstreams.group(1).split()) == {f"{name}:8000" for name in replicas(compose)}
    assert re.search(r"^\s*health_uri\s+/readyz\s*$", caddyfile, re.MULTILINE)


def test_postgres_keeps_its_data_on_a_named_volume():
    """PostgreSQL's data directory (registry and encrypted signing keys) is a named volume, not the container."""
    compose = load_compose()
    broken = copy.deepcopy(compose)
    broken["services"][service_by_image(broken, "postgres:")]["volumes"] = ["./pg:/var/lib/postgresql/data"]

    problems, broken_problems = postgres_volume_problems(compose), postgres_volume_problems(broken)

    assert problems == []
    assert broken_problems == ["postgres: /var/lib/postgresql/data is on './pg', not a named volume"]


def test_replicas_wait_for_the_migration_and_healthy_postgres_and_redis():
    """Every replica starts only after `certseal db upgrade` completed and PostgreSQL and Redis are healthy."""
    compose = load_compose()
    broken = copy.deepcopy(compose)
    first = sorted(replicas(broken))[0]
    service = broken["services"][first]  # replicas share one depends_on through a YAML anchor: replace it
    service["depends_on"] = {**service["depends_on"], "migrate": {"condition": "service_started"}}

    problems, broken_problems = dependency_problems(compose), dependency_problems(broken)

    assert problems == []
    assert broken_problems == [
        f"{first}: depends on migrate with 'service_started', not 'service_completed_successfully'"
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CERTSEAL_ADMIN_TOKEN", "k3Jq9vLm2Xp8Rt4wZ7"),
        ("CERTSEAL_KEY_PASSPHRASE", "k3Jq9vLm2Xp8Rt4wZ7"),
        ("POSTGRES_PASSWORD", "k3Jq9vLm2Xp8Rt4wZ7"),
        ("CERTSEAL_ADMIN_TOKEN_FILE", "/etc/certseal/admin_token"),
        ("CERTSEAL_DATABASE_URL", "postgresql+psycopg://certseal:k3Jq9vLm2Xp8Rt4wZ7@postgres/certseal"),
    ],
)
def test_no_secret_value_is_written_into_the_compose_file(variable, value):
    """A literal token, passphrase or password, a _FILE outside compose secrets, or a password in a URL is caught."""
    compose = load_compose()
    broken = copy.deepcopy(compose)
    service = broken["services"][sorted(replicas(broken))[0]]
    service["environment"] = {**service["environment"], variable: value}  # one replica's, not the shared one

    problems, broken_problems = inline_secret_problems(compose), inline_secret_problems(broken)

    assert problems == []
    assert len(broken_problems) == 1


def test_only_the_proxys_fixed_address_is_believed_for_x_forwarded_for():
    """CERTSEAL_FORWARDED_ALLOW_IPS is the proxy's fixed address, inside the shared network's subnet."""
    compose = load_compose()
    broken = copy.deepcopy(compose)
    service = broken["services"][sorted(replicas(broken))[-1]]
    service["environment"] = {**service["environment"], "CERTSEAL_FORWARDED_ALLOW_IPS": "172.16.0.0/12"}

    problems, broken_problems = forwarded_for_problems(compose), forwarded_for_problems(broken)

    assert problems == []
    assert len(broken_problems) == 1
    assert "not the proxy's" in broken_problems[0]


def test_postgres_connections_of_all_workers_stay_under_max_connections_with_headroom():
    """Replicas x workers x (pool + 2 + verify threads) stays within 80 % of PostgreSQL's max_connections."""
    compose = load_compose()

    used, maximum = connection_budget(compose)

    assert used <= CONNECTION_HEADROOM * maximum, f"{used} connections of {maximum}"


def test_images_in_the_compose_file_are_pinned():
    """Every image that is pulled (not built here) names an exact version tag and a digest."""
    compose = load_compose()

    unpinned = [
        name
        for name, svc in compose["services"].items()
        if "build" not in svc and not re.fullmatch(rf"[\w./-]+{VERSION_TAG}{DIGEST}", str(svc.get("image", "")))
    ]

    assert unpinned == []


# --- Dockerfile ---------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_stages(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The build stages: (base image with global ARG defaults substituted, the stage's instructions)."""
    arguments: dict[str, str] = {}
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for keyword, rest in dockerfile_instructions(text):
        if keyword == "ARG" and not stages and "=" in rest:
            name, value = rest.split("=", 1)
            arguments[name] = value
        elif keyword == "FROM":
            image = rest.split()[0] if not rest.startswith("--") else rest.split()[1]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: arguments.get(m.group(1) or m.group(2), m.group(0)), image)
            stages.append((image, []))
        elif stages:
            stages[-1][1].append((keyword, rest))
    return stages


def dockerfile_problems(text: str) -> list[str]:
    """Breaches of the image rules: multi-stage, pinned bases, and a final stage that is non-root,
    health-checked and declares /data; dependencies hash-checked and nothing else fetched."""
    stages = dockerfile_stages(text)
    names = {match.lower() for match in re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.IGNORECASE | re.MULTILINE)}
    problems = [] if len(stages) >= 2 else ["not multi-stage"]
    for image, _ in stages:
        if image.lower() not in names and not PINNED_IMAGE.match(image):
            problems.append(f"FROM {image}: not pinned by exact tag or digest")
    final = stages[-1][1] if stages else []
    users = [rest for keyword, rest in final if keyword == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("final stage: no non-root USER")
    if not any(keyword == "HEALTHCHECK" and not rest.upper().startswith("NONE") for keyword, rest in final):
        problems.append("final stage: no HEALTHCHECK")
    if not any(keyword == "VOLUME" and "/data" in rest for keyword, rest in final):
        problems.append("final stage: no VOLUME /data")
    installs = [rest for _, body in stages for keyword, rest in body if keyword == "RUN" and "pip install" in rest]
    if not any("--require-hashes" in rest and "requirements.lock" in rest for rest in installs):
        problems.append("no pip install --require-hashes -r requirements.lock")
    for rest in installs:
        for command in rest.split("&&"):
            if "pip install" in command and "--require-hashes" not in command and "--no-deps" not in command:
                problems.append(f"an install fetches dependencies without hashes: {command.strip()}")
    return problems


def test_dockerfile_follows_the_image_rules():
    """The Dockerfile is multi-stage with pinned bases; its final stage runs non-root with HEALTHCHECK and VOLUME."""
    text = DOCKERFILE.read_text(encoding="utf-8")

    problems = dockerfile_problems(text)

    assert problems == []


@pytest.mark.parametrize(
    ("pattern", "replacement", "problem"),
    [
        (
            r"python:\S+@sha256:[0-9a-f]{64}",
            "python:3.11-slim",
            "FROM python:3.11-slim: not pinned by exact tag or digest",
        ),
        (r"USER 10001:10001", "USER root", "final stage: no non-root USER"),
        (r"VOLUME /data", "# VOLUME /data", "final stage: no VOLUME /data"),
        (r"HEALTHCHECK --interval", "# HEALTHCHECK --interval", "final stage: no HEALTHCHECK"),
        (r"--require-hashes --no-deps", "--no-deps", "no pip install --require-hashes -r requirements.lock"),
        (r"\nENTRYPOINT", "\nUSER 0\nENTRYPOINT", "final stage: no non-root USER"),
    ],
    ids=["unpinned-base", "root-user", "no-volume", "no-healthcheck", "no-hashes", "root-at-the-end"],
)
def test_dockerfile_rules_catch_a_broken_dockerfile(pattern, replacement, problem):
    """Each image rule reports a Dockerfile that breaks it."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    broken, count = re.subn(pattern, replacement, text)
    assert count >= 1

    problems = dockerfile_problems(broken)

    assert problem in problems


def test_an_install_that_resolves_dependencies_without_hashes_is_caught():
    """A pip install that neither checks hashes nor skips dependencies could fetch anything, so it is reported."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    broken = text.replace("--no-deps --no-build-isolation .", "--no-build-isolation .")
    assert broken != text

    problems = dockerfile_problems(broken)

    assert len(problems) == 1
    assert problems[0].startswith("an install fetches dependencies without hashes")


def test_the_image_entrypoint_is_a_shell_script_that_passes_the_command_on():
    """deploy/docker-entrypoint.sh is POSIX sh, reads PGPASSWORD_FILE into PGPASSWORD and ends in exec "$@"."""
    script = (ROOT / "deploy" / "docker-entrypoint.sh").read_text(encoding="utf-8")

    lines = [line.strip() for line in script.splitlines() if line.strip()]

    assert lines[0] == "#!/bin/sh"
    assert 'PGPASSWORD="$(cat "$PGPASSWORD_FILE")"' in lines
    assert lines[-1] == 'exec "$@"'


# --- requirements.lock --------------------------------------------------------------------------------


def lock_pins(text: str) -> dict[str, tuple[str, int]]:
    """Each locked package's canonical name -> (version, number of hashes)."""
    pins: dict[str, tuple[str, int]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9][\w.-]*)==(\S+)", entry)
        if match:
            pins[canonicalize_name(match.group(1))] = (
                match.group(2),
                len(re.findall(r"--hash=sha256:[0-9a-f]{64}", entry)),
            )
    return pins


def runtime_requirements() -> list[Requirement]:
    """pyproject's dependencies and the extras the image installs, plus its build backend."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    listed = list(project["project"]["dependencies"])
    for extra in IMAGE_EXTRAS:
        listed += project["project"]["optional-dependencies"][extra]
    listed += project["build-system"]["requires"]
    return [Requirement(entry) for entry in listed]


def extra_requirements(requirement: Requirement) -> list[Requirement]:
    """What a requirement's extras (``uvicorn[standard]``, ``psycopg[binary]``) add on this platform, if installed."""
    try:
        declared = importlib.metadata.requires(requirement.name) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    added = []
    for entry in map(Requirement, declared):
        marker = entry.marker
        if marker is None or marker.evaluate({"extra": ""}):
            continue  # a plain dependency of the package: pip check in the image build covers those
        if any(marker.evaluate({"extra": extra}) for extra in requirement.extras):
            added.append(entry)
    return added


def lock_problems(text: str) -> list[str]:
    """Runtime requirements missing from the lock or pinned outside their range, and pins without hashes."""
    pins = lock_pins(text)
    problems = [f"{name}=={version}: no hash" for name, (version, hashes) in pins.items() if hashes == 0]
    for requirement in runtime_requirements():
        for needed in [requirement, *extra_requirements(requirement)]:
            pin = pins.get(canonicalize_name(needed.name))
            if pin is None:
                problems.append(f"{needed.name}: not in requirements.lock")
            elif not needed.specifier.contains(pin[0], prereleases=True):
                problems.append(f"{needed.name}=={pin[0]}: outside {needed.specifier}")
    return problems


def test_the_lock_covers_every_runtime_dependency_with_hashes():
    """requirements.lock pins every runtime dependency (postgres and redis extras too) in its range, with hashes."""
    text = LOCK_FILE.read_text(encoding="utf-8")

    problems = lock_problems(text)

    assert problems == []
    assert "make lock" in text.splitlines()[1]


def test_the_lock_rules_catch_a_missing_pin_a_stale_pin_and_a_missing_hash():
    """Dropping a package, pinning one below pyproject's range, or dropping its hashes is reported."""
    text = LOCK_FILE.read_text(encoding="utf-8")
    without_redis = re.sub(r"\nredis==\S+ \\\n(?:\s+--hash=\S+(?: \\)?\n)+", "\n", text)
    stale_fastapi = re.sub(r"\nfastapi==\S+", "\nfastapi==0.100.0", text)
    unhashed_orjson = re.sub(r"(\norjson==\S+) \\\n(?:\s+--hash=\S+(?: \\)?\n)+", r"\1\n", text)

    problems = [lock_problems(broken) for broken in (without_redis, stale_fastapi, unhashed_orjson)]

    assert problems[0] == ["redis: not in requirements.lock"]
    assert problems[1] == ["fastapi==0.100.0: outside >=0.115"]
    assert problems[2] == [f"orjson=={lock_pins(text)['orjson'][0]}: no hash"]
