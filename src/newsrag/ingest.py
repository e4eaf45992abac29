"""The ingest pipeline: plan (load, skip, dedup, chunk) → embed → commit, in batches.

It writes only to the SQLite store, one transaction per batch; the Archive
then brings the search structures level with what was committed.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import dedup
from .articles import Article, BadInput, LoadError, article_from_record, list_files, load_file
from .chunking import Chunk, chunk_article
from .embedders import Embedder
from .text import normalize, plural, tokens
from .uploads import upload_origin

Progress = Callable[[int, int, str], None]


@dataclass
class ItemResult:
    origin: str
    status: str  # added | updated | skipped | duplicate | failed
    article_id: str = ""
    title: str = ""
    reason: str = ""


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    duplicates: int = 0  # of the added/updated, how many are near-duplicates of another article
    chunks: int = 0
    embedded: int = 0  # chunks whose vectors were computed (others came from the cache)
    seconds: float = 0.0
    items: list[ItemResult] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [f"{r.origin}: {r.reason}" for r in self.items if r.status == "failed"]

    def summary(self) -> str:
        return (f"{self.added} added ({plural(self.duplicates, 'near-duplicate')}), {self.updated} updated, "
                f"{self.skipped} skipped, {self.failed} failed; {plural(self.chunks, 'chunk')} "
                f"({self.embedded} embedded) in {self.seconds:.1f} s")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("added", "updated", "skipped", "failed", "duplicates",
                                           "chunks", "embedded", "seconds")}
        d["items"] = [vars(r) for r in self.items]
        return d

    def fail(self, e: LoadError) -> None:
        self.failed += 1
        self.items.append(ItemResult(e.origin, "failed", reason=e.reason))


@dataclass
class _Planned:
    article: Article
    chunks: list[Chunk]
    signature: Any
    canonical_id: str | None
    replaces: list[str]
    status: str


def norm_hash(norm: str) -> str:
    return hashlib.sha1(norm.encode("utf-8")).hexdigest()


class Bar:
    """tqdm on a terminal, a callback for a UI, or nothing."""

    def __init__(self, progress: bool | Progress | None, total: int, desc: str, unit: str = "article"):
        self.done, self.total, self.desc = 0, total, desc
        self._cb = progress if callable(progress) else None
        self._tqdm = None
        if progress is True:
            from tqdm import tqdm

            self._tqdm = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)

    def advance(self, n: int, note: str = "") -> None:
        self.done += n
        if self._tqdm is not None:
            if note:
                self._tqdm.set_postfix_str(note, refresh=False)
            self._tqdm.update(n)
        if self._cb is not None:
            self._cb(self.done, max(self.total, self.done), note or self.desc)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()


def articles(items: Iterable[Any], report: IngestReport,
             staged_in: Path | None = None) -> tuple[int, Iterator[Article]]:
    """(estimated count, articles) from paths, records and Articles; failures go into the report,
    and so do the LoadErrors among ``items`` (what an upload left out)."""
    if isinstance(items, (str, Path, dict, Article)):
        items = [items]
    items = list(items)
    paths = [i for i in items if isinstance(i, (str, Path))]
    files, missing = list_files(paths)

    def named(x):  # an uploaded file's articles and errors under its uploaded name
        if staged_in is not None:
            x.origin = upload_origin(x.origin, staged_in)
        return x

    for e in missing + [i for i in items if isinstance(i, LoadError)]:
        report.fail(named(e))
    items = [i for i in items if not isinstance(i, LoadError)]
    estimate = len(items) - len(paths)
    for f in files:
        if f.suffix.lower() in (".jsonl", ".ndjson") and f.stat().st_size < 2 ** 31:
            with open(f, "rb") as fh:
                estimate += sum(1 for line in fh if line.strip())
        else:
            estimate += 1

    def generate() -> Iterator[Article]:
        n = 0
        for item in items:
            if isinstance(item, Article):
                yield item
            elif isinstance(item, dict):
                n += 1
                try:
                    yield article_from_record(item, f"record {n}")
                except BadInput as e:
                    report.fail(LoadError(f"record {n}", str(e)))
        for f in files:
            for a in map(named, load_file(f)):
                if isinstance(a, LoadError):
                    report.fail(a)
                else:
                    yield a

    return estimate, generate()


class Pipeline:
    """Plans, embeds and commits articles into ``store``; the caller holds the write lock."""

    def __init__(self, store, embedder: Embedder, chunk_tokens: int, chunk_overlap: int, batch_size: int,
                 dedup_threshold: float):
        self.store, self.embedder = store, embedder
        self.chunk_tokens, self.chunk_overlap, self.batch_size = chunk_tokens, chunk_overlap, batch_size
        self.near = dedup.NearDuplicates(store.lsh_candidates, dedup_threshold)

    def chunk(self, title: str, text: str) -> list[Chunk]:
        return chunk_article(title, text, self.embedder.count_tokens,
                             min(self.chunk_tokens, self.embedder.max_tokens), self.chunk_overlap)

    def run(self, items: Iterable[Article], report: IngestReport, bar: Bar,
            committed: Callable[[int], None] = lambda chunks: None) -> None:
        """Plan each article, commit in batches; ``committed(chunks)`` follows each commit."""
        batch: list[_Planned] = []
        for art in items:
            if any(p.article.id == art.id for p in batch):
                committed(self.commit(batch, report, bar))
            planned = self.plan(art, report)
            if planned is None:
                bar.advance(1)
                continue
            batch.append(planned)
            if sum(len(p.chunks) for p in batch) >= 2 * self.batch_size or len(batch) >= 256:
                committed(self.commit(batch, report, bar))
        committed(self.commit(batch, report, bar))

    def plan(self, art: Article, report: IngestReport) -> _Planned | None:
        existing = self.store.article(art.id)
        if existing is not None and existing["content_hash"] == art.content_hash:
            report.skipped += 1
            report.items.append(ItemResult(art.origin, "skipped", art.id, art.title, "unchanged"))
            return None
        replaces = [art.id] if existing is not None else []
        if art.whole_file and art.id.startswith("h"):
            # A file without an id of its own was edited: its old version goes.
            replaces += [old for old in self.store.ids_from_origin(art.origin)
                         if old != art.id and old.startswith("h")]
        status = "updated" if replaces else "added"
        sig = dedup.signature(normalize(art.text))
        # An article is never a duplicate of the version it replaces.
        for old in replaces:
            self.near.remove(old)
        canonical = self.near.find(sig, exclude=(art.id,))
        chunks: list[Chunk] = []
        if canonical is None:
            self.near.add(art.id, sig)
            chunks = self.chunk(art.title, art.text)
        return _Planned(art, chunks, sig, canonical, replaces, status)

    def vectors(self, chunks: list[Chunk], report: IngestReport) -> list:
        hashes = [norm_hash(c.norm) for c in chunks]
        known = self.store.cached_vectors(hashes)
        todo: dict[str, str] = {}
        for h, c in zip(hashes, chunks):
            if h not in known:
                todo.setdefault(h, c.norm)
        if todo:
            vecs = self.embedder.embed_passages(list(todo.values()))
            known.update(zip(todo.keys(), vecs))
            report.embedded += len(todo)
        return [(h, known[h]) for h in hashes]

    def chunk_rows(self, chunks: list[Chunk], report: IngestReport) -> list[tuple]:
        """(seq, start, end, text, norm_hash, tokens, vector) for each chunk, as the store takes them."""
        return [(c.seq, c.start, c.end, c.text, h, tokens(c.norm), v)
                for c, (h, v) in zip(chunks, self.vectors(chunks, report))]

    def rows_for(self, article) -> list[tuple]:
        """The chunk rows of a stored article (one promoted from duplicate, or repaired)."""
        return self.chunk_rows(self.chunk(article["title"], article["text"]), IngestReport())

    def commit(self, batch: list[_Planned], report: IngestReport, bar: Bar) -> int:
        """Write the batch in one transaction; returns its number of chunks."""
        if not batch:
            return 0
        rows = self.chunk_rows([c for p in batch for c in p.chunks], report)
        per_article = []
        for p in batch:
            per_article.append(rows[:len(p.chunks)])
            rows = rows[len(p.chunks):]
        with self.store.transaction():
            for p, chunk_rows in zip(batch, per_article):
                for old in p.replaces:
                    self.store.delete_article_rows(old)
                self.store.put_article(_row(p.article, p.canonical_id), p.signature)
                self.store.put_chunks(p.article.id, chunk_rows)
        self.near.committed()
        n = 0
        for p, chunk_rows in zip(batch, per_article):
            setattr(report, p.status, getattr(report, p.status) + 1)
            report.duplicates += p.canonical_id is not None
            report.chunks += len(chunk_rows)
            n += len(chunk_rows)
            report.items.append(ItemResult(
                p.article.origin, "duplicate" if p.canonical_id else p.status, p.article.id, p.article.title,
                f"near-duplicate of {p.canonical_id}" if p.canonical_id else ""))
        bar.advance(len(batch), f"{report.chunks} chunks")
        batch.clear()
        return n

    def delete(self, article_ids: list[str]) -> None:
        """Remove articles in one commit; a removed canonical copy's first near-duplicate takes over."""
        doomed = set(article_ids)
        for aid in article_ids:
            if self.store.article(aid) is None:
                raise KeyError(f"no article with id {aid!r}")
        promotions = []  # (heir, its chunk rows, the other copies)
        for aid in article_ids:
            if self.store.article(aid)["canonical_id"] is not None:
                continue
            heirs = [h for h in self.store.duplicates_of(aid) if h not in doomed]
            if heirs:
                promotions.append((heirs[0], self.rows_for(self.store.article(heirs[0])), heirs[1:]))
        with self.store.transaction():
            for aid in article_ids:
                self.store.delete_article_rows(aid)
            for heir, rows, others in promotions:
                self.store.set_canonical(heir, None)
                self.store.put_chunks(heir, rows)
                for other in others:
                    self.store.set_canonical(other, heir)


def _row(a: Article, canonical_id: str | None) -> dict:
    return {"id": a.id, "title": a.title, "date": a.date, "source": a.source,
            "source_norm": normalize(a.source), "url": a.url, "author": a.author, "text": a.text,
            "raw": a.raw, "meta": json.dumps(a.meta, ensure_ascii=False), "origin": a.origin,
            "content_hash": a.content_hash, "canonical_id": canonical_id, "added_at": time.time()}
