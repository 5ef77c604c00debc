"""Staging on Redshift: COPY straight from S3, and the reasons for every rejected record.

What a COPY did is read back from the SYS monitoring views, which provisioned clusters and
Redshift Serverless both have (sql_queries.redshift_copy_errors and the ones after it).

The conversion options are the same CopyOptions the local COPY follows, so both engines
load and reject the same records. A manifest names exactly the new files of a batch, so
Redshift reads them in parallel and nothing else; without [S3] MANIFEST_PREFIX the COPY
reads the whole prefix and the merge transforms drop what is already there.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import sql_queries as q

from . import drift, jsoncopy, loads
from .config import Config
from .warehouse import WarehouseError, log_step


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
                   options: loads.CopyOptions) -> str:
    return q.render(
        q.redshift_copy, "redshift", table=table, source=source, iam_role=config.iam_role_arn, json=json_format,
        manifest="manifest " if manifest else "", region=config.s3_region,
        max_errors=options.max_errors, conversions=conversions(options),
    )


def manifest_url(config: Config, batch_id: int, table: str) -> str:
    return f"{config.manifest_prefix}/batch-{batch_id:06d}/{table}.manifest"


def manifest_document(objects) -> bytes:
    """A COPY manifest: every file mandatory, with its length so Redshift can plan the split."""
    entries = [{"url": obj.url, "mandatory": True, "meta": {"content_length": obj.size}} for obj in objects]
    return json.dumps({"entries": entries}, indent=1).encode("utf-8")


def _load_errors(wh, table: str, statement: str = q.redshift_copy_errors) -> list[loads.LoadError]:
    errors = []
    for filename, line, column, reason, raw in wh.query(statement):
        column = column or None
        text = f"{column}: {reason}" if column else reason
        errors.append(loads.LoadError(loads.REJECTED, table, filename, line, column, text, (raw or "")[:300]))
    return errors


def _replacements(wh, table: str) -> list[loads.LoadError]:
    return [loads.LoadError(loads.REPLACED, table, filename, line, column or None,
                               "invalid UTF-8 replaced with '?'", (raw or "")[:300])
            for filename, line, column, raw in wh.query(q.redshift_copy_replacements)]


def read_books(wh, result: loads.CopyResult) -> None:
    """What the session's last COPY into result.table loaded, rejected and replaced, in all
    and per file, from the SYS monitoring views (provisioned clusters and Serverless alike)."""
    result.errors = _load_errors(wh, result.table) + _replacements(wh, result.table)
    rejected = Counter(error.source for error in result.rejected)
    # Redshift knows no rows per file, only the lines it scanned in each: what is kept as
    # the file's count there is lines (less its rejected records), and is described so.
    for filename, lines in wh.query(q.redshift_copy_file_lines):
        result.per_object[filename] = (lines - rejected[filename], rejected[filename])
    result.rows = wh.scalar(q.redshift_copy_count) or 0


def sample_shapes(objects, read_head: Callable[[str, int], bytes]) -> dict[str, drift.ObjectShape]:
    """Each object's shape (keys and JSON types, for schema drift) from its first
    drift.SAMPLE_BYTES, read with one ranged GET: COPY with JSONPaths ignores keys it does not
    know and runs none of the toolkit's code, so this is where Redshift's records are seen. A
    value the sample cuts off is left out."""
    shapes = {}
    for obj in objects:
        head = read_head(obj.url, drift.SAMPLE_BYTES)
        lines = head.splitlines(keepends=True)
        if len(head) < obj.size and lines:
            lines = lines[:-1]
        shape = drift.ObjectShape()
        for number, record, _, _ in jsoncopy.iter_records(lines):
            if type(record) is dict:
                shape.observe(number, record)
        shapes[obj.url] = shape
    return shapes


def stage(wh, config: Config, pending, options: loads.CopyOptions, batch_id: int,
          write: Callable[[str, bytes], None],
          read_head: Callable[[str, int], bytes] | None = None) -> list[loads.CopyResult]:
    """COPY each staging table from S3; returns what was loaded and rejected, per file, and
    the shape of each file's first records (read_head: the first bytes of an object; a dry
    run has none and says what it would read)."""
    results = []
    for item in pending:
        result = loads.CopyResult(item.table, objects=len(item.objects))
        results.append(result)
        if not item.objects:
            continue
        if read_head is not None:
            sampled = time.perf_counter()
            result.shapes = sample_shapes(item.objects, read_head)
            result.declared_keys = jsoncopy.declared_keys(item.mapping, [c[0] for c in wh.table_columns(item.table)])
            log_step(f"sample {item.table} for schema drift", len(item.objects), sampled, unit="objs")
        else:
            wh.note(f"read the first {drift.SAMPLE_BYTES // 1024} KiB of each new {item.table} object "
                    "(one ranged S3 GET each) to find schema drift")
        if config.manifest_prefix:
            source, manifest = manifest_url(config, batch_id, item.table), True
            write(source, manifest_document(item.objects))
        else:
            source, manifest = item.source.url, False
        json_format = config.log_jsonpath.url if item.table == "staging_events" else "auto"
        statement = copy_statement(config, item.table, source, json_format, manifest, options)
        started = time.perf_counter()
        try:
            wh.execute(statement, label=f"copy {item.table}")
        except WarehouseError as exc:
            if "load into table" not in str(exc).lower():
                raise
            # COPY rejected MAXERROR records or more, or met what fails it whole (a JSON
            # object over 4 MB): say which and why, at once.
            wh.rollback()
            errors = _load_errors(wh, item.table, q.redshift_failed_copy_errors)
            if not errors:
                raise
            if len(errors) >= loads.rejections_that_fail(options.max_errors):
                raise loads.TooManyErrors(item.table, errors, options.max_errors) from None
            first = errors[0]
            raise loads.LoadFailed(item.table, errors, (
                f"loading {item.table} failed on Redshift at {first.source} line {first.line_number}: "
                f"{first.reason}; nothing of this batch was published")) from None
        read_books(wh, result)
        log_step(f"stage {item.table}", result.rows, started,
                 f"  ({result.objects} files, {len(result.rejected)} rejected)")
    return results
