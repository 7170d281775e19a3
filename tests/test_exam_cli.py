"""`certseal exam import`: a session's results CSV into the database with a per-row report and exit codes."""

from __future__ import annotations

from datetime import date, timedelta

from conftest import TEST_TODAY, id_number_for

HEADER = "id_number,name,theory_score,practical_score,training_institution"


def _session(client, headers) -> str:
    client.post(
        "/v1/exam-points",
        json={
            "code": "EP-1",
            "name": "考试点",
            "region": "广州",
            "address": "黄埔区",
            "operations": ["2.1"],
            "capacity_per_session": 30,
            "accredited_from": "2020-01-01",
        },
        headers=headers,
    )
    created = client.post(
        "/v1/exam-sessions",
        json={"exam_point": "EP-1", "operation": "2.1", "exam_date": (TEST_TODAY - timedelta(days=1)).isoformat()},
        headers=headers,
    )
    return created.json()["id"]  # type: ignore[no-any-return]


def test_cli_imports_reports_rows_and_is_idempotent(app_client, issuer, settings, run_cli, tmp_path):
    """Exit 1 with the bad row's line and code when a row is refused; the same file again records nothing new."""
    session_id = _session(app_client, issuer.headers)
    good, other = id_number_for(date(1990, 1, 1)), id_number_for(date(1991, 1, 1))
    csv_file = tmp_path / "results.csv"
    csv_file.write_text(f"\ufeff{HEADER}\n{good},张伟,90,90,\nbad,王芳,90,90,\n{other},李强,70,90,TI-NEW\n", "utf-8")
    args = ("exam", "import", "--session", session_id, str(csv_file), "--database", settings.database_url, "--demo")

    code, out, _err = run_cli(*args)
    again_code, again_out, _ = run_cli(*args)

    assert code == 1
    assert "line 3: error invalid_id_number" in out
    assert "line 4: warning unregistered_training_institution" in out
    assert "3 rows: 2 recorded (1 passed), 0 unchanged, 1 refused, 1 warnings" in out
    assert good not in out
    assert other not in out
    assert again_code == 1
    assert "3 rows: 0 recorded (0 passed), 2 unchanged, 1 refused" in again_out


def test_cli_exit_codes_for_clean_files_and_usage_errors(app_client, issuer, settings, run_cli, tmp_path):
    """All rows recorded is exit 0; a bad header, a missing file or an unknown session is exit 2."""
    session_id = _session(app_client, issuer.headers)
    clean = tmp_path / "clean.csv"
    clean.write_text(f"{HEADER}\n{id_number_for(date(1990, 1, 1))},张伟,90,90,\n", "utf-8")
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("a,b,c\n", "utf-8")
    common = ("--database", settings.database_url, "--demo")

    ok = run_cli("exam", "import", "--session", session_id, str(clean), *common)
    header = run_cli("exam", "import", "--session", session_id, str(bad_header), *common)
    missing = run_cli("exam", "import", "--session", session_id, str(tmp_path / "none.csv"), *common)
    unknown = run_cli("exam", "import", "--session", "0" * 32, str(clean), *common)

    assert ok[0] == 0
    assert header[0] == 2
    assert "invalid_csv_header" in header[2]
    assert missing[0] == 2
    assert unknown[0] == 2
    assert "exam_session_not_found" in unknown[2]
