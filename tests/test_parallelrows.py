"""Rows rendered by worker processes: the same rows and books as the serial local COPY."""

from __future__ import annotations

import json
import multiprocessing
import re

import pytest
from conftest import load, run_main

from sparkify import jsoncopy, parallelrows
from sparkify.loads import CopyOptions
from sparkify.sources import SourceObject

COLUMNS = [("name", "character varying", 64, True), ("n", "integer", None, False),
           ("note", "character varying", 512, True)]
several_cores = pytest.mark.skipif(parallelrows.usable_cores() < 2, reason="one core: the serial path is used")


def write_files(folder, files=4, lines=12_000, bad_every=0):
    """files of about 3 MB each; every bad_every-th line is truncated JSON."""
    objects = []
    for f in range(files):
        path = folder / f"part-{f}.json"
        with open(path, "w", encoding="utf-8") as out:
            for i in range(lines):
                if bad_every and i % bad_every == bad_every - 1:
                    out.write('{"name": "truncated\n')
                else:
                    out.write(json.dumps({"name": f"user-{f}-{i}", "n": i, "note": "é" * 100 + "x" * 100}) + "\n")
        objects.append(SourceObject(str(path), path.name, path.stat().st_size, "1"))
    return objects


def render(objects, workers, max_errors=1000):
    copier = jsoncopy.JsonCopy("t", COLUMNS, "auto", CopyOptions(max_errors=max_errors))
    if workers > 1:
        rows = b"".join(parallelrows.rows(copier, objects, workers)).splitlines(keepends=True)
    else:
        rows = list(copier.rows(objects))
    return rows, copier.result


@several_cores
def test_workers_give_the_rows_errors_and_counts_of_the_serial_copy(tmp_path):
    objects = write_files(tmp_path, bad_every=5000)
    assert parallelrows.worker_count(objects) >= 2
    serial_rows, serial = render(objects, 1)
    parallel_rows, parallel = render(objects, 2)
    assert sorted(parallel_rows) == sorted(serial_rows) and len(serial_rows) == 4 * (12_000 - 2)
    assert (parallel.rows, parallel.objects, parallel.rejected_count) == (serial.rows, serial.objects, 8)
    assert parallel.per_object == serial.per_object
    assert parallel.errors == serial.errors


@several_cores
def test_maxerror_counts_the_rejections_of_all_workers(tmp_path):
    objects = write_files(tmp_path, files=4, lines=3000, bad_every=1000)  # 3 per file, 12 in all
    with pytest.raises(jsoncopy.TooManyErrors, match="MAXERROR = 10 fails a load at 10"):
        render(objects, 2, max_errors=10)
    assert multiprocessing.active_children() == []


@several_cores
def test_an_object_over_4_mb_in_a_worker_fails_the_load_as_in_the_serial_copy(tmp_path):
    objects = write_files(tmp_path, files=2, lines=12_000)
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"name": "big", "n": 1, "pad": "x" * jsoncopy.MAX_OBJECT_BYTES}) + "\n")
    objects.append(SourceObject(str(path), path.name, path.stat().st_size, "1"))
    assert parallelrows.worker_count(objects) >= 2
    for workers in (1, 2):
        with pytest.raises(jsoncopy.ObjectTooLarge, match=f"failed at {path} line 1: a JSON value larger than 4 MB"):
            render(objects, workers)
    assert multiprocessing.active_children() == []


@several_cores
def test_an_abandoned_copy_stops_its_workers(tmp_path):
    objects = write_files(tmp_path)
    copier = jsoncopy.JsonCopy("t", COLUMNS, "auto", CopyOptions())
    rows = parallelrows.rows(copier, objects, 2)
    assert next(rows)
    rows.close()
    assert multiprocessing.active_children() == []


def test_small_data_many_small_files_and_s3_objects_stay_in_one_process(tmp_path):
    small = write_files(tmp_path, files=2, lines=100)
    assert parallelrows.worker_count(small) == 1
    songs = [SourceObject(f"/songs/{i}.json", f"{i}.json", 250, "1") for i in range(100_000)]
    assert parallelrows.worker_count(songs) == 1
    remote = [SourceObject(f"s3://b/{i}.json", f"{i}.json", 50 << 20, "1", opener=lambda: None) for i in range(4)]
    assert parallelrows.worker_count(remote) == 1


@several_cores
def test_etl_renders_large_logs_in_parallel_and_loads_every_event(warehouse):
    root = warehouse.config.parent
    run_main("tools/generate_data.py", str(root), "--users", "200", "--days", "2", "--events-per-day", "20000",
               "--songs", "300", "--seed", "3")
    lines = [json.loads(line) for path in (root / "log_data").rglob("*.json") for line in path.open() if line.strip()]
    result = load(warehouse)
    assert "rendered by" in result.stderr
    assert re.search(rf"staged staging_events +{len(lines):,} rows", result.stdout)
    assert warehouse.count("app_events") == len(lines)
    assert warehouse.count("songplays") == sum(1 for event in lines if event["page"] == "NextSong")


@several_cores
def test_workers_report_an_object_they_cannot_read_as_the_serial_copy_does(tmp_path):
    import os

    objects = write_files(tmp_path, files=2, lines=3000)
    os.symlink("missing.json", tmp_path / "part-9.json")
    objects.append(SourceObject(str(tmp_path / "part-9.json"), "part-9.json", 0, "1"))
    serial_rows, serial = render(objects, 1)
    parallel_rows, parallel = render(objects, 2)
    assert sorted(parallel_rows) == sorted(serial_rows) and len(serial_rows) == 6000
    assert parallel.unread == serial.unread == {str(tmp_path / "part-9.json")}
    assert parallel.errors == serial.errors and "missing file" in serial.errors[0].reason
    assert parallel.per_object == serial.per_object
