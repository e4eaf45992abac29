"""Uploaded files and zips, staged in a folder for ingest: shared by the HTTP API and the UI.

Zips are unpacked by hand so that no member can escape the folder (absolute
paths, ``..``), links and hidden files are skipped, and an upload's total
uncompressed size is capped, whatever the zip's directory claims.
"""
from __future__ import annotations

import errno
import os
import re
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .articles import SUFFIXES, LoadError, unsupported
from .text import one_line

MAX_UPLOAD_BYTES = 200 * 1024 ** 2  # as sent: all files of one upload (one request, one click in the UI)
MAX_ZIP_BYTES = 200 * 1024 ** 2  # uncompressed, all members of one upload's zips together
MAX_ZIP_MEMBERS = 100_000


class UploadError(Exception):
    """A bad upload; ``status`` is the HTTP status that fits it."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _TooLarge(Exception):
    pass


def _safe_name(name: str | None, fallback: str) -> str:
    """A file name of its own: no folders, no control characters, not too long for the disk."""
    name = PurePosixPath((name or "").replace("\\", "/")).name
    name = re.sub(r"[\x00-\x1f\x7f]", "_", name).strip()
    if name in ("", ".", ".."):
        name = fallback
    stem, suffix = os.path.splitext(name)
    while len((stem + suffix).encode("utf-8")) > 200 and stem:
        stem = stem[:-1]
    return stem + suffix if len(suffix.encode("utf-8")) <= 200 else fallback


def _unique(path: Path) -> Path:
    n, out = 1, path
    while out.exists():
        n += 1
        out = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return out


def _member_name(info: zipfile.ZipInfo) -> str:
    """Zips made on Chinese Windows store GBK names without the UTF-8 flag."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            raw = name.encode("cp437")
        except UnicodeEncodeError:
            return name
        for enc in ("utf-8", "gb18030"):
            try:
                return raw.decode(enc)
            except UnicodeDecodeError:
                continue
    return name


def _member_parts(zip_name: str, name: str) -> list[str]:
    n = name.replace("\\", "/")
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if n.startswith("/") or re.match(r"[A-Za-z]:", n) or ".." in parts or "\x00" in n:
        raise UploadError(400, f"{zip_name}: unsafe path {name!r} in the zip (absolute or outside the archive)")
    return parts


def _unzip(zip_path: Path, zip_name: str, dest: Path, budget: list[int]) -> list[LoadError]:
    """Extract the article files of a zip into ``dest``; refuse unsafe paths and zip bombs.

    Returns what was left out and why (a link, a file type ingest does not read); hidden
    files and the __MACOSX folder that zip tools add are left out without a word."""
    left_out = []
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise UploadError(413, f"{zip_name}: too many files in the zip ({len(infos)} > {MAX_ZIP_MEMBERS})")
            declared = sum(i.file_size for i in infos)
            if declared > budget[0]:
                raise _TooLarge(declared)
            wanted = []
            for info in infos:
                parts = _member_parts(zip_name, _member_name(info))  # checks every member, wanted or not
                if info.is_dir() or not parts:
                    continue
                if any(p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue
                target = dest.joinpath(*[_safe_name(p, "_") for p in parts])
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    left_out.append(LoadError(str(target), "a link in the zip, not followed"))
                elif PurePosixPath(parts[-1]).suffix.lower() not in SUFFIXES:
                    left_out.append(LoadError(str(target), unsupported(parts[-1])))
                else:
                    wanted.append((info, target))
            dest.mkdir(parents=True, exist_ok=True)
            for info, target in wanted:
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(_unique(target), "wb") as out:
                        while chunk := src.read(1 << 20):
                            budget[0] -= len(chunk)
                            if budget[0] < 0:  # the sizes in the zip's directory lied
                                raise _TooLarge(None)
                            out.write(chunk)
                except OSError as e:
                    if e.errno not in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG):
                        raise
                    raise UploadError(400, f"{zip_name}: cannot extract {info.filename!r} "
                                             f"({e.strerror or e})") from None
            return left_out
    except _TooLarge:
        raise UploadError(413, f"{zip_name}: the zip holds more than {MAX_ZIP_BYTES / 2**20:g} MB "
                                 "uncompressed (the limit for one upload)") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as e:
        raise UploadError(400, f"{zip_name}: not a valid zip file ({one_line(e, 200)})") from None
    except (RuntimeError, NotImplementedError) as e:  # encrypted, or a compression zipfile lacks
        raise UploadError(400, f"{zip_name}: cannot extract ({one_line(e, 200)})") from None


def upload_origin(origin: str, root: Path) -> str:
    """How an article from a file staged under ``root`` records where it came from:
    ``upload:`` and its name in the upload ("upload:feed.jsonl:3", "upload:bundle.zip/2024/a.txt").

    The staging folder is temporary; this name is what stays the same when the same
    file is uploaded again (so an edited file replaces its earlier version, as with
    a path on disk), and it is the name the uploader knows.
    """
    files = str(root / "files") + os.sep
    return "upload:" + origin[len(files):] if origin.startswith(files) else origin


def _copy(stream: BinaryIO, out: BinaryIO, budget: list[int], name: str) -> None:
    """Copy ``stream`` to ``out``, counting against the upload's ``budget`` of bytes."""
    while chunk := stream.read(1 << 20):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise UploadError(413, f"{name}: the upload is larger than {MAX_UPLOAD_BYTES / 2**20:g} MB "
                                   "(the limit for one upload)")
        out.write(chunk)


def stage(uploads: list[tuple[str | None, BinaryIO]], root: Path) -> list[Path | LoadError]:
    """Save (name, stream) uploads under ``root``/files, zips unpacked into a folder of their name;
    returns the paths to ingest, and a LoadError for each zip member left out (for the
    ingest report). Raises UploadError (with an HTTP status) for a bad upload."""
    files, zips = root / "files", root / "zips"
    files.mkdir()
    zips.mkdir()
    budget, sent = [MAX_ZIP_BYTES], [MAX_UPLOAD_BYTES]
    paths = []
    for i, (filename, stream) in enumerate(uploads, 1):
        name = _safe_name(filename, f"upload-{i}")
        is_zip = name.lower().endswith(".zip")
        saved = _unique((zips if is_zip else files) / name)
        stream.seek(0)
        with open(saved, "wb") as out:
            _copy(stream, out, sent, name)
        if is_zip:
            folder = _unique(files / name)
            left_out = _unzip(saved, name, folder, budget)
            saved.unlink()
            paths += [folder, *left_out]
        else:
            paths.append(saved)
    return paths
