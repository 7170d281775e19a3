"""The special-operation catalogue (特种作业目录) as data: categories and items with Chinese and English names.

The catalogue ships as ``catalogue.json``; a deployment can point ``CERTSEAL_CATALOGUE_PATH`` at an
extended copy instead of changing code. Category 2 (焊接与热切割作业, items 2.1-2.3) is part of the
credential spec: every verifier, offline ones included, treats category 2 as hot work
(``crypto.CoversHotWork``), so a catalogue that moves, renames, removes or adds to it is refused with
:class:`HotWorkCategoryChanged`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from crypto import CertsealError, Operation
from crypto.policy import HOT_WORK_CATEGORY

BUILTIN_CATALOGUE = Path(__file__).with_name("catalogue.json")


class CatalogueError(RuntimeError):
    """A catalogue file that cannot be used; the service does not start with it."""


class HotWorkCategoryChanged(CatalogueError):
    """The catalogue changes the hot-work category (category 2, items 2.1-2.3), which the credential spec fixes."""


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """One operation item, e.g. 2.1 熔化焊接与热切割作业."""

    operation: Operation
    zh: str
    en: str
    category_zh: str
    category_en: str

    @property
    def code(self) -> str:
        """The item code as printed, e.g. ``"2.1"``."""
        return str(self.operation)


@dataclass(frozen=True)
class Catalogue:
    """All items by operation, and which category is hot work."""

    items: dict[Operation, CatalogueItem]
    hot_work_category: int

    def get(self, operation: Operation) -> CatalogueItem | None:
        """Return the item, or None if the catalogue does not list it."""
        return self.items.get(operation)

    def covers_hot_work(self, operation: Operation) -> bool:
        """Tell whether the item is in the welding and hot-cutting category."""
        return operation.category == self.hot_work_category

    def describe(self, operation: Operation) -> dict[str, str | bool | None]:
        """The item as verdicts and listings show it: code, names in Chinese and English, hot-work cover."""
        item = self.items.get(operation)
        return {
            "code": str(operation),
            "zh": item.zh if item else None,
            "en": item.en if item else None,
            "category_zh": item.category_zh if item else None,
            "category_en": item.category_en if item else None,
            "covers_hot_work": self.covers_hot_work(operation),
        }

    def as_document(self) -> dict[str, object]:
        """The catalogue in the format of ``catalogue.json`` (no ``source``), as ``GET /v1/catalogue`` serves it."""
        categories: dict[int, dict[str, object]] = {}
        for operation in sorted(self.items):
            item = self.items[operation]
            category = categories.setdefault(
                operation.category,
                {"code": operation.category, "zh": item.category_zh, "en": item.category_en, "items": []},
            )
            items = category["items"]
            assert isinstance(items, list)
            items.append({"code": item.code, "zh": item.zh, "en": item.en})
        return {"hot_work_category": self.hot_work_category, "categories": list(categories.values())}

    @classmethod
    def from_json(cls, text: str) -> Catalogue:
        """Parse the catalogue file format (see ``catalogue.json``)."""
        data = json.loads(text)
        items: dict[Operation, CatalogueItem] = {}
        for category in data["categories"]:
            for item in category["items"]:
                operation = Operation.parse(item["code"])
                if operation.category != category["code"] or operation in items:
                    raise ValueError(f"catalogue item {item['code']} is misplaced or repeated")
                items[operation] = CatalogueItem(operation, item["zh"], item["en"], category["zh"], category["en"])
        return cls(items=items, hot_work_category=int(data["hot_work_category"]))


def _named(path: Path) -> str:
    return "the built-in catalogue" if path == BUILTIN_CATALOGUE else f"the catalogue CERTSEAL_CATALOGUE_PATH={path}"


MAX_CATALOGUE_BYTES = 1_048_576


def _parse(path: Path) -> Catalogue:
    try:
        if not path.is_file():  # not a directory, FIFO or device: /dev/zero would never end
            raise CatalogueError(f"{_named(path)} is not a regular file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_CATALOGUE_BYTES + 1)
        if len(raw) > MAX_CATALOGUE_BYTES:
            raise CatalogueError(f"{_named(path)} is larger than {MAX_CATALOGUE_BYTES} bytes")
        return Catalogue.from_json(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, CertsealError) as exc:
        raise CatalogueError(f"{_named(path)} cannot be used: {type(exc).__name__}: {exc}") from None


@cache
def _builtin() -> Catalogue:
    return _parse(BUILTIN_CATALOGUE)


def hot_work_changes(catalogue: Catalogue) -> list[str]:
    """How ``catalogue`` differs from the built-in one in the hot-work category (empty: it does not)."""
    builtin = _builtin()
    changes = []
    if catalogue.hot_work_category != HOT_WORK_CATEGORY:
        changes.append(f"hot_work_category is {catalogue.hot_work_category}, not {HOT_WORK_CATEGORY}")

    def hot(source: Catalogue) -> dict[Operation, CatalogueItem]:
        return {op: item for op, item in source.items.items() if op.category == HOT_WORK_CATEGORY}

    expected, found = hot(builtin), hot(catalogue)
    changes += [f"item {op} is missing" for op in sorted(expected.keys() - found.keys())]
    changes += [f"item {op} is added" for op in sorted(found.keys() - expected.keys())]
    changes += [f"item {op} is renamed" for op in sorted(expected.keys() & found.keys()) if expected[op] != found[op]]
    return changes


@cache
def load_catalogue(path: Path = BUILTIN_CATALOGUE) -> Catalogue:
    """Load and cache a catalogue file.

    Raises :class:`CatalogueError` for a file that cannot be read or parsed, and
    :class:`HotWorkCategoryChanged` for one that changes category 2 (the hot-work category).
    """
    catalogue = _parse(path)
    changes = hot_work_changes(catalogue)
    if changes:
        raise HotWorkCategoryChanged(
            f"{_named(path)} changes the hot-work category ({'; '.join(changes)}): category 2 "
            "(焊接与热切割作业, items 2.1-2.3) is part of the credential spec and must stay as built in"
        )
    return catalogue
