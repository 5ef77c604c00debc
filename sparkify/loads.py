"""What a load gives and how it fails, whichever engine's COPY staged it: the rejected and
replaced records (LoadError), the per-table result (CopyResult), COPY's options
(CopyOptions), and the failures that fail a load whole (TooManyErrors at MAXERROR, a value
over 4 MB). The local COPY (jsoncopy, parallelrows) and Redshift's (redshift) both speak
these, and the pipeline reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LoadFailed(Exception):
    """A staging table's load failed whole, as Redshift's COPY does: the batch publishes
    nothing. errors: the records rejected up to then, and the one that failed it."""

    def __init__(self, table: str, errors: list[LoadError], message: str):
        super().__init__(message)
        self.table = table
        self.errors = errors

    def __reduce__(self):  # a worker process hands it to its caller
        return (LoadFailed, (self.table, self.errors, str(self)))


def _where(error: LoadError) -> str:
    return error.source if error.line_number is None else f"{error.source} line {error.line_number}"


class TooManyErrors(LoadFailed):
    def __init__(self, table: str, errors: list[LoadError], max_errors: int):
        self.max_errors = max_errors
        rejected = [e for e in errors if e.disposition == REJECTED]
        super().__init__(table, errors, (
            f"loading {table} rejected {len(rejected):,} records, and MAXERROR = {max_errors} fails a load at "
            f"{rejections_that_fail(max_errors):,} (first: {_where(rejected[0])}: {rejected[0].reason}); "
            "see table load_errors, fix the files or raise [ETL] MAXERROR"))

    def __reduce__(self):
        return (TooManyErrors, (self.table, self.errors, self.max_errors))


class ObjectTooLarge(LoadFailed):
    """A JSON value over 4 MB: Redshift's COPY fails whole on one, and so does the local COPY."""

    def __init__(self, table: str, error: LoadError, errors_before: list[LoadError]):
        self.error = error
        super().__init__(table, [*errors_before, error], (
            f"loading {table} failed at {_where(error)}: {error.reason}; Redshift's COPY fails the whole "
            "load on such a value, so nothing of this batch was published"))

    def __reduce__(self):
        return (ObjectTooLarge, (self.table, self.error, self.errors[:-1]))


# AWS, Redshift Database Developer Guide, "Data load operations" (copy-parameters-data-load),
# MAXERROR: "If the load returns the error_count number of errors or greater, the load
# fails"; "Set this value to 0 or 1 if you want the load to fail as soon as the first error
# occurs"; default 0, limit 100000 (config.MAXERROR_LIMIT). The local COPY fails at the
# same count.
def rejections_that_fail(max_errors: int) -> int:
    """How many rejected records fail a load with this MAXERROR, as Redshift counts them."""
    return max(max_errors, 1)


REJECTED = "rejected"
REPLACED = "replaced"  # loaded, with invalid characters replaced by '?' (ACCEPTINVCHARS)


@dataclass(frozen=True)
class LoadError:
    disposition: str
    table: str
    source: str
    line_number: int | None
    column: str | None
    reason: str
    raw_excerpt: str


@dataclass(frozen=True)
class CopyOptions:
    """Redshift COPY's data-conversion options, with the values the toolkit uses."""

    max_errors: int = 0
    empty_as_null: bool = True
    blanks_as_null: bool = True
    truncate_columns: bool = False
    accept_invalid_chars: bool = True


@dataclass
class CopyResult:
    table: str
    objects: int = 0
    rows: int = 0
    errors: list[LoadError] = field(default_factory=list)       # rejected and replaced
    # url -> (rows, rejected); from Redshift's COPY, (lines scanned less rejected, rejected)
    per_object: dict[str, tuple[int, int]] = field(default_factory=dict)
    bytes_read: int = 0      # of the source objects, as read so far (progress)
    rejected_count: int = 0  # kept as errors arrive: MAXERROR is checked on every rejection
    # Objects that could not be read at all: they are not recorded as loaded, so each run
    # tries (and reports) them again until they read.
    unread: set[str] = field(default_factory=set)
    # The columns whose value rules this COPY checked on every record (Redshift's checks none).
    checked_rules: frozenset[str] = frozenset()
    # url -> the shape of the object's records (keys and JSON types): a drift.ObjectShape,
    # which knows this module (its SchemaFrozen is a LoadFailed), hence Any here
    shapes: dict[str, Any] = field(default_factory=dict)
    # The top-level keys COPY reads (the JSONPaths' keys, or the columns 'auto' fills): a
    # table's first batch takes them as its schema, and a key beyond them as new.
    declared_keys: tuple[str, ...] = ()

    @property
    def rejected(self) -> list[LoadError]:
        return [e for e in self.errors if e.disposition == REJECTED]
