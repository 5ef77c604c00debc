"""Progress during long steps: a bar on a terminal, plain lines at a modest rate elsewhere.

On a terminal (stderr is a TTY, TERM is not dumb, and the script is not -q) a step shows a
tqdm bar: how much of its work is done (bytes of the source files, or items), the rate,
the ETA, and what else it counts (files, records), updated a few times a second; the bar
clears when the step ends, and the step's line follows as before. Not on a terminal (CI,
cron, a pipe into a log) there is never a bar or a carriage return: a step that runs longer
than PLAIN_INTERVAL_S writes one plain line per PLAIN_INTERVAL_S with the same figures, so
a log of a ten-minute COPY says how far it got without filling up.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Generator, Iterable
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger("sparkify.progress")

PLAIN_INTERVAL_S = float(os.environ.get("SPARKIFY_PROGRESS_INTERVAL", "30"))  # tests set it shorter
BAR_INTERVAL_S = 0.2
T = TypeVar("T")


def on_terminal() -> bool:
    """Whether progress may draw a bar: stderr is a terminal that can take one."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def _terminal_size() -> os.terminal_size:
    """The terminal's size; 100 x 24 where it says 0 (a new pseudo-terminal does until it is
    sized), with which tqdm would draw nothing."""
    return shutil.get_terminal_size((100, 24))


def _size(number: float, unit: str) -> str:
    if unit != "B":
        return f"{number:,.0f}"
    for prefix in ("B", "KB", "MB", "GB", "TB"):
        if abs(number) < 1000 or prefix == "TB":
            return f"{number:.0f} {prefix}" if prefix == "B" else f"{number:.1f} {prefix}"
        number /= 1000
    return f"{number:.1f} TB"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """One long step's progress: update(done, **counts) as it goes, close() when it ends.

    total is the work in unit ("B": bytes; else items), None when unknown (no ETA then).
    counts are extra figures shown beside it, e.g. files=3, records=120_000.
    """

    def __init__(self, label: str, total: float | None, unit: str = "B", enabled: bool | None = None):
        self.label = label
        self.total = total
        self.unit = unit
        self.started = time.monotonic()
        self.done = 0.0
        self.counts: dict[str, str] = {}
        shown = log.isEnabledFor(logging.INFO) if enabled is None else enabled
        self.bar: tqdm | None = None
        self._next_line = self.started + PLAIN_INTERVAL_S
        self._plain = shown and not on_terminal()
        if shown and not self._plain:
            size = _terminal_size()
            self.bar = tqdm(total=total, desc=label, unit=unit, unit_scale=True, unit_divisor=1000,
                            file=sys.stderr, leave=False, mininterval=BAR_INTERVAL_S, ncols=size.columns,
                            nrows=size.lines, smoothing=0.1)

    def update(self, done: float, **counts: object) -> None:
        """done: the work done so far (absolute); counts: the figures to show beside it."""
        self.counts = {name: f"{value:,}" if isinstance(value, int) else str(value) for name, value in counts.items()}
        if self.bar is not None:
            self.bar.update(done - self.done)
            self.done = done
            self.bar.set_postfix(self.counts, refresh=False)
            return
        self.done = done
        if self._plain and time.monotonic() >= self._next_line:
            self._next_line = time.monotonic() + PLAIN_INTERVAL_S
            log.info("%s", self.line())

    def line(self) -> str:
        """The plain line: done of total (share), the counts, the rate and the time left."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.label}: {_size(self.done, self.unit)}"]
        if self.total:
            parts[0] += f" of {_size(self.total, self.unit)} ({100 * self.done / self.total:.0f}%)"
        parts += [f"{name} {value}" for name, value in self.counts.items()]
        parts.append(f"{_size(rate, self.unit)}/s" if self.unit == "B"
                     else f"{rate:,.0f} {self.unit}/s" if rate >= 10 else f"{rate:.2f} {self.unit}/s")
        if self.total and rate > 0:
            parts.append(f"about {_duration(max(self.total - self.done, 0) / rate)} left")
        return ", ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], progress: Progress, measure: Callable[[], tuple[float, dict]],
          every: int = 1) -> Generator[T, None, None]:
    """The items, updating progress with measure() (done, counts) every `every` items and at
    the end; the progress is closed when the items end (or the consumer stops)."""
    n = 0
    try:
        for item in items:
            yield item
            n += 1
            if n % every == 0:
                done, counts = measure()
                progress.update(done, **counts)
        done, counts = measure()
        progress.update(done, **counts)
    finally:
        progress.close()
