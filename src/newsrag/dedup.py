"""Near-duplicate detection (syndicated copies of one story) with MinHash LSH.

The LSH bands of every canonical article live in the store (``band_keys``), so
finding an article's copies is a few index lookups whatever the archive's
size; ``NearDuplicates`` adds the articles of the batch being planned.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Callable

import numpy as np

NUM_PERM = 128
SCHEME = "affine32"  # stored signatures must be read back with the scheme that made them
SHINGLE = 4
MIN_CHARS = 40  # one-line notices share too much boilerplate to judge fairly
# LSH only proposes candidates and find() verifies them against the threshold; the
# bands are tuned for similarity 0.5 so they catch pairs at 0.8 and above (the
# default threshold) almost surely, and are fixed so stored keys stay valid.
LSH_THRESHOLD = 0.5
_NOISE = re.compile(r"[\W_]+", re.UNICODE)


def signature(normalized_text: str) -> np.ndarray | None:
    """MinHash of the character 4-grams of normalized text; None when too short to judge."""
    from datasketch import MinHash

    s = _NOISE.sub("", normalized_text)
    if len(s) < MIN_CHARS:
        return None
    shingles = {s[i:i + SHINGLE].encode("utf-8") for i in range(len(s) - SHINGLE + 1)}
    m = MinHash(num_perm=NUM_PERM, scheme=SCHEME)
    m.update_batch(list(shingles))
    return m.hashvalues.astype(np.uint64)


@lru_cache(maxsize=1)
def _bands() -> tuple[int, int]:
    """(bands, rows per band) that datasketch finds best for LSH_THRESHOLD."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)
    return lsh.b, lsh.r


def band_keys(sig: np.ndarray) -> list[int]:
    """One signed 64-bit key per LSH band: two articles that share a key are candidates."""
    b, r = _bands()
    sig = np.asarray(sig, dtype=np.uint64)
    return [int.from_bytes(hashlib.blake2b(bytes([i]) + sig[i * r:(i + 1) * r].tobytes(), digest_size=8).digest(),
                           "little", signed=True) for i in range(b)]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


class NearDuplicates:
    """The stored canonical articles plus those planned in this batch, minus those it replaces."""

    def __init__(self, stored: Callable[[list[int]], dict[str, np.ndarray]], threshold: float = 0.8):
        self.stored = stored  # band keys -> {article id: signature} of stored canonical articles
        self.threshold = threshold
        self._pending: dict[str, np.ndarray] = {}
        self._removed: set[str] = set()

    def add(self, key: str, sig: np.ndarray | None) -> None:
        if sig is not None:
            self._pending[key] = sig

    def remove(self, key: str) -> None:
        self._pending.pop(key, None)
        self._removed.add(key)

    def committed(self) -> None:
        """The batch is in the store now: its articles are found there."""
        self._pending.clear()
        self._removed.clear()

    def find(self, sig: np.ndarray | None, exclude: tuple[str, ...] = ()) -> str | None:
        """The most similar known article at or above the threshold, if any."""
        if sig is None:
            return None
        candidates = {**self.stored(band_keys(sig)), **self._pending}
        best, best_sim = None, self.threshold
        for key, other in sorted(candidates.items()):
            if key in exclude or key in self._removed:
                continue
            sim = similarity(other, sig)
            if sim >= best_sim:
                best, best_sim = key, sim
        return best
