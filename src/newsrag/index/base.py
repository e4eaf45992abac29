"""The index seam: plain records in, ranked chunk ids out.

SQLite (``ArticleStore``) is the truth for articles and chunks. Every commit
bumps a generation; a search structure (``SearchIndex``) records the
generation it has applied and, when it is behind, replays the changes since
then from the store. Backends live one per module behind ``factory.py``: the
local FAISS and BM25 segments today, a distributed engine behind the same
contract tomorrow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

import numpy as np


class BackendError(RuntimeError):
    """A search backend failed (unreachable server, refused request): one line naming it and why."""


@dataclass(frozen=True)
class Filter:
    """Which chunks a search may return: a portable filter every backend applies inside its search."""

    since: str | None = None  # ISO dates, inclusive
    until: str | None = None
    source: str | None = None  # normalized; matches when contained in the chunk's normalized source
    include_undated: bool = False  # with a date range: keep articles that have no date

    @property
    def empty(self) -> bool:
        return not (self.since or self.until or self.source)


def date_key(date: str | None) -> int:
    """An ISO date as a sortable integer (20240312); 0 for none."""
    return int(date.replace("-", "")) if date else 0


@dataclass
class ChunkRecord:
    """One chunk as a search structure needs it: its id, what is searched, what is filtered."""

    id: int
    tokens: list[str]
    vector: np.ndarray
    date: str | None
    source_norm: str


@dataclass
class Query:
    norm: str  # the normalized question
    tokens: list[str]  # its BM25 tokens
    vector: np.ndarray | None = None  # its embedding (only when a dense retriever runs)


@dataclass
class Ranked:
    """A retriever's candidates, best first, with the spread of its scores over all allowed chunks.

    ``mean``/``std`` let fusion standardise scores as if it had seen every
    chunk; a backend that cannot tell leaves them None and fusion uses the
    candidates' own spread.
    """

    ids: np.ndarray  # int64 chunk ids
    scores: np.ndarray  # float32, same order
    mean: float | None = None
    std: float | None = None

    @classmethod
    def none(cls) -> "Ranked":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32))


@dataclass
class Changes:
    """What the store committed after some generation: chunks to add and chunk ids removed."""

    generation: int  # the store's generation these changes bring an index to
    upserts: Iterator[list[ChunkRecord]]  # in batches
    deletes: np.ndarray


class SearchIndex(Protocol):
    """One retriever's structure (dense or sparse). Chunk ids are never reused by the store."""

    kind: str  # "dense" | "sparse"
    replays_in_memory: bool  # apply(persist=False) moves this process's view (else it does nothing)
    uses_term_stats: bool  # scores BM25 with the store's ``TermSource`` (which the writer then keeps counted)

    def apply(self, changes: Changes, persist: bool = True) -> None:
        """Upsert and delete, then record ``changes.generation`` as applied.

        ``persist``: the caller holds the write lock; save atomically (changes follow
        ``saved_generation()``). Otherwise only this process's view moves (changes
        follow ``generation()``).
        """

    def saved_generation(self) -> int:
        """The store generation the saved index has applied."""

    def generation(self) -> int:
        """The store generation this process's view has applied (at least the saved one)."""

    def count(self) -> int:
        """Live chunks in the index."""

    def ids(self) -> np.ndarray:
        """The chunk ids this process's view holds live, one entry per stored copy (for ``check``)."""

    def reset(self) -> None:
        """Forget everything (saved generation 0); the caller holds the write lock and replays."""

    def search(self, query: Query, k: int, where: Filter | None = None) -> Ranked:
        """The ``k`` best chunks that pass ``where``; fewer only when fewer pass it."""

    def scores(self, query: Query, ids: Sequence[int]) -> np.ndarray:
        """This retriever's score for each of ``ids`` (0 for an id it does not hold)."""

    def close(self) -> None:
        """Release memory and connections; the index may be used again after."""


class ArticleStore(Protocol):
    """The truth: articles, chunks, near-duplicate links, and the generation of the last commit."""

    def generation(self) -> int: ...

    def changes_since(self, generation: int) -> Changes: ...

    def count_terms(self) -> None:
        """Count BM25's document frequencies once, and keep them from then on (under the write lock)."""


class TermSource(Protocol):
    """BM25's statistics as the store keeps them, for a backend that scores with the local formula."""

    def term_stats(self, tokens: Sequence[str]) -> tuple[int, float, dict[str, int]]:
        """(live chunks, their average length, document frequency of each of ``tokens`` present)."""

    def chunk_tokens(self, ids: Sequence[int]) -> dict[int, list[str]]:
        """The BM25 tokens of each of ``ids`` still stored."""
