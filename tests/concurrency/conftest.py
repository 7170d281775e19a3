"""Fixtures for the concurrency tests: real ``certseal serve`` processes on SQLite and on PostgreSQL.

``deployment`` is module-scoped and parametrized over the backend: one SQLite server on a temporary
file, or two servers on one fresh PostgreSQL database (dropped afterwards). A module changes how its
servers start by overriding ``deployment_options`` (settings, a proxy in front of PostgreSQL) or
``backend`` (to run on one backend only). Figures a test measures (wall times, recovery times) are
printed in pytest's terminal summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .harness import Deployment, Provisioner, deploy

SQLITE = pytest.param("sqlite", id="sqlite")
POSTGRESQL = pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)

_FIGURES: list[str] = []


@pytest.fixture(scope="module", params=[SQLITE, POSTGRESQL])
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this module's deployment."""
    return str(request.param)


@pytest.fixture(scope="module")
def deployment_options() -> dict[str, Any]:
    """Keyword arguments for :func:`harness.deploy` (``settings``, ``server_count``, ``via_proxy``)."""
    return {}


@pytest.fixture(scope="module")
def deployment(
    backend: str, deployment_options: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Migrated database plus running servers for this module; stopped and dropped afterwards."""
    with deploy(backend, tmp_path_factory.mktemp(f"deployment-{backend}"), **deployment_options) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def provision(deployment: Deployment) -> Iterator[Provisioner]:
    """Sequential HTTP provisioning (issuers, keys, certificates) on this module's deployment."""
    with Provisioner(deployment) as provisioner:
        yield provisioner


@pytest.fixture(scope="module")
def issuer_headers(provision: Provisioner) -> dict[str, str]:
    """Issuer CN-44 (operation 2.1) and bearer headers with one of its API keys."""
    provision.create_issuer("CN-44")
    return provision.issuer_key("CN-44")


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Any:
    """Record a measured figure for the terminal summary: ``figure("burst wall time", "3.2 s")``."""

    def record(name: str, value: str) -> None:
        _FIGURES.append(f"{request.node.nodeid}: {name}: {value}")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the concurrency tests measured."""
    if _FIGURES:
        terminalreporter.section("concurrency figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
