"""Progress while a load works: a bar with rate and ETA on a terminal, plain lines (never a
bar) when the output is a pipe, as under CI or cron."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time

from conftest import DATA, ROOT, fresh_database, run_main

from sparkify import progress

BAR = re.compile(r"stage staging_songs:\s+\d+%\|.*\| [\d.]+[kMG]?/[\d.]+[kMG]?B? "
                 r"\[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kMG]?B/s, files=[\d,]+/14,896, records=[\d,]+\]")


def _terminal_run(args: list[str], env: dict) -> tuple[int, str]:
    """Runs a script with its stderr (and stdout) on a pseudo-terminal; returns its exit code
    and everything it wrote there."""
    controller, terminal = pty.openpty()
    child = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=terminal,
                             stderr=terminal, env=env)
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    os.close(controller)
    return child.wait(timeout=300), output.decode("utf-8", "replace")


def test_a_terminal_shows_a_bar_with_rate_and_eta_and_a_pipe_shows_plain_lines(server, tmp_path):
    with fresh_database(server, tmp_path, log_data=str(DATA / "log_data"),
                        song_data=str(DATA / "song_data")) as warehouse:
        run_main("create_tables.py", "--config", str(warehouse.config))
        env = dict(os.environ, TERM="xterm", COLUMNS="160")
        code, shown = _terminal_run([str(ROOT / "etl.py"), "--config", str(warehouse.config)], env)
        assert code == 0, shown
        assert "ETL batch 1 published" in shown
        bars = BAR.findall(shown)
        assert bars, [line[-300:] for line in shown.split("\r") if "staging_songs:" in line][:6]
        assert "\r" in shown  # redrawn in place
        # The step's line follows as before.
        assert re.search(r"stage staging_songs\s+14,896 rows", shown)

        # A pipe (CI, cron): no bar, no carriage return; a plain line per interval.
        run_main("create_tables.py", "--config", str(warehouse.config))
        piped = subprocess.run([sys.executable, str(ROOT / "etl.py"), "--config", str(warehouse.config)],
                               cwd=ROOT, capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, SPARKIFY_PROGRESS_INTERVAL="0.05"))
        assert piped.returncode == 0, piped.stderr
        assert "\r" not in piped.stderr and "|" not in piped.stderr and "it/s" not in piped.stderr
        plain = [line for line in piped.stderr.splitlines() if line.startswith("stage staging_songs: ")]
        assert plain, piped.stderr
        assert re.fullmatch(r"stage staging_songs: [\d.]+ [KMG]?B of [\d.]+ MB \(\d+%\), files [\d,]+/14,896, "
                            r"records [\d,]+, [\d.]+ [KMG]?B/s, about \d+:\d\d left", plain[0]), plain[0]


def test_quiet_shows_no_progress(capsys):
    bar = progress.Progress("step", 100, enabled=False)
    bar.update(50, files="1/2")
    bar.close()
    assert capsys.readouterr().err == ""


def test_the_plain_line_says_share_rate_and_time_left(monkeypatch):
    bar = progress.Progress("stage x", 4_000_000, enabled=False)
    # Two seconds in, on a clock of the test's own: a loaded machine's stall between two
    # readings of the real one once made the rate 495.5 KB/s.
    now = time.monotonic()
    monkeypatch.setattr(progress.time, "monotonic", lambda: now)
    bar.started = now - 2.0
    bar.update(1_000_000, files="1/4", records=5_000)
    line = bar.line()
    assert line.startswith("stage x: 1.0 MB of 4.0 MB (25%), files 1/4, records 5,000, ")
    assert re.search(r"(500\.0|499\.\d) KB/s, about 0:0[56] left$", line), line
