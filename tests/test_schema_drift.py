"""Schema drift is seen, not swallowed: a new key, a vanished key and a type change are
recorded per batch and file and reported under the report contract, and fail the batch
cleanly under freeze, with nothing published and later good days loading."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import BASE_TS, event, run_main, song, write_config, write_events, write_song

from sparkify import drift

DAY = 86_400_000
GOOD_DAY_1 = [event(user_id="10", item=i, ts=BASE_TS + i) for i in range(3)]
GOOD_DAY_3 = [event(user_id="12", item=i, ts=BASE_TS + 2 * DAY + i) for i in range(2)]


def drifted_day() -> list[dict]:
    """Day 2: a new key (nested), a key gone (gender), a number arriving as a string (status),
    and one record whose level is outside what the schema accepts."""
    rows = []
    for i in range(4):
        record = event(user_id="11", item=i, ts=BASE_TS + DAY + i, status="200" if i == 1 else 200,
                       device={"os": "iOS", "version": 17})
        del record["gender"]
        rows.append(record)
    rows.append(event(user_id="11", item=9, ts=BASE_TS + DAY + 9, level="gold"))
    return rows


def first_load(warehouse):
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", GOOD_DAY_1)
    write_song(root, song())
    run_main("create_tables.py", "--config", str(warehouse.config))
    run_main("etl.py", "--config", str(warehouse.config))


@pytest.fixture
def loaded(templates, tmp_path):
    with templates.clone(first_load, tmp_path) as warehouse:
        yield warehouse


def set_contract(warehouse, contract: str) -> None:
    with open(warehouse.config, "a") as cfg:
        cfg.write(f"\n[ETL]\nSCHEMA_CONTRACT = {contract}\n")


def test_the_first_batch_records_the_schema_and_reports_no_drift(loaded):
    kinds = dict(loaded.query("select field_path, json_type from schema_drift "
                              "where table_name = 'staging_events' and json_type <> 'null'"))
    assert kinds["sessionId"] == "number" and kinds["userId"] == "string"
    assert {row[0] for row in loaded.query("select distinct change_kind from schema_drift")} == {"baseline"}


def test_report_records_all_three_rejects_the_value_and_loads(loaded):
    root = loaded.config.parent
    path = write_events(root, "2018-11-02-events.json", drifted_day())
    result = run_main("etl.py", "--config", str(loaded.config))
    out = result.stdout
    assert "ETL batch 2 published" in out
    assert "schema drift (contract report" in out
    assert f"{path} line 1: new key 'device' (object" in out
    assert "new key 'device.os' (string, e.g. \"iOS\")" in out
    assert f"{path} line 1: key 'gender' vanished (4 records without it)" in out
    assert f"{path} line 2: key 'status' changed type: string where number was (e.g. \"200\")" in out
    rejected = loaded.query("select source, line_number, reason from load_errors where column_name = 'level'")
    assert rejected == [(str(path), 5, 'level: "gold" is not an accepted value: level must be free or paid')]
    assert loaded.scalar("select count(*) from app_events where user_id = 11") == 4
    rows = loaded.query("select change_kind, field_path, json_type, expected, records, line_number, source "
                        "from schema_drift where batch_id = 2 order by change_kind, field_path")
    assert ("type_change", "status", "string", "number", 1, 2, str(path)) in rows
    assert ("vanished_key", "gender", "absent", "string", 4, 1, str(path)) in rows
    assert ("new_key", "device.version", "number", None, 4, 1, str(path)) in rows
    # The report's data-health section lists them.
    report = root / "report"
    run_main("insights.py", "--config", str(loaded.config), "--output", str(report))
    with open(report / "schema_drift.csv") as csv_file:
        listed = {(row["change_kind"], row["field_path"]) for row in csv.DictReader(csv_file)}
    assert {("new_key", "device"), ("vanished_key", "gender"), ("type_change", "status")} <= listed
    assert "Schema drift: keys new, vanished or of another type" in (report / "index.html").read_text()
    # The schema now includes the changes: the same shape again is no drift.
    write_events(root, "2018-11-03-events.json", [dict(r, ts=r["ts"] + DAY) for r in drifted_day()[:4]])
    again = run_main("etl.py", "--config", str(loaded.config))
    assert "schema drift: none (contract report)" in again.stdout


def test_freeze_fails_naming_file_and_line_publishes_nothing_and_later_days_load(loaded):
    set_contract(loaded, "freeze")
    root = loaded.config.parent
    path = write_events(root, "2018-11-02-events.json", drifted_day())
    before = loaded.count("app_events")
    result = run_main("etl.py", "--config", str(loaded.config), check=False)
    assert result.returncode == 1 and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: schema contract freeze: ")
    assert f"(first: {path} line 1: new key 'device'" in last and "nothing of this batch was published" in last
    assert loaded.count("app_events") == before
    assert loaded.scalar("select outcome from etl_batches order by batch_id desc limit 1") == "failed"
    kinds = {row[0] for row in loaded.query("select change_kind from schema_drift where batch_id = 2")}
    assert kinds == {"new_key", "vanished_key", "type_change", "refused_value"}
    # A later good day loads; the refused file is held back, named, until it changes.
    write_events(root, "2018-11-03-events.json", GOOD_DAY_3)
    later = run_main("etl.py", "--config", str(loaded.config))
    assert "ETL batch 3 published" in later.stdout
    assert "held back under the freeze schema contract: 1 files" in later.stdout and str(path) in later.stdout
    assert loaded.scalar("select count(*) from app_events where user_id = 12") == 2
    assert loaded.scalar("select count(*) from app_events where user_id = 11") == 0
    # Fixed, it loads.
    write_events(root, "2018-11-02-events.json", [event(user_id="11", item=i, ts=BASE_TS + DAY + i)
                                                  for i in range(2)])
    fixed = run_main("etl.py", "--config", str(loaded.config))
    assert "ETL batch 4 published" in fixed.stdout and "schema drift: none (contract freeze)" in fixed.stdout
    assert loaded.scalar("select count(*) from app_events where user_id = 11") == 2


def test_freeze_refuses_a_value_outside_the_accepted_set(loaded):
    set_contract(loaded, "freeze")
    path = write_events(loaded.config.parent, "2018-11-02-events.json",
                        [event(user_id="11", ts=BASE_TS + DAY, level="gold")])
    result = run_main("etl.py", "--config", str(loaded.config), check=False)
    assert result.returncode == 1
    assert f"values the schema does not accept (first: {path} line 1: level: \"gold\"" in result.stderr


def test_shapes_follow_nesting_arrays_and_types():
    shape = drift.ObjectShape()
    shape.observe(1, {"a": 1, "b": {"c": "x"}, "d": [1, 2]})
    shape.observe(2, {"a": 1, "b": {"c": "x"}, "d": [1, 2]})
    shape.observe(3, {"a": "1", "b": {"e": True}, "d": []})
    known = {"a": {"number"}, "b": {"object"}, "b.c": {"string"}, "d": {"array"}, "d[]": {"number"}}
    changes = {(c.change, c.field, c.json_type, c.line_number, c.records)
               for c in drift.compare("t", known, {"f": shape})}
    assert changes == {("type_change", "a", "string", 3, 1), ("new_key", "b.e", "boolean", 3, 1),
                       ("vanished_key", "b.c", "absent", 3, 1)}
    # An object where text was: a type change, and its keys are new.
    other = drift.ObjectShape()
    other.observe(7, {"a": 1, "b": {"c": {"deep": 1}}, "d": [1]})
    found = {(c.change, c.field, c.json_type) for c in drift.compare("t", known, {"g": other})}
    assert found == {("type_change", "b.c", "object"), ("new_key", "b.c.deep", "number")}


def test_shapes_survive_a_worker_process():
    import pickle

    shape = drift.ObjectShape()
    for line in range(1, 4):
        shape.observe(line, json.loads('{"k": 1}'))
    copy = pickle.loads(pickle.dumps(shape))
    copy.observe(4, {"k": 2})
    assert copy.counts() == {("k", "number"): 4}


def test_a_first_batch_reports_keys_beyond_what_copy_reads_and_declared_keys_missing(warehouse):
    root = warehouse.config.parent
    write_events(root, "2018-11-01-events.json", GOOD_DAY_1)
    odd = [event(user_id="11", item=i, ts=BASE_TS + DAY + i, sessionColor="blue") for i in range(2)]
    for record in odd:
        del record["location"]
    path = write_events(root, "2018-11-02-events.json", odd)
    write_song(root, song(mood={"calm": 0.8}))
    run_main("create_tables.py", "--config", str(warehouse.config))
    out = run_main("etl.py", "--config", str(warehouse.config)).stdout
    assert f"{path} line 1: new key 'sessionColor' (string, e.g. \"blue\")" in out
    assert f"{path} line 1: key 'location' vanished (2 records without it)" in out
    assert "new key 'mood' (object" in out and "new key 'mood.calm' (number" in out
    assert "2018-11-01-events.json" not in out.split("schema drift")[1]  # the good day: its baseline only


def test_on_redshift_each_new_object_s_first_64_kib_are_read_with_one_ranged_get(s3_server, tmp_path):
    """COPY runs none of the toolkit's code: the sample read before it sees a new key in the
    first 64 KiB, leaves the line the sample cuts off out, and reads no further."""
    from sparkify import redshift, sources
    from sparkify.config import load_config

    client = s3_server.client()
    client.create_bucket(Bucket="drift-sample")
    records = [event(item=i, ts=BASE_TS + i, **({"early": True} if i == 0 else {})) for i in range(400)]
    records.append(event(item=999, ts=BASE_TS + 999, late="past the sample"))
    body = "\n".join(json.dumps(r) for r in records).encode()
    assert len(body) > drift.SAMPLE_BYTES
    client.put_object(Bucket="drift-sample", Key="log_data/day.json", Body=body)
    config = load_config(write_config(tmp_path / "dwh.cfg", log_data="s3://drift-sample/log_data",
                                      song_data="s3://drift-sample/song_data",
                                      extra=f"REGION = us-west-2\nENDPOINT_URL = {s3_server.endpoint}\n"))
    s3 = sources.S3(config)
    objects = s3.list("s3://drift-sample/log_data")
    reads = []

    def read(url, size):
        reads.append(size)
        return s3.read(url, size)

    shape = redshift.sample_shapes(objects, read)["s3://drift-sample/log_data/day.json"]
    assert reads == [drift.SAMPLE_BYTES]
    whole_lines = body[:drift.SAMPLE_BYTES].count(b"\n")
    assert shape.records == whole_lines
    paths = {path for path, _ in shape.counts()}
    assert "early" in paths and "late" not in paths
