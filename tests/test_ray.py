"""Ingest with embedding on a local two-worker Ray cluster gives the index a plain ingest gives."""
import importlib.util
import json

import numpy as np
import pytest

from newsrag import Archive
from newsrag.cli import main
from newsrag.embed_ray import start
from newsrag.embedders import EmbedderError

from test_crash import write_feed

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs newsrag[ray]")]


@pytest.fixture(scope="module")
def ray_local():
    """A local cluster, started as ``--ray`` with no address starts one (twice if it must)."""
    import ray

    try:
        start(ray, None)
    except EmbedderError as e:
        if "timed out during startup" not in str(e):
            raise
        pytest.skip(f"Ray's local node did not come up on this machine, twice: {e}")
    yield
    ray.shutdown()


class FlakyRay:
    """Ray whose first ``fails`` starts time out, as a local node did once on a busy CI machine."""

    def __init__(self, fails: int):
        self.fails, self.inits, self.shutdowns = fails, [], 0

    def init(self, address=None, **kw):
        self.inits.append(address)
        if len(self.inits) <= self.fails:
            raise Exception("The current node timed out during startup. This could happen because ...")

    def shutdown(self):
        self.shutdowns += 1


def test_a_local_cluster_that_times_out_starting_is_started_again():
    ray = FlakyRay(fails=1)
    start(ray, None)
    assert ray.inits == [None, None] and ray.shutdowns == 1
    ray = FlakyRay(fails=2)
    with pytest.raises(EmbedderError, match="cannot reach the Ray cluster at local: The current node timed out"):
        start(ray, None)
    # A cluster the user named is asked once: a wrong address is said at once.
    ray = FlakyRay(fails=1)
    with pytest.raises(EmbedderError, match="at ray://10.0.0.9:10001"):
        start(ray, "ray://10.0.0.9:10001")
    assert len(ray.inits) == 1


def test_ray_ingest_equals_a_plain_one(tmp_path, capsys, ray_local):
    feed = tmp_path / "feed.jsonl"
    write_feed(feed, n=30)
    with Archive.open(tmp_path / "plain") as a:
        plain = a.ingest([feed])
    # through the CLI, as a user runs it; small batches so that both workers get work
    assert main(["ingest", str(feed), "--index", str(tmp_path / "ray"), "--ray", "--batch-size", "4", "-q"]) == 0
    assert "30 added" in capsys.readouterr().err
    main(["stats", "--index", str(tmp_path / "ray"), "--json"])
    stats = json.loads(capsys.readouterr().out)
    with Archive.open(tmp_path / "plain") as a, Archive.open(tmp_path / "ray") as b:
        ref = a.stats()
        assert {k: stats[k] for k in ("articles", "chunks", "duplicates")} == \
            {k: ref[k] for k in ("articles", "chunks", "duplicates")} == {"articles": 30, "chunks": plain.chunks,
                                                                           "duplicates": 0}
        for q in ("哪个镇开通了公交线路", "图书馆藏书"):
            assert [h.article_id for h in a.search(q, k=5)] == [h.article_id for h in b.search(q, k=5)]
        va = np.frombuffer(a.store.db.execute("SELECT vector FROM chunks ORDER BY article_id, seq").fetchone()[0],
                           np.float32)
        vb = np.frombuffer(b.store.db.execute("SELECT vector FROM chunks ORDER BY article_id, seq").fetchone()[0],
                           np.float32)
        assert np.allclose(va, vb, atol=1e-4)
    # resumable: a re-run embeds nothing and skips everything
    with Archive.open(tmp_path / "ray") as b:
        again = b.ingest([feed], ray="local")
        assert again.skipped == 30 and again.embedded == 0
