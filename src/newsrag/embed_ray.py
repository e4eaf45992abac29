"""Embedding fanned out over a Ray cluster (``newsrag ingest … --ray [ADDRESS]``).

The ingest still loads, chunks, plans and commits here, batch after batch and in
order, so progress, near-duplicate checks and resuming (a re-run skips what is
committed) are those of a plain ingest. Only ``embed_passages`` goes to a pool
of Ray actors, each holding its own copy of the model. The actors live for the
whole ingest: a Ray Data ``map_batches`` job per commit batch would load every
model again each time.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .embedders import Embedder, EmbedderError


LOCAL_TRIES = 2  # a local cluster that did not come up is started once more


def start(ray, address: str | None) -> None:
    """Connect to the cluster at ``address``, or start a local one (``None``).

    Ray gives a starting local node a fixed 30 s to register; on a busy two-core machine it
    once did not, and a second start worked. A cluster at an address is not retried: an
    address that does not answer is the user's to fix, and saying so at once is kinder.
    """
    tries = LOCAL_TRIES if address is None else 1
    for attempt in range(1, tries + 1):
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
            return
        except (Exception, SystemExit) as e:  # Ray exits the process when no cluster answers
            ray.shutdown()  # what half started goes before the next try
            if attempt == tries:
                raise EmbedderError(f"cannot reach the Ray cluster at {address or 'local'}: "
                                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


class _Worker:
    def __init__(self, embedder: Embedder):
        # A copy of the driver's embedder: newsrag's pickle without their loaded model and load
        # it again here; an object of one's own must pickle (and its class import) on the workers.
        self.embedder = embedder

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed_passages(texts)


class RayEmbedder:
    """``local`` for everything but passages, which ``workers`` Ray actors embed in sub-batches."""

    def __init__(self, local: Embedder, address: str | None = None, workers: int = 2, batch_size: int = 64):
        self.local, self.address, self.workers, self.batch_size = local, address, workers, batch_size
        self.name = local.name
        self._pool = None

    @property
    def dim(self) -> int:
        return self.local.dim

    @property
    def max_tokens(self) -> int:
        return self.local.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.local.count_tokens(text)

    def embed_query(self, text: str) -> np.ndarray:
        return self.local.embed_query(text)

    def _actors(self):
        if self._pool is None:
            try:
                import ray
                from ray.util import ActorPool
            except ImportError:
                raise EmbedderError("--ray needs Ray: pip install 'newsrag[ray]'") from None
            if not ray.is_initialized():
                start(ray, self.address)
            actor = ray.remote(num_cpus=1)(_Worker)
            self._pool = ActorPool([actor.remote(self.local) for _ in range(self.workers)])
        return self._pool

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = list(texts)
        size = max(1, min(self.batch_size, -(-len(texts) // self.workers)))  # every worker gets a share
        parts = [texts[i:i + size] for i in range(0, len(texts), size)]
        try:
            # map() returns results in the order of the parts, whichever actor finished first.
            return np.concatenate(list(self._actors().map(lambda a, part: a.embed.remote(part), parts)))
        except EmbedderError:
            raise
        except Exception as e:  # a worker died or its model failed
            raise EmbedderError(f"embedding on Ray failed: {str(e).splitlines()[-1] if str(e) else type(e).__name__}") \
                from None

    def close(self) -> None:
        if self._pool is not None:
            import ray

            for a in self._pool._idle_actors:
                ray.kill(a)
            self._pool = None
