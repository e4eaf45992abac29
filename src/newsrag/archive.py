"""The Archive: the one door to an index. It wires loaders, chunker, embedder,
store, search structures and generators together and holds no algorithm of its own.

It owns the locking, so no caller can forget it: one object may serve many
threads. Writers (ingest, delete) take the index's write lock, across threads
and processes; readers take none: each thread reads SQLite through its own
connection (WAL shows it the last commit) and searches an immutable view of
the search structures, so a search never waits for an ingest.

A read-only index (the ``read_only`` setting, or a folder this process may not
write to) is opened without the lock file and without writing anything: it
answers searches and questions, and an ingest or delete is one line saying it
is read-only. A full disk, a read-only or a vanished folder reach the caller
as one ``StorageError`` line (index/storage.py), never as SQLite's words.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import json
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from . import consistency
from .answering import EVIDENCE_MIN, Answer
from .articles import parse_date
from .briefing import MAX_THEMES, Briefing
from .briefing import build as build_briefing
from .dates import check_period, question_period
from .embedders import DEFAULT_EMBEDDER, Embedder, make_embedder
from .generators import Generator
from .generators import from_settings as generator_from_settings
from .index.factory import catch_up, open_indexes
from .index import storage
from .index.base import BackendError
from .index.sqlite_store import IndexMismatch, SQLiteStore, mismatch, read_manifest
from .index.storage import StorageError, storage_errors
from .ingest import Bar, IngestReport, ItemResult, Pipeline, Progress, articles
from .prompts import Passage
from .rerank import Reranker, get_reranker
from .retrieval import Hit, search
from .settings import Settings
from .summarize import Summary, summarize
from .text import coverage, normalize, one_line

__all__ = ["Archive", "IndexMismatch", "IngestReport", "ItemResult", "StorageError"]
# A long ingest brings the search structures up to date every this many chunks, so
# readers elsewhere see its progress and a crash leaves little to replay.
SYNC_EVERY = 20_000


def _guarded(method):
    """The method, with a full disk, a read-only or a vanished index as one StorageError."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(self, *args, **kwargs):
            with storage_errors(self.root):
                yield from method(self, *args, **kwargs)
        return stream

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with storage_errors(self.root):
            return method(self, *args, **kwargs)
    return call


def _period(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """``since`` and ``until`` as ISO dates; a ValueError when one is not a date or they are reversed."""
    since, until = parse_date(since), parse_date(until)
    check_period(since, until)
    return since, until


def _unwritable(root: Path) -> bool:
    """Whether this process may not write the index at ``root`` (root may write anywhere)."""
    db = root / "archive.sqlite3"
    return root.is_dir() and not (os.access(root, os.W_OK) and (not db.exists() or os.access(db, os.W_OK)))


class Archive:
    def __init__(self, settings: Settings, store: SQLiteStore, embedder: Embedder, indexes: list):
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.indexes = indexes
        self._generator: Generator | None = None
        self._generator_lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path | None = None, settings: Settings | None = None, **overrides) -> "Archive":
        """Open the archive at ``path`` (created if missing). Keyword arguments are Settings fields.

        ``embedder`` may also be an object implementing ``embedders.Embedder``.
        """
        given = overrides.get("embedder")
        if given is not None and not isinstance(given, str):
            embedder, overrides["embedder"] = given, given.name
        settings = settings.replace(**overrides) if settings else Settings.load(**overrides)
        if path is not None:
            settings = settings.replace(index=str(path))
        manifest = read_manifest(settings.index) or {}
        if given is None or isinstance(given, str):
            name = settings.embedder or manifest.get("embedder") or DEFAULT_EMBEDDER
            if manifest and manifest.get("embedder") != name:
                # Fail before loading a model (a hub name would retry the network for a minute).
                raise mismatch(settings.index, manifest, "embedder", name)
            embedder = make_embedder(name, device=settings.device, batch_size=settings.batch_size,
                                     base_url=settings.embed_base_url, api_key=settings.embed_api_key)
        backend = settings.backend or manifest.get("backend") or "local"
        settings = settings.replace(
            embedder=embedder.name, backend=backend,
            chunk_tokens=settings.chunk_tokens or manifest.get("chunk_tokens") or 256,
            chunk_overlap=settings.chunk_overlap if settings.chunk_overlap is not None
            else manifest.get("chunk_overlap", 32))
        root = Path(settings.index)
        if root.exists() and not root.is_dir():
            raise ValueError(f"{root} is a file, not an index folder")
        read_only = bool(settings.read_only) or _unwritable(root)
        if read_only and not (root / "archive.sqlite3").exists():
            raise storage.read_only(root)  # and there is nothing to read
        if not read_only:
            root.mkdir(parents=True, exist_ok=True)
        try:
            return cls._open(settings, root, read_only, embedder, manifest)
        except (OSError, sqlite3.Error) as e:
            found = storage.classify(e, root)
            if found is None or found is e:
                raise
            raise found from e

    @classmethod
    def _open(cls, settings: Settings, root: Path, read_only: bool, embedder: Embedder,
              manifest: dict) -> "Archive":
        store = SQLiteStore(root, read_only=read_only)
        # The manifest's own dimension spares loading a model just to open the index.
        dim = manifest["dim"] if manifest.get("embedder") == embedder.name else embedder.dim
        manifest = store.check_manifest({
            "embedder": embedder.name, "dim": dim, "backend": settings.backend, "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap": settings.chunk_overlap, "collection": f"newsrag_{uuid.uuid4().hex[:12]}"})
        indexes = open_indexes(settings.backend, root, dim=dim, ann=settings.ann, milvus_uri=settings.milvus_uri,
                               milvus_token=settings.milvus_token, collection=manifest.get("collection"),
                               terms=store)
        archive = cls(settings.replace(read_only=read_only), store, embedder, indexes)
        if read_only:  # its searches replay in memory what the saved structures lack
            return archive
        try:
            with store.writer(blocking=False) as mine:
                if mine:  # a crash left the search structures behind: finish their update now
                    catch_up(store, archive.indexes, persist=True)
        except OSError:  # a copy we may not write, or a full disk: its searches replay in memory
            pass
        return archive

    @staticmethod
    def exists(path: str | Path) -> bool:
        """Whether ``path`` holds an index (only ingest, demo and serve create one)."""
        return read_manifest(path) is not None

    @property
    def root(self) -> Path:
        return self.store.root

    def using(self, **changes) -> "Archive":
        """The same archive (store, search structures) with other answer settings, e.g. ``generator``."""
        return Archive(self.settings.replace(**changes), self.store, self.embedder, self.indexes)

    def close(self) -> None:
        for index in self.indexes:
            index.close()
        self.store.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _pipeline(self, embedder: Embedder | None = None) -> Pipeline:
        s = self.settings
        return Pipeline(self.store, embedder or self.embedder, s.chunk_tokens, s.chunk_overlap, s.batch_size,
                        s.dedup_threshold)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The write lock; the search structures catch up with whatever was committed under it."""
        with self.store.writer():
            try:
                yield
            finally:
                catch_up(self.store, self.indexes, persist=True)

    def _indexes(self) -> list:
        """The search structures, level with the last commit (a reader replays in memory)."""
        catch_up(self.store, self.indexes, persist=False)
        return self.indexes

    # ------------------------------------------------------------ writing

    @_guarded
    def ingest(self, items: Any, progress: bool | Progress | None = None,
               staged_in: str | Path | None = None, ray: str | None = None, ray_workers: int = 2) -> IngestReport:
        """Add files, folders, records (dicts) or Articles. Returns what happened to each.

        LoadErrors among ``items`` (what ``uploads.stage`` left out of an upload) are reported as failed.

        ``staged_in``: the folder ``uploads.stage`` saved an upload in; its files are
        recorded under their uploaded names (``upload:…``), not the temporary path.
        ``ray``: embed on a Ray cluster at this address ("local" starts one here) with
        ``ray_workers`` actors; everything else stays in this process.
        """
        t0 = time.time()
        report = IngestReport()
        embedder = self.embedder
        if ray:
            from .embed_ray import RayEmbedder

            embedder = RayEmbedder(self.embedder, None if ray == "local" else ray, ray_workers,
                                   self.settings.batch_size)
        with self._writing(), contextlib.closing(embedder) if ray else contextlib.nullcontext():
            estimate, found = articles(items, report, Path(staged_in) if staged_in else None)
            bar = Bar(progress, estimate, "ingest")
            pending = 0

            def committed(chunks: int) -> None:
                nonlocal pending
                pending += chunks
                if pending >= SYNC_EVERY:
                    catch_up(self.store, self.indexes, persist=True)
                    pending = 0

            try:
                self._pipeline(embedder).run(found, report, bar, committed)
            finally:
                bar.close()
        report.seconds = time.time() - t0
        return report

    @_guarded
    def delete(self, *article_ids: str) -> list[str]:
        """Remove articles from every part of the index, in one commit; returns the ids removed.

        If one was the canonical copy of a story, its first remaining near-duplicate takes over.
        """
        with self._writing():
            self._pipeline().delete(list(article_ids))
        return list(article_ids)

    @_guarded
    def check(self, repair: bool = False) -> dict:
        """Whether SQLite, the search structures and the near-duplicate links agree (consistency.py).

        It takes the write lock, so it sees one commit whole and no ingest changes it meanwhile;
        ``repair`` rebuilds from SQLite what disagrees, then checks again. A read-only index is
        checked as a reader sees it (its structures level in memory) and cannot be repaired.
        """
        if self.store.read_only:
            if repair:
                raise storage.read_only(self.root)
            catch_up(self.store, self.indexes, persist=False)
            return self._check_report(consistency.find(self.store, self.indexes, persisted=False))
        with self.store.writer():
            found = consistency.find(self.store, self.indexes, persisted=True)
            if not (repair and found):
                return self._check_report(found)
            try:
                repaired = consistency.repair(self.store, self.indexes, self._pipeline(), found)
            except (BackendError, OSError, sqlite3.Error) as e:
                err = storage.classify(e, self.root) or e
                return self._check_report(found, [], [f"repair failed: {one_line(err)}"])
            remaining = [str(f) for f in consistency.find(self.store, self.indexes, persisted=True)]
            return self._check_report(found, repaired, remaining)

    def _check_report(self, found: list, repaired: list[str] | None = None,
                      remaining: list[str] | None = None) -> dict:
        counts = self.store.counts()
        problems = remaining if repaired is not None or remaining is not None else [str(f) for f in found]
        return {"index": str(self.root), "ok": not problems, "generation": self.store.generation(),
                "articles": counts["articles"], "chunks": counts["chunks"], "findings": [str(f) for f in found],
                "repaired": repaired or [], "remaining": problems}

    # ------------------------------------------------------------ answers and briefings

    @property
    def generator(self) -> Generator:
        with self._generator_lock:  # loaded once, however many threads ask first
            if self._generator is None:
                self._generator = generator_from_settings(self.settings, self.embedder)
        return self._generator

    @property
    def reranker(self) -> Reranker | None:
        """The cross-encoder the ``rerank`` setting names (loaded on first use, shared), or None."""
        s = self.settings
        return get_reranker(s.rerank, device=s.device, batch_size=s.batch_size)

    @_guarded
    def ask_stream(self, question: str, k: int = 8, since: str | None = None, until: str | None = None,
                   source: str | None = None, as_of: str | None = None) -> Iterator[str | Answer]:
        """Answer text as it is written, then the cited Answer as the last item."""
        from .answering import stream_answer

        today = parse_date(as_of) or dt.date.today().isoformat()
        since, until = _period(since, until)
        period = None
        if not (since or until):
            found = question_period(normalize(question), dt.date.fromisoformat(today))
            if found:
                since, until = found[0], found[1]
                period = {"since": since, "until": until, "words": found[2]}
        # A period the question names narrows retrieval but keeps undated articles in play.
        hits = search(self.store, self._indexes(), self.embedder, question, k, since=since, until=until,
                      source=source, max_per_article=2, include_undated=period is not None,
                      reranker=self.reranker)
        passages = [Passage(i, h.article_id, h.title, h.date, h.source, h.text, h.start, h.score)
                    for i, h in enumerate(hits, 1)]
        yield from stream_answer(question, passages, self.generator, today=today, period=period)

    def ask(self, question: str, **kwargs) -> Answer:
        """A short answer whose every sentence cites the article it rests on."""
        *_, answer = self.ask_stream(question, **kwargs)
        return answer

    @_guarded
    def summarize(self, text: str | None = None, article_id: str | None = None, max_chars: int | None = None,
                  title: str = "") -> Summary:
        """A summary of ``text`` or of the stored article ``article_id``, at most ``max_chars`` characters
        (default: a fifth of the article, 30 to 200). ``.text``, and ``.sentences``: what it took, where.

        Raises KeyError for an unknown ``article_id``, ValueError for no or too much text.
        """
        if (text is None) == (article_id is None):
            raise ValueError("summarize takes text or article_id (one of them)")
        if article_id is None:
            return summarize(text, self.generator, max_chars=max_chars, title=title)
        row = self.store.article(article_id)
        if row is None:
            raise KeyError(f"no article with id {article_id!r}")
        return summarize(row["text"], self.generator, max_chars=max_chars, title=title or row["title"],
                         date=row["date"], source=row["source"], article_id=article_id)

    @_guarded
    def brief(self, topic: str = "", since: str | None = None, until: str | None = None,
              source: str | None = None, max_articles: int = 400,
              progress: bool | Progress | None = None, method: str = "agglomerative") -> Briefing:
        """Themes with cited summaries and a timeline for a topic and/or a period.

        ``method``: how articles are grouped into themes (briefing.METHODS; ``kmeans`` is the
        previous clustering, kept for comparison)."""
        since, until = _period(since, until)
        rows = self.store.articles_in(since, until, normalize(source) if source else None)
        canonical = [r for r in rows if r["canonical_id"] is None]
        if topic:
            hits = search(self.store, self._indexes(), self.embedder, topic, k=max_articles, since=since,
                          until=until, source=source, candidates=max_articles)
            found = {h.article_id for h in hits}
            # Dense search ranks every article; a briefing keeps those that name the topic.
            canonical = [r for r in canonical if r["id"] in found
                         and coverage(topic, r["title"] + "\n" + r["text"]) >= EVIDENCE_MIN]
        canonical = canonical[:max_articles]
        kept = {r["id"] for r in canonical}
        folded = sum(1 for r in rows if r["canonical_id"] in kept)  # copies of the articles briefed
        arts = [dict(r) for r in canonical]
        vectors = self.store.article_vectors([a["id"] for a in arts], self.store.manifest["dim"])
        bar = Bar(progress, min(len(arts), MAX_THEMES + 1), "briefing", unit="theme")  # at most, with OTHER
        try:
            return build_briefing(arts, vectors, self.generator, topic=topic, since=since, until=until,
                                  duplicates_folded=folded, progress=lambda done, total, note: bar.advance(1, note),
                                  method=method)
        finally:
            bar.close()

    # ------------------------------------------------------------ reading

    @_guarded
    def search(self, question: str, k: int = 10, since: str | None = None, until: str | None = None,
               source: str | None = None, mode: str = "hybrid", max_per_article: int = 1) -> list[Hit]:
        since, until = _period(since, until)
        return search(self.store, self._indexes(), self.embedder, question, k, since=since, until=until,
                      source=source, mode=mode, max_per_article=max_per_article,
                      reranker=self.reranker)

    @_guarded
    def article(self, article_id: str) -> dict | None:
        row = self.store.article(article_id)
        if row is None:
            return None
        d = {k: row[k] for k in ("id", "title", "date", "source", "url", "author", "text", "origin",
                                 "canonical_id")}
        d["meta"] = json.loads(row["meta"])
        d["duplicates"] = self.store.duplicates_of(article_id)
        return d

    @_guarded
    def list_articles(self, query: str = "", limit: int = 200) -> list[dict]:
        """Newest first; ``query`` matches the id or part of the title, in either script."""
        q = normalize(query.strip())
        out = []
        for r in self.store.list_articles():
            if not q or q == r["id"].lower() or q in normalize(r["title"]):
                out.append(dict(r))
                if len(out) >= limit:
                    break
        return out

    @_guarded
    def coverage(self) -> list[dict]:
        """Articles per month and source: where the archive has gaps."""
        return self.store.coverage()

    @_guarded
    def stats(self) -> dict:
        manifest = self.store.manifest
        return {
            "index": str(self.root),
            **self.store.counts(),
            "embedder": manifest.get("embedder"),
            "generator": self.settings.generator if self.settings.generator != "transformers"
            else f"transformers:{self.settings.model}",
            "dim": manifest.get("dim"),
            "backend": self.settings.backend,
            "chunk_tokens": self.settings.chunk_tokens,
            "chunk_overlap": self.settings.chunk_overlap,
            "generation": self.store.generation(),
        }
