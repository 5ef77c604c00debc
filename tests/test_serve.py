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
from pathlib import Path

import psycopg2
import pytest
from conftest import DATA, ROOT, assert_notebook_summary, run_notebook, run_script, write_config
from oracle import compute

from sparkify import embedded

LATER_SONGS = ROOT / "tests" / "fixtures" / "later_batch" / "song_data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """A `serve` process on a folder of its own: its config, banner and password."""

    def __init__(self, folder: Path, port: int):
        self.folder = folder
        self.port = port
        self.config = write_config(folder / "dwh.cfg", port=port, log_data=str(DATA / "log_data"),
                                   song_data=str(folder / "song_data"))
        self.process: subprocess.Popen | None = None
        self.banner = ""

    def start(self, timeout: float = 60) -> Served:
        self.process = subprocess.Popen([sys.executable, "-m", "sparkify.serve", "--config", str(self.config)],
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"serve ended: {self.process.wait()} {self.process.stderr.read()}")
            lines.append(line)
            if line.startswith("  read-only:"):
                self.banner = "".join(lines)
                return self
        raise AssertionError("serve printed no banner")

    @property
    def password(self) -> str:
        return (self.folder / ".pgdata.password").read_text().strip()

    @property
    def url(self) -> str:
        """The banner's URL with the password filled in, as an analyst would."""
        line = next(line for line in self.banner.splitlines() if "URL:" in line)
        return line.split("URL:", 1)[1].strip().replace("***", self.password)

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


def test_banner_gives_url_psql_line_and_password_place_never_the_password(served):
    assert f"postgresql://sparkify:***@127.0.0.1:{served.port}/sparkify" in served.banner
    assert "python3 tasks.py psql" in served.banner
    assert str(served.folder / ".pgdata.password") in served.banner
    assert served.password and served.password not in served.banner
    assert (served.folder / ".pgdata.password").stat().st_mode & 0o777 == 0o600


def test_listens_on_loopback_only_and_wants_the_password(served):
    conn = served.connect()
    with conn, conn.cursor() as cur:
        cur.execute("show listen_addresses")
        assert cur.fetchone()[0] == "127.0.0.1"
        cur.execute("select current_user, inet_server_addr()::text")
        assert cur.fetchone() == ("sparkify", "127.0.0.1/32")
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(served.url.replace(served.password, "wrong"))


def test_psql_over_the_printed_url(served, expected):
    psql = embedded.psql_binary()
    env = dict(os.environ, PGPASSWORD=served.password)
    url = served.url.replace(f":{served.password}@", "@")
    result = subprocess.run([str(psql), url, "-At", "-c", "select count(*) from plays"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == expected.songplays


def test_pandas_read_sql_over_a_sqlalchemy_url(served, expected):
    pandas = pytest.importorskip("pandas")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    line = next(line for line in served.banner.splitlines() if "pandas:" in line)
    url = line.split('create_engine("', 1)[1].split('"', 1)[0].replace("***", served.password)
    engine = sqlalchemy.create_engine(url)
    try:
        frame = pandas.read_sql("select user_id, count(*) as plays from plays group by user_id", engine)
    finally:
        engine.dispose()
    per_user = {}
    for (user, _session, _item) in expected.plays:
        per_user[int(user)] = per_user.get(int(user), 0) + 1
    assert dict(zip(frame["user_id"], frame["plays"], strict=True)) == per_user


def test_tasks_psql_runs_one_statement_and_exits_with_its_status(served):
    ok = subprocess.run([sys.executable, "-m", "sparkify.psql", "--config", str(served.config), "-At",
                         "-c", "select count(*) from users"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "97"
    bad = subprocess.run([sys.executable, "-m", "sparkify.psql", "--config", str(served.config),
                          "-c", "select * from no_such_table"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "no_such_table" in bad.stderr


def test_a_load_commits_while_readers_hold_transactions_open(served):
    """A reader idle in a transaction on songplays and etl_batches never holds up a load;
    it sees the old state until it commits, then the new one."""
    reader = served.connect()
    reader.set_session(isolation_level="REPEATABLE READ")
    idle = served.connect()  # read committed, left idle in its transaction
    with reader.cursor() as cur, idle.cursor() as idle_cur:
        cur.execute("select count(*) from songs")
        songs_before = cur.fetchone()[0]
        cur.execute("select count(*), max(batch_id) from etl_batches")
        batches_before = cur.fetchone()
        idle_cur.execute("select count(*) from songplays join etl_batches on true")
        for path in sorted(LATER_SONGS.rglob("*.json")):
            target = served.folder / "song_data" / path.relative_to(LATER_SONGS)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        started = time.monotonic()
        load = run_script("etl.py", "--config", str(served.config), timeout=120)
        assert "published" in load.stdout and time.monotonic() - started < 60
        cur.execute("select count(*) from songs")
        assert cur.fetchone()[0] == songs_before
        cur.execute("select count(*), max(batch_id) from etl_batches")
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

    line = next(line for line in served.banner.splitlines() if "pandas:" in line)
    url = line.split('create_engine("', 1)[1].split('"', 1)[0].replace("***", served.password)
    summary = run_notebook(ROOT / "analyses" / "explore.ipynb", url)
    data = served.folder / "oracle-data"
    data.mkdir(exist_ok=True)
    for name in ("log_data", "song_data"):
        if not (data / name).exists():
            (data / name).symlink_to(DATA / name if name == "log_data" else served.folder / name)
    assert_notebook_summary(summary, analysis_results(data))


def test_port_taken_is_a_one_line_error_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "song_data").mkdir()
        service = Served(tmp_path, port)
        result = subprocess.run([sys.executable, "-m", "sparkify.serve", "--config", str(service.config)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"port {port}" in errors[0] and "DB_PORT" in errors[0]
    assert "Traceback" not in result.stderr


def test_killed_serve_leaves_no_server_behind_a_later_run(tmp_path):
    (tmp_path / "song_data").mkdir()
    shutil.copytree(LATER_SONGS, tmp_path / "song_data", dirs_exist_ok=True)
    service = Served(tmp_path, free_port()).start()
    service.process.kill()
    service.process.wait(timeout=30)
    assert service.server_running()  # orphaned, for now
    run_script("create_tables.py", "--config", str(service.config))
    assert not service.server_running()  # the later run was its last user and stopped it
    again = Served(tmp_path, service.port).start()
    conn = again.connect()
    conn.close()
    assert again.stop() == 0
    deadline = time.monotonic() + 30
    while service.server_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not service.server_running()  # Ctrl-C stopped it
