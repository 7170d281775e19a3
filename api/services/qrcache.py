"""Rendered QR images of certificates, cached in process: each is drawn once, then served from memory.

A certificate's credential never changes, so its image under one public base URL never does either.
Rendering a PNG costs tens of milliseconds of CPU (more at large scales); without a cache a flood of
public image requests starves every other endpoint of CPU. The cache is a least-recently-used map
bounded by entry count and by bytes; scales are limited to :data:`QR_SCALES`, so one certificate has
at most ``len(QR_SCALES) + 1`` entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

QR_SCALES = (4, 8, 12, 16)  # pixels a module; 8 is the default (a version-13 code: 616 px square)
MAX_ENTRIES = 4096
MAX_BYTES = 32 * 1024 * 1024

CacheKey = tuple[str, str, str, int]  # (public base URL, certificate id, "png" | "svg", scale)


@dataclass
class CacheStats:
    """Counters for tests and benchmarks."""

    hits: int = 0
    renders: int = 0
    evictions: int = 0


class RenderCache:
    """A thread-safe LRU of rendered images, bounded by ``max_entries`` and ``max_bytes``."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> bytes | None:
        """The cached image, marked as recently used; None on a miss."""
        with self._lock:
            image = self._entries.get(key)
            if image is not None:
                self._entries.move_to_end(key)
                self.stats.hits += 1
            return image

    def get_or_render(self, key: CacheKey, render: Callable[[], bytes]) -> bytes:
        """The cached image, or ``render()``'s result stored under ``key`` (rendered outside the lock)."""
        image = self.get(key)
        if image is not None:
            return image
        image = render()
        with self._lock:
            self.stats.renders += 1
            if key not in self._entries and len(image) <= self.max_bytes:
                self._entries[key] = image
                self._bytes += len(image)
                while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    self._bytes -= len(evicted)
                    self.stats.evictions += 1
        return image

    def clear(self) -> None:
        """Drop every entry (tests)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Bytes held by the cached images."""
        return self._bytes


qr_images = RenderCache()
