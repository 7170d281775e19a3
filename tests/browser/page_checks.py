"""Checks of a rendered /c1 screen shared by the browser tests: green only on accept, no sideways scroll, axe.

Colours are read with getComputedStyle on every visible element (text, background, borders, outline):
"green" is a hue between 75 and 165 degrees with some saturation, so the accept green and its pale
tint count, amber, blue and grey do not.
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

GREEN_ELEMENTS = """() => {
  const hsl = (text) => {
    const m = /rgba?\\(([\\d.]+), ([\\d.]+), ([\\d.]+)(?:, ([\\d.]+))?\\)/.exec(text);
    if (!m || (m[4] !== undefined && Number(m[4]) < 0.05)) return null;
    const [r, g, b] = [m[1], m[2], m[3]].map((v) => Number(v) / 255);
    const max = Math.max(r, g, b), min = Math.min(r, g, b), l = (max + min) / 2, d = max - min;
    if (d === 0) return { h: 0, s: 0, l };
    const s = d / (1 - Math.abs(2 * l - 1));
    const h = max === r ? 60 * (((g - b) / d) % 6) : max === g ? 60 * ((b - r) / d + 2) : 60 * ((r - g) / d + 4);
    return { h: (h + 360) % 360, s, l };
  };
  const green = (text) => {
    const c = hsl(text);
    return c !== null && c.h >= 75 && c.h <= 165 && c.s > 0.2 && c.l > 0.08 && c.l < 0.97;
  };
  const found = [];
  for (const element of document.querySelectorAll("body *")) {
    if (!element.getClientRects().length) continue;
    const style = getComputedStyle(element);
    if (style.visibility === "hidden" || Number(style.opacity) === 0) continue;
    const colours = [style.backgroundColor];
    if (element.textContent.trim()) colours.push(style.color);
    for (const side of ["Top", "Right", "Bottom", "Left"]) {
      const drawn = parseFloat(style[`border${side}Width`]) > 0 && style[`border${side}Style`] !== "none";
      if (drawn) colours.push(style[`border${side}Color`]);
    }
    if (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) colours.push(style.outlineColor);
    if (colours.some(green)) found.push(`${element.tagName.toLowerCase()}#${element.id}.${element.className}`);
  }
  return found;
}"""

OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const element of document.querySelectorAll("body *")) {
    const rect = element.getBoundingClientRect();
    if (rect.width && rect.right > width + 1 && !element.closest("#scanner")) {
      wide.push(`${element.tagName.toLowerCase()}#${element.id}.${element.className} ${Math.round(rect.right)}`);
    }
  }
  return { scrollWidth: document.documentElement.scrollWidth, clientWidth: width, wide: wide.slice(0, 5) };
}"""

_axe = Axe()


def green_elements(page: Page) -> list[str]:
    """Visible elements drawn in a green colour (text, background, border or outline)."""
    return page.evaluate(GREEN_ELEMENTS)  # type: ignore[no-any-return]


def overflow(page: Page) -> dict[str, Any]:
    """The document's scroll and client width and the first elements reaching past the viewport's right edge."""
    return page.evaluate(OVERFLOW)  # type: ignore[no-any-return]


def assert_no_sideways_scroll(page: Page, label: str) -> None:
    """No horizontal scroll and no element wider than the screen."""
    found = overflow(page)
    assert found["scrollWidth"] <= found["clientWidth"], (label, found)
    assert not found["wide"], (label, found)


def serious_axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is (rule id, impact, first targets)."""
    results = _axe.run(page)
    return [
        {"id": rule["id"], "impact": rule["impact"], "targets": [node["target"] for node in rule["nodes"][:3]]}
        for rule in results.response["violations"]
        if rule["impact"] in ("serious", "critical")
    ]


def screen_checks(page: Page, widths: tuple[int, ...] = (320, 360, 430, 180)) -> dict[str, Any]:
    """Green elements and axe's serious/critical violations as shown, then the sideways overflow at each width.

    180 px is the layout width of a 360 px phone at 200 % zoom. The viewport is left at the last width.
    """
    found: dict[str, Any] = {"green": green_elements(page), "axe": serious_axe_violations(page), "overflow": {}}
    for width in widths:
        page.set_viewport_size({"width": width, "height": 780})
        measured = overflow(page)
        if measured["scrollWidth"] > measured["clientWidth"] or measured["wide"]:
            found["overflow"][width] = measured
    return found
