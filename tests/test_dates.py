"""Whole-year periods of certificates (validity, review) on the calendar."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.dates import add_years, default_valid_until


@pytest.mark.parametrize(
    ("day", "years", "expected"),
    [
        (date(2026, 3, 15), 6, date(2032, 3, 15)),
        (date(2028, 2, 29), 3, date(2031, 2, 28)),
        (date(2028, 2, 29), -1, date(2027, 2, 28)),
        (date(2028, 2, 29), 4, date(2032, 2, 29)),
    ],
)
def test_add_years(day, years, expected):
    """The same calendar day years later or earlier; 29 February falls back to 28 February."""
    result = add_years(day, years)

    assert result == expected


def test_default_validity_ends_the_day_before_the_anniversary():
    """A six-year certificate issued 2026-01-05 is valid through 2032-01-04."""
    valid_until = default_valid_until(date(2026, 1, 5), 6)

    assert valid_until == date(2032, 1, 4)
