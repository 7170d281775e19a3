"""Where the service reads the time: one clock per app, so tests and jobs pass the instant they mean."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol

from crypto import CST


class Clock(Protocol):
    """A source of the current instant."""

    def now(self) -> datetime:
        """The current instant in UTC (what the registry stores and the API answers)."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(UTC)


def china_today(clock: Clock) -> date:
    """Today's date in China Standard Time: certificate dates are calendar days there."""
    return clock.now().astimezone(CST).date()
