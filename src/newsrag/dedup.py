"""Near-duplicate detection (syndicated copies of one story) with MinHash LSH."""
from __future__ import annotations

import re

import numpy as np

NUM_PERM = 128
SCHEME = "affine32"  # stored signatures must be read back with the scheme that made them
SHINGLE = 4
MIN_CHARS = 40  # one-line notices share too much boilerplate to judge fairly
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


class NearDuplicates:
    """In-memory LSH over the canonical articles' signatures."""

    def __init__(self, threshold: float = 0.8):
        from datasketch import MinHashLSH

        self.threshold = threshold
        # LSH only proposes candidates; its S-curve still misses a quarter of
        # pairs at 0.86 when set to 0.8, so it casts wider and find() verifies.
        self._lsh = MinHashLSH(threshold=max(0.3, threshold - 0.3), num_perm=NUM_PERM)
        self._sigs: dict[str, np.ndarray] = {}

    def add(self, key: str, sig: np.ndarray | None) -> None:
        if sig is None or key in self._sigs:
            return
        from datasketch import MinHash

        self._lsh.insert(key, MinHash(num_perm=NUM_PERM, hashvalues=sig, scheme=SCHEME))
        self._sigs[key] = sig

    def remove(self, key: str) -> None:
        if key in self._sigs:
            self._lsh.remove(key)
            del self._sigs[key]

    def find(self, sig: np.ndarray | None, exclude: tuple[str, ...] = ()) -> str | None:
        """The most similar known article at or above the threshold, if any."""
        if sig is None or not self._sigs:
            return None
        from datasketch import MinHash

        best, best_sim = None, self.threshold
        for key in self._lsh.query(MinHash(num_perm=NUM_PERM, hashvalues=sig, scheme=SCHEME)):
            if key in exclude:
                continue
            sim = float(np.mean(self._sigs[key] == sig))
            if sim >= best_sim:
                best, best_sim = key, sim
        return best
