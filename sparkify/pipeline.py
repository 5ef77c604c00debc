"""The ETL job: one batch of new source objects, staged, repaired, transformed, checked.

A run is one batch in one transaction. It takes the load lock, finds the source objects
that are new or changed since they were last loaded, stages only those, merges them into
the star schema, runs the quality gate, and records the objects and the batch; all of it
commits together or not at all. A failure (or a kill) leaves the warehouse exactly as it
was, so running again is always the recovery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import quality_checks as qc
import sql_queries as q

from . import (
    drift,
    faults,
    jsoncopy,
    loadlock,
    loads,
    parallelrows,
    progress,
    redshift,
    sources,
    textrepair,
    validvalues,
)
from .config import Config, Source
from .dryrun import DryRunWarehouse, RunTimeValue
from .summary import RunSummary, StagedTable
from .warehouse import ConnectionLost, Session, WarehouseError, connect, log_step, utc_now

log = logging.getLogger(__name__)

ATTEMPTS = 3           # a lost connection restarts the batch this many times in all
BACKOFF_S = 2.0        # then waits 2 s, 4 s, … between attempts
CHECK_SAMPLE_ROWS = 5  # offending rows shown per failed check
# A batch that brings this share of all events or more (a first load) is checked on every
# row: those forms read each table once where the batch forms also join to the batch's
# keys and window, so on most of a table they cost less and check more (a 10M-event
# warehouse: 28 s for every row, 62 s for the batch forms over the same rows).
EVERY_ROW_CHECKS_SHARE = 0.4


class EtlError(Exception):
    pass


class QualityGateFailed(EtlError):
    pass


# --- staging ------------------------------------------------------------------------------------

def stage_json(wh: Session, item: Pending, options: loads.CopyOptions, clock: datetime) -> loads.CopyResult:
    """Loads JSON objects into a staging table through COPY … FROM STDIN, rendering the
    rows in worker processes when the objects are large local files. A record whose values
    break the table's value rules (validvalues, measured by the run's clock) is rejected;
    each row of a table that keeps its file (q.STAGED_WITH_OBJECT_IDS) gets its object's id."""
    table, objects = item.table, item.objects
    stamped = table in q.STAGED_WITH_OBJECT_IDS
    copier = jsoncopy.JsonCopy(table, q.json_columns(table, wh.table_columns(table)), item.mapping, options,
                               RECORD_NAMES.get(table, "record"), rules=validvalues.rules(table, clock),
                               object_ids=item.object_ids if stamped else None)
    statement = wh.dialect.render(q.copy_from_stdin, table=table,
                                  columns=", ".join(copier.columns + ([q.STAGED_OBJECT_ID] if stamped else [])))
    started = time.perf_counter()
    workers = parallelrows.worker_count(objects)
    rows = (parallelrows.rows(copier, objects, workers, inherited_fds=wh.connection_fds()) if workers > 1
            else copier.rows(sources.prefetched(objects)))
    result = copier.result
    bar = progress.Progress(f"stage {table}", sum(obj.size for obj in objects))

    def measure() -> tuple[float, dict]:
        return result.bytes_read, {"files": f"{result.objects:,}/{len(objects):,}", "records": result.rows}

    # A row at a time from one process, a megabyte chunk at a time from workers.
    tracked = progress.track(rows, bar, measure, every=1 if workers > 1 else 2048)
    reader = jsoncopy.ChunkedReader(_with_checkpoint(tracked))
    try:
        wh.copy_from_stdin(statement, reader, label=f"copy {table}")
    except WarehouseError:
        if reader.error is not None:
            raise reader.error from None
        raise
    finally:
        tracked.close()
        rows.close()  # stops the workers if COPY ended early
    log_step(f"stage {table}", result.rows, started,
             f"  ({result.objects} files, {len(result.rejected)} rejected"
             + (f", rendered by {workers} processes)" if workers > 1 else ")"))
    return result


CHECKPOINT_BYTES = 64 << 10


def _with_checkpoint(rows):
    """The rows, with the crash tests' mid-copy checkpoint once the first 64 KiB have passed
    (a few hundred lines, or the first chunk from the workers, which are still at work then),
    kept off the per-row path: the rest is passed through untouched."""
    passed = 0
    for item in rows:
        yield item
        passed += len(item)
        if passed >= CHECKPOINT_BYTES:
            break
    faults.checkpoint("mid-copy")
    yield from rows


def copy_options(config: Config) -> loads.CopyOptions:
    """COPY's conversion options, the same for Redshift's COPY and the local one."""
    return loads.CopyOptions(max_errors=config.max_errors, truncate_columns=config.truncate_columns,
                                accept_invalid_chars=config.accept_invalid_chars)


def s3_client(config: Config) -> sources.S3 | None:
    """An S3 client when any [S3] value is an s3:// URL (or a manifest prefix is set)."""
    uses_s3 = any(s.is_s3 for s in (config.log_data, config.song_data, config.log_jsonpath))
    return sources.S3(config) if uses_s3 or config.manifest_prefix else None


@dataclass
class Pending:
    """The source objects of one staging table that this batch loads, each with its id
    (object_ids, by URL: its own if it was loaded before, else a new one); replaced: the ids
    of those loaded before, in another version."""

    table: str
    source: Source
    mapping: Mapping
    objects: list[sources.SourceObject]
    object_ids: dict[str, int] = field(default_factory=dict)
    replaced: list[int] = field(default_factory=list)


# What one JSON record of each staging table is, as the reasons for rejecting one say it.
RECORD_NAMES = {"staging_events": "event", "staging_songs": "song"}


# How a staging table's columns are read from a JSON record: "auto" (by key) or the parsed
# JSONPaths file (one path of steps per column, in table order).
Mapping = str | list[tuple]


def staging_sources(config: Config, jsonpaths: Mapping) -> list[tuple[str, Source, Mapping, str]]:
    """(staging table, [S3] source, JSON mapping, config key) for each staging table."""
    return [("staging_events", config.log_data, jsonpaths, "LOG_DATA"),
            ("staging_songs", config.song_data, "auto", "SONG_DATA")]


def find_new_objects(wh: Session, config: Config, s3: sources.S3 | None
                     ) -> tuple[list[Pending], int, list[str], list[str]]:
    """The objects under each prefix that are new or changed; how many are unchanged; the
    loaded ones that are gone from their prefix (what they loaded stays); and, under the
    freeze contract, those held back: new or changed, but failed by a batch under it in the
    version they have now (so the files after them still load)."""
    try:
        jsonpaths = jsoncopy.parse_jsonpaths(sources.read_bytes(config.log_jsonpath, s3))
    except ValueError as exc:
        raise EtlError(f"[S3] LOG_JSONPATH {config.log_jsonpath}: {exc}") from None
    rows = wh.query(q.loaded_object_versions)
    loaded = {(table, key): (size, version) for table, key, size, version, _, _ in rows}
    known_ids = {(table, key): object_id for table, key, _, _, _, object_id in rows}
    next_id = max(known_ids.values(), default=0) + 1
    refused = set(wh.query(q.refused_source_versions)) if config.schema_contract == drift.FREEZE else set()
    held: list[str] = []
    pending: list[Pending] = []
    known = 0
    gone: list[str] = []
    for table, source, mapping, prefix_key in staging_sources(config, jsonpaths):
        objects = sources.list_objects(source, s3)
        if not objects:
            raise EtlError(f"no files found under {source}; check [S3] {prefix_key}")
        new = [o for o in objects if loaded.get((table, o.key)) != (o.size, o.version)]
        held += [o.url for o in new if (table, o.url, drift.object_version(o)) in refused]
        new = [o for o in new if (table, o.url, drift.object_version(o)) not in refused]
        known += len(objects) - len(new)
        item = Pending(table, source, mapping, new)
        for obj in new:
            if (table, obj.key) in known_ids:
                item.object_ids[obj.url] = known_ids[table, obj.key]
                item.replaced.append(known_ids[table, obj.key])
            else:
                item.object_ids[obj.url] = next_id
                next_id += 1
        pending.append(item)
        # Gone: loaded from under this prefix, and not there now (files loaded from another
        # prefix, before [S3] pointed here, are not this prefix's to miss).
        listed = {o.key for o in objects}
        under = str(source).rstrip("/") + "/"
        gone += sorted(url for t, key, _, _, url, _ in rows
                       if t == table and url.startswith(under) and key not in listed)
    return pending, known, gone, held


class SourceFiles:
    """The source files a run reads: which are new or changed, and S3 for Redshift's COPY (its
    manifests, each new object's first bytes, the buckets' regions)."""

    def __init__(self, config: Config):
        self.config = config
        self.s3 = s3_client(config)

    def conditions(self, pending: list[Pending]) -> set[str]:
        """What holds of the batch (q.BATCH_CONDITIONS): a run finds out from its files."""
        return batch_conditions(pending)

    def new_objects(self, wh: Session) -> tuple[list[Pending], int, list[str], list[str]]:
        listed = time.perf_counter()
        found = find_new_objects(wh, self.config, self.s3)
        log_step("find new or changed files", sum(len(item.objects) for item in found[0]), listed)
        return found

    def for_copy(self, wh: Session) -> tuple[Callable[[str, bytes], None], Callable[[str, int], bytes]]:
        """(write an object, read an object's first bytes), after checking the buckets' regions."""
        if self.s3 is None:  # a Redshift config names s3:// sources only (config.load_config)
            raise EtlError("Redshift loads from S3, and no [S3] source is an s3:// URL")
        redshift.check_regions(self.config, self.s3)
        return self.s3.write, self.s3.read


class SourcesShown(SourceFiles):
    """The dry run's source files: each prefix stands for its new or changed files, and what
    a run would read or write in S3 is said, not done. It shows every step a batch can run."""

    def __init__(self, config: Config):
        self.config = config

    def conditions(self, pending: list[Pending]) -> set[str]:
        return set(q.BATCH_CONDITIONS)

    def new_objects(self, wh: Session) -> tuple[list[Pending], int, list[str], list[str]]:
        wh.query(q.loaded_object_versions)
        wh.note("stage only the files that are new or changed since loaded_objects was written")
        # 'auto' stands in for the JSONPaths file, which a dry run does not read: no row is made.
        url = "{}/<each new or changed file>"
        pending = [Pending(table, source, "auto",
                           [sources.SourceObject(url.format(source.url), "<key>", 0, "<version>")],
                           {url.format(source.url): RunTimeValue("object_id")},
                           [RunTimeValue("changed_object_id")] if table in q.STAGED_WITH_OBJECT_IDS else [])
                   for table, source, _, _ in staging_sources(self.config, "auto")]
        return pending, 0, [], []

    def for_copy(self, wh: Session) -> tuple[Callable[[str, bytes], None], Callable[[str, int], bytes]]:
        def write(url: str, body: bytes) -> None:
            wh.note(f"write {url}: a manifest of this batch's new files")

        def read_head(url: str, first_bytes: int) -> bytes:
            wh.note(f"read the first {first_bytes // 1024} KiB of {url} (one ranged S3 GET) to find schema drift")
            return b""

        return write, read_head


def stage(wh: Session, config: Config, pending: list[Pending], batch_id: int,
          files: SourceFiles, clock: datetime) -> list[loads.CopyResult]:
    options = copy_options(config)
    for statement in q.staging_copy_queries:
        wh.execute(statement)
    if wh.dialect.copies_from_s3:
        write, read_head = files.for_copy(wh)
        return redshift.stage(wh, config, pending, options, batch_id, write, read_head)
    results = []
    for item in pending:
        try:
            results.append(stage_json(wh, item, options, clock))
        except ValueError as exc:
            raise EtlError(f"loading {item.table}: {exc}") from None
    return results


def reject_invalid_staged_rows(wh: Session, results: list[loads.CopyResult], clock: datetime,
                               options: loads.CopyOptions) -> None:
    """Rejects the staged rows whose values break a valid range and removes them from
    staging, before any transform can fail on them. Redshift's COPY runs no code of the
    toolkit's: this SQL is where its rows meet the rules. The local COPY has checked them
    on every record as it read it, with file and line; the SQL is not run again on its rows
    (on a million events it would take half a second to find nothing). The rows rejected
    here count towards MAXERROR with the COPY's; the engine cannot say a row's file, so its
    key stands in for it."""
    for result in results:
        if (result.table not in q.invalid_staged_rows
                or set(q.STAGED_VALUE_VIOLATIONS[result.table]) <= result.checked_rules):
            continue
        select = wh.dialect.render(q.invalid_staged_rows[result.table])
        rules = validvalues.rules(result.table, clock)
        source = f"{result.table}, after COPY (which does not say the row's file)"
        errors = []
        # As many as fail the load are enough to fail it (the LIMIT); MAXERROR counts them
        # together with COPY's own rejections, as for every other rejection.
        failing = loads.rejections_that_fail(options.max_errors)
        latest = wh.at_run_time("latest_valid_ms", validvalues.latest_valid_ms(clock))
        found = wh.execute(select, [latest] * (select.count("%s") - 1) + [failing],
                           label=f"{result.table}: find values out of range").fetchall()
        for values in found:
            row = dict(zip(q.INVALID_STAGED_ROW_COLUMNS[result.table], values, strict=True))
            column = row["column_name"]
            errors.append(loads.LoadError(loads.REJECTED, result.table, source, None, column,
                                             f"{column}: {rules[column].reason(row[column])}",
                                             validvalues.excerpt(result.table, row)))
        if errors:
            result.errors.extend(errors)
            if len(result.rejected) >= failing:
                raise loads.TooManyErrors(result.table, result.errors, options.max_errors)
        # Run whether or not any was found (one scan of staging): the script is the same every run.
        delete = wh.dialect.render(q.invalid_staged_rows_delete[result.table])
        removed = wh.execute(delete, [latest] * delete.count("%s"), label=f"{result.table}: remove rejected rows")
        result.rows -= max(removed.rowcount, 0)


def schema_changes(wh: Session, results: list[loads.CopyResult], versions: dict[str, str]) -> list[drift.Change]:
    """What the staged objects' records change in the schema the published batches recorded
    (for a staging table's first batch: its schema)."""
    started = time.perf_counter()
    known = drift.known_schemas(wh)
    changes = [change for result in results
               for change in drift.compare(result.table, known.get(result.table), result.shapes, versions,
                                           result.declared_keys)]
    log_step("schema drift", len(drift.drifted(changes)), started, unit="chg")
    return changes


# --- repair, transform, checks -------------------------------------------------------------------

def repair_texts(wh: Session) -> int:
    """Records repairs for the double-encoded names among this batch's event text."""
    started = time.perf_counter()
    candidates = [row[0] for row in wh.query(q.text_repair_candidates)]
    found = textrepair.repairs(candidates)
    wh.insert_rows(q.text_repair_insert, found, label="text repairs")
    log_step("text repairs", len(found), started)
    return len(found)


def batch_conditions(pending: list[Pending]) -> set[str]:
    """What holds of this batch, in the terms of q.BATCH_CONDITIONS (which steps have work)."""
    conditions = {"changed" if replaced_objects(pending) else "no change"}
    staged = {item.table for item in pending if item.objects}
    conditions |= {"events"} if "staging_events" in staged else set()
    conditions |= {"songs"} if "staging_songs" in staged else set()
    return conditions


def replaced_objects(pending: list[Pending]) -> tuple[int, ...]:
    """The ids of the loaded files whose rows this batch replaces: those of the facts' sources
    that changed since they were loaded."""
    return tuple(object_id for item in pending if item.table in q.STAGED_WITH_OBJECT_IDS for object_id in item.replaced)


def batch_parameters(batch_id: int, pending: list[Pending]) -> dict:
    """The parameters every transform statement may take: the batch, and the changed files
    (a tuple for IN; (0,) stands for none, which no object has)."""
    return {"batch_id": batch_id, "changed_objects": replaced_objects(pending) or (0,)}


# How the dry run labels a step that runs only under a condition (q.BATCH_CONDITIONS).
ONLY_WHEN = {"events": "[only when log files are staged]", "songs": "[only when song files are staged]",
             "changed": "[only when a loaded log file changed]", "no change": "[only when no loaded log file changed]"}


def _label(step: q.Step, conditions: set[str]) -> str:
    """The step's label; where every path is shown (the dry run's conditions: all of them),
    with the conditions it runs under."""
    if not step.needs or conditions != set(q.BATCH_CONDITIONS):
        return step.label
    return " ".join([step.label, *(ONLY_WHEN[need] for need in step.needs)])


def _run(wh: Session, step: q.Step, params: dict, conditions: set[str], written: q.RowsWritten) -> int:
    """Runs the step; returns its rows. An ANALYZE step analyzes those of its tables that
    are due (analyze_due), if any."""
    if not step.analyze:
        return wh.execute(wh.dialect.render(step.sql), params, label=_label(step, conditions)).rowcount
    due = tables_to_analyze(wh, step.analyze, written)
    for table in sorted(set(step.analyze) - set(due)):
        log_step(f"analyze {table}: skipped, changed too little", None, time.perf_counter())
    for statement in wh.dialect.analyze(due):  # labelled with the tables it names
        wh.execute(statement, label=_label(replace(step, label=statement), conditions))
    return -1


def transform(wh: Session, params: dict, conditions: set[str]) -> q.RowsWritten:
    """Runs the transforms and the batch's rollups, those with work under conditions (a dry
    run shows all); returns the rows of the counted steps. A play that lost its catalog match
    makes the rollups be counted again, as a changed file does."""
    written = q.RowsWritten()
    for step in q.transform_steps:
        if not step.runs_in(conditions):
            continue
        rows = _run(wh, step, params, conditions, written)
        if step.counts:  # steps counting into one field add up
            before = getattr(written, step.counts)
            setattr(written, step.counts, rows if before is None or rows < 0 else before + rows)
        if step.sql == q.batch_written_times_create:  # runs in every batch, after the dimensions' writes
            faults.checkpoint("mid-transform")
    counted = {"times": max(written.times or 0, 0), "late_matches": max(written.late_matches or 0, 0)}
    if (written.unmatched or 0) > 0:  # (and the dry run's conditions are all of them already)
        conditions = conditions - {"no change"} | {"changed"}
    for step in q.totals_steps:
        if step.runs_in(conditions):
            _run(wh, step, {**params, **counted}, conditions, written)
    for step in wh.dialect.brin_new_blocks_queries:
        wh.execute(step.sql, label=step.label)
    return written


def brings_most_events(wh: Session, added_events: int | None) -> bool:
    """Whether the batch's events are EVERY_ROW_CHECKS_SHARE of all events or more."""
    if added_events is None or added_events <= 0:
        return False
    return added_events >= EVERY_ROW_CHECKS_SHARE * wh.scalar(q.ROLLUP_ROW_COUNTS["app_events"])


def tables_to_analyze(wh: Session, tables: tuple[str, ...], written: q.RowsWritten) -> list[str]:
    """Those of tables to ANALYZE now, by Redshift's rule: their rows changed by 10 % or more
    since their last ANALYZE. Redshift applies the rule itself, and a table the batch empties
    or creates has only new rows. Otherwise the batch asks PostgreSQL, in one statement,
    with the rows it knows each table holds, so statistics another process left stale cannot
    skip it (a dry run shows the question and the ANALYZE after it)."""
    if wh.dialect.skips_needless_analyze or set(tables) <= set(q.REWRITTEN_EACH_BATCH):
        return list(tables)
    added = {table: max(getattr(written, field) or 0, 0) for table, field in q.ROWS_ADDED_BY.items()}
    rows_added = sum(added[table] for table in tables if table in added)  # a fact is analyzed alone
    due = wh.query(q.analyze_due[tables], {"rows_added": rows_added, "threshold": q.ANALYZE_THRESHOLD})
    due_now = {table for (table,) in due}
    return [table for table in tables if table in due_now]


def run_quality_checks(wh: Session, full: bool = False, batch: bool = True, params: dict | None = None) -> int:
    """Runs every check (on the batch's rows, or on all rows); raises QualityGateFailed
    naming the failures and a few offending rows. Without a batch (--full-checks with
    nothing new) the failure is the warehouse's as it is."""
    failures = []
    started = time.perf_counter()
    checks = qc.quality_checks if full else qc.batch_quality_checks
    for name, statement in checks:
        cur = wh.execute(statement, params)
        rows = cur.fetchmany(CHECK_SAMPLE_ROWS)
        if rows:
            columns = [d[0] for d in cur.description]
            sample = "; ".join(", ".join(f"{c}={v!r}" for c, v in zip(columns, row, strict=True)) for row in rows)
            failures.append(f"{name} FAILED (e.g. {sample})")
    log_step("quality checks", len(checks) - len(failures), started, unit="ok")
    if failures:
        outcome = (", nothing of this batch was published" if batch
                   else " on the warehouse as it is (nothing new to load)")
        raise QualityGateFailed(f"quality gate: {len(failures)} of {len(checks)} checks failed{outcome}: "
                                + " | ".join(failures))
    return len(checks)


# --- bookkeeping -----------------------------------------------------------------------------------

def record_errors(wh: Session, batch_id: int, errors: list[loads.LoadError]) -> None:
    now = utc_now()
    rows = [(batch_id, now, e.disposition, e.table, e.source, e.line_number, e.column, e.reason, e.raw_excerpt)
            for e in errors]
    wh.insert_rows(q.load_error_insert, rows, label="record load errors")


def record_drift(wh: Session, batch_id: int, changes: list[drift.Change]) -> None:
    wh.insert_rows(q.schema_drift_insert, drift.rows_to_record(changes, batch_id, utc_now()),
                   label="record schema drift")


def record_objects(wh: Session, batch_id: int, pending: list[Pending],
                   results: list[loads.CopyResult]) -> None:
    rows = []
    for item, result in zip(pending, results, strict=True):
        for obj in item.objects:
            if obj.url in result.unread:  # not loaded: the next run tries it again
                continue
            loaded, rejected = result.per_object.get(obj.url, (0, 0))
            rows.append((item.object_ids[obj.url], item.table, obj.key, obj.url, obj.size, obj.version, batch_id,
                         loaded, rejected))
    for statement in q.batch_objects_create:
        wh.execute(statement)
    wh.insert_rows(q.batch_objects_insert, rows, label="record loaded objects")
    for statement in q.loaded_objects_replace:
        wh.execute(statement, label="record loaded objects")


MESSAGE_BYTES = 4096  # etl_batches.message: VARCHAR lengths are bytes on Redshift


def record_failed_batch(wh: Session, started_at: datetime, new_objects: int,
                        message: str, errors: list[loads.LoadError], changes: list[drift.Change] | None = None) -> None:
    """After the rollback: keeps the batch's outcome and its bad records, in a transaction
    of their own that takes the load lock again, so the batch id it takes is no other's."""
    try:
        loadlock.take(wh)
        batch_id = wh.scalar(q.next_batch_id)
        text = message.encode("utf-8")[:MESSAGE_BYTES].decode("utf-8", "ignore")
        wh.execute(q.etl_batch_insert, (batch_id, started_at, utc_now(), "failed", new_objects, 0,
                                        sum(1 for e in errors if e.disposition == loads.REJECTED),
                                        0, text))
        record_errors(wh, batch_id, errors)
        record_drift(wh, batch_id, changes or [])
        wh.commit()
    except WarehouseError as exc:
        wh.rollback()
        log.warning("could not record the failed batch: %s", exc)


# --- the run -----------------------------------------------------------------------------------------

@dataclass
class Committing:
    """The batch a run has sent its COMMIT for, from then on: an interruption after that
    point (even while the COMMIT is in flight) may have left the batch published or not,
    and only the warehouse can say which (batch_landed)."""

    batch_id: int | None = None
    started_at: datetime | None = None


def batch_landed(config: Config, batch_id: int, started_at: datetime) -> bool:
    """Whether the batch is published: asked over a connection of its own, since the run's
    own may be gone with its COMMIT."""
    with connect(config) as wh:
        landed = wh.scalar(q.batch_outcome, (batch_id, started_at)) == "published"
        wh.rollback()
    return landed


def interrupted_outcome(config: Config, committing: Committing) -> str:
    """What an interrupted etl.py run left, as its last word: before its COMMIT, nothing; after
    it was sent, what the warehouse says."""
    if committing.batch_id is None or committing.started_at is None:
        return "Error: interrupted; nothing of this run was committed"
    try:
        landed = batch_landed(config, committing.batch_id, committing.started_at)
    except (WarehouseError, KeyboardInterrupt) as exc:
        return (f"Error: interrupted while committing ETL batch {committing.batch_id}, and the warehouse could "
                f"not be asked whether it landed ({exc or 'interrupted again'}); see table etl_batches")
    if landed:
        return (f"Interrupted after the commit: ETL batch {committing.batch_id} is published (see table "
                "etl_batches); run etl.py again to load what is newer")
    return f"Error: interrupted while committing; ETL batch {committing.batch_id} did not land, nothing was published"



def run_batch(config: Config, rebuild: bool = False, full_checks: bool = False,
              sessions: list[int] | None = None, committing: Committing | None = None,
              session: Callable[[], Session] | None = None, files: SourceFiles | None = None) -> RunSummary:
    """One batch in one transaction. sessions: the backend pids of earlier attempts, ended
    before this one takes the lock; this attempt's is added. committing: set to the batch
    before its COMMIT is sent. session and files: the warehouse and the source files, the
    configured ones unless given (the dry run gives its recorder and SourcesShown)."""
    started = time.perf_counter()
    started_at = utc_now()
    summary = RunSummary(target=config.describe_target(), schema_contract=config.schema_contract)
    files = files or SourceFiles(config)
    with (session or (lambda: connect(config)))() as wh:
        summary.replacements_capped = wh.dialect.caps_replacement_log
        if sessions is not None:
            loadlock.end_sessions(wh, sessions)
            if wh.backend_pid is not None:
                sessions.append(wh.backend_pid)
        loadlock.take(wh)
        batch_id = wh.scalar(q.next_batch_id)
        if rebuild:
            for statement in q.rebuild_queries:
                wh.execute(statement, label=statement)
        pending, summary.known_objects, summary.gone_objects, summary.held_back = files.new_objects(wh)
        summary.new_objects = sum(len(item.objects) for item in pending)
        if summary.new_objects == 0:
            if full_checks:  # the nightly use: the whole gate, on the warehouse as it is
                summary.checks_passed = run_quality_checks(wh, full=True, batch=False)
                summary.checks_scope = "every row of the warehouse as it is"
            wh.rollback()
            summary.seconds = time.perf_counter() - started
            return summary
        errors: list[loads.LoadError] = []
        changes: list[drift.Change] = []
        try:
            clock = validvalues.run_clock(started_at)
            results = stage(wh, config, pending, batch_id, files, clock)
            reject_invalid_staged_rows(wh, results, clock, copy_options(config))
            for result in results:
                errors.extend(result.errors)
            versions = {obj.url: drift.object_version(obj) for item in pending for obj in item.objects}
            changes = schema_changes(wh, results, versions)
            if config.schema_contract == drift.FREEZE:
                drift.enforce_freeze(changes, errors, versions)
            summary.text_repairs = repair_texts(wh)
            params = batch_parameters(batch_id, pending)
            conditions = files.conditions(pending)
            written = transform(wh, params, conditions)
            # Plays that lost their match may have moved anywhere in time: every row then.
            every_row = (full_checks or rebuild or (written.unmatched or 0) > 0
                         or brings_most_events(wh, written.events))
            summary.checks_passed = run_quality_checks(wh, full=every_row, params=params)
            summary.checks_scope = "every row" if every_row else "the rows this batch wrote"
        except loads.LoadFailed as exc:
            wh.rollback()
            record_failed_batch(wh, started_at, summary.new_objects, str(exc), exc.errors,
                                getattr(exc, "changes", []))
            raise EtlError(str(exc)) from None
        except QualityGateFailed as exc:
            wh.rollback()
            record_failed_batch(wh, started_at, summary.new_objects, str(exc), errors)
            raise
        summary.batch_id = batch_id
        summary.errors = errors
        summary.drift = drift.drifted(changes)
        for result in results:
            summary.staged.append(StagedTable(result.table, result.objects, result.rows, len(result.rejected)))
        record_errors(wh, batch_id, errors)
        record_drift(wh, batch_id, changes)
        record_objects(wh, batch_id, pending, results)
        counted = time.perf_counter()
        for table in q.STAR_TABLES:
            count = q.ROLLUP_ROW_COUNTS.get(table, q.row_count)
            summary.rows[table] = wh.scalar(wh.dialect.render(count, table=table))
        summary.songplays_matched = wh.scalar(q.songplays_matched)
        summary.songplays_recovered_by_repair = wh.scalar(wh.dialect.render(q.batch_plays_recovered_by_repair), params)
        summary.replaced_events = (wh.scalar(q.replaced_events_count) or 0) if "changed" in conditions else 0
        log_step("count rows for the summary", None, counted)
        wh.execute(q.etl_batch_insert, (batch_id, started_at, utc_now(), "published", summary.new_objects,
                                        sum(s.rows for s in summary.staged), len(summary.rejected),
                                        summary.checks_passed, None))
        faults.checkpoint("before-commit")
        committed = time.perf_counter()
        if committing is not None:
            committing.batch_id, committing.started_at = batch_id, started_at
        try:
            wh.commit()
        except ConnectionLost:
            # The COMMIT may have landed before the connection went: ask, rather than load
            # the batch again or say that nothing was committed.
            if not batch_landed(config, batch_id, started_at):
                raise
            log.warning("the connection was lost during the commit, and batch %s is published", batch_id)
        log_step("commit", None, committed)
        faults.checkpoint("after-commit")
    summary.seconds = time.perf_counter() - started
    return summary


def run_etl(config: Config, rebuild: bool = False, full_checks: bool = False,
            committing: Committing | None = None) -> RunSummary:
    """Runs one batch; a lost connection restarts it (it is atomic) up to ATTEMPTS times,
    each attempt ending the sessions of those before it. committing: see run_batch."""
    sessions: list[int] = []
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return run_batch(config, rebuild=rebuild, full_checks=full_checks, sessions=sessions,
                             committing=committing)
        except ConnectionLost as exc:
            if attempt == ATTEMPTS:
                raise WarehouseError(f"{exc} (gave up after {ATTEMPTS} attempts)") from None
            pause = BACKOFF_S * 2 ** (attempt - 1)
            log.warning("connection lost (%s); nothing was committed, retrying in %.0f s (attempt %d of %d)",
                        exc, pause, attempt + 1, ATTEMPTS)
            time.sleep(pause)
    raise AssertionError("unreachable")


def dry_run_etl(config: Config, rebuild: bool = False) -> str:
    """The statements one etl.py run would send, in order, without connecting."""
    recorder = DryRunWarehouse(config)
    run_batch(config, rebuild=rebuild, session=lambda: recorder, files=SourcesShown(config))
    return recorder.text()
