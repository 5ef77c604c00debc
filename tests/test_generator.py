"""The data generator: deterministic, calibrated on the real data, and loadable with its bad records kept."""

from __future__ import annotations

import hashlib
import re

import pytest
from conftest import DATA, load, run_main, run_script

from sparkify.generator import profile


def digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.json")):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    run_main("tools/generate_data.py", str(folder), "--users", "100", "--days", "30", "--events-per-day", "270",
               "--songs", "2000", "--seed", "7")
    return folder


def test_the_same_seed_writes_the_same_bytes(generated, tmp_path):
    # In a process of its own (its own hash seed) against the fixture's in-process run:
    # no byte may depend on the order of a set or a dict built from one.
    run_script("tools/generate_data.py", str(tmp_path), "--users", "100", "--days", "30", "--events-per-day", "270",
               "--songs", "2000", "--seed", "7")
    assert digest(tmp_path) == digest(generated)
    other = tmp_path / "other"
    run_main("tools/generate_data.py", str(other), "--users", "100", "--days", "2", "--events-per-day", "270",
             "--songs", "2000", "--seed", "8")
    assert digest(other) != digest(generated)


def test_the_layout_is_the_bucket_s(generated):
    logs = sorted(p.relative_to(generated).as_posix() for p in (generated / "log_data").rglob("*.json"))
    assert logs[0] == "log_data/2018/11/2018-11-01-events.json" and len(logs) == 30
    songs = list((generated / "song_data").rglob("*.json"))
    assert len(songs) == 2000
    assert all(re.fullmatch(r"song_data/[A-Z0-9]/[A-Z0-9]/[A-Z0-9]/TR[A-Z0-9]+\.json",
                            p.relative_to(generated).as_posix()) for p in songs)


def test_the_generated_data_looks_like_the_real_data(generated):
    # Match against the full catalog needs the full catalog: compare the shares that do not.
    real, fake = profile(DATA), profile(generated)
    for key, tolerance in (("plays (NextSong share of events)", 0.05), ("logged-out share of events", 0.02),
                           ("paid share of plays", 0.12), ("distinct songs per play", 0.15),
                           ("plays in the busiest hour", 0.03), ("events per session", 2.5)):
        assert abs(real[key] - fake[key]) <= tolerance, (key, real[key], fake[key])
    assert abs(real["peak hour of plays (UTC)"] - fake["peak hour of plays (UTC)"]) <= 2


def test_spoiled_records_are_counted_by_the_loader(warehouse):
    root = warehouse.config.parent
    result = run_main("tools/generate_data.py", str(root), "--users", "20", "--days", "3", "--events-per-day", "300",
                        "--songs", "300", "--bad-share", "0.02", "--seed", "3")
    spoiled = int(re.search(r"([\d,]+) spoiled", result.stdout).group(1).replace(",", ""))
    assert spoiled > 0
    etl = load(warehouse)
    assert warehouse.count("load_errors") >= spoiled - 1   # a garbage line next to a truncated one may merge
    assert re.search(r"bad records: [\d,]+ rejected", etl.stdout)
    assert warehouse.count("songplays") > 0
