"""--dry-run: a stand-in for the warehouse that records statements instead of running them.

The scripts run their real code path against it, so what it prints is, in order, what a
run would send to the configured engine; it never connects, and secrets are masked.
"""

from __future__ import annotations

import re
from datetime import datetime

import sql_queries as q

from .config import Config
from .dialects import of

_COLUMN = re.compile(r"^\s+(\w+)\s+(varchar|char|integer|bigint|smallint|double precision|timestamp)"
                     r"(?:\((\d+)\))?(\s+not null)?", re.MULTILINE)
_TYPES = {"varchar": "character varying", "char": "character", "timestamp": "timestamp without time zone"}


class RunTimeValue(int):
    """A number known only when a run runs (a COPY's query id, the run's latest valid time):
    the dry run shows it by its name, :name, so the script stays the same from run to run."""

    name: str

    def __new__(cls, name: str) -> RunTimeValue:
        value = super().__new__(cls, 0)
        value.name = name
        return value


class _Cursor:
    rowcount = -1
    description = None

    def fetchone(self):
        return None

    def fetchall(self):
        return []

    def fetchmany(self, size=None):
        return []


# What the recorder answers to the questions a run asks, where "nothing" would hide a path
# (a batch id, which tables an ANALYZE is due for, which COPY the books are read for): the
# first batch, all of them, and the COPY's id by name. Anything else finds nothing (0, no rows).
SCALAR_ANSWERS = {q.next_batch_id: 1}
QUERY_ANSWERS: dict[str, list[tuple]] = {
    q.redshift_copy_of_this_session: [(RunTimeValue("query_id"), 0, "running")],
    **{sql: [(table,) for table in tables] for tables, sql in q.analyze_due.items()},
}


class DryRunWarehouse:
    """Looks like sparkify.warehouse.Warehouse to the pipeline; prints instead of executing."""

    backend_pid: int | None = None  # no session
    executes = False

    def __init__(self, config: Config):
        self.config = config
        self.dialect = of(config.dialect)  # the dialect a connection to config's engine has
        self.lines: list[str] = [
            f"-- Dry run on {config.describe_target()}: the statements a run sends, in order.",
            "-- Nothing was executed. Secrets are masked as ***.",
        ]

    def note(self, text: str) -> None:
        self.lines.append(f"-- {text}")

    def _record(self, statement: str, label: str | None = None) -> None:
        if label:
            self.note(label)
        text = "\n".join(line.rstrip() for line in statement.strip().splitlines())
        self.lines.append(self.config.redact(text) + ";")

    def execute(self, statement: str, params=None, label: str | None = None):
        if isinstance(params, dict):
            statement = statement % {name: _literal(p) for name, p in params.items()}
        elif params:
            statement = statement % tuple(_literal(p) for p in params)
        self._record(statement, label)
        return _Cursor()

    def query(self, statement: str, params=None) -> list[tuple]:
        self.execute(statement, params)
        return QUERY_ANSWERS.get(statement, [])

    def scalar(self, statement: str, params=None):
        self.execute(statement, params)
        return SCALAR_ANSWERS.get(statement, 0)

    def at_run_time(self, name: str, value: int) -> int:
        """A value the run computes (its clock's latest valid time): shown by its name."""
        return RunTimeValue(name)

    def insert_rows(self, statement: str, rows: list[tuple], label: str | None = None) -> None:
        """Shows a multi-row INSERT with named placeholders: one row per value computed at run time."""
        columns = re.search(r"\(([^)]*)\)", statement)
        names = [c.strip() for c in columns.group(1).split(",")] if columns else ["value"]
        placeholder = "(" + ", ".join(f":{name}" for name in names) + ")"
        label = (label or "insert") + ": one row per value found at run time"
        self._record(statement.replace("%s", placeholder), label)

    def connection_fds(self) -> tuple[int, ...]:
        return ()

    def copy_from_stdin(self, statement: str, stream, label: str) -> int:
        self._record(statement, f"{label}: rows streamed from the new source files")
        return 0

    def table_columns(self, table: str) -> list[tuple[str, str, int | None, bool]]:
        """The columns a table will have, read from its CREATE statement."""
        for statement in q.create_table_queries:
            statement = self.dialect.render(statement)
            if re.search(rf"\b(table|table if not exists)\s+{table}\s*\(", statement):
                return [(name, _TYPES.get(kind, kind), int(length) if length else None, not required)
                        for name, kind, length, required in _COLUMN.findall(statement)]
        raise KeyError(table)

    def commit(self) -> None:
        self.lines.append("commit;")

    def rollback(self) -> None:
        self.lines.append("rollback;")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return False

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _literal(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, RunTimeValue):
        return f":{value.name}"
    if isinstance(value, datetime):
        return ":timestamp"  # the clock at run time: a placeholder keeps the script reproducible
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(item) for item in value) + ")"
    return "'" + str(value).replace("'", "''") + "'"
