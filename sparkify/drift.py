"""Schema drift: the keys and JSON types of the source records, against what earlier batches loaded.

A source changes shape without notice: a new key, a key that goes missing, a value whose
type changes (a number that arrives as a string, an object where text was). COPY, with its
JSONPaths or 'auto', ignores a key it does not know and loads a missing one as NULL, so
without this the change would be swallowed. Each source object's records are observed as
they are read (ObjectShape: every key path with the JSON types it holds, how many records
had it, the first line and an example of each), and compared with the schema earlier
published batches recorded in `schema_drift`: the first batch of a staging table records
its schema (change `baseline`), and every later one records what differs, per source
object, with the first line, an example and when it was seen.

The contract, in dlt's terms, is `[ETL] SCHEMA_CONTRACT`: `report` (dlt's evolve: record,
report and load; the schema then includes the change) or `freeze` (the batch fails naming
the file and line of the first change, before anything is published). A value the schema
does not accept (a level of "gold", a word where a number belongs) is a rejected record
under `report` and fails the batch under `freeze`.

Null is no type of its own here: eventsim writes null for an absent value (a logged-out
event's name), so a null where a string was is not a change; a key that goes missing is.
Integers and floats are both `number`, as JSON has them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

import sql_queries as q

from . import loads

FREEZE = "freeze"  # [ETL] SCHEMA_CONTRACT's values: config.SCHEMA_CONTRACTS

BASELINE = "baseline"
NEW_KEY = "new_key"
VANISHED_KEY = "vanished_key"
TYPE_CHANGE = "type_change"
REFUSED_VALUE = "refused_value"  # a value outside what the schema accepts, under freeze
ABSENT = "absent"  # the json_type of a key some records lack: it is optional from then on
NULL = "null"

_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", dict: "object", list: "array",
          type(None): NULL}
MAX_DEPTH = 4            # nested objects are followed this many levels below the record
ARRAY_ITEMS = 8          # and the first elements of an array: a shape, not a census
EXAMPLE_CHARS = 120
ROWS_PER_CHANGE = 20     # objects recorded per (table, change, key, type) in one batch; the rest summed up
# Redshift: COPY runs none of the toolkit's code, so each new object's first 64 KiB are read
# with a ranged S3 GET before the COPY: one request and at most 64 KiB per object (a day's
# log file: one; 15,000 one-song files: 15,000 requests, about 0.006 USD at S3's 0.0004 USD
# per 1,000 GETs, and their bytes, a few KB each).
SAMPLE_BYTES = 64 << 10


def _example(value: object) -> str:
    try:
        text = orjson.dumps(value).decode("utf-8", "replace")
    except orjson.JSONEncodeError:
        return "a deeply nested value"
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS - 3] + "..."


class ShapePool:
    """What the objects of one COPY share: each layout once, and the first example of each
    (path, type). A first load of 100,000 one-song files keeps 100,000 shapes until the batch
    compares them: kept apart, the layouts and examples took 3.7 KB a file."""

    def __init__(self) -> None:
        self.layouts: dict[tuple, tuple] = {}
        self.examples: dict[tuple[str, str], str] = {}


class ObjectShape:
    """The shape of one source object's records: each distinct layout (the key paths and
    their JSON types, in order) with how many records had it and its first line, and an
    example of each (path, type) that no object of its pool had before.

    Records of one layout are the rule (every event of a log has the same 18 keys), so a
    record whose keys and value types are those of the record before costs two tuples and
    their comparison; only a new layout, or a record with nested objects or arrays, is walked.
    """

    def __init__(self, pool: ShapePool | None = None) -> None:
        self.records = 0
        self.layouts: dict[tuple[tuple[str, str], ...], list[int]] = {}   # -> [records, first line]
        self.examples: dict[tuple[str, str], str] = {}                    # first in its pool
        self._pool = pool if pool is not None else ShapePool()
        self._flat: dict[tuple, list[int]] = {}
        self._last_keys: tuple = ()
        self._last_values: tuple = ()
        self._last_entry: list[int] = [0, 0]

    def __getstate__(self):  # a worker process sends it; the look-up cache stays behind
        return {"records": self.records, "layouts": self.layouts, "examples": self.examples}

    def __setstate__(self, state) -> None:
        self.__dict__.update(state, _pool=ShapePool(), _flat={}, _last_keys=(), _last_values=(),
                             _last_entry=[0, 0])

    def finish(self) -> None:
        """The object is read: drop the look-up cache (its tuples are this object's own)."""
        self._flat = {}
        self._last_keys, self._last_values, self._last_entry = (), (), [0, 0]

    def observe(self, line: int, record: dict) -> None:
        self.records += 1
        keys, values = tuple(record), tuple(map(type, record.values()))
        # Most records repeat the one before: equal tuples of the same objects compare by
        # identity, cheaper than hashing them for the look-up.
        if keys == self._last_keys and values == self._last_values:
            self._last_entry[0] += 1
            return
        signature = (keys, values)
        entry = self._flat.get(signature)
        if entry is not None:
            entry[0] += 1
            self._last_keys, self._last_values, self._last_entry = keys, values, entry
            return
        pairs: list[tuple[str, str]] = []
        self._walk(record, "", line, pairs, 0)
        layout = tuple(dict.fromkeys(pairs))
        layout = self._pool.layouts.setdefault(layout, layout)
        entry = self.layouts.get(layout)
        if entry is None:
            entry = self.layouts[layout] = [0, line]
        entry[0] += 1
        if dict not in values and list not in values:  # nested content varies: walked each time
            self._flat[signature] = entry
            self._last_keys, self._last_values, self._last_entry = keys, values, entry

    def _walk(self, record: dict, prefix: str, line: int, pairs: list, depth: int) -> None:
        for key, value in record.items():
            path = f"{prefix}{key}"
            self._note(path, value, line, pairs, depth)

    def _note(self, path: str, value: object, line: int, pairs: list, depth: int) -> None:
        kind = _TYPES.get(type(value), "string")
        pair = (path, kind)
        pairs.append(pair)
        if pair not in self._pool.examples:
            self.examples[pair] = self._pool.examples[pair] = _example(value)
        if depth >= MAX_DEPTH:
            return
        if kind == "object":
            self._walk(value, f"{path}.", line, pairs, depth + 1)  # type: ignore[arg-type]
        elif kind == "array":
            for item in value[:ARRAY_ITEMS]:  # type: ignore[index]
                self._note(f"{path}[]", item, line, pairs, depth + 1)

    def merge(self, other: ObjectShape) -> None:
        self.records += other.records
        for layout, (count, line) in other.layouts.items():
            entry = self.layouts.setdefault(layout, [0, line])
            entry[0] += count
            entry[1] = min(entry[1], line)
        for pair, seen in other.examples.items():
            self.examples.setdefault(pair, seen)

    def first_line(self, pair: tuple[str, str]) -> int:
        return min(line for layout, (_, line) in self.layouts.items() if pair in layout)

    def counts(self) -> dict[tuple[str, str], int]:
        """Records (or, below the top, values) holding each (path, type)."""
        counted: dict[tuple[str, str], int] = {}
        for layout, (count, _) in self.layouts.items():
            for pair in layout:
                counted[pair] = counted.get(pair, 0) + count
        return counted

    def missing(self, path: str) -> tuple[int, int | None]:
        """How many records (for a nested path: values of its parent that are objects) lack
        path, and the first line of one."""
        parent = _parent(path)
        count, first = 0, None
        for layout, (records, line) in self.layouts.items():
            if parent is not None and (parent, "object") not in layout:
                continue
            if not any(p == path for p, _ in layout):
                count += records
                first = line if first is None else min(first, line)
        return count, first


def _parent(path: str) -> str | None:
    return path.rsplit(".", 1)[0] if "." in path else None


@dataclass(frozen=True)
class Change:
    """One difference between a source object's records and the known schema (or, for a
    table's first batch, one key of its schema: change baseline)."""

    table: str
    source: str
    change: str
    field: str
    json_type: str
    expected: str | None
    records: int
    line_number: int | None
    example: str | None
    version: str | None = None  # the object's size and version, as listed

    def describe(self) -> str:
        where = f"{self.source} line {self.line_number}" if self.line_number else self.source
        if self.change == NEW_KEY:
            what = f"new key {self.field!r} ({self.json_type}, e.g. {self.example})"
        elif self.change == VANISHED_KEY:
            what = f"key {self.field!r} vanished ({self.records:,} records without it)"
        elif self.change == REFUSED_VALUE:
            what = f"{self.example}"
        else:
            what = (f"key {self.field!r} changed type: {self.json_type} where {self.expected} was "
                    f"(e.g. {self.example})")
        return f"{where}: {what}"

    def row(self, batch_id: int, seen_at: datetime) -> tuple:
        return (batch_id, seen_at, self.table, self.source[:1024], self.change, self.field[:256], self.json_type,
                (self.expected or "")[:64] or None, self.records, self.line_number,
                None if self.example is None else self.example.encode("utf-8")[:256].decode("utf-8", "ignore"),
                self.version)


Schema = dict[str, set[str]]  # key path -> JSON types seen (ABSENT: some records lack it)


def known_schemas(wh) -> dict[str, Schema]:
    """Per staging table, the schema the published batches recorded."""
    schemas: dict[str, Schema] = {}
    for table, path, kind in wh.query(q.known_source_schema):
        schemas.setdefault(table, {}).setdefault(path, set()).add(kind)
    return schemas


def object_version(obj) -> str:
    """How schema_drift names the version of a listed object: its size and version."""
    return f"{obj.size} {obj.version}"


def compare(table: str, known: Schema | None, shapes: dict[str, ObjectShape],
            versions: dict[str, str] | None = None, declared: Iterable[str] = ()) -> list[Change]:
    """What the objects' records change in the table's known schema. With none known yet
    (the table's first batch), the schema itself (baseline rows, one per key and type, with
    the first object that had it) from the keys COPY reads (declared: the JSONPaths' keys,
    or the columns 'auto' fills); a key beyond them is new, and a declared key some records
    lack has vanished, as in any later batch. versions: url -> object_version, kept on each
    change."""
    versions = versions or {}
    if known:
        found = _changes(table, known, shapes)
    else:
        provisional, found = _baseline(table, shapes, set(declared))
        found += _changes(table, provisional, shapes)
    return [replace(change, version=versions.get(change.source)) for change in found]


def _examples(shapes: dict[str, ObjectShape]) -> dict[tuple[str, str], str]:
    """The first example of each (path, type) over the objects (each is kept by the first
    object of its pool that had it)."""
    found: dict[tuple[str, str], str] = {}
    for shape in shapes.values():
        for pair, example in shape.examples.items():
            found.setdefault(pair, example)
    return found


def _changes(table: str, known: Schema, shapes: dict[str, ObjectShape]) -> list[Change]:
    changes: list[Change] = []
    examples = _examples(shapes)
    for source, shape in shapes.items():
        counted = shape.counts()
        for (path, kind), count in counted.items():
            types = known.get(path)
            line, example = shape.first_line((path, kind)), examples.get((path, kind))
            if types is None:
                changes.append(Change(table, source, NEW_KEY, path, kind, None, count, line, example))
            elif kind != NULL and kind not in types and _parent_known_as_object(known, path):
                expected = "/".join(sorted(types - {ABSENT, NULL})) or NULL
                changes.append(Change(table, source, TYPE_CHANGE, path, kind, expected, count, line, example))
        for path, types in known.items():
            if ABSENT in types or path.endswith("[]"):
                continue
            count, first = shape.missing(path)
            if count:
                expected = "/".join(sorted(types - {NULL})) or (NULL if NULL in types else "declared")
                changes.append(Change(table, source, VANISHED_KEY, path, ABSENT, expected, count, first, None))
    return changes


def _parent_known_as_object(known: Schema, path: str) -> bool:
    parent = _parent(path)
    return parent is None or "object" in known.get(parent, set())


def _top(path: str) -> str:
    return path.split(".", 1)[0].removesuffix("[]")


def _baseline(table: str, shapes: dict[str, ObjectShape], declared: set[str]) -> tuple[Schema, list[Change]]:
    """A first batch's schema (the keys COPY reads, and below them, with the types its
    records hold; a nested key some records lack is optional) and its baseline rows. Without
    declared keys every key seen is declared."""
    first: dict[tuple[str, str], tuple[str, int, str | None]] = {}
    totals: dict[tuple[str, str], int] = {}
    examples = _examples(shapes)
    for source, shape in shapes.items():
        for pair, count in shape.counts().items():
            if declared and _top(pair[0]) not in declared:
                continue  # beyond the keys COPY reads: a new key
            totals[pair] = totals.get(pair, 0) + count
            if pair not in first:
                first[pair] = (source, shape.first_line(pair), examples.get(pair))
    schema: Schema = {}
    for path, kind in totals:
        schema.setdefault(path, set()).add(kind)
    for key in declared:
        schema.setdefault(key, set())  # declared and in no record: vanished from each object
    optional: dict[str, tuple[str, int, int]] = {}
    for source, shape in shapes.items():
        for path in sorted(schema):
            if path.endswith("[]") or (declared and "." not in path):
                continue  # a declared key some records lack has vanished (_changes says so)
            count, line_lacking = shape.missing(path)
            if count:
                seen = optional.get(path)
                optional[path] = (seen[0], seen[1], seen[2] + count) if seen else (source, line_lacking or 0, count)
    for path in optional:
        schema[path].add(ABSENT)
    rows = [Change(table, source, BASELINE, path, kind, None, totals[(path, kind)], line, example)
            for (path, kind), (source, line, example) in first.items()]
    rows += [Change(table, source, BASELINE, path, ABSENT, None, count, line or None, None)
             for path, (source, line, count) in optional.items()]
    return schema, rows


def drifted(changes: Iterable[Change]) -> list[Change]:
    return [c for c in changes if c.change != BASELINE]


def rows_to_record(changes: list[Change], batch_id: int, seen_at: datetime) -> list[tuple]:
    """schema_drift rows: each change per object, up to ROWS_PER_CHANGE objects for one
    (table, change, key, type); the rest as one row whose source says how many more."""
    rows: list[tuple] = []
    extra: dict[tuple, tuple[int, int]] = {}
    taken: dict[tuple, int] = {}
    for change in changes:
        key = (change.table, change.change, change.field, change.json_type)
        taken[key] = taken.get(key, 0) + 1
        if taken[key] <= ROWS_PER_CHANGE:
            rows.append(change.row(batch_id, seen_at))
        else:
            objects, records = extra.get(key, (0, 0))
            extra[key] = (objects + 1, records + change.records)
    for (table, change_kind, path, kind), (objects, records) in extra.items():
        rows.append(Change(table, f"{objects:,} more objects", change_kind, path, kind, None, records, None,
                           None).row(batch_id, seen_at))
    return rows


def summary_lines(changes: list[Change], contract_name: str, limit: int = 8) -> list[str]:
    """The run summary's lines about drift: how many changes of each kind, then the first few."""
    found = drifted(changes)
    if not found:
        return [f"  schema drift: none (contract {contract_name})"]
    kinds = {NEW_KEY: "new keys", VANISHED_KEY: "vanished keys", TYPE_CHANGE: "type changes"}
    counted = ", ".join(f"{sum(1 for c in found if c.change == kind):,} {name}" for kind, name in kinds.items())
    out = [f"  schema drift (contract {contract_name}; recorded in schema_drift): {counted}"]
    out += [f"    {c.table}: {c.describe()}" for c in found[:limit]]
    if len(found) > limit:
        out.append(f"    … and {len(found) - limit:,} more (select * from schema_drift)")
    return out


class SchemaFrozen(loads.LoadFailed):
    """Under the freeze contract: the batch's records changed the schema, or a value was one
    the schema does not accept. Nothing of the batch is published."""

    def __init__(self, table: str, errors: list[loads.LoadError], changes: list[Change], message: str):
        super().__init__(table, errors, message)
        self.changes = changes

    def __reduce__(self):
        return (SchemaFrozen, (self.table, self.errors, self.changes, str(self)))


def enforce_freeze(changes: list[Change], errors: list[loads.LoadError], versions: dict[str, str]) -> None:
    """Raises SchemaFrozen naming the first change (or value the schema refused) by file and
    line; its changes hold both, with the objects' versions, so the run after it holds those
    objects back while they are unchanged."""
    found = drifted(changes)
    refused = [e for e in errors if e.disposition == loads.REJECTED and e.column is not None]
    if not found and not refused:
        return
    if found:
        first = found[0].describe()
        table = found[0].table
    else:
        error = refused[0]
        where = error.source if error.line_number is None else f"{error.source} line {error.line_number}"
        first, table = f"{where}: {error.reason}", error.table
    parts = [f"{len(found):,} schema changes"] if found else []
    if refused:
        parts.append(f"{len(refused):,} values the schema does not accept")
    values = [Change(e.table, e.source, REFUSED_VALUE, e.column or "", "-", None, 1, e.line_number,
                     e.reason, versions.get(e.source)) for e in refused]
    raise SchemaFrozen(table, errors, found + values, (
        f"schema contract freeze: {' and '.join(parts)} (first: {first}); nothing of this batch was published. "
        "Fix the files, or set [ETL] SCHEMA_CONTRACT = report to record the changes and load"))
