"""The special-operation catalogue (特种作业目录) as data: categories and items with Chinese and English names.

The catalogue ships as ``catalogue.json``; a deployment can point ``CERTSEAL_CATALOGUE_PATH`` at an
extended copy instead of changing code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from crypto import Operation

BUILTIN_CATALOGUE = Path(__file__).with_name("catalogue.json")


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


@cache
def load_catalogue(path: Path = BUILTIN_CATALOGUE) -> Catalogue:
    """Load and cache a catalogue file."""
    return Catalogue.from_json(path.read_text(encoding="utf-8"))
