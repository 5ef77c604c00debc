"""Source objects: the JSON files under an [S3] prefix, local or in S3.

A source object has a key (its path below the prefix, as in the bucket), a size and a
version tag (mtime for files, ETag for S3), and opens as a binary stream, so nothing is
read into memory whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .config import Source


class SourceError(Exception):
    pass


@dataclass(frozen=True)
class SourceObject:
    url: str          # full location, shown in errors and recorded in load_errors
    key: str          # path relative to the configured prefix
    size: int
    version: str      # changes when the object's content may have changed

    def open(self) -> BinaryIO:
        return open(self.url, "rb")


def list_objects(source: Source) -> list[SourceObject]:
    """Every object under a source, sorted by key.

    Like Redshift's COPY from a prefix, nothing is skipped by name: a stray non-JSON file
    shows up as bad records instead of vanishing unnoticed.
    """
    if source.is_s3:
        raise SourceError(f"{source}: s3:// sources are not supported yet; use a local path")
    root = source.path
    if root.is_file():
        stat = root.stat()
        return [SourceObject(str(root), root.name, stat.st_size, str(stat.st_mtime_ns))]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            stat = path.stat()
            key = path.relative_to(root).as_posix()
            found.append(SourceObject(str(path), key, stat.st_size, str(stat.st_mtime_ns)))
    found.sort(key=lambda obj: obj.key)
    return found


def read_bytes(source: Source) -> bytes:
    """The whole content of a single small object (the JSONPaths file)."""
    if source.is_s3:
        raise SourceError(f"{source}: s3:// sources are not supported yet; use a local path")
    try:
        return source.path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{source}: cannot be read ({exc.strerror})") from None
