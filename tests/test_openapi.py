"""The committed openapi.yaml is the running app's schema."""

from __future__ import annotations

from pathlib import Path

from api.cli import openapi_yaml

ROOT = Path(__file__).resolve().parent.parent


def test_openapi_yaml_matches_the_app() -> None:
    """openapi.yaml equals what the app generates; regenerate with `certseal openapi`."""
    committed = (ROOT / "openapi.yaml").read_text(encoding="utf-8")

    generated = openapi_yaml()

    assert committed == generated, "openapi.yaml drifted from the app: run `certseal openapi --out openapi.yaml`"


def test_every_operation_has_a_summary() -> None:
    """Each endpoint documents itself with a summary."""
    import yaml

    schema = yaml.safe_load(openapi_yaml())

    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not operation.get("summary")
    ]

    assert missing == []
