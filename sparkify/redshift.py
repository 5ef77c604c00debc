"""Staging on Redshift: COPY straight from S3, and the reasons for every rejected record.

What a COPY did is read back from the SYS monitoring views, which provisioned clusters and
Redshift Serverless both have, for that COPY's own query id from SYS_LOAD_HISTORY
(sql_queries.redshift_copy_of_this_session and the ones after it); a failed COPY becomes a
failed batch with its reason, and books that do not add up fail the batch loudly.

The conversion options are the same CopyOptions the local COPY follows, so both engines
load and reject the same records. A manifest names exactly the new files of a batch, so
Redshift reads them in parallel and nothing else; without [S3] MANIFEST_PREFIX the COPY
reads the whole prefix and the merge transforms drop what is already there.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence

import sql_queries as q

from . import drift, jsoncopy, loads
from .config import Config, ConfigError
from .dialects import REDSHIFT
from .warehouse import ConnectionLost, WarehouseError, log_step

# What Redshift's COPY reads from S3, by config key: the data, the JSONPaths file and the
# manifests. AWS, Redshift Database Developer Guide, COPY, "REGION": the manifest and the
# data files must be in the region the COPY names (or the cluster's), else the COPY fails.
COPY_READS = ("LOG_DATA", "LOG_JSONPATH", "SONG_DATA", "MANIFEST_PREFIX")


def check_regions(config: Config, s3) -> None:
    """Refuses, before anything runs, a bucket COPY would read that S3 says is in another
    region than [S3] REGION: every COPY of the run would fail on it."""
    checked: dict[str, str | None] = {}
    for key in COPY_READS:
        value = getattr(config, key.lower())
        url = value if isinstance(value, str) else value.url
        if not url.startswith("s3://"):
            continue
        bucket = url[len("s3://"):].split("/", 1)[0]
        if bucket not in checked:
            checked[bucket] = s3.bucket_region(bucket)
        region = checked[bucket]
        if region and region != config.s3_region:
            raise ConfigError(f"{config.path}: [S3] {key} = {url} is in a bucket in {region}, but [S3] REGION = "
                              f"{config.s3_region}, and Redshift's COPY reads its data and manifest only in REGION; "
                              f"use a bucket in {config.s3_region}, or set REGION = {region} if every source is there")


def conversions(options: loads.CopyOptions) -> str:
    words = []
    if options.accept_invalid_chars:
        words.append("acceptinvchars as '?'")
    if options.blanks_as_null:
        words.append("blanksasnull")
    if options.empty_as_null:
        words.append("emptyasnull")
    if options.truncate_columns:
        words.append("truncatecolumns")
    return " ".join(words)


def copy_statement(config: Config, table: str, source: str, json_format: str, manifest: bool,
                   options: loads.CopyOptions, columns: Sequence[str]) -> str:
    return REDSHIFT.render(
        q.redshift_copy, table=table, columns=", ".join(columns), source=source, iam_role=config.iam_role_arn,
        json=json_format,
        manifest="manifest " if manifest else "", region=config.s3_region,
        max_errors=options.max_errors, conversions=conversions(options),
    )


def manifest_url(config: Config, batch_id: int, table: str, part: int | None = None) -> str:
    name = table if part is None else f"{table}-{part:06d}"
    return f"{config.manifest_prefix}/batch-{batch_id:06d}/{name}.manifest"


def manifest_document(objects) -> bytes:
    """A COPY manifest: every file mandatory, with its length so Redshift can plan the split."""
    entries = [{"url": obj.url, "mandatory": True, "meta": {"content_length": obj.size}} for obj in objects]
    return json.dumps({"entries": entries}, indent=1).encode("utf-8")


# SYS_LOAD_DETAIL, SYS_LOAD_ERROR_DETAIL and SYS_COPY_REPLACEMENTS keep file_name as
# character(256): a longer object URL is logged as its first 256 bytes.
FILE_NAME_BYTES = 256


class CopyBooksMissing(loads.LoadFailed):
    """The SYS views do not account for a COPY that loaded or rejected rows: a report of zero
    would be wrong, so the batch fails instead (and is recorded as failed)."""

    def __reduce__(self):
        return (CopyBooksMissing, (self.table, self.errors, str(self)))


def _load_errors(wh, table: str, copy_id: int) -> list[loads.LoadError]:
    errors = []
    for filename, line, column, reason, raw in wh.query(q.redshift_copy_errors, (copy_id,)):
        column = column or None
        text = f"{column}: {reason}" if column else reason
        errors.append(loads.LoadError(loads.REJECTED, table, filename, line, column, text, (raw or "")[:300]))
    return errors


def _replacements(wh, table: str, copy_id: int) -> list[loads.LoadError]:
    return [loads.LoadError(loads.REPLACED, table, filename, line, column or None,
                               "invalid UTF-8 replaced with '?'", (raw or "")[:300])
            for filename, line, column, raw in wh.query(q.redshift_copy_replacements, (copy_id,))]


def this_sessions_copy(wh, table: str) -> tuple[int, int] | None:
    """(query_id, error_count) of this session's newest COPY into table, from
    SYS_LOAD_HISTORY; None when it has none (a COPY that failed before it started)."""
    row = wh.query(q.redshift_copy_of_this_session, (table,))
    return (row[0][0], row[0][1] or 0) if row else None


def as_logged(url: str) -> str:
    """An object URL as the SYS views' file_name keeps it: cut to 256 bytes."""
    return url.encode("utf-8")[:FILE_NAME_BYTES].decode("utf-8", "ignore").rstrip()


def read_books(wh, result: loads.CopyResult, urls: Sequence[str] = ()) -> None:
    """What the session's COPY into result.table loaded, rejected and replaced, in all and
    per file (keyed by each of urls, the batch's objects, when the views cut its name), from
    the SYS monitoring views (provisioned clusters and Serverless alike). Raises
    CopyBooksMissing when they do not account for what COPY says it did."""
    result.rows = wh.scalar(q.redshift_copy_count) or 0
    copy = this_sessions_copy(wh, result.table)
    if copy is None:
        if result.rows:
            raise CopyBooksMissing(result.table, [],
                f"COPY loaded {result.rows:,} rows into {result.table}, but SYS_LOAD_HISTORY has no COPY of this "
                "session into it, so its rejections and per-file counts cannot be read; nothing was published")
        return
    copy_id, error_count = copy
    result.errors = _load_errors(wh, result.table, copy_id) + _replacements(wh, result.table, copy_id)
    rejected = Counter(error.source for error in result.rejected)
    # Redshift knows no rows per file, only the lines it scanned in each: what is kept as
    # the file's count there is lines (less its rejected records), and is described so.
    logged = {as_logged(url): url for url in urls}
    for filename, lines in wh.query(q.redshift_copy_file_lines, (copy_id,)):
        result.per_object[logged.get(filename, filename)] = (lines - rejected[filename], rejected[filename])
    missing = []
    if result.rows and not result.per_object:
        missing.append(f"COPY loaded {result.rows:,} rows but SYS_LOAD_DETAIL lists no file of query {copy_id}")
    if error_count > len(result.rejected):
        missing.append(f"SYS_LOAD_HISTORY counts {error_count:,} errors of query {copy_id} but "
                       f"SYS_LOAD_ERROR_DETAIL lists {len(result.rejected):,}")
    if missing:
        raise CopyBooksMissing(result.table, result.errors,
                               f"the books of the COPY into {result.table} do not add up: {'; '.join(missing)}; "
                               "nothing was published rather than reporting zero")


def failed_copy(wh, table: str, options: loads.CopyOptions, exc: WarehouseError) -> loads.LoadFailed:
    """What a failed COPY becomes, after the rollback: a failed load with its own rejections
    (its query_id from SYS_LOAD_HISTORY, never an earlier COPY's), and its reason."""
    copy = this_sessions_copy(wh, table)
    errors = _load_errors(wh, table, copy[0]) if copy else []
    rejected = [error for error in errors if error.disposition == loads.REJECTED]
    if rejected and len(rejected) >= loads.rejections_that_fail(options.max_errors):
        return loads.TooManyErrors(table, errors, options.max_errors)
    # Failed whole (a JSON object over 4 MB, an unreadable manifest, no access to the bucket)
    # or with fewer rejections than MAXERROR: the error says why; the rejections are kept.
    return loads.LoadFailed(table, errors, f"loading {table} failed on Redshift: {exc}; nothing of this batch "
                                           "was published")


def sample_shapes(objects, read_head: Callable[[str, int], bytes]) -> dict[str, drift.ObjectShape]:
    """Each object's shape (keys and JSON types, for schema drift) from its first
    drift.SAMPLE_BYTES, read with one ranged GET: COPY with JSONPaths ignores keys it does not
    know and runs none of the toolkit's code, so this is where Redshift's records are seen. A
    value the sample cuts off is left out."""
    shapes = {}
    pool = drift.ShapePool()
    for obj in objects:
        head = read_head(obj.url, drift.SAMPLE_BYTES)
        lines = head.splitlines(keepends=True)
        if len(head) < obj.size and lines:
            lines = lines[:-1]
        shape = drift.ObjectShape(pool)
        for number, record, _, _ in jsoncopy.iter_records(lines):
            if type(record) is dict:
                shape.observe(number, record)
        shape.finish()
        shapes[obj.url] = shape
    return shapes


def _copies(config: Config, item, batch_id: int, write: Callable[[str, bytes], None]):
    """(source, manifest, object) of each COPY that stages item: one for all its objects, or,
    for a table whose rows keep their file (q.STAGED_WITH_OBJECT_IDS), one per object, since a
    COPY cannot say which file each row came from (object None: every object). A source is a
    manifest of exactly the objects (under [S3] MANIFEST_PREFIX) or else a prefix: the
    configured one, or the object's own URL, which COPY reads as a prefix."""
    if item.table not in q.STAGED_WITH_OBJECT_IDS:
        if not config.manifest_prefix:
            return [(item.source.url, False, None)]
        source = manifest_url(config, batch_id, item.table)
        write(source, manifest_document(item.objects))
        return [(source, True, None)]
    copies = []
    for part, obj in enumerate(item.objects):
        if config.manifest_prefix:
            source = manifest_url(config, batch_id, item.table, part)
            write(source, manifest_document([obj]))
            copies.append((source, True, obj))
        else:
            copies.append((obj.url, False, obj))
    return copies


def stage(wh, config: Config, pending, options: loads.CopyOptions, batch_id: int,
          write: Callable[[str, bytes], None],
          read_head: Callable[[str, int], bytes]) -> list[loads.CopyResult]:
    """COPY each staging table from S3; returns what was loaded and rejected, per file, and
    the shape of each file's first records (read_head: the first bytes of an object). The
    rows of a table that keeps each row's file get their object's id after its COPY."""
    results = []
    for item in pending:
        result = loads.CopyResult(item.table, objects=len(item.objects))
        results.append(result)
        if not item.objects:
            continue
        json_columns = q.json_columns(item.table, [column[0] for column in wh.table_columns(item.table)])
        sampled = time.perf_counter()
        result.shapes = sample_shapes(item.objects, read_head)
        result.declared_keys = jsoncopy.declared_keys(item.mapping, json_columns)
        log_step(f"sample {item.table} for schema drift", len(item.objects), sampled, unit="objs")
        json_format = config.log_jsonpath.url if item.table == "staging_events" else "auto"
        started = time.perf_counter()
        for source, manifest, obj in _copies(config, item, batch_id, write):
            statement = copy_statement(config, item.table, source, json_format, manifest, options, json_columns)
            try:
                wh.execute(statement, label=f"copy {item.table}" + (f": {obj.key}" if obj else ""))
            except ConnectionLost:
                raise  # the batch is retried from scratch
            except WarehouseError as exc:
                # Every COPY failure is a failed batch, recorded with its reason and the failed
                # COPY's own rejections: at MAXERROR or more, or whole (a JSON object over 4 MB).
                wh.rollback()
                raise failed_copy(wh, item.table, options, exc) from None
            part = loads.CopyResult(item.table)
            read_books(wh, part, [obj.url] if obj else [o.url for o in item.objects])
            result.rows += part.rows
            result.errors += part.errors
            result.per_object.update(part.per_object)
            if obj is not None:  # a COPY of one object: its rows get its id
                wh.execute(q.staged_object_id_update.format(table=item.table), {"object_id": item.object_ids[obj.url]},
                           label=f"{item.table}: the object_id of the rows of {obj.key}")
            if len(result.rejected) >= loads.rejections_that_fail(options.max_errors):
                raise loads.TooManyErrors(item.table, result.errors, options.max_errors)
        log_step(f"stage {item.table}", result.rows, started,
                 f"  ({result.objects} files, {len(result.rejected)} rejected)")
    return results
