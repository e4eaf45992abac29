"""When the disk under an index refuses: full, read-only, or gone.

SQLite and the segment files fail in many words (``database or disk is full``,
``[Errno 28]``, ``attempt to write a readonly database``, ``unable to open
database file``); a user needs one line that names the index and what to do.
``storage_errors(root)`` turns those into a ``StorageError``; anything else
passes through unchanged.
"""
from __future__ import annotations

import contextlib
import errno
import sqlite3
from pathlib import Path
from typing import Iterator

FULL = "full"
READ_ONLY = "read-only"
GONE = "gone"


class StorageError(OSError):
    """The index's disk refused. ``kind`` is FULL, READ_ONLY or GONE; ``str()`` is one line."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return self.args[0]


def full(root: Path) -> StorageError:
    return StorageError(FULL, f"no space left on device: index {root} could not be written; "
                              "everything committed before is intact (free some space and retry)")


def read_only(root: Path) -> StorageError:
    return StorageError(READ_ONLY, f"index {root} is read-only: it can be searched and asked, not changed")


def gone(root: Path) -> StorageError:
    return StorageError(GONE, f"index folder {root} is gone (deleted or unmounted while in use)")


def _inside(filename, root: Path) -> bool:
    if not filename:
        return True  # SQLite and some OS calls do not say which file; it was ours
    try:
        return Path(filename).resolve().is_relative_to(root.resolve())
    except (OSError, ValueError):
        return False


def classify(exc: BaseException, root: Path) -> StorageError | None:
    """The StorageError ``exc`` stands for at the index ``root``, or None when it is something else."""
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, (OSError, sqlite3.Error)):
        return None
    if not (root / "archive.sqlite3").exists():
        return gone(root)
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "full" in text:  # SQLITE_FULL: "database or disk is full"
            return full(root)
        if "readonly" in text or "read-only" in text:  # SQLITE_READONLY
            return read_only(root)
        return None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return full(root)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and _inside(exc.filename, root):
        return read_only(root)
    return None


@contextlib.contextmanager
def storage_errors(root: Path) -> Iterator[None]:
    """Raise a StorageError for a full, read-only or vanished index; other errors pass unchanged."""
    if not (root / "archive.sqlite3").exists():
        # An open connection still reads a deleted file: say the folder is gone rather than
        # answer from a ghost.
        raise gone(root)
    try:
        yield
    except Exception as e:
        found = classify(e, root)
        if found is None or found is e:
            raise
        raise found from e
