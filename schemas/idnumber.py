"""Resident ID numbers (居民身份证号码, GB 11643): normalisation and validation.

An ID number is sensitive personal information: callers keep it in memory only as long as they
need to hash or mask it, and never log it or echo it in an error.
"""

from __future__ import annotations

import unicodedata
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS = "10X98765432"
# What an ID number may be typed with: ASCII or full-width (全角) digits and X, either case. NFKC would also
# turn circled, super- and subscript digits into digits; those are not an ID number someone typed.
_TYPED_CHARACTERS = frozenset("0123456789Xx\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff38\uff58")


class InvalidIdNumber(ValueError):
    """The text is not a valid 18-character resident ID number; the message never contains it."""


def normalize_id_number(raw: str) -> str:
    """Return the canonical form (NFKC, so full-width digits work; upper-case X), or raise.

    Checks the length, the digits, a real birth date not in the future and the check character.
    """
    if not isinstance(raw, str) or len(raw) > 64:
        raise InvalidIdNumber("ID number must be 18 characters")
    if not _TYPED_CHARACTERS.issuperset(raw.strip()):
        raise InvalidIdNumber("ID number must be 17 digits and a check digit or X")
    number = unicodedata.normalize("NFKC", raw).strip().upper()
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit() or number[17] not in "0123456789X":
        raise InvalidIdNumber("ID number must be 17 digits and a check digit or X")
    if number[0] == "0":
        raise InvalidIdNumber("ID number region code is not valid")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber("ID number birth date is not a real date") from None
    if birth.year < 1900 or birth > date.today():
        raise InvalidIdNumber("ID number birth date is out of range")
    if check_character(number[:17]) != number[17]:
        raise InvalidIdNumber("ID number check character does not match")
    return number


def check_character(first17: str) -> str:
    """Return the GB 11643 check character for the first 17 digits."""
    return CHECK_CHARACTERS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def birth_date(number: str) -> date:
    """Return the birth date encoded in a normalised ID number."""
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def age_on(number: str, day: date) -> int:
    """Return the holder's age in whole years on ``day``."""
    return years_between(birth_date(number), day)


def years_between(born: date, day: date) -> int:
    """Return the age in whole years on ``day`` of someone born on ``born``."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))
