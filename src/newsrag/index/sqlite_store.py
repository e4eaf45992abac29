"""The truth: articles and chunks in one SQLite file, with a generation per commit.

Each ingest batch is one transaction that bumps ``meta.generation``; the chunks
it adds carry that generation and the chunks it removes leave a tombstone with
it. A search structure that is behind replays ``changes_since(its generation)``
instead of rebuilding, so a crash between a commit and the index update loses
nothing. The near-duplicate LSH lives here too (band keys in a table), so
finding the copies of one article is a few index lookups at any archive size.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .. import dedup
from .base import Changes, ChunkRecord
from .segments import atomic_write_text
from . import storage

SCHEMA_VERSION = 2
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
  tokens TEXT NOT NULL, vector BLOB NOT NULL, gen INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(norm_hash);
"""
# Added by schema 2 (an index of schema 1 gets them in place when it is opened).
_SCHEMA_2 = """
CREATE INDEX IF NOT EXISTS chunks_gen ON chunks(gen);
CREATE TABLE IF NOT EXISTS tombstones(chunk_id INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_gen ON tombstones(gen);
CREATE TABLE IF NOT EXISTS lsh(key INTEGER NOT NULL, article_id TEXT NOT NULL, PRIMARY KEY(key, article_id))
  WITHOUT ROWID;
"""
# Document frequencies of the live chunks' tokens, for a backend whose own BM25 statistics are
# not the local index's (Milvus). Counted once by the first writer that opens such a backend
# (``count_terms``), then kept by every write in its own transaction; meta ``terms`` = "1" says so.
_TERMS = "CREATE TABLE IF NOT EXISTS terms(token TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID"
ARTICLE_COLUMNS = ("id", "title", "date", "source", "url", "author", "text", "raw", "meta", "origin",
                   "content_hash", "canonical_id", "added_at")
REPLAY_BATCH = 50_000


def _split(tokens: str) -> list[str]:
    """A chunk's BM25 tokens as stored (joined by spaces)."""
    return tokens.split(" ") if tokens else []


def _tally(token_lists: Iterable[list[str]]) -> tuple[int, Counter, int]:
    """(chunks, chunks holding each token, tokens in all)."""
    df: Counter = Counter()
    chunks = length = 0
    for tokens in token_lists:
        df.update(set(tokens))
        chunks, length = chunks + 1, length + len(tokens)
    return chunks, df, length


class IndexMismatch(RuntimeError):
    """The index was built with another embedder (or backend) than the one asked for."""


def mismatch(root: str | Path, manifest: dict, what: str, wanted: str) -> IndexMismatch:
    """The one-line error for opening an index with another embedder or backend than its own."""
    have = manifest.get(what, "local")
    dim = f" (dimension {manifest.get('dim')})" if what == "embedder" else ""
    return IndexMismatch(f"index {root} was built with {what} {have!r}{dim}, not {wanted!r}; "
                         f"open it with --{what} {have} or use another --index")


def read_manifest(root: str | Path) -> dict | None:
    p = Path(root) / "manifest.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


class SQLiteStore:
    """Articles, chunks, near-duplicate links and the change log, in ``archive.sqlite3``."""

    def __init__(self, root: str | Path, read_only: bool = False):
        self.root = Path(root)
        self.read_only = read_only  # no writes at all: not even the lock file or the WAL's index
        # A connection per thread: with WAL, readers see the last commit while a writer works.
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._gen: int | None = None  # the generation the open transaction will commit (one writer at a time)
        self._terms = False  # whether the open transaction keeps the document frequencies
        self._scanned: tuple[int, Counter, int] | None = None  # (chunks, df, tokens) of an uncounted read-only index
        if not self._current():
            if read_only:
                raise storage.read_only(self.root)
            # Only a new or older index takes the write lock here: readers never wait for an ingest.
            with self.writer():
                self.db.executescript(_SCHEMA)
                if "gen" not in self._columns("chunks"):
                    self._migrate_1_to_2()
                self.db.executescript(_SCHEMA_2)

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect_read_only() if self.read_only else self._connect("")
            if not self.read_only:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def _connect(self, mode: str) -> sqlite3.Connection:
        path = self.root / "archive.sqlite3"
        if mode:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, isolation_level=None,
                                 check_same_thread=False, timeout=30)
        else:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def _connect_read_only(self) -> sqlite3.Connection:
        """A connection that writes nothing. Without a WAL file every commit is in the database
        file, and ``immutable=1`` reads it creating no file at all; with one (a writer crashed or
        is at work), ``mode=ro`` reads the WAL too, but it needs the WAL's shared-memory file,
        which it may not be able to create: then the database file alone is what there is."""
        if (self.root / "archive.sqlite3-wal").exists():
            db = self._connect("mode=ro")
            try:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return db
            except sqlite3.OperationalError:
                db.close()
        return self._connect("immutable=1")

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}

    def _current(self) -> bool:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {"articles", "chunks", "meta", "tombstones", "lsh"} <= tables and "gen" in self._columns("chunks")

    def _migrate_1_to_2(self) -> None:
        """Schema 1 had no change log and kept its LSH in memory: add both, in one transaction.

        Chunks of schema 1 read as generation 1, so a search structure that starts from
        nothing replays them all.
        """
        with self._immediate():
            self.db.execute("ALTER TABLE chunks ADD COLUMN gen INTEGER NOT NULL DEFAULT 1")
            for stmt in filter(str.strip, _SCHEMA_2.split(";")):
                self.db.execute(stmt)
            for aid, blob in self.db.execute(
                    "SELECT id, minhash FROM articles WHERE canonical_id IS NULL AND minhash IS NOT NULL").fetchall():
                self._lsh_add(aid, np.frombuffer(blob, dtype=np.uint64))
        for old in self.root.glob("derived-*"):  # schema 1's search structures; the new ones replay
            shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------ manifest

    def check_manifest(self, wanted: dict) -> dict:
        """The index's manifest; written from ``wanted`` when new. Embedder and backend must match."""
        on_disk = read_manifest(self.root)
        found = on_disk or dict(wanted, schema=SCHEMA_VERSION, created=time.strftime("%Y-%m-%dT%H:%M:%S"))
        for key, what in (("embedder", "embedder"), ("dim", "embedder"), ("backend", "backend")):
            if found.get(key, "local" if key == "backend" else None) != wanted[key]:
                raise mismatch(self.root, found, what, wanted[what])
        if found.get("schema") != SCHEMA_VERSION or "backend" not in found:
            found = dict(found, schema=SCHEMA_VERSION, backend=found.get("backend", "local"))
        if on_disk != found and not self.read_only:
            atomic_write_text(self.root / "manifest.json", json.dumps(found, ensure_ascii=False, indent=2))
        self.manifest = found
        return found

    # ------------------------------------------------------------ writing

    @contextlib.contextmanager
    def writer(self, blocking: bool = True) -> Iterator[bool]:
        """One writer at a time across processes (an ingest and a UI upload, say).

        Yields whether this caller holds the lock (always, when ``blocking``).
        """
        if self.read_only:
            raise storage.read_only(self.root)
        with open(self.root / "write.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[None]:
        """One write transaction: committed when the block ends, rolled back when it raises."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write that makes a new generation."""
        try:
            with self._immediate():
                self._gen = self.generation() + 1
                self._terms = self._meta("terms") == "1"
                yield self.db
                self.db.execute("INSERT INTO meta(key, value) VALUES('generation', ?) "
                                "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(self._gen),))
        finally:
            self._gen, self._terms = None, False

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def generation(self) -> int:
        return int(self._meta("generation") or 0)

    def put_article(self, art: dict, minhash: np.ndarray | None) -> None:
        cols = ARTICLE_COLUMNS + ("source_norm", "minhash")
        values = [art[c] for c in ARTICLE_COLUMNS] + [
            art["source_norm"], minhash.tobytes() if minhash is not None else None]
        self.db.execute(f"INSERT INTO articles({','.join(cols)}) VALUES({','.join('?' * len(cols))})", values)
        if art["canonical_id"] is None and minhash is not None:
            self._lsh_add(art["id"], minhash)

    def put_chunks(self, article_id: str, rows: Iterable[tuple]) -> None:
        """rows: (seq, start, end, text, norm_hash, tokens, vector)."""
        rows = list(rows)
        self.db.executemany(
            'INSERT INTO chunks(article_id, seq, start, "end", text, norm_hash, tokens, vector, gen) '
            "VALUES(?,?,?,?,?,?,?,?,?)",
            [(article_id, s, a, b, t, h, " ".join(tok), np.asarray(v, np.float32).tobytes(), self._gen)
             for s, a, b, t, h, tok, v in rows])
        self._count([r[5] for r in rows], +1)

    def _count(self, token_lists: Iterable[list[str]], sign: int) -> None:
        """Add (+1) or take away (-1) chunks from the document frequencies, when they are kept."""
        if not self._terms:
            return
        chunks, df, length = _tally(token_lists)
        self.db.executemany("INSERT INTO terms(token, df) VALUES(?, ?) "
                            "ON CONFLICT(token) DO UPDATE SET df = df + excluded.df",
                            [(t, sign * n) for t, n in df.items()])
        self.db.executemany("UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = ?",
                            [(sign * chunks, "terms_chunks"), (sign * length, "terms_tokens")])

    def count_terms(self) -> None:
        """Count every chunk's tokens once, if nobody has (under the write lock; no new generation)."""
        if self._meta("terms") == "1":
            return
        try:
            with self._immediate():
                self.db.execute(_TERMS)
                self.db.execute("DELETE FROM terms")
                self.db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)",
                                    [("terms_chunks", "0"), ("terms_tokens", "0"), ("terms", "1")])
                self._terms = True
                cur = self.db.execute("SELECT tokens FROM chunks")
                while rows := cur.fetchmany(REPLAY_BATCH):
                    self._count((_split(r[0]) for r in rows), +1)
        finally:
            self._terms = False

    def delete_article_rows(self, article_id: str) -> None:
        if self._terms:  # taken away from the document frequencies before the chunks go
            self._count([_split(r[0]) for r in self.db.execute(
                "SELECT tokens FROM chunks WHERE article_id=?", (article_id,)).fetchall()], -1)
        self.db.execute("INSERT OR REPLACE INTO tombstones(chunk_id, gen) SELECT id, ? FROM chunks "
                        "WHERE article_id=?", (self._gen, article_id))
        self.db.execute("DELETE FROM chunks WHERE article_id=?", (article_id,))
        self._lsh_remove(article_id)
        self.db.execute("DELETE FROM articles WHERE id=?", (article_id,))

    def set_canonical(self, article_id: str, canonical_id: str | None) -> None:
        self._lsh_remove(article_id)
        self.db.execute("UPDATE articles SET canonical_id=? WHERE id=?", (canonical_id, article_id))
        if canonical_id is None:
            row = self.db.execute("SELECT minhash FROM articles WHERE id=?", (article_id,)).fetchone()
            if row and row[0] is not None:
                self._lsh_add(article_id, np.frombuffer(row[0], dtype=np.uint64))

    def drop_chunks(self, chunk_ids: Iterable[int]) -> None:
        """Remove chunks (leaving tombstones) whatever their article: ``check --repair`` of strays."""
        rows = [(int(i), self._gen) for i in chunk_ids]
        if self._terms:
            self._count(list(self.chunk_tokens(i for i, _ in rows).values()), -1)
        self.db.executemany("INSERT OR REPLACE INTO tombstones(chunk_id, gen) VALUES(?, ?)", rows)
        self.db.executemany("DELETE FROM chunks WHERE id=?", [(i,) for i, _ in rows])

    def rebuild_lsh(self) -> None:
        """Band keys again from the stored signatures of the canonical articles (inside a transaction)."""
        self.db.execute("DELETE FROM lsh")
        for aid, sig in self.canonical_signatures():
            self._lsh_add(aid, sig)

    def _lsh_add(self, article_id: str, sig: np.ndarray) -> None:
        self.db.executemany("INSERT OR IGNORE INTO lsh(key, article_id) VALUES(?, ?)",
                            [(k, article_id) for k in dedup.band_keys(sig)])

    def _lsh_remove(self, article_id: str) -> None:
        row = self.db.execute("SELECT minhash FROM articles WHERE id=?", (article_id,)).fetchone()
        if row and row[0] is not None:
            self.db.executemany("DELETE FROM lsh WHERE key=? AND article_id=?",
                                [(k, article_id) for k in dedup.band_keys(np.frombuffer(row[0], np.uint64))])

    # ------------------------------------------------------------ the change log

    def changes_since(self, generation: int) -> Changes:
        """Chunks added and removed after ``generation``, up to the current one."""
        now = self.generation()

        def upserts() -> Iterator[list[ChunkRecord]]:
            cur = self.db.execute(
                "SELECT c.id, c.tokens, c.vector, a.date, a.source_norm FROM chunks c "
                "JOIN articles a ON a.id = c.article_id WHERE c.gen > ? AND c.gen <= ? ORDER BY c.id",
                (generation, now))
            while rows := cur.fetchmany(REPLAY_BATCH):
                yield [ChunkRecord(r[0], _split(r[1]), np.frombuffer(r[2], np.float32),
                                   r[3], r[4]) for r in rows]

        deletes = np.fromiter((r[0] for r in self.db.execute(
            "SELECT chunk_id FROM tombstones WHERE gen > ? AND gen <= ?", (generation, now))), dtype=np.int64)
        return Changes(now, upserts(), deletes)

    # ------------------------------------------------------------ consistency (``newsrag check``)

    def live_chunk_ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self.db.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64)

    def canonical_signatures(self) -> Iterator[tuple[str, np.ndarray]]:
        for aid, blob in self.db.execute(
                "SELECT id, minhash FROM articles WHERE canonical_id IS NULL AND minhash IS NOT NULL"):
            yield aid, np.frombuffer(blob, dtype=np.uint64)

    def lsh_rows(self) -> set[tuple[int, str]]:
        return {(k, a) for k, a in self.db.execute("SELECT key, article_id FROM lsh")}

    def link_problems(self) -> dict[str, list]:
        """What SQLite says about itself: articles and chunks that contradict each other."""
        q = lambda sql: [tuple(r) if len(r) > 1 else r[0] for r in self.db.execute(sql)]  # noqa: E731
        return {
            # (duplicate, its canonical_id) where that is no canonical article
            "dangling": q("SELECT a.id, a.canonical_id FROM articles a LEFT JOIN articles c ON c.id = a.canonical_id "
                          "WHERE a.canonical_id IS NOT NULL AND (c.id IS NULL OR c.canonical_id IS NOT NULL) "
                          "ORDER BY a.added_at, a.id"),
            "without_chunks": q("SELECT id FROM articles a WHERE canonical_id IS NULL AND NOT EXISTS "
                                "(SELECT 1 FROM chunks c WHERE c.article_id = a.id) ORDER BY id"),
            "duplicate_chunks": q("SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article_id "
                                  "WHERE a.canonical_id IS NOT NULL ORDER BY c.id"),
            "orphan_chunks": q("SELECT id FROM chunks c WHERE NOT EXISTS "
                               "(SELECT 1 FROM articles a WHERE a.id = c.article_id) ORDER BY id"),
        }

    # ------------------------------------------------------------ reading

    def article(self, article_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM articles WHERE id=?", (article_id,)).fetchone()

    def ids_from_origin(self, origin: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM articles WHERE origin=?", (origin,))]

    def duplicates_of(self, article_id: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT id FROM articles WHERE canonical_id=? ORDER BY added_at, id", (article_id,))]

    def lsh_candidates(self, keys: list[int]) -> dict[str, np.ndarray]:
        """Canonical articles sharing an LSH band with these keys, with their signatures."""
        if not keys:
            return {}
        q = ("SELECT DISTINCT a.id, a.minhash FROM lsh l JOIN articles a ON a.id = l.article_id "
             f"WHERE l.key IN ({','.join('?' * len(keys))}) AND a.canonical_id IS NULL")
        return {aid: np.frombuffer(blob, dtype=np.uint64) for aid, blob in self.db.execute(q, keys)}

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

    def term_stats(self, tokens: Iterable[str]) -> tuple[int, float, dict[str, int]]:
        """(live chunks, their average length in tokens, document frequency of each of ``tokens``)."""
        tokens = sorted(set(tokens))
        if self._meta("terms") != "1":
            return self._scan_terms(tokens)
        snapshot = not self.db.in_transaction  # one snapshot: a writer may commit between the statements
        if snapshot:
            self.db.execute("BEGIN")
        try:
            chunks, length = (int(self._meta(k) or 0) for k in ("terms_chunks", "terms_tokens"))
            df = {t: n for t, n in self.db.execute(
                f"SELECT token, df FROM terms WHERE token IN ({','.join('?' * len(tokens))}) AND df > 0", tokens)}
        finally:
            if snapshot:
                self.db.execute("COMMIT")
        return chunks, length / max(chunks, 1), df

    def _scan_terms(self, tokens: list[str]) -> tuple[int, float, dict[str, int]]:
        """``term_stats`` before a writer has counted them (an index made before they were kept, opened
        read-only): one scan, kept for this process."""
        if self._scanned is None:
            self._scanned = _tally(_split(r[0]) for r in self.db.execute("SELECT tokens FROM chunks"))
        chunks, df, length = self._scanned
        return chunks, length / max(chunks, 1), {t: df[t] for t in tokens if df[t] > 0}

    def chunk_tokens(self, chunk_ids: Iterable[int]) -> dict[int, list[str]]:
        ids = [int(i) for i in chunk_ids]
        out: dict[int, list[str]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            out.update((r[0], _split(r[1])) for r in self.db.execute(
                f"SELECT id, tokens FROM chunks WHERE id IN ({','.join('?' * len(part))})", part))
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
    def _article_filter(since: str | None, until: str | None, source_norm: str | None) -> tuple[str, list]:
        where, args = [], []
        if since:
            where.append("a.date >= ?")
            args.append(since)
        if until:
            where.append("a.date <= ?")
            args.append(until)
        if source_norm:
            where.append("instr(a.source_norm, ?) > 0")
            args.append(source_norm)
        return (" WHERE " + " AND ".join(where) if where else ""), args

    def articles_in(self, since: str | None, until: str | None, source_norm: str | None) -> list[sqlite3.Row]:
        """Every article of the period (near-duplicates included), oldest first."""
        where, args = self._article_filter(since, until, source_norm)
        q = ("SELECT a.id, a.title, a.date, a.source, a.text, a.canonical_id FROM articles a" + where
             + " ORDER BY a.date, a.id")
        return self.db.execute(q, args).fetchall()

    def article_vectors(self, ids: list[str], dim: int) -> np.ndarray:
        """One unit vector per article: the mean of its chunks' vectors."""
        out = np.zeros((len(ids), dim), dtype=np.float32)
        pos = {aid: i for i, aid in enumerate(ids)}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = f"SELECT article_id, vector FROM chunks WHERE article_id IN ({','.join('?' * len(part))})"
            for aid, blob in self.db.execute(q, part):
                out[pos[aid]] += np.frombuffer(blob, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)

    def list_articles(self) -> Iterator[sqlite3.Row]:
        """Newest first."""
        return self.db.execute("SELECT id, title, date, source, canonical_id FROM articles ORDER BY date DESC, id")

    def sources(self) -> tuple[dict[str, str], Counter]:
        """(normalized source -> its most frequent spelling, articles per normalized source):
        临江晚报 and 臨江晚報 are one source, shown as most of its articles write it."""
        names, counts = {}, Counter()
        for norm, source, n in self.db.execute(
                "SELECT source_norm, source, count(*) FROM articles GROUP BY source_norm, source "
                "ORDER BY count(*) DESC, source"):
            names.setdefault(norm, source)
            counts[norm] += n
        return names, counts

    def coverage(self) -> list[dict]:
        """Articles per month and source (sources merged across scripts)."""
        names, _ = self.sources()
        return [{"month": month, "source": names[norm], "articles": n} for month, norm, n in self.db.execute(
            "SELECT substr(date, 1, 7) AS month, source_norm, count(*) FROM articles "
            "WHERE date IS NOT NULL GROUP BY month, source_norm ORDER BY month, source_norm")]

    def counts(self) -> dict:
        one = lambda q: self.db.execute(q).fetchone()[0]  # noqa: E731
        first, last = self.db.execute("SELECT min(date), max(date) FROM articles").fetchone()
        names, per_source = self.sources()
        return {
            "articles": one("SELECT count(*) FROM articles"),
            "duplicates": one("SELECT count(*) FROM articles WHERE canonical_id IS NOT NULL"),
            "chunks": one("SELECT count(*) FROM chunks"),
            "undated": one("SELECT count(*) FROM articles WHERE date IS NULL"),
            "first_date": first,
            "last_date": last,
            "sources": {names[norm] or "(unknown)": n for norm, n in per_source.most_common()},
        }

    def close(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
