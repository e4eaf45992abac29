"""The on-disk index: SQLite is the truth, FAISS and BM25 are derived from it.

Articles, chunks, their BM25 tokens and their vectors live in one SQLite file,
so every ingest batch is one transaction: a killed process leaves the last
committed batch and nothing half-written. The FAISS and BM25 indexes are
rebuilt from SQLite and saved under the generation number they were built at;
a stale or missing pair is rebuilt on open, so they can never disagree with
the articles.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

SCHEMA_VERSION = 1
# BM25 with Anserini's defaults: chunks are already cut to a token budget, so
# milder length normalisation (b) and earlier term saturation (k1) suit them
# better than the textbook 1.5/0.75 (benchmarks/retrieval.py: news MRR@10 +0.02,
# the encyclopaedic sets unchanged).
BM25_K1, BM25_B = 0.9, 0.4
# Saved derived indexes carry this tag; one built another way is rebuilt on open.
DERIVED_FORMAT = f"bm25 k1={BM25_K1} b={BM25_B}"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles(
  id TEXT PRIMARY KEY, title TEXT NOT NULL, date TEXT, source TEXT NOT NULL, source_norm TEXT NOT NULL,
  url TEXT NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL, raw TEXT NOT NULL, meta TEXT NOT NULL,
  origin TEXT NOT NULL, content_hash TEXT NOT NULL, canonical_id TEXT, minhash BLOB, added_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS articles_date ON articles(date);
CREATE INDEX IF NOT EXISTS articles_origin ON articles(origin);
CREATE INDEX IF NOT EXISTS articles_canonical ON articles(canonical_id);
CREATE TABLE IF NOT EXISTS chunks(
  id INTEGER PRIMARY KEY AUTOINCREMENT, article_id TEXT NOT NULL, seq INTEGER NOT NULL,
  start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL, norm_hash TEXT NOT NULL,
  tokens TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(norm_hash);
"""
ARTICLE_COLUMNS = ("id", "title", "date", "source", "url", "author", "text", "raw", "meta", "origin",
                   "content_hash", "canonical_id", "added_at")


class IndexMismatch(RuntimeError):
    """The index was built with another embedder than the one asked for."""


@dataclass
class Derived:
    """The search structures for one generation of the database."""

    generation: int
    chunk_ids: np.ndarray  # position -> chunk id, shared by both indexes
    faiss_index: object
    bm25: object

    @property
    def vectors(self) -> np.ndarray:
        """The FAISS index's vectors as an (n, dim) array, in chunk_ids order, without a copy."""
        import faiss

        flat = faiss.downcast_index(self.faiss_index.index)
        n, dim = self.faiss_index.ntotal, flat.d
        if n == 0:
            return np.zeros((0, dim), dtype=np.float32)
        return faiss.rev_swig_ptr(flat.get_xb(), n * dim).reshape(n, dim)


def _atomic_write(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Store:
    def __init__(self, root: str | Path, embedder_name: str, dim: int, chunk_tokens: int, chunk_overlap: int):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest = self._check_manifest(embedder_name, dim, chunk_tokens, chunk_overlap)
        self.dim = dim
        self.db = sqlite3.connect(self.root / "archive.sqlite3", isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._derived: Derived | None = None

    # ------------------------------------------------------------ manifest

    @staticmethod
    def read_manifest(root: str | Path) -> dict | None:
        p = Path(root) / "manifest.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None

    def _check_manifest(self, embedder_name: str, dim: int, chunk_tokens: int, chunk_overlap: int) -> dict:
        found = self.read_manifest(self.root)
        if found is None:
            found = {"schema": SCHEMA_VERSION, "embedder": embedder_name, "dim": dim,
                     "chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap,
                     "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            _atomic_write(self.root / "manifest.json", json.dumps(found, ensure_ascii=False, indent=2))
        elif found.get("embedder") != embedder_name or found.get("dim") != dim:
            raise IndexMismatch(
                f"index {self.root} was built with embedder {found.get('embedder')!r} "
                f"(dimension {found.get('dim')}), not {embedder_name!r} (dimension {dim}); "
                f"open it with --embedder {found.get('embedder')} or use another --index")
        return found

    # ------------------------------------------------------------ writing

    @contextlib.contextmanager
    def writer(self) -> Iterator[None]:
        """One writer at a time across processes (an ingest and a UI upload, say)."""
        with open(self.root / "write.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES('generation', '1') "
                "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def put_article(self, art: dict, minhash: np.ndarray | None) -> None:
        cols = ARTICLE_COLUMNS + ("source_norm", "minhash")
        values = [art[c] for c in ARTICLE_COLUMNS] + [
            art["source_norm"], minhash.tobytes() if minhash is not None else None]
        self.db.execute(f"INSERT OR REPLACE INTO articles({','.join(cols)}) VALUES({','.join('?' * len(cols))})",
                        values)

    def put_chunks(self, article_id: str, rows: Iterable[tuple]) -> None:
        """rows: (seq, start, end, text, norm_hash, tokens, vector)."""
        self.db.executemany(
            'INSERT INTO chunks(article_id, seq, start, "end", text, norm_hash, tokens, vector) '
            "VALUES(?,?,?,?,?,?,?,?)",
            [(article_id, s, a, b, t, h, " ".join(tok), np.asarray(v, np.float32).tobytes())
             for s, a, b, t, h, tok, v in rows])

    def delete_article_rows(self, article_id: str) -> None:
        self.db.execute("DELETE FROM chunks WHERE article_id=?", (article_id,))
        self.db.execute("DELETE FROM articles WHERE id=?", (article_id,))

    def set_canonical(self, article_id: str, canonical_id: str | None) -> None:
        self.db.execute("UPDATE articles SET canonical_id=? WHERE id=?", (canonical_id, article_id))

    # ------------------------------------------------------------ reading

    def article(self, article_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM articles WHERE id=?", (article_id,)).fetchone()

    def ids_from_origin(self, origin: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM articles WHERE origin=?", (origin,))]

    def duplicates_of(self, article_id: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT id FROM articles WHERE canonical_id=? ORDER BY added_at, id", (article_id,))]

    def canonical_signatures(self) -> Iterator[tuple[str, np.ndarray]]:
        for aid, blob in self.db.execute(
                "SELECT id, minhash FROM articles WHERE canonical_id IS NULL AND minhash IS NOT NULL"):
            yield aid, np.frombuffer(blob, dtype=np.uint64)

    def cached_vectors(self, norm_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for these chunk texts: nothing is embedded twice."""
        out: dict[str, np.ndarray] = {}
        hashes = list(set(norm_hashes))
        for i in range(0, len(hashes), 500):
            part = hashes[i:i + 500]
            q = f"SELECT norm_hash, vector FROM chunks WHERE norm_hash IN ({','.join('?' * len(part))})"
            for h, blob in self.db.execute(q, part):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def chunk_rows(self, chunk_ids: Iterable[int]) -> dict[int, sqlite3.Row]:
        ids = list(chunk_ids)
        if not ids:
            return {}
        q = ('SELECT c.id AS chunk_id, c.article_id, c.seq, c.start, c."end", c.text, a.title, a.date, '
             "a.source, a.url FROM chunks c JOIN articles a ON a.id = c.article_id "
             f"WHERE c.id IN ({','.join('?' * len(ids))})")
        return {r["chunk_id"]: r for r in self.db.execute(q, ids)}

    @staticmethod
    def _article_filter(since: str | None, until: str | None, source_norm: str | None,
                        include_undated: bool = False) -> tuple[str, list]:
        where, args = [], []
        dated = []
        if since:
            dated.append("a.date >= ?")
            args.append(since)
        if until:
            dated.append("a.date <= ?")
            args.append(until)
        if dated:
            cond = " AND ".join(dated)
            where.append(f"(({cond}) OR a.date IS NULL)" if include_undated else cond)
        if source_norm:
            where.append("instr(a.source_norm, ?) > 0")
            args.append(source_norm)
        return (" WHERE " + " AND ".join(where) if where else ""), args

    def filtered_chunk_ids(self, since: str | None, until: str | None, source_norm: str | None,
                           include_undated: bool = False) -> np.ndarray:
        where, args = self._article_filter(since, until, source_norm, include_undated)
        q = "SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article_id" + where
        return np.fromiter((r[0] for r in self.db.execute(q, args)), dtype=np.int64)

    def articles_in(self, since: str | None, until: str | None, source_norm: str | None) -> list[sqlite3.Row]:
        """Every article of the period (near-duplicates included), oldest first."""
        where, args = self._article_filter(since, until, source_norm)
        q = ("SELECT a.id, a.title, a.date, a.source, a.text, a.canonical_id FROM articles a" + where
             + " ORDER BY a.date, a.id")
        return self.db.execute(q, args).fetchall()

    def article_vectors(self, ids: list[str]) -> np.ndarray:
        """One unit vector per article: the mean of its chunks' vectors."""
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        pos = {aid: i for i, aid in enumerate(ids)}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = f"SELECT article_id, vector FROM chunks WHERE article_id IN ({','.join('?' * len(part))})"
            for aid, blob in self.db.execute(q, part):
                out[pos[aid]] += np.frombuffer(blob, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)

    # ------------------------------------------------------------ derived indexes

    def derived(self) -> Derived | None:
        """FAISS + BM25 for the current generation: loaded, or rebuilt if stale."""
        gen = self.generation()
        if self._derived is not None and self._derived.generation == gen:
            return self._derived
        self._derived = self._load_derived(gen) or self._rebuild_derived(gen)
        return self._derived

    def _load_derived(self, gen: int) -> Derived | None:
        import bm25s
        import faiss

        folder = self.root / f"derived-{gen}"
        try:
            if (folder / "complete").read_text() != f"{gen} {DERIVED_FORMAT}":
                return None
        except OSError:
            return None
        try:
            ids = np.load(folder / "chunk_ids.npy")
            index = faiss.read_index(str(folder / "vectors.faiss"))
            bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False) if len(ids) else None
        except Exception:  # a damaged derived index is only a cache: rebuild it
            return None
        return Derived(gen, ids, index, bm25)

    def _rebuild_derived(self, gen: int) -> Derived:
        import bm25s
        import faiss

        ids, vecs, corpus = [], [], []
        for cid, tokens, blob in self.db.execute("SELECT id, tokens, vector FROM chunks ORDER BY id"):
            ids.append(cid)
            corpus.append(tokens.split(" ") if tokens else [])
            vecs.append(blob)
        chunk_ids = np.array(ids, dtype=np.int64)
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        bm25 = None
        if ids:
            index.add_with_ids(np.frombuffer(b"".join(vecs), dtype=np.float32).reshape(len(ids), self.dim), chunk_ids)
            bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
            bm25.index(corpus, show_progress=False)
        derived = Derived(gen, chunk_ids, index, bm25)
        try:
            self._save_derived(derived)
        except OSError:  # another process saved it first, or the disk is read-only: it is only a cache
            pass
        return derived

    def _save_derived(self, d: Derived) -> None:
        import faiss

        tmp = self.root / f".derived-{d.generation}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        np.save(tmp / "chunk_ids.npy", d.chunk_ids)
        faiss.write_index(d.faiss_index, str(tmp / "vectors.faiss"))
        if d.bm25 is not None:
            d.bm25.save(str(tmp / "bm25"), show_progress=False)
        (tmp / "complete").write_text(f"{d.generation} {DERIVED_FORMAT}")
        final = self.root / f"derived-{d.generation}"
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        for old in self.root.glob("derived-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        self.db.close()
