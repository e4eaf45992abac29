"""Where chunks are found: the SQLite truth, the search structures, and the seam between them."""
from .base import ArticleStore, Changes, ChunkRecord, Filter, Query, Ranked, SearchIndex

__all__ = ["ArticleStore", "Changes", "ChunkRecord", "Filter", "Query", "Ranked", "SearchIndex"]
