"""Fixtures: short fictional articles written for these tests, and a sample-archive index."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "archive"

# A crawled page in traditional script: pinyin glosses after characters, the
# headline and the editor line at the end, a relative date and no date line.
CRAWLED = (
    "松江新聞網(wǎng)訊(記者 林雨桐)昨天下午,區(qū)委召開常委會(huì)會(huì)議,研究部署人才工作。\n"
    "會(huì)議討論了《松江區(qū)數(shù)字產(chǎn)業(yè)人才引進(jìn)辦法(試行)》,決定設(shè)立三億元人才基金,"
    "對頂尖團(tuán)隊(duì)實(shí)行「一事一議」。\n"
    "會(huì)議還聽取了垃圾分類工作匯報(bào),要求年底前實(shí)現(xiàn)全覆蓋。\n"
    "區(qū)委常委會(huì)會(huì)議召開\n"
    "責(zé)編: 何曉雲(yún)\n"
)

RECORDS = [
    {"id": "t-001", "title": "松江区地铁三号线开工", "date": "2024-02-01", "source": "松江日报",
     "text": "松江区地铁三号线今天正式开工建设。线路全长二十公里，设站十二座，预计2027年通车。"
             "区交通局表示，施工期间将调整六条公交线路。"},
    {"id": "t-002", "title": "松江區中小學推行課後服務", "date": "2024-03-15", "source": "松江教育網",
     "text": "松江區全部四十所中小學從本學期起推行課後服務，學生自願參加。"
             "課後服務包括作業輔導、體育鍛煉和興趣社團，每天到下午六點結束。"},
    {"id": "t-003", "title": "松江区垃圾分类罚款新规实施", "date": "2024-04-20", "source": "松江日报",
     "text": "《松江区生活垃圾分类管理规定》今天起实施，个人混投垃圾最高罚款二百元，单位最高罚款五万元。"
             "城管部门将在一个月内以教育劝导为主。"},
    {"id": "t-004", "title": "松江博物館推出夜場", "date": "2024-05-18", "source": "松江晚報",
     "text": "松江博物館從五月十八日起每週六推出夜場，開放至晚上九點。"
             "夜場期間將展出青銅器特展，門票免費，需提前在網上預約。"},
]


@pytest.fixture
def crawled_file(tmp_path) -> Path:
    p = tmp_path / "crawled.txt"
    p.write_text(CRAWLED, encoding="utf-8")
    return p


@pytest.fixture
def records_file(tmp_path) -> Path:
    p = tmp_path / "feed.jsonl"
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> Path:
    """The bundled sample archive, ingested once with the default embedder."""
    from newsrag import Archive

    path = tmp_path_factory.mktemp("sample") / "index"
    with Archive.open(path) as archive:
        report = archive.ingest([SAMPLE])
    assert report.failed == 0, report.errors
    return path


@pytest.fixture
def sample_copy(sample_index, tmp_path) -> Path:
    """A private copy of the sample index that a test may change."""
    dst = tmp_path / "index"
    shutil.copytree(sample_index, dst)
    return dst


@pytest.fixture(scope="module")
def archive(sample_index, tmp_path_factory):
    """A private copy of the sample index, open for one test module (and its servers)."""
    dst = tmp_path_factory.mktemp("archive") / "index"
    shutil.copytree(sample_index, dst)
    from newsrag import Archive

    with Archive.open(dst) as a:
        yield a
