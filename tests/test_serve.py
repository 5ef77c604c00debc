"""The analysts' way in: `tasks.py serve` keeps the embedded warehouse open on loopback, and
real clients (the wheel's psql, SQLAlchemy + pandas) query it by the printed URL while loads
run. Every script here is a separate process, as in the terminals of the people using it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest
from conftest import DATA, ROOT, assert_notebook_summary, run_notebook, run_script, write_config
from oracle import compute

import sql_queries as q
from sparkify import embedded

LATER_SONGS = ROOT / "tests" / "fixtures" / "later_batch" / "song_data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """A `serve` process on a folder of its own: its config, banner and password."""

    def __init__(self, folder: Path, port: int, log_data: Path = DATA / "log_data"):
        self.folder = folder
        self.port = port
        self.config = write_config(folder / "dwh.cfg", port=port, log_data=str(log_data),
                                   song_data=str(folder / "song_data"))
        self.process: subprocess.Popen | None = None
        self.banner = ""

    def start(self, timeout: float = 60, *command: str) -> Served:
        """Starts `serve` (or command, e.g. tasks.py serve) in a session of its own, as a
        terminal's job is; returns once it has printed its banner."""
        self.process = subprocess.Popen(
            list(command or (sys.executable, "-m", "sparkify.serve")) + ["--config", str(self.config)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"serve ended: {self.process.wait()} {self.process.stderr.read()}")
            lines.append(line)
            if line.startswith("  owner:"):
                self.banner = "".join(lines)
                return self
        raise AssertionError("serve printed no banner")

    @property
    def password(self) -> str:
        """The owner's."""
        return (self.folder / ".pgdata.password").read_text().strip()

    @property
    def url(self) -> str:
        """The read-only login's URL, exactly as the banner prints it."""
        line = next(line for line in self.banner.splitlines() if "URL:" in line)
        return line.split("URL:", 1)[1].strip()

    @property
    def sqlalchemy_url(self) -> str:
        line = next(line for line in self.banner.splitlines() if "pandas:" in line)
        return line.split('create_engine("', 1)[1].split('"', 1)[0]

    @property
    def owner_url(self) -> str:
        line = next(line for line in self.banner.splitlines() if "owner:" in line)
        return line.split("owner:", 1)[1].split()[0].replace("***", self.password)

    def connect(self, **options):
        return psycopg2.connect(self.url, **options)

    def stop(self, sig=signal.SIGINT) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)

    def server_running(self) -> bool:
        return embedded.running(self.folder / ".pgdata")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A warehouse with the real logs and half the later song batch, served on a free port."""
    folder = tmp_path_factory.mktemp("served")
    songs = sorted(LATER_SONGS.rglob("*.json"))
    for path in songs[: len(songs) // 2]:
        target = folder / "song_data" / path.relative_to(LATER_SONGS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    service = Served(folder, free_port()).start()
    run_script("create_tables.py", "--config", str(service.config))
    run_script("etl.py", "--config", str(service.config))
    yield service
    if service.process.poll() is None:
        service.stop()


@pytest.fixture(scope="module")
def expected():
    return compute(DATA)


def test_banner_gives_the_read_only_url_and_psql_line_never_a_password(served):
    assert f"postgresql://analyst@127.0.0.1:{served.port}/sparkify?passfile=" in served.url
    assert "python3 tasks.py psql" in served.banner
    assert f"postgresql://sparkify:***@127.0.0.1:{served.port}/sparkify" in served.banner  # the owner's
    assert str(served.folder / ".pgdata.password") in served.banner
    for secret in (served.password, (served.folder / ".pgdata.analyst.pgpass").read_text().strip().rsplit(":", 1)[1]):
        assert secret and secret not in served.banner
    for name in (".pgdata.password", ".pgdata.analyst.pgpass"):
        assert (served.folder / name).stat().st_mode & 0o777 == 0o600


def test_listens_on_loopback_only_and_wants_the_password(served):
    conn = served.connect()
    with conn, conn.cursor() as cur:
        cur.execute("show listen_addresses")
        assert cur.fetchone()[0] == "127.0.0.1"
        cur.execute("select current_user, inet_server_addr()::text")
        assert cur.fetchone() == ("analyst", "127.0.0.1/32")
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(served.owner_url.replace(served.password, "wrong"))


def test_psql_over_the_printed_url(served, expected):
    psql = embedded.psql_binary()
    result = subprocess.run([str(psql), served.url, "-At", "-c", "select count(*) from plays"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == expected.songplays


def test_pandas_read_sql_over_the_printed_sqlalchemy_url(served, expected):
    pandas = pytest.importorskip("pandas")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(served.sqlalchemy_url)
    try:
        frame = pandas.read_sql("select user_id, count(*) as plays from plays group by user_id", engine)
    finally:
        engine.dispose()
    per_user = {}
    for (user, _session, _item) in expected.plays:
        per_user[int(user)] = per_user.get(int(user), 0) + 1
    assert dict(zip(frame["user_id"], frame["plays"], strict=True)) == per_user


def test_every_sample_query_runs_as_the_read_only_login_with_counts_as_integers(served):
    """All the analyses/ files through pandas by the printed URL: each runs, and every column
    that is not a share, an average or a duration comes as integers or text, never floats."""
    pandas = pytest.importorskip("pandas")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    fractional = ("share", "avg_", "median", "minutes", "retention", "stickiness", "coverage")
    engine = sqlalchemy.create_engine(served.sqlalchemy_url)
    try:
        for path in sorted((ROOT / "analyses").glob("*.sql")):
            frame = pandas.read_sql(path.read_text(encoding="utf-8"), engine)
            for column in frame.columns:
                if not any(word in column for word in fractional):
                    assert not pandas.api.types.is_float_dtype(frame[column]), f"{path.name}: {column} is float"
                    decimals = frame[column].map(lambda value: isinstance(value, Decimal))
                    assert not decimals.any(), f"{path.name}: {column} is numeric"
    finally:
        engine.dispose()


def test_tasks_psql_is_the_read_only_login_unless_asked_for_the_owner(served):
    def psql(*args):
        return subprocess.run([sys.executable, "-m", "sparkify.psql", "--config", str(served.config), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    ok = psql("-At", "-c", "select current_user, count(*) from users")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "analyst|97"
    assert psql("--owner", "-At", "-c", "select current_user").stdout.strip() == "sparkify"
    bad = psql("-c", "select * from no_such_table")
    assert bad.returncode != 0 and "no_such_table" in bad.stderr
    denied = psql("-c", "drop table songs")
    assert denied.returncode != 0 and "Traceback" not in denied.stderr


def test_the_read_only_login_reads_every_analyst_table_and_writes_nothing(served):
    """Through the printed URL: SELECT on each table and view the analysts' role is granted;
    no INSERT, DELETE, DROP, CREATE (not even a temporary table), nor GRANT to itself."""
    conn = served.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        for table in q.ANALYST_TABLES:
            cur.execute(f"select count(*) from {table}")
            assert cur.fetchone()[0] >= 0
        for statement in ("insert into users (user_id) values (-1)", "delete from songs", "drop table songplays",
                          "drop view plays", "truncate time", "create table mine (x int)",
                          "create temporary table mine (x int)", "create view mine as select 1",
                          "select * from staging_events", "select * from etl_lock",
                          "set default_transaction_read_only = off; create temporary table mine (x int)",
                          "grant sparkify to analyst", "alter table songs owner to analyst"):
            with pytest.raises(psycopg2.Error):
                cur.execute(statement)
    conn.close()


def test_a_load_commits_while_readers_hold_transactions_open(served):
    """The read-only login idle in a transaction on every table and view it can read never
    holds up a load; a reader sees the old state until it commits, then the new one."""
    reader = served.connect()
    reader.set_session(isolation_level="REPEATABLE READ")
    idle = served.connect()  # read committed, left idle in its transaction
    with reader.cursor() as cur, idle.cursor() as idle_cur:
        cur.execute("select count(*) from songs")
        songs_before = cur.fetchone()[0]
        cur.execute("select count(*), max(batch_id) from batch_totals")
        batches_before = cur.fetchone()
        for table in q.ANALYST_TABLES:
            idle_cur.execute(f"select * from {table} limit 1")
        for path in sorted(LATER_SONGS.rglob("*.json")):
            target = served.folder / "song_data" / path.relative_to(LATER_SONGS)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        started = time.monotonic()
        load = run_script("etl.py", "--config", str(served.config), timeout=120)
        assert "published" in load.stdout and time.monotonic() - started < 45
        cur.execute("select count(*) from songs")
        assert cur.fetchone()[0] == songs_before
        cur.execute("select count(*), max(batch_id) from batch_totals")
        assert cur.fetchone() == batches_before
    reader.commit()
    with reader.cursor() as cur:
        cur.execute("select count(*) from songs")
        assert cur.fetchone()[0] == len(list(LATER_SONGS.rglob("*.json"))) > songs_before
    reader.close()
    idle.close()
    assert served.server_running()  # the load joined the served server and left it running


def test_the_notebook_queries_the_served_warehouse_by_its_url(served):
    """The analysts' notebook over the URL the banner prints, its figures against the oracle
    of the data served (the real logs and the later song batch)."""
    from oracle import analysis_results

    summary = run_notebook(ROOT / "analyses" / "explore.ipynb", served.url)
    data = served.folder / "oracle-data"
    data.mkdir(exist_ok=True)
    for name in ("log_data", "song_data"):
        if not (data / name).exists():
            (data / name).symlink_to(DATA / name if name == "log_data" else served.folder / name)
    assert_notebook_summary(summary, analysis_results(data))


def test_a_second_serve_joins_and_leaves_the_first_serving(served):
    second = Served(served.folder, served.port).start()
    assert "Joined" in second.banner and str(served.process.pid) in second.banner
    assert second.stop(signal.SIGTERM) == 0
    assert f"keeps serving for process {served.process.pid} (serve)" in second.process.stdout.read()
    conn = served.connect()
    conn.close()


def test_port_taken_is_a_one_line_error_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "song_data").mkdir()
        service = Served(tmp_path, free_port())
        result = subprocess.run([sys.executable, "-m", "sparkify.serve", "--config", str(service.config),
                                 "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"port {port}" in errors[0] and "--port" in errors[0]
    assert "Traceback" not in result.stderr
    assert not embedded.running(tmp_path / ".pgdata")


def test_a_port_out_of_range_is_a_one_line_error_wherever_it_is_given(tmp_path):
    for where, port in (("DB_PORT", "70000"), ("DB_PORT", "0"), ("SPARKIFY_PORT", "65536"),
                        ("SPARKIFY_PORT", "100000000000000000000"), ("--port", "0"), ("--port", "-1")):
        config = write_config(tmp_path / "dwh.cfg", port=int(port) if where == "DB_PORT" else 5432,
                              log_data=str(DATA / "log_data"), song_data=str(DATA / "song_data"))
        env = dict(os.environ, SPARKIFY_PORT=port) if where == "SPARKIFY_PORT" else os.environ
        args = ("--port", port) if where == "--port" else ()
        result = subprocess.run([sys.executable, "-m", "sparkify.serve", "--config", str(config), *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("Error:") and result.stderr.count("\n") == 1, result.stderr
        assert where in result.stderr and "65535" in result.stderr and "delete" not in result.stderr
    assert not (tmp_path / ".pgdata").exists()
