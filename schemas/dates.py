"""Calendar rules of certificates: whole-year periods and the default validity."""

from __future__ import annotations

import calendar
from datetime import date, timedelta


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later (or earlier); 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later (or earlier); past the end of a shorter month, its last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def default_valid_until(issue_date: date, years: int) -> date:
    """The last valid day of a certificate valid for ``years`` from ``issue_date``: the day before the anniversary."""
    return add_years(issue_date, years) - timedelta(days=1)
