"""The insights report's data model: the period it covers, the tables its queries return,
the findings it states, and the labels both the findings and the page use. The report's
queries (insights.py) and its page (report.py) both build on this; neither imports the
other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@dataclass(frozen=True)
class Period:
    """The UTC days a report covers, both included; chosen when --since or --until set it
    (otherwise it is the days the warehouse has events on)."""

    first: date
    last: date
    chosen: bool = False
    logs_begin: date | None = None  # the first day the warehouse has events on
    logs_end: date | None = None    # the last
    # The days --since/--until asked for, when the period was clipped to the days with
    # events (None, None otherwise): a period costs what the data costs, whatever its bounds.
    asked: tuple[date | None, date | None] = (None, None)

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day)

    @property
    def end(self) -> datetime:
        """The first moment after the period (exclusive)."""
        return self.start + timedelta(days=(self.last - self.first).days + 1)

    @property
    def observed_start(self) -> datetime:
        """The first moment in the period the warehouse can have events for."""
        if self.logs_begin is None:
            return self.start
        return max(self.start, datetime(self.logs_begin.year, self.logs_begin.month, self.logs_begin.day))

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def clipped(self) -> str:
        """What clipping to the data changed, as a reader is told it ("" when nothing)."""
        since, until = self.asked
        said = []
        if since is not None and since < self.first:
            said.append(f"--since {since}")
        if until is not None and until > self.last:
            said.append(f"--until {until}")
        if not said:
            return ""
        return f"{' and '.join(said)} clipped to the days the warehouse has events on"

    def label(self) -> str:
        first = day_label(self.first) + ("" if self.first.year == self.last.year else f", {self.first.year}")
        return f"{first} – {day_label(self.last)}, {self.last.year}"


@dataclass
class Table:
    name: str
    question: str
    columns: list[str]
    rows: list[tuple]
    seconds: float

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def pct(part: float, whole: float) -> str:
    """A share in percent as the page says it everywhere (tiles, sentences): whole percent
    from 10 %, one decimal below (so 4.8 % never reads 5 % in one place and 4.8 % in
    another), and a real share never reads 0 %."""
    if not whole:
        return "n/a"
    share = 100.0 * part / whole
    if 0 < share < 0.1:
        return "under 0.1%"
    return f"{share:.1f}%" if 0 < share < 10 else f"{share:.0f}%"


def gender_label(code: str) -> str:
    return {"F": "women", "M": "men"}.get(code, code)


@dataclass
class Findings:
    """One sentence per chart (two where two statistics need one each), from the tables."""

    period: str
    activity: str
    newcomers: str
    hours: str
    funnel: str
    retention: str
    churn: str
    paying: str
    songs: str
    artists: str
    levels: str
    gender: str
    locations: str
    platforms: str
    engagement: str
    changes: str
    upgrade: str
    health: str
    panel: str = ""
    trend: str = ""
    growth: str = ""
    churn_risk: str = ""
    path: str = ""


def observed_churners(users: Table, period: Period) -> tuple[list[dict], int]:
    """The churners whose two weeks before churning lie wholly in the period (and in the
    logs), and how many others there are: for those, the earlier days are not observed, so
    their plays there would read as a fall to zero."""
    churners = users.records()
    kept = [r for r in churners if r["churned_at"] - timedelta(days=14) >= period.observed_start]
    return kept, len(churners) - len(kept)


def whole_week(monday: date, period: Period) -> bool:
    """Whether the week from this Monday lies wholly in the period and in the days the
    warehouse has events on: a week cut by either holds only some of its days, and its
    share would read as a drop."""
    first = max(period.first, period.logs_begin or period.first)
    last = min(period.last, period.logs_end or period.last)
    return first <= monday and monday + timedelta(days=6) <= last
