"""Creating the warehouse: its tables and views, and the analysts' read-only role.

create_tables.py drops and re-creates everything (or, with --if-missing, creates what is
missing), under the load lock so it never changes tables under a running load, then grants
the analysts' role its reads. The statements are sql_queries'; what differs by engine is the
warehouse's dialect's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sql_queries as q

from . import descriptions, faults, loadlock
from .config import Config
from .dryrun import DryRunWarehouse
from .warehouse import Session, WarehouseError, connect


class SchemaError(Exception):
    """What stops create_tables; one line naming what to do."""


def dry_run_create_tables(config: Config) -> str:
    recorder = DryRunWarehouse(config)
    create_tables(config, dry_run=recorder)
    return recorder.text()


@dataclass
class CreatedTables:
    """What create_tables did: the tables it created, and the rows it dropped per table
    (for etl_batches: the published batches)."""

    created: list[str]
    dropped: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    analyst_role: str = ""

    def lines(self, target: str) -> list[str]:
        out = []
        if self.dropped:
            batches = self.dropped.get("etl_batches", 0)
            rows = ", ".join(f"{table} {count:,}" for table, count in self.dropped.items() if table != "etl_batches")
            out.append(f"Dropped {batches:,} loaded batch{'' if batches == 1 else 'es'} ({rows} rows)")
        if self.kept:
            out.append(f"Kept the {len(self.kept)} tables the warehouse on {target} already has, and their data")
            if self.created:
                out.append(f"Created the {len(self.created)} missing: {', '.join(self.created)}")
        else:
            out.append(f"Created {len(self.created)} tables on {target}: {', '.join(self.created)}")
        if self.analyst_role:
            out.append(self.analyst_role[0].upper() + self.analyst_role[1:])
        return out


DROP_REPORTED = ["etl_batches", "songplays", "app_events", "users", "songs", "artists", "time"]


def create_tables(config: Config, dry_run: DryRunWarehouse | None = None, if_missing: bool = False,
                  committed: Callable[[], None] | None = None) -> CreatedTables:
    """Drops and re-creates every table and view (with if_missing: creates only what is
    missing and drops nothing) and commits (then calls committed); then grants the analysts'
    role its reads, in transactions of their own. Refuses, changing
    nothing, when views the toolkit does not own read its tables. Works under the load lock,
    so it never changes tables under a running load (it waits for the load, or says who
    holds the lock); with if_missing and nothing missing it only renews the grants."""
    with dry_run or connect(config) as wh:
        existing = {row[0] for row in wh.query(q.existing_relations)}
        if "etl_lock" in existing:
            loadlock.take(wh)
        if if_missing:
            done = CreatedTables(created=[t for t in q.TABLES if t not in existing],
                                 kept=[t for t in q.TABLES if t in existing])
        else:
            refuse_dependent_views(wh)
            done = CreatedTables(created=list(q.TABLES))
            for table in DROP_REPORTED:
                if table in existing:
                    count = q.published_batches if table == "etl_batches" else q.row_count
                    done.dropped[table] = wh.scalar(wh.dialect.render(count, table=table))
            for statement in q.drop_view_queries + q.drop_table_queries:
                wh.execute(statement)
        for table in done.created:
            wh.execute(wh.dialect.render(q.CREATE_TABLES[table]))
        views = [v for view, v in zip(q.VIEWS, q.create_view_queries, strict=True)
                 if view not in existing or not if_missing]
        if done.created or views:
            for statement in wh.dialect.create_index_queries + views + [q.etl_lock_row_insert]:
                wh.execute(statement)
            for statement in descriptions.comment_statements():
                wh.execute(statement)
        wh.commit()  # the tables are the warehouse's, whatever becomes of the analysts' role
        if committed is not None:
            committed()
        faults.checkpoint("tables-committed")
        if config.analyst_role:
            done.analyst_role = grant_analyst_role(wh, config.analyst_role)
    return done


def refuse_dependent_views(wh: Session) -> None:
    """Raises SchemaError naming the views, not the toolkit's, that read its tables or views:
    dropping the tables would fail on them (or, with CASCADE, silently take them along)."""
    ours = set(q.TABLES) | set(q.VIEWS)
    theirs: dict[str, list[str]] = {}
    for view, source in wh.query(q.dependent_views):
        if source in ours and view not in q.VIEWS:
            theirs.setdefault(view, []).append(source)
    if theirs:
        named = "; ".join(f"{view} (reads {', '.join(sources)})" for view, sources in sorted(theirs.items()))
        raise SchemaError(f"views that are not the toolkit's read the tables create_tables.py would drop: {named}. "
                       "Nothing was dropped. Save their definitions, drop them (drop view NAME), run "
                       "create_tables.py, then create them again; or load without dropping: python3 tasks.py run")


# SQLSTATE of CREATE ROLE for a role that exists (duplicate_object), on both engines.
DUPLICATE_OBJECT = "42710"


def grant_analyst_role(wh: Session, role: str) -> str:
    """Creates the read-only role when missing (and allowed) and grants it SELECT on what
    analysts read, each in a transaction of its own after the tables have committed;
    returns what it did, for the output. A role that exists already is success, even when
    CREATE ROLE is what says so; a role that cannot be made or granted is one line saying
    what an administrator runs."""
    exists = wh.scalar(wh.dialect.role_exists, (role,))
    # A dry run shows the questions, then what a run allowed to create roles sends.
    may_create = bool(exists) or bool(wh.scalar(wh.dialect.may_create_roles)) or not wh.executes
    if not exists and may_create:
        try:
            wh.execute(wh.dialect.render(q.role_create, role=role))
            wh.commit()
        except WarehouseError as exc:
            wh.rollback()
            if exc.sqlstate != DUPLICATE_OBJECT:
                return _ask_an_administrator(wh, role, str(exc))
    # Granted also when the role looked absent: Redshift hides from a non-superuser the roles
    # an administrator made that it cannot reach, and the GRANT is what tells.
    schema = wh.scalar(q.warehouse_schema) or "public"  # a dry run asks and shows public
    if not re.fullmatch(r"[a-z_][a-z0-9_$]*", schema):
        schema = '"' + schema.replace('"', '""') + '"'
    try:
        for statement in wh.dialect.role_grants:
            wh.execute(wh.dialect.render(statement, role=role, schema=schema))
        wh.commit()
    except WarehouseError as exc:
        wh.rollback()
        reason = str(exc) if may_create else f"it does not exist and {wh.config.db_user} may not create roles"
        return _ask_an_administrator(wh, role, reason)
    return f"analysts' role {role}: SELECT on the star schema, its views and summaries"


def _ask_an_administrator(wh: Session, role: str, reason: str) -> str:
    """The one line that says what an administrator runs for the analysts' role."""
    login = wh.dialect.render(wh.dialect.analyst_login, role=role)
    return (f"analysts' role {role} not granted ({reason}); the tables are created. An administrator runs: "
            f"create role {role}; then python create_tables.py --if-missing grants its reads; "
            f"and for each analyst's login: {login}")
