"""newsrag: question answering and briefings over a Chinese news archive."""
from .archive import Archive
from .ingest import IngestReport, ItemResult
from .articles import Article
from .retrieval import Hit
from .settings import Settings

__all__ = ["Archive", "Article", "Hit", "IngestReport", "ItemResult", "Settings"]
__version__ = "0.1.0"
