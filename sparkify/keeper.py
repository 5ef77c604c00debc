"""The keeper of an embedded PostgreSQL: `python -m sparkify.keeper DATA_DIR SOCKET_DIR [PORT]`.

sparkify/embedded.py starts one per running server, in a session of its own, and reads one
line from it: `ready`, or `error: …` when the server did not start. The keeper runs the
postmaster as its child and stops it (fast shutdown: open transactions roll back) when the
server has no user left, when it is told to (SIGTERM, SIGINT, SIGHUP) or, on Linux, when the
keeper itself dies in any way (the postmaster's parent-death signal). So a postmaster never
outlives the processes that use it, whatever ends them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import embedded

TICK_S = 0.2  # how often the keeper looks for users: a killed user's server stops this soon after
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Keeper:
    def __init__(self, data_dir: Path, socket_dir: Path, port: int | None):
        self.data_dir = data_dir
        self.socket_dir = socket_dir
        self.port = port
        self.stop_asked = False
        self.child: subprocess.Popen | None = None

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._asked_to_stop)
        signal.signal(signal.SIGUSR1, lambda signum, frame: None)  # a user left: the loop looks now
        problem = self._start()
        _answer(problem and f"error: {problem}" or "ready")
        if problem:
            return 1
        assert self.child is not None
        while not self.stop_asked:
            if self.child.poll() is not None:
                return 0  # the postmaster ended (killed?): the next command starts another
            if self._stop_if_unused():
                return 0
            time.sleep(TICK_S)
        self._shutdown()
        return 0

    def _asked_to_stop(self, signum, frame) -> None:
        self.stop_asked = True

    def _start(self) -> str:
        """Starts the postmaster; returns '' once it accepts connections, else why not."""
        listen = embedded.LOOPBACK if self.port else ""
        command = [str(embedded.binary("postgres")), "-D", str(self.data_dir),
                   "-k", _quoted_directory(self.socket_dir), "-h", listen, "-p", str(self.port or embedded.SOCKET_PORT)]
        log_path = self.data_dir / "log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "a", encoding="utf-8") as log:
            self.child = subprocess.Popen(command, cwd=self.data_dir, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=log, user=embedded.system_user(),
                                          preexec_fn=_die_with(os.getpid()))
        deadline = time.monotonic() + embedded.START_TIMEOUT_S
        while time.monotonic() < deadline and not self.stop_asked:
            if self.child.poll() is not None:
                return _last_error(log_path, offset) or f"postgres exited {self.child.returncode}"
            server = embedded.postmaster(self.data_dir)
            if server is not None and server.pid == self.child.pid and server.ready:
                return ""
            time.sleep(0.05)
        self._shutdown()
        return "it was stopped while starting" if self.stop_asked else \
            f"not ready after {embedded.START_TIMEOUT_S:.0f} s"

    def _stop_if_unused(self) -> bool:
        """Stops the server when nobody uses it; under the control lock, so that nobody joins
        a server on its way down (whoever comes next waits, then starts a new one)."""
        path = self.data_dir / embedded.STATE_DIR / "control.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # someone is joining or restarting it: look again at the next tick
            if embedded.users(self.data_dir):
                return False
            self._shutdown()
            return True
        finally:
            os.close(fd)

    def _shutdown(self) -> None:
        """Fast shutdown (transactions roll back, sessions end), then harder if it hangs."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        for signum, seconds in ((signal.SIGINT, embedded.STOP_TIMEOUT_S), (signal.SIGQUIT, 10.0),
                                (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)
            try:
                child.wait(timeout=seconds)
                return
            except subprocess.TimeoutExpired:
                continue


def _quoted_directory(path: Path) -> str:
    """unix_socket_directories is a comma-separated list: a path with a comma or a quote is
    double-quoted (spaces need nothing)."""
    text = str(path)
    if "," in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _die_with(keeper_pid: int):
    """In the postmaster's process, before it runs: a fast shutdown when its keeper dies."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

    def prepare() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGINT))
        if os.getppid() != keeper_pid:  # the keeper died before the signal was set
            os._exit(1)
    return prepare


def _answer(line: str) -> None:
    """The one line the starting command reads; afterwards nobody reads this process's output."""
    with contextlib.suppress(OSError):
        print(line, flush=True)
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def _last_error(log_path: Path, offset: int) -> str:
    """The server's first FATAL (or last) line written since offset."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            log.seek(offset)
            lines = [line.strip() for line in log if line.strip()]
    except OSError:
        return ""
    fatal = [line for line in lines if "FATAL" in line or "could not" in line]
    return (fatal or lines or [""])[0][:300]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    data_dir, socket_dir, port = Path(args[0]), Path(args[1]), (int(args[2]) if len(args) > 2 and args[2] else None)
    return Keeper(data_dir, socket_dir, port).run()


if __name__ == "__main__":
    sys.exit(main())
