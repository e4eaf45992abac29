"""Segments: how a local search structure grows without ever being rebuilt whole.

Each commit's chunks become a new, immutable segment on disk; deletes become
tombstones (a sorted array of chunk ids) that searches skip. Segments of one
size tier (rows within a power of ten) are merged once ``MERGE_FACTOR`` of them
pile up, up to ``MAX_SEGMENT_ROWS`` rows, so a write costs what its batch costs
plus an amortised logarithmic share of merging, and a search visits a handful
of segments (Lucene's tiered merging, on a small scale).

``state.json`` names the segments, the tombstone file and the store generation
they represent. It is replaced atomically after the files it names are
written, so a crash at any moment leaves the previous state whole; the next
writer replays from SQLite what the crash lost. It also records each file's
size: a state whose files were truncated or removed, or that cannot be read
(or whose segments fail to load), counts as generation 0, so SQLite replays
everything: these files are only a cache of it.

Readers hold an immutable ``View``; a writer builds the next one and swaps the
reference, so a search never waits for a write.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .base import Changes, ChunkRecord, Filter, date_key

MERGE_FACTOR = 10
MAX_SEGMENT_ROWS = 200_000


def atomic_write_text(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk must not also keep half a file
            tmp.unlink()
        raise


def _fsync_files(paths: Iterable[Path]) -> None:
    """Make freshly written files durable before a state names them."""
    for p in paths:
        try:
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        except OSError:
            pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Segment:
    """Rows with their chunk ids, dates and sources; subclasses add what is searched."""

    def __init__(self, ids: np.ndarray, dates: np.ndarray, src_codes: np.ndarray, src_names: list[str]):
        self.ids = ids  # int64, ascending
        self.dates = dates  # int32 date_key
        self.src_codes = src_codes  # int32 index into src_names
        self.src_names = src_names

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def _meta_of(records: Sequence[ChunkRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        names: dict[str, int] = {}
        codes = np.array([names.setdefault(r.source_norm, len(names)) for r in records], dtype=np.int32)
        ids = np.array([r.id for r in records], dtype=np.int64)
        dates = np.array([date_key(r.date) for r in records], dtype=np.int32)
        return ids, dates, codes, list(names)

    @staticmethod
    def _merge_meta(parts: Sequence["Segment"], keeps: Sequence[np.ndarray]):
        """The kept rows of ``parts`` as one: (ids, dates, src_codes, src_names, order).

        Rows come out sorted by chunk id; ``order`` maps them to the concatenation of the
        kept rows, for the subclass to reorder its payload the same way.
        """
        names: dict[str, int] = {}
        codes = []
        for seg, keep in zip(parts, keeps):
            remap = np.array([names.setdefault(s, len(names)) for s in seg.src_names] or [0], dtype=np.int32)
            codes.append(remap[seg.src_codes[keep]])
        ids = np.concatenate([s.ids[k] for s, k in zip(parts, keeps)])
        dates = np.concatenate([s.dates[k] for s, k in zip(parts, keeps)])
        order = np.argsort(ids, kind="stable")
        return ids[order], dates[order], np.concatenate(codes)[order], list(names), order

    def allowed(self, where: Filter | None) -> np.ndarray | None:
        """Rows that pass the filter (None: every row)."""
        if where is None or where.empty:
            return None
        mask = np.ones(len(self.ids), dtype=bool)
        if where.since or where.until:
            lo, hi = date_key(where.since) or 0, date_key(where.until) or 99991231
            dated = (self.dates >= lo) & (self.dates <= hi) & (self.dates > 0)
            mask &= (dated | (self.dates == 0)) if where.include_undated else dated
        if where.source:
            ok = [i for i, s in enumerate(self.src_names) if where.source in s]
            mask &= np.isin(self.src_codes, np.array(ok, dtype=np.int32))
        return mask

    def _save_meta(self, base: Path) -> None:
        with open(base.with_suffix(".meta.npz"), "wb") as f:
            np.savez(f, ids=self.ids, dates=self.dates, src_codes=self.src_codes)
        base.with_suffix(".sources.json").write_text(json.dumps(self.src_names, ensure_ascii=False),
                                                     encoding="utf-8")

    @staticmethod
    def _load_meta(base: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        with np.load(base.with_suffix(".meta.npz")) as z:
            ids, dates, codes = z["ids"], z["dates"], z["src_codes"]
        names = json.loads(base.with_suffix(".sources.json").read_text(encoding="utf-8"))
        return ids, dates, codes, names

    # --- what each kind of segment provides
    @classmethod
    def build(cls, records: Sequence[ChunkRecord], options: dict) -> "Segment":
        raise NotImplementedError

    @classmethod
    def merge(cls, parts: Sequence["Segment"], keeps: Sequence[np.ndarray], options: dict) -> "Segment":
        raise NotImplementedError

    def save(self, base: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, base: Path, options: dict) -> "Segment":
        raise NotImplementedError

    @staticmethod
    def files(base: Path) -> list[Path]:
        return [base.with_suffix(s) for s in (".meta.npz", ".sources.json")]


def _dead_rows(ids: np.ndarray, deleted: np.ndarray) -> np.ndarray | None:
    """Rows of a segment (ids ascending) whose chunk was deleted; None when none was."""
    if not len(deleted) or not len(ids):
        return None
    lo, hi = np.searchsorted(deleted, ids[0], "left"), np.searchsorted(deleted, ids[-1], "right")
    if lo == hi:
        return None
    dead = np.isin(ids, deleted[lo:hi])
    return dead if dead.any() else None


@dataclass
class View:
    """One consistent state: the generation, its segments and their tombstones."""

    generation: int
    names: list[str]
    segments: list[Segment]
    deleted: np.ndarray  # sorted chunk ids
    dead: list[np.ndarray | None] = field(default_factory=list)  # per segment: rows deleted

    def __post_init__(self):
        if not self.dead:
            self.dead = [_dead_rows(s.ids, self.deleted) for s in self.segments]

    def count(self) -> int:
        return sum(len(s) - (0 if d is None else int(d.sum())) for s, d in zip(self.segments, self.dead))

    def live(self, i: int, where: Filter | None) -> np.ndarray | None:
        """Rows of segment ``i`` that are alive and pass ``where`` (None: all rows)."""
        mask = self.segments[i].allowed(where)
        dead = self.dead[i]
        if dead is None:
            return mask
        return ~dead if mask is None else mask & ~dead

    def rows_of(self, i: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which of ``ids`` are alive in segment ``i``, their rows there)."""
        seg = self.segments[i]
        if not len(seg.ids):
            return np.zeros(len(ids), bool), np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(seg.ids, ids), len(seg.ids) - 1)
        hit = seg.ids[pos] == ids
        if self.dead[i] is not None:
            hit &= ~self.dead[i][pos]
        return hit, pos[hit]


def _tier(rows: int) -> int:
    return int(math.log10(max(rows, 1)))


def _fitting(tier: list[str], rows: dict[str, int]) -> list[str] | None:
    """The segments of a full tier to merge: the smallest, as many as stay within MAX_SEGMENT_ROWS.

    Ten segments of 20,001 rows must still merge (nine of them), or a tier would grow
    without bound.
    """
    if len(tier) < MERGE_FACTOR:
        return None
    chosen, total = [], 0
    for n in sorted(tier, key=lambda n: rows[n])[:MERGE_FACTOR]:
        if total + rows[n] <= MAX_SEGMENT_ROWS:
            chosen.append(n)
            total += rows[n]
    return chosen if len(chosen) >= 2 else None


class SegmentedIndex:
    """A folder of segments of one kind, with the store generation it has applied."""

    FORMAT = 1
    kind = ""
    replays_in_memory = True  # a reader behind the store catches up in this process's view
    uses_term_stats = False  # the segments hold their own

    def __init__(self, folder: str | Path, segment_cls: type[Segment], options: dict | None = None,
                 tag: str = ""):
        self.folder = Path(folder)
        self.segment_cls = segment_cls
        self.options = dict(options or {})
        self.tag = tag  # what else must match for saved segments to be used (e.g. BM25 parameters)
        self._view: View | None = None
        self._stat_cache: tuple | None = None

    # ------------------------------------------------------------ state on disk
    @staticmethod
    def _empty(nxt: int = 1) -> dict:
        return {"generation": 0, "segments": [], "deleted": None, "next": nxt}

    def _state_key(self) -> tuple | None:
        """The stat of state.json (None when there is none): a state is replaced, never edited."""
        try:
            st = os.stat(self.folder / "state.json")
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _state(self) -> dict:
        key = self._state_key()
        if key is None:
            return self._empty()
        if self._stat_cache and self._stat_cache[0] == key:  # every search asks
            return self._stat_cache[1]
        state = self._read_state()
        self._stat_cache = (key, state)
        return state

    def _read_state(self) -> dict:
        try:
            state = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
            if not isinstance(state, dict):
                raise ValueError("not a state")
        except (OSError, ValueError):  # damaged: SQLite replays it
            return self._empty(self._next_free())
        if state.get("format") != self.FORMAT or state.get("tag") != self.tag:
            return self._empty(state.get("next", 1))  # built another way: replay from scratch
        if not self._files_intact(state):
            return self._empty(max(state.get("next", 1), self._next_free()))
        return state

    def _files_intact(self, state: dict) -> bool:
        """Whether every file the state names still has the size it was written with."""
        for name, size in (state.get("files") or {}).items():  # a state of an older release has none
            try:
                if os.stat(self.folder / name).st_size != size:
                    return False
            except OSError:
                return False
        return True

    def _next_free(self) -> int:
        """After a state was lost: a number above every segment file left, so no name is reused
        (a reader holding an old segment of that name would take the new one for it)."""
        top = 0
        with contextlib.suppress(OSError):
            for p in self.folder.iterdir():
                if m := re.match(r"s(\d{8})\.", p.name):
                    top = max(top, int(m.group(1)))
        return top + 1

    def _mark_damaged(self) -> None:
        """The current state's files do not load: read it as empty until a writer replaces it."""
        key = self._state_key()
        if key is not None:
            self._stat_cache = (key, self._empty(self._next_free()))

    def _load_deleted(self, state: dict) -> np.ndarray:
        if not state.get("deleted"):
            return np.zeros(0, np.int64)
        return np.load(self.folder / state["deleted"])

    def saved_generation(self) -> int:
        return self._state()["generation"]

    def generation(self) -> int:
        """The generation of the freshest state this process can see (its view, or the disk).

        It loads that state, so a reader learns here, not in its search, that the files are
        damaged (generation 0) and replays what they held."""
        return self.view().generation

    def view(self) -> View:
        """The freshest state (segments already in memory are reused)."""
        for _ in range(3):
            state = self._state()
            if self._view is not None and self._view.generation >= state["generation"]:
                return self._view
            have = dict(zip(self._view.names, self._view.segments)) if self._view else {}
            try:
                segs = [have.get(n) or self.segment_cls.load(self.folder / n, self.options)
                        for n in state["segments"]]
                deleted = self._load_deleted(state)
            except Exception:  # noqa: BLE001  (FAISS, numpy and zipfile each fail in their own way)
                continue  # a writer replaced the state while we read it: read the new one
            self._view = View(state["generation"], list(state["segments"]), segs, deleted)
            return self._view
        # Still unreadable: a damaged file is only a cache of SQLite; the caller replays.
        self._mark_damaged()
        self._view = View(0, [], [], np.zeros(0, np.int64))
        return self._view

    def ids(self) -> np.ndarray:
        view = self.view()
        parts = [s.ids if d is None else s.ids[~d] for s, d in zip(view.segments, view.dead)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def reset(self) -> None:
        """An empty state at generation 0 (segment numbers keep counting up); the files go."""
        nxt = max(self._state().get("next", 1), self._next_free())
        self.folder.mkdir(parents=True, exist_ok=True)
        state = dict(self._empty(nxt), format=self.FORMAT, tag=self.tag)
        atomic_write_text(self.folder / "state.json", json.dumps(state))
        self._sweep(state)
        self._view = None

    def count(self) -> int:
        return self.view().count()

    def close(self) -> None:
        self._view = None  # segments are plain memory: dropping the view frees them

    # ------------------------------------------------------------ writing
    def apply(self, changes: Changes, persist: bool = True) -> None:
        """Add the changes' chunks as new segments, tombstone their deletes, merge, save the state.

        With ``persist`` (the writer, holding the write lock) the changes must follow the
        generation on disk. Without it (a reader catching up while a writer is busy or
        gone) they follow this process's view and change only that view.
        """
        view = self._view
        if persist:
            state = self._state()
            names, deleted, nxt = list(state["segments"]), self._load_deleted(state), state.get("next", 1)
            # Segments are immutable and their names never reused: what is loaded is current.
            segs = dict(zip(view.names, view.segments)) if view else {}
        else:
            view = self.view()
            names, deleted, nxt = list(view.names), view.deleted, 1
            segs = dict(zip(view.names, view.segments))
        prefix = "s" if persist else f"m{changes.generation}-"  # in-memory names never meet saved ones
        written: list[Path] = []

        def add(seg: Segment) -> str:
            nonlocal nxt
            name = f"{prefix}{nxt:08d}"
            nxt += 1
            segs[name] = seg
            if persist:
                seg.save(self.folder / name)
                written.extend(self.segment_cls.files(self.folder / name))
            return name

        if persist:
            self.folder.mkdir(parents=True, exist_ok=True)
        # Rows gather up to a full segment: a replay from SQLite arrives in reading batches, and a
        # segment per batch would build every graph twice (once small, again when merged).
        pending: list[ChunkRecord] = []
        for batch in changes.upserts:
            pending.extend(batch)
            while len(pending) >= MAX_SEGMENT_ROWS:
                names.append(add(self.segment_cls.build(pending[:MAX_SEGMENT_ROWS], self.options)))
                del pending[:MAX_SEGMENT_ROWS]
        if pending:
            names.append(add(self.segment_cls.build(pending, self.options)))
        if len(changes.deletes):
            deleted = np.union1d(deleted, np.asarray(changes.deletes, dtype=np.int64))
        if persist:  # merging is the writer's work; a reader's catch-up stays small
            names, deleted = self._merge(names, segs, deleted, add)
            state = {"format": self.FORMAT, "tag": self.tag, "generation": changes.generation,
                     "segments": names, "deleted": None, "next": nxt}
            if len(deleted):
                state["deleted"] = f"deleted-{changes.generation}.npy"
                with open(self.folder / state["deleted"], "wb") as f:
                    np.save(f, deleted)
                written.append(self.folder / state["deleted"])
            state["files"] = self._sizes(state)
            _fsync_files(written)
            _fsync_dir(self.folder)
            atomic_write_text(self.folder / "state.json", json.dumps(state))
            self._sweep(state)
        # A loaded view moves on (an unloaded one loads lazily); a slower thread never moves it back.
        if (self._view is not None or not persist) and (self._view is None
                                                        or changes.generation >= self._view.generation):
            self._view = View(changes.generation, names, [self._loaded(n, segs) for n in names], deleted)

    def _sizes(self, state: dict) -> dict[str, int]:
        """Each file the state names, with its size: how a later open tells a truncated one."""
        paths = [p for n in state["segments"] for p in self.segment_cls.files(self.folder / n)]
        if state["deleted"]:
            paths.append(self.folder / state["deleted"])
        return {p.name: p.stat().st_size for p in paths}

    def _merge(self, names: list[str], segs: dict[str, Segment], deleted: np.ndarray,
               add: Callable[[Segment], str]) -> tuple[list[str], np.ndarray]:
        """Merge a tier once it holds MERGE_FACTOR segments, dropping deleted rows."""
        while True:
            rows = {n: self._rows(n, segs) for n in names}
            tiers: dict[int, list[str]] = {}
            for n in names:
                tiers.setdefault(_tier(rows[n]), []).append(n)
            group = next((g for g in map(lambda t: _fitting(tiers[t], rows), sorted(tiers))
                          if g is not None), None)
            if group is None:
                return names, deleted
            parts = [self._loaded(n, segs) for n in group]
            keeps = [np.ones(len(p), bool) if (d := _dead_rows(p.ids, deleted)) is None else ~d for p in parts]
            merged = self.segment_cls.merge(parts, keeps, self.options)
            gone = np.concatenate([p.ids[~k] for p, k in zip(parts, keeps)])
            deleted = np.setdiff1d(deleted, gone, assume_unique=True)
            for n in group:
                segs.pop(n, None)
            at = names.index(group[0])
            names = [n for n in names if n not in group]
            names.insert(at, add(merged))

    def _rows(self, name: str, segs: dict[str, Segment]) -> int:
        if name in segs:
            return len(segs[name])
        with np.load((self.folder / name).with_suffix(".meta.npz")) as z:
            return len(z["ids"])

    def _loaded(self, name: str, segs: dict[str, Segment]) -> Segment:
        if name not in segs:
            segs[name] = self.segment_cls.load(self.folder / name, self.options)
        return segs[name]

    def _sweep(self, state: dict) -> None:
        """Remove files no state names any more (merged segments, old tombstones, a crash's leftovers)."""
        keep = {"state.json"} | ({state["deleted"]} if state["deleted"] else set())
        for n in state["segments"]:
            keep |= {p.name for p in self.segment_cls.files(self.folder / n)}
        for p in self.folder.iterdir():
            if p.name not in keep:
                try:
                    p.unlink()
                except OSError:
                    pass
