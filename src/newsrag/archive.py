"""The Archive: the one door to an index. It wires loaders, chunker, embedder,
store and retrieval together and owns no algorithm of its own."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import dedup
from .answering import EVIDENCE_MIN, Answer
from .articles import Article, BadInput, LoadError, article_from_record, list_files, load_file, parse_date
from .briefing import Briefing, n_themes
from .briefing import build as build_briefing
from .chunking import Chunk, chunk_article
from .dates import question_period
from .embedders import DEFAULT_EMBEDDER, Embedder, make_embedder
from .generators import Generator, make_generator
from .prompts import Passage
from .retrieval import Hit, search
from .settings import Settings
from .store import Store
from .text import coverage, normalize, tokens
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
        return (f"{self.added} added ({self.duplicates} near-duplicate), {self.updated} updated, "
                f"{self.skipped} skipped, {self.failed} failed; {self.chunks} chunks "
                f"({self.embedded} embedded) in {self.seconds:.1f} s")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("added", "updated", "skipped", "failed", "duplicates",
                                           "chunks", "embedded", "seconds")}
        d["items"] = [vars(r) for r in self.items]
        return d


@dataclass
class _Planned:
    article: Article
    chunks: list[Chunk]
    signature: Any
    canonical_id: str | None
    replaces: list[str]
    status: str


def _norm_hash(norm: str) -> str:
    return hashlib.sha1(norm.encode("utf-8")).hexdigest()


class _Bar:
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


class Archive:
    def __init__(self, settings: Settings, store: Store, embedder: Embedder):
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self._generator: Generator | None = None
        # One SQLite connection and one embedder: the UI and API threads take turns.
        self.lock = threading.RLock()

    @classmethod
    def open(cls, path: str | Path | None = None, settings: Settings | None = None, **overrides) -> "Archive":
        """Open the archive at ``path`` (created if missing). Keyword arguments are Settings fields."""
        settings = settings.replace(**overrides) if settings else Settings.load(**overrides)
        if path is not None:
            settings = settings.replace(index=str(path))
        manifest = Store.read_manifest(settings.index) or {}
        name = settings.embedder or manifest.get("embedder") or DEFAULT_EMBEDDER
        embedder = make_embedder(name, device=settings.device, batch_size=settings.batch_size)
        # The manifest's own dimension spares loading a model just to open the index.
        dim = manifest["dim"] if manifest.get("embedder") == embedder.name else embedder.dim
        settings = settings.replace(
            embedder=embedder.name,
            chunk_tokens=settings.chunk_tokens or manifest.get("chunk_tokens") or 256,
            chunk_overlap=settings.chunk_overlap if settings.chunk_overlap is not None
            else manifest.get("chunk_overlap", 32))
        store = Store(settings.index, embedder.name, dim, settings.chunk_tokens, settings.chunk_overlap)
        return cls(settings, store, embedder)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ ingest

    def _articles(self, items: Iterable[Any], report: IngestReport,
                  staged_in: Path | None = None) -> tuple[int, Iterator[Article]]:
        """(estimated count, articles); load failures go straight into the report."""
        if isinstance(items, (str, Path, dict, Article)):
            items = [items]
        items = list(items)
        paths = [i for i in items if isinstance(i, (str, Path))]
        files, missing = list_files(paths)

        def named(x):  # an uploaded file's articles and errors under its uploaded name
            if staged_in is not None:
                x.origin = upload_origin(x.origin, staged_in)
            return x

        for e in missing:
            self._fail(report, named(e))
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
                        self._fail(report, LoadError(f"record {n}", str(e)))
            for f in files:
                for a in map(named, load_file(f)):
                    if isinstance(a, LoadError):
                        self._fail(report, a)
                    else:
                        yield a

        return estimate, generate()

    @staticmethod
    def _fail(report: IngestReport, e: LoadError) -> None:
        report.failed += 1
        report.items.append(ItemResult(e.origin, "failed", reason=e.reason))

    def ingest(self, items: Any, progress: bool | Progress | None = None,
               staged_in: str | Path | None = None) -> IngestReport:
        """Add files, folders, records (dicts) or Articles. Returns what happened to each.

        ``staged_in``: the folder ``uploads.stage`` saved an upload in; its files are
        recorded under their uploaded names (``upload:…``), not the temporary path.
        """
        t0 = time.time()
        report = IngestReport()
        with self.store.writer():
            estimate, articles = self._articles(items, report, Path(staged_in) if staged_in else None)
            bar = _Bar(progress, estimate, "ingest")
            near = self._near_duplicates()
            batch: list[_Planned] = []
            try:
                for art in articles:
                    if any(p.article.id == art.id for p in batch):
                        self._commit(batch, report, bar)
                    planned = self._plan(art, near, report)
                    if planned is None:
                        bar.advance(1)
                        continue
                    batch.append(planned)
                    if sum(len(p.chunks) for p in batch) >= 2 * self.settings.batch_size or len(batch) >= 256:
                        self._commit(batch, report, bar)
                self._commit(batch, report, bar)
            finally:
                bar.close()
            self.store.derived()  # build the search structures now, not on the first query
        report.seconds = time.time() - t0
        return report

    def _near_duplicates(self) -> dedup.NearDuplicates:
        near = dedup.NearDuplicates(self.settings.dedup_threshold)
        for aid, sig in self.store.canonical_signatures():
            near.add(aid, sig)
        return near

    def _plan(self, art: Article, near: dedup.NearDuplicates, report: IngestReport) -> _Planned | None:
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
            near.remove(old)
        canonical = near.find(sig, exclude=(art.id,))
        chunks: list[Chunk] = []
        if canonical is None:
            near.add(art.id, sig)
            chunks = self._chunk(art.title, art.text)
        return _Planned(art, chunks, sig, canonical, replaces, status)

    def _vectors(self, chunks: list[Chunk], report: IngestReport) -> list:
        hashes = [_norm_hash(c.norm) for c in chunks]
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

    def _commit(self, batch: list[_Planned], report: IngestReport, bar: _Bar) -> None:
        if not batch:
            return
        all_chunks = [c for p in batch for c in p.chunks]
        vectors = iter(self._vectors(all_chunks, report))
        rows = []
        for p in batch:
            chunk_rows = []
            for c in p.chunks:
                h, v = next(vectors)
                chunk_rows.append((c.seq, c.start, c.end, c.text, h, tokens(c.norm), v))
            rows.append((p, chunk_rows))
        with self.store.transaction():
            for p, chunk_rows in rows:
                for old in p.replaces:
                    self.store.delete_article_rows(old)
                self.store.put_article(self._row(p.article, p.canonical_id), p.signature)
                self.store.put_chunks(p.article.id, chunk_rows)
        for p, chunk_rows in rows:
            setattr(report, p.status, getattr(report, p.status) + 1)
            report.duplicates += p.canonical_id is not None
            report.chunks += len(chunk_rows)
            report.items.append(ItemResult(
                p.article.origin, "duplicate" if p.canonical_id else p.status, p.article.id, p.article.title,
                f"near-duplicate of {p.canonical_id}" if p.canonical_id else ""))
        bar.advance(len(batch), f"{report.chunks} chunks")
        batch.clear()

    @staticmethod
    def _row(a: Article, canonical_id: str | None) -> dict:
        return {"id": a.id, "title": a.title, "date": a.date, "source": a.source,
                "source_norm": normalize(a.source), "url": a.url, "author": a.author, "text": a.text,
                "raw": a.raw, "meta": json.dumps(a.meta, ensure_ascii=False), "origin": a.origin,
                "content_hash": a.content_hash, "canonical_id": canonical_id, "added_at": time.time()}

    # ------------------------------------------------------------ delete

    def delete(self, *article_ids: str) -> list[str]:
        """Remove articles from every part of the index, in one commit; returns the ids removed.

        If one was the canonical copy of a story, its first remaining near-duplicate takes over.
        """
        with self.store.writer():
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
                    heir = self.store.article(heirs[0])
                    chunks = self._chunk(heir["title"], heir["text"])
                    vecs = self._vectors(chunks, IngestReport())
                    rows = [(c.seq, c.start, c.end, c.text, h, tokens(c.norm), v) for c, (h, v) in zip(chunks, vecs)]
                    promotions.append((heirs[0], rows, heirs[1:]))
            with self.store.transaction():
                for aid in article_ids:
                    self.store.delete_article_rows(aid)
                for heir, rows, others in promotions:
                    self.store.set_canonical(heir, None)
                    self.store.put_chunks(heir, rows)
                    for other in others:
                        self.store.set_canonical(other, heir)
            self.store.derived()
        return list(article_ids)

    def _chunk(self, title: str, text: str) -> list[Chunk]:
        return chunk_article(title, text, self.embedder.count_tokens,
                             min(self.settings.chunk_tokens, self.embedder.max_tokens), self.settings.chunk_overlap)

    # ------------------------------------------------------------ answers and briefings

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            s = self.settings
            self._generator = make_generator(
                s.generator, model=s.model, base_url=s.base_url, api_key=s.api_key, prompts_dir=s.prompts,
                max_new_tokens=s.max_new_tokens, context_tokens=s.context_tokens, device=s.device,
                embedder=self.embedder)
        return self._generator

    def ask_stream(self, question: str, k: int = 8, since: str | None = None, until: str | None = None,
                   source: str | None = None, as_of: str | None = None) -> Iterator[str | Answer]:
        """Answer text as it is written, then the cited Answer as the last item."""
        from .answering import stream_answer

        today = parse_date(as_of) or dt.date.today().isoformat()
        since, until = parse_date(since), parse_date(until)
        period = None
        if not (since or until):
            found = question_period(normalize(question), dt.date.fromisoformat(today))
            if found:
                since, until = found[0], found[1]
                period = {"since": since, "until": until, "words": found[2]}
        # A period the question names narrows retrieval but keeps undated articles in play.
        hits = search(self.store, self.embedder, question, k, since=since, until=until, source=source,
                      max_per_article=2, include_undated=period is not None)
        passages = [Passage(i, h.article_id, h.title, h.date, h.source, h.text, h.start, h.score)
                    for i, h in enumerate(hits, 1)]
        yield from stream_answer(question, passages, self.generator, today=today, period=period)

    def ask(self, question: str, **kwargs) -> Answer:
        """A short answer whose every sentence cites the article it rests on."""
        *_, answer = self.ask_stream(question, **kwargs)
        return answer

    def brief(self, topic: str = "", since: str | None = None, until: str | None = None,
              source: str | None = None, max_articles: int = 400,
              progress: bool | Progress | None = None) -> Briefing:
        """Themes with cited summaries and a timeline for a topic and/or a period."""
        since, until = parse_date(since), parse_date(until)
        rows = self.store.articles_in(since, until, normalize(source) if source else None)
        canonical = [r for r in rows if r["canonical_id"] is None]
        folded = len(rows) - len(canonical)
        if topic:
            hits = search(self.store, self.embedder, topic, k=max_articles, since=since, until=until,
                          source=source, candidates=max_articles)
            found = {h.article_id for h in hits}
            # Dense search ranks every article; a briefing keeps those that name the topic.
            canonical = [r for r in canonical if r["id"] in found
                         and coverage(topic, r["title"] + "\n" + r["text"]) >= EVIDENCE_MIN]
        canonical = canonical[:max_articles]
        articles = [dict(r) for r in canonical]
        vectors = self.store.article_vectors([a["id"] for a in articles])
        bar = _Bar(progress, n_themes(len(articles)) if articles else 0, "briefing", unit="theme")
        try:
            return build_briefing(articles, vectors, self.generator, topic=topic, since=since, until=until,
                                  duplicates_folded=folded, progress=lambda done, total, note: bar.advance(1, note))
        finally:
            bar.close()

    # ------------------------------------------------------------ reading

    def search(self, question: str, k: int = 10, since: str | None = None, until: str | None = None,
               source: str | None = None, mode: str = "hybrid", max_per_article: int = 1) -> list[Hit]:
        return search(self.store, self.embedder, question, k, since=parse_date(since), until=parse_date(until),
                      source=source, mode=mode, max_per_article=max_per_article)

    def article(self, article_id: str) -> dict | None:
        row = self.store.article(article_id)
        if row is None:
            return None
        d = {k: row[k] for k in ("id", "title", "date", "source", "url", "author", "text", "origin",
                                 "canonical_id")}
        d["meta"] = json.loads(row["meta"])
        d["duplicates"] = self.store.duplicates_of(article_id)
        return d

    def list_articles(self, query: str = "", limit: int = 200) -> list[dict]:
        """Newest first; ``query`` matches the id or part of the title, in either script."""
        q = normalize(query.strip())
        out = []
        for r in self.store.db.execute(
                "SELECT id, title, date, source, canonical_id FROM articles ORDER BY date DESC, id"):
            if not q or q == r["id"].lower() or q in normalize(r["title"]):
                out.append(dict(r))
                if len(out) >= limit:
                    break
        return out

    def coverage(self) -> list[dict]:
        """Articles per month and source: where the archive has gaps."""
        return [dict(r) for r in self.store.db.execute(
            "SELECT substr(date, 1, 7) AS month, source, count(*) AS articles FROM articles "
            "WHERE date IS NOT NULL GROUP BY month, source ORDER BY month, source")]

    def stats(self) -> dict:
        db = self.store.db
        one = lambda q: db.execute(q).fetchone()[0]  # noqa: E731
        first, last = db.execute("SELECT min(date), max(date) FROM articles").fetchone()
        return {
            "index": str(self.store.root),
            "articles": one("SELECT count(*) FROM articles"),
            "duplicates": one("SELECT count(*) FROM articles WHERE canonical_id IS NOT NULL"),
            "chunks": one("SELECT count(*) FROM chunks"),
            "undated": one("SELECT count(*) FROM articles WHERE date IS NULL"),
            "first_date": first,
            "last_date": last,
            "sources": {s or "(unknown)": n for s, n in db.execute(
                "SELECT source, count(*) FROM articles GROUP BY source ORDER BY count(*) DESC")},
            "embedder": self.store.manifest["embedder"],
            "generator": self.settings.generator if self.settings.generator != "transformers"
            else f"transformers:{self.settings.model}",
            "dim": self.store.manifest["dim"],
            "chunk_tokens": self.settings.chunk_tokens,
            "chunk_overlap": self.settings.chunk_overlap,
            "generation": self.store.generation(),
        }
