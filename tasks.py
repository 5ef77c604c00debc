"""Set-up and the everyday commands, on a fresh machine with Python 3.10+ and git.

    python3 tasks.py run         # install into .venv, then create_tables.py, etl.py and insights.py
    python3 tasks.py test        # install test tools (and Chromium), then ruff, mypy and pytest
    python3 tasks.py serve       # keep the embedded warehouse serving on loopback until Ctrl-C
    python3 tasks.py psql        # psql on the warehouse (-c "select ..." runs one statement)
    python3 tasks.py dictionary  # write docs/data-dictionary.md from the warehouse's catalog

Everything goes into .venv beside this file; nothing is installed system-wide. Arguments
after the command go to pytest (test), psql (psql) or the scripts (run, serve, dictionary),
e.g. --config other.cfg. `run` creates the tables only where there are none and then loads
what is new; `python3 create_tables.py` alone empties the warehouse.
"""

from __future__ import annotations

import os
import signal
import sys

# A Ctrl-C while Python is still loading ends as quietly as one later does: at once, with no
# exception (one raised inside an import can surface as another error's traceback).
signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))

import hashlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import venv  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
SIGINT_GRACE_S = 2.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))


def _installed(requirements: str) -> None:
    """Creates .venv and installs a requirements file, skipping it when nothing changed."""
    if sys.version_info < (3, 10):  # noqa: UP036 - the check is for users on older Pythons
        sys.exit(f"Error: Python 3.10 or newer is needed, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV.name}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if _current(requirements) or (requirements == "requirements.txt" and _current("requirements-dev.txt")):
        return  # the test tools' set includes the runtime's
    print(f"installing {requirements} into {VENV.name}/ ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(ROOT / requirements)], check=True)
    (VENV / f".installed-{requirements}").write_text(_digest(requirements))


def _digest(requirements: str) -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", requirements):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def _current(requirements: str) -> bool:
    """Whether .venv has requirements installed as they are now."""
    stamp = VENV / f".installed-{requirements}"
    return stamp.exists() and stamp.read_text() == _digest(requirements)


def _run(*args: str, held: tuple[int, ...] = ()) -> int:
    """Runs the venv's Python; Ctrl-C reaches the child (same terminal), which decides how to
    stop; a SIGTERM or SIGHUP to this process is passed on to it, and on Linux the child gets
    a SIGTERM when this process dies, even by SIGKILL: no `serve` or load outlives it.
    held: signals the child starts with blocked (POSIX), so one that arrives while its
    interpreter is still starting waits for the handlers the child unblocks them after,
    instead of ending it with a traceback from inside Python's start-up."""
    started: list[subprocess.Popen] = []
    interrupted: list[float] = []

    def pass_on(signum, frame) -> None:
        if started:
            started[0].send_signal(signum)

    # The stop signals are blocked from before this process's handlers change until the child
    # exists with its own mask and handlers (see _prepared): one that comes meanwhile is not
    # lost in the forked copy of this process, nor passed on before there is a child to take
    # it; it waits, then counts.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if os.name == "posix" else None
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(time.monotonic()))}
    for signum in STOP_SIGNALS[1:]:
        previous[signum] = signal.signal(signum, pass_on)
    try:
        child = subprocess.Popen([str(PYTHON), *args], cwd=ROOT, preexec_fn=_prepared(os.getpid(), held))
        started.append(child)
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        while True:
            try:
                return child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                # A Ctrl-C reached the child too (the terminal's whole job); a SIGINT sent to
                # this process alone did not: pass it on once the child has had time to end.
                if interrupted and time.monotonic() - interrupted[0] > SIGINT_GRACE_S:
                    interrupted.clear()
                    child.send_signal(signal.SIGINT)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _prepared(parent: int, held: tuple[int, ...] = ()):
    """POSIX: in the child, before it runs: the stop signals back to their default actions and
    unblocked but for held (the mask survives exec; a pending one now acts as it would have);
    on Linux, SIGTERM when parent dies (prctl PR_SET_PDEATHSIG)."""
    if os.name != "posix":
        return None
    libc = None
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)

    def prepare() -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        if libc is not None:
            libc.prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the signal was set
            os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum for signum in STOP_SIGNALS if signum not in held])
    return prepare


def run(extra: list[str]) -> int:
    _installed("requirements.txt")
    for script in (("create_tables.py", "--if-missing"), ("etl.py",), ("insights.py",)):
        code = _run(*script, *extra)
        if code:
            return code
    return 0


def _module(name: str, held: tuple[int, ...] = ()):
    """A command that runs one of the package's modules in .venv (after set-up)."""
    def command(extra: list[str]) -> int:
        _installed("requirements.txt")
        return _run("-m", name, *extra, held=held)
    return command


def _browser() -> None:
    """Debian's Chromium for the report's browser test; installed only where we may (root)."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        print("note: Chromium is missing and cannot be installed here (needs root and apt-get); "
              "the report's browser test will be skipped", file=sys.stderr)
        return
    print("installing Debian's chromium for the report's browser test ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, stdout=subprocess.DEVNULL)


def test(extra: list[str]) -> int:
    _installed("requirements-dev.txt")
    _browser()
    code = _run("-m", "ruff", "check", ".")
    if code:
        print("ruff found problems (above); fix them before the tests run", file=sys.stderr)
        return code
    code = _run("-m", "mypy")
    if code:
        print("mypy found type errors (above); fix them before the tests run", file=sys.stderr)
        return code
    # Three workers, a test file each at a time: much of the suite waits on servers starting,
    # paused runs and subprocesses, so three share two cores well (measured: 95 s, against
    # 175 s in one process). A file's module fixtures then load once.
    return _run("-m", "pytest", "-n", "3", "--dist", "loadfile", *extra)


# serve starts with its stop signals held until its handlers are in place (sparkify/serve.py
# unblocks them).
COMMANDS = {"run": run, "test": test, "serve": _module("sparkify.serve", held=STOP_SIGNALS),
            "psql": _module("sparkify.psql"), "dictionary": _module("sparkify.dictionary")}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
