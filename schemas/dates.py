"""Calendar rules of certificates: whole-year periods and the default validity."""

from __future__ import annotations

from datetime import date, timedelta


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later (or earlier); 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def default_valid_until(issue_date: date, years: int) -> date:
    """The last valid day of a certificate valid for ``years`` from ``issue_date``: the day before the anniversary."""
    return add_years(issue_date, years) - timedelta(days=1)
