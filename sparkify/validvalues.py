"""The valid ranges of the staged values the transforms convert, as the local COPY checks them.

A userId the transforms cannot cast to an integer, or a ts or registration (epoch
milliseconds) they cannot turn into a timestamp whose year fits the time table, would fail
the batch inside a transform, which cannot say which record it came from, and fail every
later batch the same way. The local COPY (jsoncopy) checks these rules on each record as it
reads it, so a record that breaks one is rejected with its file, line and column like any
other bad record, and the records around it load. The ranges, and the same rules as SQL for
Redshift's COPY, which runs none of this code, are in sql_queries (STAGED_VALUE_VIOLATIONS);
the tests prove the two agree.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import datetime

import sql_queries as q

_MAX_TEXT = str(q.USER_ID_MAX)
_MAX_DIGITS = len(_MAX_TEXT)

# The source's name of each staged column a rejection names or shows (the JSONPaths file maps
# them), so a reason reads as the file does.
SOURCE_FIELDS = {"user_id": "userId", "session_id": "sessionId", "item_in_session": "itemInSession",
                 "ts": "ts", "registration": "registration", "level": "level"}


def run_clock(now: datetime) -> datetime:
    """The clock the rules of one run are measured by: its start, in whole seconds (the form
    the SQL takes it in, so both say the same)."""
    return now.replace(microsecond=0)


def latest_valid_ms(clock: datetime) -> int:
    """The latest valid time, in epoch milliseconds: a day past the run's clock (naive UTC)."""
    return calendar.timegm(clock.timetuple()) * 1000 + q.VALID_AHEAD_MS


def _show(value) -> str:
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class UserIdRule:
    """A userId as staged (text): a user id in plain digits; empty is a logged-out event (the
    local COPY stages it as NULL and never asks)."""

    column: str
    low = None  # not a number column: no bounds for the local COPY's fast path
    high = None

    def accepts(self, text: str) -> bool:
        # Plain digits (isdigit alone takes other scripts' digits too), no leading 0, and as
        # many as the maximum at most, compared as text: called for every event, so kept to
        # string methods (a regular expression and int() took three times as long).
        return (text.isdigit() and text.isascii() and text[0] != "0"
                and (len(text) < _MAX_DIGITS or (len(text) == _MAX_DIGITS and text <= _MAX_TEXT)))

    def reason(self, text: str) -> str:
        return (f"{_show(text)} is not a user id: {SOURCE_FIELDS[self.column]} must be a whole number "
                f"1..{q.USER_ID_MAX} in plain digits, or empty for a logged-out event")


@dataclass(frozen=True)
class TimeRule:
    """A time in epoch milliseconds (an integer, or a double for registration)."""

    column: str
    high: int  # the latest valid millisecond of this run
    low = q.FIRST_VALID_MS

    def accepts(self, number: int | float) -> bool:
        return self.low <= number <= self.high

    def reason(self, number: int | float) -> str:
        return (f"{_show(number)} is not a time from {q.FIRST_VALID_DAY} to a day after this run: "
                f"{SOURCE_FIELDS[self.column]} must be epoch milliseconds {self.low}..{self.high}")


@dataclass(frozen=True)
class AcceptedRule:
    """A text value from a fixed set (a level: free or paid): another value is drift in the
    source, rejected where it is staged, with its file and line."""

    column: str
    values: tuple[str, ...]
    low = None  # no bounds for the local COPY's fast path
    high = None

    def accepts(self, text: str) -> bool:
        return text in self.values

    def reason(self, text: str) -> str:
        return (f"{_show(text)} is not an accepted value: {SOURCE_FIELDS[self.column]} must be "
                + " or ".join(self.values))


ValueRule = UserIdRule | TimeRule | AcceptedRule


def rules(table: str, clock: datetime) -> dict[str, ValueRule]:
    """The rules of a staging table's columns for a run with this clock (run_clock)."""
    latest = latest_valid_ms(clock)
    made: dict[str, ValueRule] = {"user_id": UserIdRule("user_id"), "ts": TimeRule("ts", latest),
            "registration": TimeRule("registration", latest), "level": AcceptedRule("level", q.LEVELS)}
    return {column: made[column] for column in q.STAGED_VALUE_VIOLATIONS.get(table, {})}


def excerpt(table: str, row: dict) -> str:
    """What load_errors shows of a staged row that broke a rule: its key by the source's names
    (how to find it in the files when the engine cannot say which file it came from)."""
    return " ".join(f"{SOURCE_FIELDS.get(column, column)}={json.dumps(row[column])}"
                    for column in q.STAGED_ROW_KEYS[table])
