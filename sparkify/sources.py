"""Source objects: the JSON files under an [S3] prefix, local or in S3.

A source object has a key (its path below the prefix, as in the bucket), a size and a
version tag (mtime for files, ETag for S3), and opens as a binary stream read in chunks,
so nothing is read into memory whole and nothing is downloaded to disk.

S3 prefixes follow Redshift's COPY: every object whose key starts with the prefix is a
source, whatever its name. Listing is paginated; any region, the standard AWS credential
chain (falling back to anonymous access for public buckets such as udacity-dend) and an
optional endpoint URL for S3-compatible stores all work. Transient S3 errors are retried
by botocore with backoff, and a read broken mid-object resumes where it stopped.

A local entry that cannot be read as a file (a broken or looping symbolic link, a file
without read permission, a named pipe or device) is still listed: opening it raises
UnreadableObject, which the COPY turns into a rejected object with the reason.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .config import Config, Source

log = logging.getLogger(__name__)

READ_ATTEMPTS = 4
READ_BUFFER = 1 << 20
LIST_PAGE_SIZE = 1000  # keys per ListObjectsV2 request, S3's maximum (the tests lower it)


class SourceError(Exception):
    pass


class UnreadableObject(Exception):
    """A source object that cannot be read; the message is the reason and its fix."""


@dataclass(frozen=True)
class SourceObject:
    url: str          # full location, shown in errors and recorded in load_errors
    key: str          # path relative to the configured prefix
    size: int
    version: str      # changes when the object's content may have changed
    opener: Callable[[], BinaryIO] | None = field(default=None, compare=False, repr=False)

    def open(self) -> BinaryIO:
        if self.opener is not None:
            return self.opener()
        return open_local_file(self.url)


_FILE_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}
_OPEN_FIXES = {errno.ELOOP: "a symbolic link loop: fix or remove the links",
               errno.EACCES: "give the user who runs etl.py read access",
               errno.EPERM: "give the user who runs etl.py read access"}


def open_local_file(path: str) -> BinaryIO:
    """A local source file, opened for reading; raises UnreadableObject with the reason.

    Opened without blocking and checked before anything is read: a named pipe with no
    writer would otherwise hold the load for ever, and a device never ends.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnreadableObject(_open_error(path, exc)) from None
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            raise UnreadableObject(f"not a regular file ({_FILE_KINDS.get(kind, 'a special file')}): only "
                                   "regular files are loaded; remove it from the folder")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=READ_BUFFER)
    except BaseException:
        os.close(fd)
        raise


def _open_error(path: str, exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    fix = _OPEN_FIXES.get(exc.errno) if exc.errno is not None else None
    if exc.errno == errno.ENOENT:
        fix = ("a symbolic link to a missing file: fix or remove the link" if os.path.islink(path)
               else "removed while loading?")
    return f"cannot be read: {reason}" + (f" ({fix})" if fix else "")


def split_s3_url(url: str) -> tuple[str, str]:
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return bucket, prefix


class S3:
    """A boto3 S3 client configured from dwh.cfg, with errors turned into one line."""

    def __init__(self, config: Config):
        import boto3
        import botocore.config

        settings = botocore.config.Config(
            region_name=config.s3_region,
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        )
        session = boto3.session.Session()
        if session.get_credentials() is None:
            # No credentials anywhere in the chain: read public buckets anonymously.
            from botocore import UNSIGNED

            settings = settings.merge(botocore.config.Config(signature_version=UNSIGNED))
        self.client = session.client("s3", endpoint_url=config.s3_endpoint_url or None, config=settings)
        self.region = config.s3_region

    def list(self, url: str) -> list[SourceObject]:
        bucket, prefix = split_s3_url(url)
        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE})
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/"):  # a folder marker, not an object with data
                        continue
                    relative = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
                    found.append(SourceObject(
                        f"s3://{bucket}/{key}", relative, item["Size"], item.get("ETag", "").strip('"'),
                        opener=self._opener(bucket, key, item["Size"])))
        except Exception as exc:  # botocore raises many kinds; all end as one line
            raise SourceError(self.explain(exc, url)) from None
        found.sort(key=lambda obj: obj.key)
        return found

    def read(self, url: str, first_bytes: int | None = None) -> bytes:
        """An object's bytes; with first_bytes, only those (one ranged GET)."""
        bucket, key = split_s3_url(url)
        ranged = {"Range": f"bytes=0-{first_bytes - 1}"} if first_bytes else {}
        try:
            return self.client.get_object(Bucket=bucket, Key=key, **ranged)["Body"].read()
        except Exception as exc:
            raise SourceError(self.explain(exc, url)) from None

    def write(self, url: str, body: bytes) -> None:
        bucket, key = split_s3_url(url)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body)
        except Exception as exc:
            raise SourceError(self.explain(exc, url)) from None

    def bucket_region(self, bucket: str) -> str | None:
        """The region a bucket is in, from HeadBucket's x-amz-bucket-region header, which S3
        sends also with a redirect or a refusal; None when the store does not say."""
        try:
            response = self.client.head_bucket(Bucket=bucket)
        except Exception as exc:  # botocore raises many kinds; an answer with headers still says
            response = getattr(exc, "response", None) or {}
        return response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")

    def _opener(self, bucket: str, key: str, size: int) -> Callable[[], BinaryIO]:
        def open_object() -> BinaryIO:
            return io.BufferedReader(_ResumingReader(self, bucket, key, size), READ_BUFFER)
        return open_object

    def explain(self, exc: Exception, url: str) -> str:
        name = type(exc).__name__
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""
        if code in ("NoSuchBucket",):
            return f"{url}: the bucket does not exist; check the [S3] URL"
        if code in ("NoSuchKey", "404"):
            return f"{url}: no such object; check the [S3] URL"
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return (f"{url}: access denied; give your AWS credentials read access "
                    f"(or check [S3] REGION = {self.region})")
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "301"):
            return f"{url}: the bucket is in another region; set [S3] REGION"
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
            return f"{url}: cannot reach S3 ({name}); check the network or [S3] ENDPOINT_URL"
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return f"{url}: no usable AWS credentials; set them as for the AWS CLI"
        detail = " ".join(str(exc).split())[:200]
        return f"{url}: {detail or name}"


class _ResumingReader(io.RawIOBase):
    """An S3 object as a raw stream; a read that breaks off resumes at the same byte."""

    def __init__(self, s3: S3, bucket: str, key: str, size: int):
        self._s3, self._bucket, self._key, self._size = s3, bucket, key, size
        self._position = 0
        self._body: Any = None  # the streaming body of the object being read, once opened

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._position >= self._size:
            return 0
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                if self._body is None:
                    ranged = {"Range": f"bytes={self._position}-"} if self._position else {}
                    self._body = self._s3.client.get_object(Bucket=self._bucket, Key=self._key, **ranged)["Body"]
                data = self._body.read(len(buffer))
                break
            except Exception as exc:
                self._body = None
                url = f"s3://{self._bucket}/{self._key}"
                if attempt == READ_ATTEMPTS or getattr(exc, "response", None):
                    raise SourceError(f"{self._s3.explain(exc, url)} (reading at byte {self._position:,})") from None
                log.warning("reading %s broke off at byte %s (%s); resuming", url, f"{self._position:,}",
                            type(exc).__name__)
                time.sleep(0.5 * 2 ** (attempt - 1))
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()


PREFETCH_WORKERS = 16
PREFETCH_MAX_SIZE = 4 << 20   # objects up to this size are fetched whole, ahead of use
PREFETCH_WINDOW = 64          # at most this many fetched ahead: memory stays bounded


def prefetched(objects: list[SourceObject]) -> Iterator[SourceObject]:
    """The same objects in the same order, with small S3 objects fetched ahead in threads.

    S3 answers each GET in tens of milliseconds: read one after another, the bucket's
    14,896 one-song files would take minutes. Large objects and local files stream as usual.
    """
    from concurrent.futures import ThreadPoolExecutor

    def fetch(obj: SourceObject) -> SourceObject:
        if obj.opener is None or obj.size > PREFETCH_MAX_SIZE:
            return obj
        with obj.open() as handle:
            data = handle.read()
        return SourceObject(obj.url, obj.key, obj.size, obj.version, opener=lambda: io.BytesIO(data))

    if not any(obj.opener is not None for obj in objects):
        yield from objects
        return
    with ThreadPoolExecutor(PREFETCH_WORKERS) as pool:
        window: deque = deque()
        for obj in objects:
            window.append(pool.submit(fetch, obj))
            if len(window) >= PREFETCH_WINDOW:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def list_objects(source: Source, s3: S3 | None = None) -> list[SourceObject]:
    """Every object under a source, sorted by key.

    Like Redshift's COPY from a prefix, nothing is skipped by name: a stray non-JSON file
    shows up as bad records instead of vanishing unnoticed.
    """
    if source.is_s3:
        if s3 is None:
            raise SourceError(f"{source}: an S3 client is needed to list it")
        return s3.list(source.url)
    root = source.path
    if root.is_file():
        status = root.stat()
        return [SourceObject(str(root), root.name, status.st_size, str(status.st_mtime_ns))]
    # Plain strings and os.scandir: Path objects cost more than the stat calls themselves
    # for a catalog of 100,000 one-song files.
    found = []
    start = len(str(root)) + 1
    pending = [str(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif _links_to_folder(entry):  # not followed (no loops), as os.walk does
                    continue
                else:
                    try:
                        status = entry.stat()
                    except OSError:
                        # A broken or looping link: listed by the link's own status, and
                        # rejected with the reason when the COPY opens it.
                        status = entry.stat(follow_symlinks=False)
                    key = entry.path[start:].replace(os.sep, "/")
                    found.append(SourceObject(entry.path, key, status.st_size, str(status.st_mtime_ns)))
    found.sort(key=lambda obj: obj.key)
    return found


def _links_to_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop: not a folder, and rejected with the reason when opened
        return False


def read_bytes(source: Source, s3: S3 | None = None) -> bytes:
    """The whole content of a single small object (the JSONPaths file)."""
    if source.is_s3:
        if s3 is None:
            raise SourceError(f"{source}: an S3 client is needed to read it")
        return s3.read(source.url)
    try:
        return source.path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{source}: cannot be read ({exc.strerror})") from None
