"""`etl.py --status`: how the loads went and how fresh the warehouse is, without loading.

It reads the bookkeeping only (etl_batches, schema_drift) and the newest event time, takes
no load lock (a status never waits for a load), and changes nothing. Freshness is measured
as dbt's source freshness does it: the age of the newest loaded timestamp (here the newest
event, app_events.start_time) against `[ETL] FRESHNESS_WARN_AFTER` and
`FRESHNESS_ERROR_AFTER`. The exit status is for a monitor: 0 fresh (or no threshold set),
1 past the warning threshold, 2 past the error threshold, never loaded, or the warehouse
cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sql_queries as q

from .config import Config
from .dryrun import DryRunWarehouse
from .warehouse import Session, utc_now

FRESH, WARN, ERROR = 0, 1, 2
LAST_BATCHES = 5
FAILED_SHOWN = 5
DRIFT_DAYS = 7       # "recent" drift: found in the last week
DRIFT_SHOWN = 10
MESSAGE_CHARS = 300


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return f"{_age(-delta)} ahead of now"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days:,} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@dataclass
class Status:
    lines: list[str] = field(default_factory=list)
    code: int = FRESH


def freshness(latest: datetime | None, now: datetime, warn_after: timedelta | None,
              error_after: timedelta | None) -> tuple[int, str]:
    """The exit status and the line for the newest event time, as dbt's source freshness judges it."""
    if latest is None:
        return ERROR, "freshness: ERROR, the warehouse holds no event yet (run etl.py)"
    age = now - latest
    limits = ", ".join(f"{name} after {_age(limit)}" for name, limit in (("warn", warn_after), ("error", error_after))
                       if limit)
    if not limits:
        return FRESH, (f"freshness: not checked, the newest event is {_age(age)} old "
                       "(set [ETL] FRESHNESS_WARN_AFTER and FRESHNESS_ERROR_AFTER, e.g. 36h and 3d)")
    if error_after and age > error_after:
        return ERROR, f"freshness: ERROR, the newest event is {_age(age)} old ({limits})"
    if warn_after and age > warn_after:
        return WARN, f"freshness: WARN, the newest event is {_age(age)} old ({limits})"
    return FRESH, f"freshness: fresh, the newest event is {_age(age)} old ({limits})"


def status(wh: Session | DryRunWarehouse, config: Config, now: datetime | None = None) -> Status:
    """What --status prints, and its exit status."""
    now = now or utc_now()
    out = Status()
    out.lines.append(f"Status of the warehouse on {config.describe_target()} at {_when(now)} UTC")
    batches = wh.query(q.status_batches, (LAST_BATCHES,))
    if not batches:
        out.lines.append("  no batch yet: etl.py has not loaded anything")
    else:
        out.lines.append(f"  last {len(batches)} batches (newest first):")
        for batch_id, started, finished, outcome, objects, rows, rejected, _ in batches:
            seconds = (finished - started).total_seconds()
            out.lines.append(f"    {batch_id:>5}  {_when(finished)}  {outcome:<9} {objects:>7,} files {rows:>12,} rows "
                             f"{rejected:>7,} rejected  {seconds:8.1f} s")
    failed = wh.query(q.status_failed_batches, (FAILED_SHOWN,))
    if failed:
        out.lines.append(f"  failed since the last published batch: {len(failed)}")
        for batch_id, finished, message in failed:
            text = " ".join((message or "").split())
            text = text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"
            out.lines.append(f"    batch {batch_id} at {_when(finished)}: {text}")
    latest = wh.scalar(q.status_latest_event)
    if not isinstance(latest, datetime):  # a dry run's stand-in value
        latest = None
    out.lines.append(f"  latest event time: {_when(latest)}")
    drift = wh.query(q.status_recent_drift, (now - timedelta(days=DRIFT_DAYS), DRIFT_SHOWN))
    if drift:
        out.lines.append(f"  schema drift in the last {DRIFT_DAYS} days (newest first; select * from schema_drift):")
        for seen, batch_id, table, source, change, path, kind, expected, line in drift:
            where = f"{source} line {line}" if line else source
            found = f"{kind} where {expected} was" if expected and change == "type_change" else kind
            out.lines.append(f"    {_when(seen)} batch {batch_id} {table} {where}: {change} {path!r} ({found})")
    else:
        out.lines.append(f"  schema drift in the last {DRIFT_DAYS} days: none")
    out.code, line = freshness(latest, now, config.freshness_warn_after, config.freshness_error_after)
    out.lines.append(f"  {line}")
    return out
