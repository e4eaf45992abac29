"""Optional reranking: a cross-encoder reads the question with each top candidate and re-orders them.

Off unless the ``rerank`` setting names a sentence-transformers ``CrossEncoder`` by hub id
or local folder (e.g. ``BAAI/bge-reranker-base``). It is a choice made at query time: the
index records nothing about it. A model is loaded once per process, on first use, and
shared by every Archive and thread that names it.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from .text import one_line

# Candidates one query re-scores. A cross-encoder reads each of them whole with the
# question (a base-size model: tens of milliseconds apiece on a laptop CPU), so this,
# not the archive's size, is what reranking costs.
DEPTH = 20
_OFF = ("", "none", "off")


class RerankerError(RuntimeError):
    """A reranker that cannot be used: a bad path or id, or a model that is no cross-encoder."""


class Reranker:
    def __init__(self, model: str, device: str | None = None, batch_size: int = 32):
        path = Path(model).expanduser()
        # A local folder is known by its absolute path, so two spellings share one model.
        self.name = str(path.resolve()) if path.exists() else model
        self.device, self.batch_size = device or None, batch_size
        self._model = None
        self._failure: RerankerError | None = None
        # One lock for loading and scoring: a fast tokenizer shared by threads fails
        # ("Already borrowed") when two calls set its truncation at once, and one
        # forward pass already keeps every core of a CPU busy.
        self._lock = threading.Lock()

    def _load(self):
        from sentence_transformers import CrossEncoder

        try:
            model = CrossEncoder(self.name, device=self.device)
        except Exception as e:  # the library raises many types for "not found" and "not a model"
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RerankerError(f"cannot load reranker {self.name!r}: {one_line(why, 300)}") from e
        architectures = getattr(model.config, "architectures", None) or []
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            # CrossEncoder would add an untrained scoring head to it and rank at random.
            raise RerankerError(f"reranker {self.name!r} is not a cross-encoder (its model has no trained "
                                f"scoring head: {', '.join(architectures) or 'no architecture'})")
        return model

    def load(self) -> "Reranker":
        """Load the model now (else it loads on the first query); RerankerError if it cannot be."""
        with self._lock:
            self._loaded()
        return self

    def _loaded(self):
        if self._model is None:
            if self._failure is None:  # a failed load is not retried on every query
                try:
                    self._model = self._load()
                except RerankerError as e:
                    self._failure = e
            if self._failure is not None:
                raise self._failure
        return self._model

    def scores(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """How well each passage answers ``question``, higher is better (the model's own scale)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            out = self._loaded().predict([(question, p) for p in passages], batch_size=self.batch_size,
                                         show_progress_bar=False, convert_to_numpy=True)
        out = np.asarray(out, dtype=np.float32)
        # A model with several labels scores relevance in its last one (e.g. [irrelevant, relevant]).
        return out[:, -1] if out.ndim == 2 else out


_shared: dict[tuple[str, str | None], Reranker] = {}
_shared_lock = threading.Lock()


def get_reranker(spec: str | None, device: str | None = None, batch_size: int = 32) -> Reranker | None:
    """The process's one Reranker for ``spec`` (None when reranking is off: no spec, or none/off)."""
    if spec is None or spec.strip().lower() in _OFF:
        return None
    wanted = Reranker(spec.strip(), device, batch_size)
    with _shared_lock:
        return _shared.setdefault((wanted.name, wanted.device), wanted)
