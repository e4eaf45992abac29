"""Readers never wait for a writer: a search answers while an ingest holds the write transaction."""
import threading

from newsrag import Archive

NEW = {"id": "n-1", "title": "松江区新开通一条有轨电车", "date": "2024-06-01", "source": "松江日报",
       "text": "松江区有轨电车二号线今天开通运营，全长十五公里，设站十八座，沿线连接三所大学。"}


def test_a_search_answers_while_an_ingest_holds_the_write_transaction(sample_copy):
    with Archive.open(sample_copy) as a:
        before = a.stats()["articles"]
        inside, release = threading.Event(), threading.Event()
        put_chunks = a.store.put_chunks

        def slow_put_chunks(*args):  # the writer stops inside its open SQLite transaction
            inside.set()
            assert release.wait(60)
            return put_chunks(*args)

        a.store.put_chunks = slow_put_chunks
        writer = threading.Thread(target=a.ingest, args=([NEW],))
        writer.start()
        try:
            assert inside.wait(60)
            # Another thread reads the last commit: the search and the stats do not block.
            result = {}
            reader = threading.Thread(target=lambda: result.update(
                hits=a.search("端午龍舟賽冠軍", k=3), stats=a.stats()))
            reader.start()
            reader.join(30)
            assert not reader.is_alive(), "the reader waited for the writer"
            assert result["hits"] and result["stats"]["articles"] == before
            assert a.article("n-1") is None  # not committed yet
        finally:
            release.set()
            writer.join(60)
        assert a.search("有轨电车二号线", k=1)[0].article_id == "n-1"
        assert a.stats()["articles"] == before + 1
