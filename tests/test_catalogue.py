"""A custom catalogue (CERTSEAL_CATALOGUE_PATH): extensions work end to end; the hot-work category is fixed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.catalogue import CatalogueError, HotWorkCategoryChanged, load_catalogue

ROOT = Path(__file__).resolve().parent.parent
NEW_CATEGORY = {
    "code": 11,
    "zh": "起重机械作业",
    "en": "Lifting machinery operation",
    "items": [{"code": "11.1", "zh": "桥式起重机司机", "en": "Overhead crane operator"}],
}


def _extend(data: dict[str, Any]) -> None:
    data["categories"].append(NEW_CATEGORY)
    data["categories"][0]["items"].append({"code": "1.4", "zh": "新能源电工作业", "en": "New-energy electrical work"})


def _category(data: dict[str, Any], code: int) -> dict[str, Any]:
    return next(category for category in data["categories"] if category["code"] == code)


def _drop_2_3(data: dict[str, Any]) -> None:
    _category(data, 2)["items"].pop()


def _add_2_4(data: dict[str, Any]) -> None:
    _category(data, 2)["items"].append({"code": "2.4", "zh": "起重作业", "en": "Crane work"})


def _rename_2_1(data: dict[str, Any]) -> None:
    _category(data, 2)["items"][0]["en"] = "Any thermal work"


def _rename_category_2(data: dict[str, Any]) -> None:
    _category(data, 2)["zh"] = "动火作业"


def _hot_work_is_3(data: dict[str, Any]) -> None:
    data["hot_work_category"] = 3


def _swap_categories_2_and_3(data: dict[str, Any]) -> None:
    welding, heights = _category(data, 2), _category(data, 3)
    welding["items"], heights["items"] = (
        [{**item, "code": "2" + item["code"][1:]} for item in heights["items"]],
        [{**item, "code": "3" + item["code"][1:]} for item in welding["items"]],
    )
    welding["zh"], heights["zh"], welding["en"], heights["en"] = (
        heights["zh"],
        welding["zh"],
        heights["en"],
        welding["en"],
    )


HOT_WORK_CHANGES = {
    "item-2.3-removed": (_drop_2_3, "item 2.3 is missing"),
    "item-2.4-added": (_add_2_4, "item 2.4 is added"),
    "item-2.1-renamed": (_rename_2_1, "item 2.1 is renamed"),
    "category-2-renamed": (_rename_category_2, "item 2.2 is renamed"),
    "hot-work-category-3": (_hot_work_is_3, "hot_work_category is 3"),
    "categories-2-and-3-swapped": (_swap_categories_2_and_3, "item 2.3 is missing"),
}


def test_extended_catalogue_items_can_be_issued_and_verified(
    make_app, make_settings, admin_headers, certificate_body, catalogue_file
):
    """With an extended catalogue, an issuer may certify the new items, and they verify with their names."""
    settings = make_settings(catalogue_path=catalogue_file(_extend))

    with TestClient(make_app(settings)) as client:
        created = client.post(
            "/v1/issuers",
            json={"code": "CN-44", "name": "广东", "region": "广东省", "operations": ["11.1", "1.4", "2.1"]},
            headers=admin_headers,
        )
        token = client.post("/v1/issuers/CN-44/api-keys", json={}, headers=admin_headers).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        crane = client.post("/v1/certificates", json=certificate_body(operation="11.1"), headers=headers)
        electric = client.post("/v1/certificates", json=certificate_body(operation="1.4"), headers=headers)
        unknown = client.post("/v1/certificates", json=certificate_body(operation="11.2"), headers=headers)
        verdict = client.post("/v1/verify", json={"qr": crane.json()["qr_text"], "operation": "11.1"}).json()
        hot_work = client.post("/v1/verify", json={"qr": crane.json()["qr_text"], "purpose": "hot_work"}).json()

    assert created.status_code == 201, created.text
    assert (crane.status_code, electric.status_code) == (201, 201)
    assert crane.json()["operation"] == {
        "code": "11.1",
        "zh": "桥式起重机司机",
        "en": "Overhead crane operator",
        "category_zh": "起重机械作业",
        "category_en": "Lifting machinery operation",
        "covers_hot_work": False,
    }
    assert unknown.json()["error"]["code"] == "unknown_operation"
    assert (verdict["decision"], verdict["certificate"]["operation"]["zh"]) == ("accept", "桥式起重机司机")
    assert (hot_work["decision"], hot_work["reasons"]) == ("reject", ["operation_not_covered"])


@pytest.mark.parametrize("change", list(HOT_WORK_CHANGES), ids=list(HOT_WORK_CHANGES))
def test_catalogue_that_changes_the_hot_work_category_is_refused(make_app, make_settings, catalogue_file, change):
    """Moving, renaming, removing or adding hot-work items is refused by load_catalogue and by create_app."""
    edit, reason = HOT_WORK_CHANGES[change]
    path = catalogue_file(edit)

    with pytest.raises(HotWorkCategoryChanged) as loaded:
        load_catalogue(path)
    with pytest.raises(HotWorkCategoryChanged):
        make_app(make_settings(catalogue_path=path))

    assert reason in str(loaded.value)
    assert "CERTSEAL_CATALOGUE_PATH" in str(loaded.value)


def test_unreadable_catalogue_is_refused(tmp_path):
    """A missing file or one that is not the catalogue format is a CatalogueError naming the setting."""
    missing = tmp_path / "missing.json"
    broken = tmp_path / "broken.json"
    broken.write_text('{"categories": [{"code": 1}]}', encoding="utf-8")

    errors = []
    for path in (missing, broken):
        with pytest.raises(CatalogueError) as caught:
            load_catalogue(path)
        errors.append(str(caught.value))

    assert all("CERTSEAL_CATALOGUE_PATH" in error for error in errors)


def test_serve_refuses_to_start_with_a_catalogue_that_changes_hot_work(tmp_path, catalogue_file):
    """`certseal serve --demo` with such a catalogue exits 2 before listening, naming the problem, no traceback."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CERTSEAL_")}
    env |= {"PYTHONPATH": str(ROOT), "CERTSEAL_CATALOGUE_PATH": str(catalogue_file(_add_2_4))}
    database = f"sqlite:///{tmp_path / 'serve.db'}"

    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--database", database, "--port", "9"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "hot-work category" in result.stderr
    assert "item 2.4 is added" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "Uvicorn running" not in result.stdout + result.stderr
