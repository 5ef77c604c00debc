"""Named points in a run where the crash tests stop the process on purpose.

Setting SPARKIFY_PAUSE_AT=<point> (or <point>:<seconds>) makes a run announce the point on
stderr and sleep there, so a test can SIGKILL it at a known moment (or, with seconds, let
it go on). Unset, a checkpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import sys
import time

POINTS = ("mid-copy", "mid-transform", "before-commit", "after-commit", "tables-committed")


def checkpoint(point: str) -> None:
    spec = os.environ.get("SPARKIFY_PAUSE_AT")
    if not spec:
        return
    name, _, seconds = spec.partition(":")
    if name != point:
        return
    print(f"paused at {point}", file=sys.stderr, flush=True)
    time.sleep(float(seconds) if seconds else 3600)
