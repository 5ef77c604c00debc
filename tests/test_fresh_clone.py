"""The scripts at the door: run with the system's Python, as the course runs them.

A copy of the repository's files (what a clone has), with this checkout's .venv standing
in for the one `tasks.py run` makes (installing the pinned packages needs the network):
`tasks.py run`, then `python3 create_tables.py --help` and `python3 etl.py` with the
interpreter the venv was made from, which lacks the packages; and the same scripts
where there is no .venv at all. Never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, ROOT

SYSTEM_PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}"


def clone(folder: Path) -> Path:
    """The repository's tracked and new files, data/ linked (it is large and read-only here)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    for name in listed:
        if name.startswith("data/") or not (ROOT / name).is_file():
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (folder / "data").symlink_to(DATA)
    return folder


def run(folder: Path, *command: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VIRTUAL_ENV", "PYTHON"))}
    return subprocess.run(list(command), cwd=folder, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def system_python():
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"no system Python at {SYSTEM_PYTHON}")
    lacks = subprocess.run([str(SYSTEM_PYTHON), "-c", "import psycopg2"], capture_output=True)
    if lacks.returncode == 0:
        pytest.skip("the system Python has psycopg2: it cannot show the missing-package door")
    return str(SYSTEM_PYTHON)


def test_the_scripts_run_from_the_system_python_after_tasks_run(tmp_path, system_python):
    folder = clone(tmp_path / "sparkify")
    # A small month (two days of events, the later song batch) keeps `run` quick.
    config = folder / "small.cfg"
    (folder / "small").mkdir()
    for name in sorted(path.name for path in (DATA / "log_data").rglob("*.json"))[:2]:
        (folder / "small" / "log_data").mkdir(exist_ok=True)
        shutil.copy(next((DATA / "log_data").rglob(name)), folder / "small" / "log_data" / name)
    shutil.copytree(ROOT / "tests" / "fixtures" / "later_batch" / "song_data", folder / "small" / "song_data")
    config.write_text((folder / "dwh.cfg").read_text().replace("data/log_data", "small/log_data")
                      .replace("data/song_data", "small/song_data"))
    (folder / ".venv").symlink_to(ROOT / ".venv")
    ran = run(folder, system_python, "tasks.py", "run", "--config", str(config))
    assert ran.returncode == 0, ran.stderr
    helped = run(folder, system_python, "create_tables.py", "--help")
    assert helped.returncode == 0 and "usage: create_tables.py" in helped.stdout
    loaded = run(folder, system_python, "etl.py", "--config", str(config))
    assert loaded.returncode == 0, loaded.stderr
    assert "Nothing new" in loaded.stdout + loaded.stderr or "no new" in (loaded.stdout + loaded.stderr).lower()
    for result in (ran, helped, loaded):
        assert "Traceback" not in result.stdout + result.stderr


def test_without_a_venv_each_script_says_in_one_line_how_to_make_it(tmp_path, system_python):
    folder = clone(tmp_path / "sparkify")
    for script in ("create_tables.py", "etl.py", "insights.py", "infra.py"):
        result = run(folder, system_python, script, "--help")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("Error:") and result.stderr.count("\n") == 1, result.stderr
        assert "python3 tasks.py run" in result.stderr and "psycopg2" in result.stderr
