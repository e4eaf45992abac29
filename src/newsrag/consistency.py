"""``newsrag check``: do SQLite, the search structures and the near-duplicate links agree?

SQLite is the truth. A search structure agrees when it has applied the store's
generation and holds every live chunk id exactly once and nothing else. The
LSH table agrees when it holds the band keys of every canonical article's
stored signature and no others. The articles agree with themselves when every
duplicate points at a canonical article, every canonical article has chunks
and no duplicate has any.

``repair`` rebuilds what disagrees from SQLite: a search structure is reset
and replays every change from generation 0; the LSH keys are computed again
from the stored signatures; an article left without chunks is chunked and
embedded again. The caller holds the write lock.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import dedup
from .index.factory import catch_up

@dataclass(frozen=True)
class Finding:
    part: str  # "articles", "lsh", or a search structure's kind ("dense", "sparse")
    text: str

    def __str__(self) -> str:
        return f"{self.part}: {self.text}"


def _some(ids, n: int = 3) -> str:
    ids = list(ids)
    return ", ".join(map(str, ids[:n])) + (", …" if len(ids) > n else "")


def find(store, indexes: list, persisted: bool) -> list[Finding]:
    """Every disagreement. ``persisted``: compare what the structures saved (the caller holds the
    write lock), else what this process's view holds."""
    found = article_findings(store) + lsh_findings(store)
    live, now = store.live_chunk_ids(), store.generation()
    for index in indexes:
        found += index_findings(index, live, now, persisted)
    return found


def index_findings(index, live: np.ndarray, now: int, persisted: bool) -> list[Finding]:
    kind = index.kind
    found = []
    have = index.saved_generation() if persisted else index.generation()
    if have != now:
        found.append(Finding(kind, f"index at generation {have}, the store at {now}"))
    ids, counts = np.unique(index.ids(), return_counts=True)
    if (counts > 1).any():
        twice = ids[counts > 1]
        found.append(Finding(kind, f"{len(twice)} chunks held more than once (ids {_some(twice)})"))
    if len(missing := np.setdiff1d(live, ids, assume_unique=True)):
        found.append(Finding(kind, f"{len(missing)} live chunks missing (ids {_some(missing)})"))
    if len(extra := np.setdiff1d(ids, live, assume_unique=True)):
        found.append(Finding(kind, f"{len(extra)} chunks that SQLite does not hold (ids {_some(extra)})"))
    return found


def lsh_findings(store) -> list[Finding]:
    expected = {(k, aid) for aid, sig in store.canonical_signatures() for k in dedup.band_keys(sig)}
    actual = store.lsh_rows()
    found = []
    if lacking := {aid for _, aid in expected - actual}:
        found.append(Finding("lsh", f"{len(lacking)} canonical articles lack band keys ({_some(sorted(lacking))})"))
    if stray := {aid for _, aid in actual - expected}:
        found.append(Finding("lsh", f"band keys of {len(stray)} articles that are not canonical or have "
                                    f"another signature ({_some(sorted(stray))})"))
    return found


def article_findings(store) -> list[Finding]:
    p = store.link_problems()
    texts = {
        "dangling": lambda v: f"{len(v)} duplicates point at no canonical article ({_some(d for d, _ in v)})",
        "without_chunks": lambda v: f"{len(v)} canonical articles have no chunks ({_some(v)})",
        "duplicate_chunks": lambda v: f"{len(v)} chunks belong to duplicate articles (ids {_some(v)})",
        "orphan_chunks": lambda v: f"{len(v)} chunks belong to no article (ids {_some(v)})",
    }
    return [Finding("articles", texts[k](v)) for k, v in p.items() if v]


def repair(store, indexes: list, pipeline, findings: list[Finding]) -> list[str]:
    """Rebuild from SQLite whatever disagrees; returns one line per part rebuilt."""
    done = []
    if any(f.part in ("articles", "lsh") for f in findings):
        done += _repair_store(store, pipeline)
    catch_up(store, indexes, persist=True)  # what the store repair committed, or a lag
    live, now = store.live_chunk_ids(), store.generation()
    for index in indexes:
        # Asked again for each: structures that share storage (Milvus) are rebuilt once.
        if index_findings(index, live, now, persisted=True):
            index.reset()
            index.apply(store.changes_since(0), persist=True)
            done.append(f"{index.kind}: rebuilt from SQLite ({len(live)} chunks)")
    return done


def _canonical_root(store, article_id: str, hops: int = 16) -> str | None:
    """The canonical article a chain of duplicates ends at, or None when it ends nowhere."""
    for _ in range(hops):
        row = store.article(article_id)
        if row is None:
            return None
        if row["canonical_id"] is None:
            return article_id
        article_id = row["canonical_id"]
    return None


def _repair_store(store, pipeline) -> list[str]:
    """Relink or promote stranded duplicates, chunk what has no chunks, drop stray chunks, and
    compute every LSH key again, in one commit."""
    p = store.link_problems()
    relink: dict[str, str | None] = {}  # duplicate -> its canonical article (None: it becomes one)
    heir: dict[str, str] = {}  # a vanished canonical id -> the duplicate that takes its place
    for dup, was in p["dangling"]:
        target = _canonical_root(store, was)
        if target is None and was in heir:
            target = heir[was]
        elif target is None:
            heir[was] = dup
        relink[dup] = target
    to_chunk = list(p["without_chunks"]) + [d for d, target in relink.items() if target is None]
    rows = {aid: pipeline.rows_for(store.article(aid)) for aid in to_chunk}  # embedding, outside the commit
    with store.transaction():
        store.drop_chunks(p["duplicate_chunks"] + p["orphan_chunks"])
        for dup, target in relink.items():
            store.set_canonical(dup, target)
        for aid, chunk_rows in rows.items():
            store.put_chunks(aid, chunk_rows)
        store.rebuild_lsh()
    done = ["lsh: band keys computed again from the stored signatures"]
    if relink:
        done.append(f"articles: {len(relink)} stranded duplicates relinked ({len(heir)} promoted)")
    if to_chunk:
        done.append(f"articles: {len(to_chunk)} articles chunked again")
    if p["duplicate_chunks"] or p["orphan_chunks"]:
        done.append(f"articles: {len(p['duplicate_chunks']) + len(p['orphan_chunks'])} stray chunks dropped")
    return done
