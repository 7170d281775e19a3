"""Verification events: every verify is recorded, in batches off the request path, without ID numbers."""

from __future__ import annotations

import threading
import time
from datetime import date

from conftest import TEST_NOW, hold_write_lock, id_number_for
from sqlalchemy import text
from sqlmodel import Session, select

from api.models import VerificationEvent
from api.services.events import EventRecorder


def _events(app) -> list[VerificationEvent]:
    app.state.events.flush()
    with Session(app.state.engine) as session:
        return list(session.exec(select(VerificationEvent).order_by(VerificationEvent.at)).all())


def test_each_verification_is_recorded_with_its_outcome(app, app_client, issuer, issue, verify):
    """Accepts, rejects and holder checks each leave one event with decision, reasons and purpose."""
    certificate = issue(issuer)
    holder = id_number_for(date(1985, 3, 12))  # the holder conftest issues for

    verify(certificate["qr_text"], purpose="hot_work", holder_id_number=holder)
    verify(certificate["qr_text"] + "0")
    verify(certificate["qr_text"], operation="2.2")
    events = _events(app)

    assert [(e.decision, e.reasons, e.purpose, e.holder_checked) for e in events] == [
        ("accept", "", "hot_work", True),
        ("reject", "malformed", None, False),
        ("reject", "operation_not_covered", "operation:2.2", False),
    ]
    assert events[0].serial == certificate["serial"]
    assert events[0].issuer_code == "CN-44"
    assert all(e.at.tzinfo is not None for e in events)


def test_events_are_written_by_the_background_flusher_within_a_second(app, app_client, issuer, issue, verify):
    """Without an explicit flush the recorder's thread writes the event within its interval (at most 1 s)."""
    certificate = issue(issuer)

    verify(certificate["qr_text"])
    deadline = time.monotonic() + 2.0
    count = 0
    while time.monotonic() < deadline and count == 0:
        with app.state.engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM verification_events")).scalar_one()
        time.sleep(0.05)

    assert count == 1


def test_events_survive_a_failed_write_and_are_written_later(app, app_client):
    """If the database refuses a batch, the events stay queued and go out with the next flush."""
    recorder = EventRecorder(app.state.engine)
    with app.state.engine.begin() as connection:
        connection.execute(text("ALTER TABLE verification_events RENAME TO verification_events_away"))
    recorder.record(at=TEST_NOW, decision="reject", reasons="malformed", holder_checked=False)

    failed = recorder.flush()
    with app.state.engine.begin() as connection:
        connection.execute(text("ALTER TABLE verification_events_away RENAME TO verification_events"))
    written = recorder.flush()

    assert (failed, written) == (0, 1)


def _event(reasons: str) -> dict[str, object]:
    return {"at": TEST_NOW, "decision": "reject", "reasons": reasons, "holder_checked": False}


def _written_reasons(app) -> list[str]:
    with app.state.engine.connect() as connection:
        return list(connection.execute(text("SELECT reasons FROM verification_events ORDER BY at")).scalars())


def test_flush_waits_for_a_batch_the_writer_thread_has_taken(app, app_client):
    """A flush that starts while another flush holds a batch returns only after that batch is written."""
    recorder = EventRecorder(app.state.engine)
    recorder.record(**_event("in-flight"))
    blocker = hold_write_lock(app.state.engine, "verification_events")  # the first flush waits on it
    first = threading.Thread(target=recorder.flush)
    first.start()
    time.sleep(0.2)
    threading.Timer(0.3, blocker.rollback).start()

    recorder.flush()
    written = _written_reasons(app)
    first.join()
    blocker.close()

    assert written == ["in-flight"]


def test_a_full_queue_drops_the_oldest_events_and_counts_them(app, app_client, caplog):
    """Past the queue limit the oldest events give way to the newest, and each one dropped is counted and logged."""
    recorder = EventRecorder(app.state.engine, max_queued=3)

    for n in range(5):
        recorder.record(**_event(f"e{n}"))
    written = recorder.flush()

    assert (written, recorder.dropped) == (3, 2)
    assert _written_reasons(app) == ["e2", "e3", "e4"]
    assert "dropped" in caplog.text


def test_events_requeued_after_a_failed_write_keep_the_newest(app, app_client):
    """A batch put back after a failed write keeps its order, and a full queue still drops the oldest."""
    recorder = EventRecorder(app.state.engine, max_queued=3)
    with app.state.engine.begin() as connection:
        connection.execute(text("ALTER TABLE verification_events RENAME TO verification_events_away"))
    recorder.record(**_event("old1"))
    recorder.record(**_event("old2"))

    recorder.flush()
    recorder.record(**_event("new1"))
    recorder.record(**_event("new2"))
    with app.state.engine.begin() as connection:
        connection.execute(text("ALTER TABLE verification_events_away RENAME TO verification_events"))
    recorder.flush()

    assert _written_reasons(app) == ["old2", "new1", "new2"]
    assert recorder.dropped == 1


def test_events_lost_at_shutdown_are_logged_with_their_number(app, app_client, caplog):
    """When the database is down at shutdown, the number of events that could not be written is logged."""
    recorder = EventRecorder(app.state.engine)
    with app.state.engine.begin() as connection:
        connection.execute(text("ALTER TABLE verification_events RENAME TO verification_events_away"))
    recorder.record(**_event("a"))
    recorder.record(**_event("b"))

    recorder.stop()

    assert "verification events lost at shutdown: 2 unwritten" in caplog.text
