"""Issue #11, the kill loop, small: SIGKILLs at random moments of ingest, delete and re-ingest; after
each the index opens and `newsrag check` passes, and the end converges to an uninterrupted run.
The full run (20 kills) is `python benchmarks/killloop.py`."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import killloop  # noqa: E402


@pytest.mark.slow
def test_random_sigkills_leave_a_consistent_index_that_converges(tmp_path):
    summary = killloop.run(tmp_path / "loop", kills=5, articles=8, seed=11, log=lambda line: None)
    assert summary["kills"] >= 5, summary
    assert summary["checks_passed"] == summary["kills"], summary["events"]
    assert summary["same_content"] and summary["same_search"], summary["failures"]
    assert not summary["failures"]
