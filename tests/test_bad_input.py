"""Bad records are kept with their reason, never stop the good ones, and MAXERROR bounds them."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import (
    BASE_TS,
    ROOT,
    event,
    fresh_database,
    load,
    run_main,
    song,
    staged_rows,
    write_config,
    write_events,
    write_song,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkify import jsoncopy
from sparkify.sources import SourceObject


def test_each_kind_of_bad_record_is_kept_and_the_good_ones_load(warehouse):
    root = warehouse.config.parent
    good = [event(item=i, ts=BASE_TS + i) for i in range(4)]
    lines = [
        json.dumps(good[0]),
        json.dumps(good[1])[:40],                                    # 2: truncated JSON
        json.dumps(dict(good[1], itemInSession="first")),           # 3: wrong type
        json.dumps({k: v for k, v in good[1].items() if k != "ts"}),  # 4: missing required field
        json.dumps(dict(good[1], artist="x" * 1100)),               # 5: oversized field
        json.dumps(good[1]),
        "just some text",                                           # 7: not JSON
        json.dumps(good[2]),
    ]
    path = write_events(root, "2018-11-01-events.json", [])
    raw = "\n".join(lines).encode()
    raw += b"\n" + json.dumps(good[3]).replace('"Ann"', '"Ann\\u00e9"').encode().replace(b"\\u00e9", b"\xe9")
    path.write_bytes(raw)                                           # 9: invalid UTF-8 (loaded with '?')
    (root / "log_data" / "notes.txt").write_text("These are\nnot events\nat all\n")  # a non-JSON file
    write_song(root, song())
    result = load(warehouse)

    assert staged_rows(warehouse, "staging_events") == 4
    assert warehouse.count("songplays") == 4
    errors = warehouse.query("select source, line_number, column_name, reason, raw_excerpt, disposition "
                             "from load_errors order by source, line_number")
    by_line = {(e[0].rsplit("/", 1)[-1], e[1]): e for e in errors}
    assert "invalid JSON" in by_line[("2018-11-01-events.json", 2)][3]
    assert by_line[("2018-11-01-events.json", 3)][2:4] == ("item_in_session",
                                                          'item_in_session: "first" is not a whole number')
    assert by_line[("2018-11-01-events.json", 4)][2] == "ts"
    assert "missing required field" in by_line[("2018-11-01-events.json", 4)][3]
    assert "1100 bytes exceed the column's 1024" in by_line[("2018-11-01-events.json", 5)][3]
    assert "invalid JSON" in by_line[("2018-11-01-events.json", 7)][3]
    assert by_line[("2018-11-01-events.json", 7)][4] == "just some text"
    assert by_line[("2018-11-01-events.json", 9)][5] == "replaced"
    assert warehouse.scalar("select first_name from users where user_id = 10") == "Ann?"  # the latest event
    # A file with no JSON record at all: each of its lines is a rejected record, as
    # Redshift's COPY counts them.
    assert [by_line[("notes.txt", line)][1] for line in (1, 2, 3)] == [1, 2, 3]
    assert "bad records: 8 rejected, 1 loaded with invalid characters replaced" in result.stdout
    assert "(see table load_errors)" in result.stdout
    assert warehouse.query("select rejected, outcome from etl_batches") == [(8, "published")]


def test_blank_lines_crlf_bom_and_empty_files_are_valid(warehouse):
    root = warehouse.config.parent
    events = [json.dumps(event(item=i, ts=BASE_TS + i)) for i in range(3)]
    path = write_events(root, "2018-11-01-events.json", [])
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n\r\n".join(events) + "\r\n\r\n").encode())
    write_events(root, "2018-11-02-events.json", [])  # empty file
    write_song(root, song())
    result = load(warehouse)
    assert staged_rows(warehouse, "staging_events") == 3
    assert warehouse.count("load_errors") == 0
    assert "bad records: 0 rejected" in result.stdout


def test_as_many_bad_records_as_maxerror_fail_the_batch_and_publish_nothing(warehouse):
    # Redshift's MAXERROR n fails a load at n rejections or more (AWS: "Data load operations").
    root = warehouse.config.parent
    write_config(warehouse.config, host=warehouse.server.host, port=warehouse.server.port,
                 db_name=warehouse.dbname, user=warehouse.server.user, password=warehouse.server.password,
                 max_errors=2)
    write_events(root, "2018-11-01-events.json", [event()])
    write_song(root, song())
    load(warehouse)
    path = write_events(root, "2018-11-02-events.json", [])
    path.write_text("\n".join([json.dumps(event(item=1, ts=BASE_TS + 1)), "{bad", "{worse"]))
    result = run_main("etl.py", "--config", str(warehouse.config), check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: loading staging_events rejected 2 records, and MAXERROR = 2 fails a load at 2")
    assert "2018-11-02-events.json line 2" in last and "[ETL] MAXERROR" in last
    # Nothing of the failed batch is published, but its outcome and bad records are kept.
    assert warehouse.count("songplays") == 1
    assert warehouse.count("loaded_objects") == 2
    assert warehouse.query("select batch_id, outcome from etl_batches order by 1") == [(1, "published"),
                                                                                     (2, "failed")]
    assert warehouse.query("select batch_id, line_number from load_errors order by 2") == [(2, 2), (2, 3)]


def test_a_file_of_nothing_but_bad_lines_counts_each_toward_maxerror(warehouse, capsys):
    """Redshift's COPY counts every bad record toward MAXERROR, a file with no good one too:
    MAXERROR = 2 and one file of two bad lines fail the load, and nothing is published."""
    root = warehouse.config.parent
    write_config(warehouse.config, host=warehouse.server.host, port=warehouse.server.port,
                 db_name=warehouse.dbname, user=warehouse.server.user, password=warehouse.server.password,
                 max_errors=2)
    write_events(root, "2018-11-01-events.json", [event()])
    write_song(root, song())
    (root / "log_data" / "2018-11-02-events.json").write_text("{bad\n{worse\n")
    code, out, err = run_etl(warehouse, capsys, create=True)
    assert code == 1, out
    assert err.strip().splitlines()[-1].startswith(
        "Error: loading staging_events rejected 2 records, and MAXERROR = 2 fails a load at 2")
    assert warehouse.count("songplays") == 0 and warehouse.count("loaded_objects") == 0
    assert warehouse.query("select outcome, rejected from etl_batches") == [("failed", 2)]
    assert warehouse.query("select line_number from load_errors order by 1") == [(1,), (2,)]


# --- one bad value, one bad file: one rejection each, and everything else loads ---------------------

def run_etl(warehouse, capsys, *args: str, create: bool = False) -> tuple[int, str, str]:
    """etl.py in this process, as a user runs it (create_tables.py first when create):
    its exit code, stdout and stderr."""
    import create_tables
    import etl

    if create:
        assert create_tables.main(["--config", str(warehouse.config), "-q"]) == 0
    code = etl.main(["--config", str(warehouse.config), "-q", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def errors_by_file(warehouse) -> dict[str, list[tuple]]:
    found: dict[str, list[tuple]] = {}
    for source, line, column, reason in warehouse.query(
            "select source, line_number, column_name, reason from load_errors where disposition = 'rejected' "
            "order by batch_id, source, line_number"):
        found.setdefault(source.rsplit("/", 1)[-1], []).append((line, column, reason))
    return found


def test_a_nul_in_a_name_is_rejected_naming_the_column(warehouse, capsys):
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json",
                 [event(item=0), event(item=1, ts=BASE_TS + 1, artist="Foo\u0000Bar"), event(item=2, ts=BASE_TS + 2)])
    write_song(root, song())
    code, out, err = run_etl(warehouse, capsys, create=True)
    assert (code, err) == (0, "")
    assert staged_rows(warehouse, "staging_events") == 2
    assert warehouse.scalar("select count(*) from songplays where artist_name like 'Foo%%'") == 0
    [(line, column, reason)] = errors_by_file(warehouse)["2018-11-01-events.json"]
    assert (line, column) == (2, "artist")
    assert reason.startswith("artist: contains a NUL character (U+0000)") and "remove it" in reason
    assert "bad records: 1 rejected (see table load_errors)" in out


def test_a_deeply_nested_record_is_one_rejection(warehouse, capsys):
    # MAXERROR = 2 fails at 2 rejections: a record that counted once per line would fail the batch.
    write_config(warehouse.config, host=warehouse.server.host, port=warehouse.server.port,
                 db_name=warehouse.dbname, user=warehouse.server.user, password=warehouse.server.password,
                 max_errors=2)
    root = warehouse.config.parent
    deep = write_events(root, "2018-11-01-events.json", [])
    deep.write_text("\n".join([json.dumps(event(item=0)), "[" * 10_000 + "]" * 10_000,
                               json.dumps(event(item=2, ts=BASE_TS + 2))]))
    write_song(root, song())
    code, out, err = run_etl(warehouse, capsys, create=True)
    assert (code, err) == (0, "")
    assert warehouse.count("songplays") == 2
    errors = errors_by_file(warehouse)
    assert [(line, "nested too deeply" in reason) for line, _, reason in errors["2018-11-01-events.json"]] == [
        (2, True)]
    assert "bad records: 1 rejected" in out


@pytest.mark.parametrize("layout", ["one line", "pretty-printed"])
def test_an_object_over_4_mb_fails_the_batch_as_it_fails_redshifts_copy(warehouse, capsys, layout):
    # AWS, "Data format parameters" (JSON): an object over 4 MB fails the COPY, whatever MAXERROR says.
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", [event(item=0)])
    write_song(root, song())
    assert run_etl(warehouse, capsys, create=True)[0] == 0
    big = write_events(root, "2018-11-02-events.json", [])
    padded = event(item=3, ts=BASE_TS + 3, tags=["x" * 50 for _ in range(100_000)])  # 5.3 MB, 6.2 pretty-printed
    big.write_text(json.dumps(event(item=2, ts=BASE_TS + 2)) + "\n"
                   + json.dumps(padded, indent=4 if layout == "pretty-printed" else None)
                   + "\n" + json.dumps(event(item=4, ts=BASE_TS + 4)))
    code, out, err = run_etl(warehouse, capsys)
    assert (code, out) == (1, "")
    [line] = err.strip().splitlines()
    assert line.startswith(f"Error: loading staging_events failed at {big} line 2: a JSON value larger than 4 MB")
    assert "nothing of this batch was published" in line
    assert warehouse.count("songplays") == 1 and warehouse.count("loaded_objects") == 2
    assert warehouse.query("select batch_id, outcome from etl_batches order by 1") == [(1, "published"), (2, "failed")]
    assert warehouse.query("select line_number from load_errors where batch_id = 2") == [(2,)]


def test_a_song_file_holding_an_array_is_rejected_as_an_array(warehouse, capsys):
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", [event()])
    write_song(root, song())
    write_song(root, json.dumps([song(song_id="SO1"), song(song_id="SO2")]), name="TRARRAY.json")
    code, out, err = run_etl(warehouse, capsys, create=True)
    assert (code, err) == (0, "")
    [(line, column, reason)] = errors_by_file(warehouse)["TRARRAY.json"]
    assert (line, column) == (1, None)
    assert reason.startswith("a JSON array, not an object") and "one JSON object per song" in reason
    assert warehouse.count("songs") == 1


@pytest.mark.timeout(120)
def test_links_that_cannot_be_read_and_a_named_pipe_are_rejected_and_tried_again(warehouse, capsys):
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", [event()])
    days = root / "log_data" / "2018" / "11"
    os.symlink("2018-11-03-loop-b.json", days / "2018-11-03-loop-a.json")
    os.symlink("2018-11-03-loop-a.json", days / "2018-11-03-loop-b.json")
    os.symlink("../../../late/2018-11-04-events.json", days / "2018-11-04-events.json")  # dangling for now
    os.mkfifo(days / "2018-11-05-pipe.json")  # with no writer: opening it to read waits for ever
    write_song(root, song())
    code, out, err = run_etl(warehouse, capsys, create=True)
    assert (code, err) == (0, "")
    assert warehouse.count("songplays") == 1
    errors = errors_by_file(warehouse)
    assert [e[0:2] for name in errors for e in errors[name]] == [(None, None)] * 4
    assert errors["2018-11-03-loop-a.json"][0][2].startswith("cannot be read: Too many levels of symbolic links")
    assert "symbolic link loop" in errors["2018-11-03-loop-b.json"][0][2]
    assert "a symbolic link to a missing file" in errors["2018-11-04-events.json"][0][2]
    assert errors["2018-11-05-pipe.json"][0][2].startswith("not a regular file (a named pipe)")
    assert "bad records: 4 rejected (see table load_errors)" in out
    assert "2018-11-05-pipe.json: not a regular file" in out
    # Not recorded as loaded: the next run tries them again, and loads the link's file once it exists.
    assert warehouse.count("loaded_objects") == 2
    (root / "late").mkdir()
    (root / "late" / "2018-11-04-events.json").write_text(json.dumps(event(item=1, ts=BASE_TS + 1)))
    code, out, err = run_etl(warehouse, capsys)
    assert (code, err) == (0, "")
    assert warehouse.count("songplays") == 2
    assert "new or changed source files: 4 (already loaded: 2)" in out
    assert "bad records: 3 rejected" in out
    assert warehouse.count("loaded_objects") == 3


def test_a_file_without_read_permission_is_one_rejected_object(tmp_path):
    # Root reads any file, whatever its mode: the files are read by an unprivileged user.
    folder = Path(tempfile.mkdtemp(prefix="sparkify-unreadable-"))
    try:
        folder.chmod(0o755)
        (folder / "a.json").write_text(json.dumps({"artist": "ok"}))
        (folder / "b.json").write_text(json.dumps({"artist": "secret"}))
        (folder / "b.json").chmod(0)
        (folder / "c.json").write_text(json.dumps({"artist": "ok too"}))
        script = (
            "import json, sys\n"
            "from sparkify import jsoncopy\n"
            "from sparkify.config import Source\n"
            "from sparkify.sources import list_objects\n"
            "copier = jsoncopy.JsonCopy('t', [('artist', 'character varying', 64, True)], 'auto',\n"
            "                           jsoncopy.CopyOptions(max_errors=10))\n"
            "rows = list(copier.rows(list_objects(Source(sys.argv[1]))))\n"
            "print(json.dumps([[r.decode() for r in rows], [[e.source, e.reason] for e in copier.result.errors],\n"
            "                  sorted(copier.result.unread)]))\n")
        as_user = {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}
        result = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, **as_user)
    finally:
        shutil.rmtree(folder)
    assert result.returncode == 0, result.stderr
    rows, errors, unread = json.loads(result.stdout)
    assert rows == ["ok\n", "ok too\n"]
    assert errors == [[str(folder / "b.json"),
                       "cannot be read: Permission denied (give the user who runs etl.py read access)"]]
    assert unread == [str(folder / "b.json")]


def test_a_config_file_starting_with_a_byte_order_mark_is_read(server, tmp_path, capsys):
    # Editors on Windows save UTF-8 with a BOM.
    (tmp_path / "log_data").mkdir()
    (tmp_path / "song_data").mkdir()
    with fresh_database(server, tmp_path) as warehouse:
        warehouse.config.write_bytes(b"\xef\xbb\xbf" + warehouse.config.read_bytes())
        write_events(tmp_path, "2018-11-01-events.json", [event()])
        write_song(tmp_path, song())
        code, out, err = run_etl(warehouse, capsys, create=True)
        assert (code, err) == (0, "")
        assert warehouse.count("songplays") == 1


# --- property-based: hostile input never hides or swallows a record -------------------------------

COLUMNS = [("artist", "character varying", 1024, True), ("item_in_session", "integer", None, False),
           ("ts", "bigint", None, False), ("user_id", "character varying", 64, True)]
PATHS = [("artist",), ("itemInSession",), ("ts",), ("userId",)]

valid_events = st.builds(
    lambda artist, item, ts, user: {"artist": artist, "itemInSession": item, "ts": ts, "userId": user},
    # NUL and lone surrogates cannot be stored as text: values with them are bad records
    # of their own (tested in test_jsoncopy.py), so valid records here have neither.
    st.one_of(st.none(), st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                                 max_size=30)),
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**62),
    st.text(alphabet="0123456789", max_size=4),
)


def _truncate(record, fraction):
    text = json.dumps(record)
    return text[:max(1, int(len(text) * fraction))]


hostile_lines = st.one_of(
    st.builds(_truncate, valid_events, st.floats(0.05, 0.95)),                              # truncated
    valid_events.map(lambda e: json.dumps(dict(e, itemInSession="x"))),                    # wrong type
    valid_events.map(lambda e: json.dumps({k: v for k, v in e.items() if k != "ts"})),     # missing field
    valid_events.map(lambda e: json.dumps(dict(e, artist="é" * 600))),                     # oversized
    st.text(alphabet=st.characters(blacklist_characters="\r\n{}[]\x00", blacklist_categories=("Cs",)),
            min_size=1, max_size=40).filter(lambda t: t.strip()).map(lambda t: "~" + t),  # not JSON
    st.just(b"\xff\xfe{\"artist\": 1}"),                                                   # invalid UTF-8
)


class _Memory(SourceObject):
    def open(self):
        return io.BytesIO(self.url_bytes)  # type: ignore[attr-defined]


def _memory_object(data: bytes) -> SourceObject:
    obj = _Memory("memory://events.json", "events.json", len(data), "1")
    object.__setattr__(obj, "url_bytes", data)
    return obj


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(valid_events.map(lambda e: ("ok", e)), hostile_lines.map(lambda h: ("bad", h))),
                min_size=1, max_size=25),
       st.sampled_from([b"\n", b"\r\n", b"\n\n"]))
def test_hostile_lines_are_each_rejected_and_every_valid_record_loads(items, newline):
    lines = [json.dumps(x).encode() if kind == "ok" else (x if isinstance(x, bytes) else x.encode())
             for kind, x in items]
    data = newline.join(lines)
    copier = jsoncopy.JsonCopy("staging_events", COLUMNS, PATHS,
                               jsoncopy.CopyOptions(max_errors=1000, accept_invalid_chars=False))
    rows = [row.decode() for row in copier.rows([_memory_object(data)])]
    valid = [x for kind, x in items if kind == "ok"]
    bad = len(items) - len(valid)
    assert len(rows) == len(valid)
    for row, record in zip(rows, valid, strict=True):
        fields = row.rstrip("\n").split("\t")
        assert fields[1] == str(record["itemInSession"]) and fields[2] == str(record["ts"])
    # Each bad line is one rejection, in a file with good records or none (as Redshift counts).
    rejected = copier.result.rejected
    assert len(rejected) == bad
    expected_lines = [i + 1 for i, (kind, _) in enumerate(items) if kind == "bad"]
    step = 2 if newline == b"\n\n" else 1
    assert sorted(e.line_number for e in rejected) == [(n - 1) * step + 1 for n in expected_lines]
    assert all(e.reason for e in rejected)


def test_the_summary_says_redshift_lists_only_some_replacements():
    from sparkify.loads import REPLACED, LoadError
    from sparkify.pipeline import RunSummary

    replaced = [LoadError(REPLACED, "staging_events", f"s3://b/{n}.json", 1, "artist", "replaced", "")
                for n in range(3)]
    for capped in (False, True):
        summary = RunSummary(target="t", batch_id=1, errors=replaced, replacements_capped=capped)
        [line] = [line for line in summary.lines() if "bad records" in line]
        assert line.startswith("  bad records: 0 rejected, 3 loaded with invalid characters replaced")
        assert ("or more: Redshift logs only the first 100 rows per slice" in line) == capped
