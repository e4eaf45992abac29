"""Ingest with embedding on a local two-worker Ray cluster gives the index a plain ingest gives."""
import importlib.util
import json

import numpy as np
import pytest

from newsrag import Archive
from newsrag.cli import main

from test_crash import write_feed

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs newsrag[ray]")]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    yield
    ray.shutdown()


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
