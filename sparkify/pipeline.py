"""The ETL job: stage the JSON, repair event text, transform into the star schema.

A run is one batch in one transaction: staging, the transforms and the counts commit
together or not at all, so a failure leaves the warehouse as it was before the run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sql_queries as q

from . import jsoncopy, sources, textrepair
from .config import Config
from .warehouse import Warehouse, connect

log = logging.getLogger(__name__)


class EtlError(Exception):
    pass


@dataclass
class StagedTable:
    table: str
    objects: int
    rows: int
    rejected: int


@dataclass
class RunSummary:
    target: str
    staged: list[StagedTable] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    songplays_matched: int = 0
    songplays_recovered_by_repair: int = 0
    text_repairs: int = 0
    errors: list[jsoncopy.LoadError] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"ETL finished in {self.seconds:.1f} s on {self.target}"]
        for staged in self.staged:
            out.append(f"  staged {staged.table:<15} {staged.rows:>10,} rows from {staged.objects:,} files"
                       f"  ({staged.rejected:,} rejected)")
        out.append("  tables:")
        for table, count in self.rows.items():
            out.append(f"    {table:<12} {count:>10,}")
        plays = self.rows.get("songplays", 0)
        share = 100.0 * self.songplays_matched / plays if plays else 0.0
        out.append(f"  songplays matched to the catalog: {self.songplays_matched:,} of {plays:,} ({share:.1f}%),"
                   f" {self.songplays_recovered_by_repair:,} of this run's thanks to repairing"
                   f" double-encoded UTF-8 ({self.text_repairs:,} names repaired)")
        out.append(f"  bad records: {len(self.errors):,}"
                   + (" (see table load_errors)" if self.errors else ""))
        for error in self.errors[:5]:
            out.append(f"    {error.source}:{error.line_number}: {error.reason}")
        return out


def stage_json(wh: Warehouse, table: str, objects, mapping, options: jsoncopy.CopyOptions
               ) -> jsoncopy.CopyResult:
    """Loads JSON objects into a staging table through COPY … FROM STDIN."""
    copier = jsoncopy.JsonCopy(table, wh.table_columns(table), mapping, options)
    statement = q.copy_from_stdin.format(table=table, columns=", ".join(copier.columns))
    started = time.perf_counter()
    wh.copy_from_stdin(statement, jsoncopy.ChunkedReader(copier.rows(objects)), label=f"copy {table}")
    result = copier.result
    log.info("%-38s %8s rows  %6.2f s  (%d files, %d rejected)", f"stage {table}", f"{result.rows:,}",
             time.perf_counter() - started, result.objects, len(result.errors))
    return result


def record_errors(wh: Warehouse, errors: list[jsoncopy.LoadError]) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [(now, e.table, e.source, e.line_number, e.column, e.reason, e.raw_excerpt) for e in errors]
    wh.insert_rows(q.load_error_insert, rows, label="record load errors")


def repair_texts(wh: Warehouse) -> int:
    """Records repairs for the double-encoded names among this batch's event text."""
    candidates = [row[0] for row in wh.query(q.text_repair_candidates)]
    found = textrepair.repairs(candidates)
    wh.insert_rows(q.text_repair_insert, found, label="text repairs")
    log.info("%-38s %8s rows", "text repairs", f"{len(found):,}")
    return len(found)


def _copy_options(config: Config) -> jsoncopy.CopyOptions:
    return jsoncopy.CopyOptions(max_errors=config.max_errors)


def stage(wh: Warehouse, config: Config) -> list[jsoncopy.CopyResult]:
    if wh.dialect != "postgres":
        raise EtlError("staging from S3 into Redshift is not available in this version; "
                       "leave [CLUSTER] HOST empty or point it at PostgreSQL")
    try:
        jsonpaths = jsoncopy.parse_jsonpaths(sources.read_bytes(config.log_jsonpath))
    except ValueError as exc:
        raise EtlError(f"[S3] LOG_JSONPATH {config.log_jsonpath}: {exc}") from None
    options = _copy_options(config)
    for statement in q.empty_staging_queries:
        wh.execute(q.physical(statement, wh.dialect))
    results = []
    for table, source, mapping in (("staging_events", config.log_data, jsonpaths),
                                   ("staging_songs", config.song_data, "auto")):
        objects = sources.list_objects(source)
        if not objects:
            raise EtlError(f"no files found under {source}; check [S3] {_key_of(config, source)}")
        try:
            results.append(stage_json(wh, table, objects, mapping, options))
        except ValueError as exc:
            raise EtlError(f"loading {table}: {exc}") from None
    return results


def _key_of(config: Config, source) -> str:
    for key in ("log_data", "song_data", "log_jsonpath"):
        if getattr(config, key) == source:
            return key.upper()
    return "?"


def transform(wh: Warehouse) -> None:
    for statement in q.batch_tables_drop:
        wh.execute(statement)
    for label, statement in q.transform_queries:
        wh.execute(q.physical(statement, wh.dialect), label=label)


def run_etl(config: Config) -> RunSummary:
    started = time.perf_counter()
    summary = RunSummary(target=config.describe_target())
    with connect(config) as wh:
        try:
            results = stage(wh, config)
        except jsoncopy.TooManyErrors as exc:
            wh.rollback()
            record_errors(wh, exc.errors)
            wh.commit()
            raise EtlError(str(exc)) from None
        for result in results:
            summary.staged.append(StagedTable(result.table, result.objects, result.rows, len(result.errors)))
            summary.errors.extend(result.errors)
        record_errors(wh, summary.errors)
        summary.text_repairs = repair_texts(wh)
        transform(wh)
        for table in q.STAR_TABLES:
            summary.rows[table] = wh.scalar(q.row_count.format(table=table))
        summary.songplays_matched = wh.scalar(q.songplays_matched)
        summary.songplays_recovered_by_repair = wh.scalar(q.batch_plays_recovered)
        wh.commit()
    summary.seconds = time.perf_counter() - started
    return summary


def create_tables(config: Config) -> list[str]:
    """Drops and re-creates every table; returns the tables created."""
    with connect(config) as wh:
        for statement in q.drop_table_queries:
            wh.execute(statement)
        for statement in q.create_table_queries:
            wh.execute(q.physical(statement, wh.dialect))
        wh.commit()
    return list(q.TABLES)



