"""The warehouse explains itself: every table, view and column carries a comment in the catalog,
docs/data-dictionary.md is what the generator makes of that catalog now, and the keys are
declared on Redshift (informational) but not on PostgreSQL (where they would be enforced).
"""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, fresh_database, write_config

import sql_queries as q
from sparkify import descriptions, dictionary, schema
from sparkify.config import load_config
from sparkify.warehouse import connect

RELATIONS = q.TABLES + q.VIEWS
EVENT_GRAIN_TABLES = ["songplays", "app_events", "time"]
GOLDEN_SCRIPT = ROOT / "tests" / "golden" / "redshift.sql"
FOREIGN_KEY = re.compile(r"foreign key \((\w+)\) references (\w+) \((\w+)\)")


@pytest.fixture(scope="module")
def created(server, tmp_path_factory):
    """A fresh database after create_tables: (its config, the catalog as the generator reads it)."""
    folder = tmp_path_factory.mktemp("dictionary")
    (folder / "log_data").mkdir()
    (folder / "song_data").mkdir()
    with fresh_database(server, folder) as warehouse:
        config = load_config(warehouse.config)
        schema.create_tables(config)
        with connect(config) as wh:
            yield warehouse, dictionary.read_catalog(wh)


def test_every_table_view_and_column_has_a_comment(created):
    _, catalog = created
    missing = [r.name for r in catalog if not (r.comment or "").strip()]
    missing += [f"{r.name}.{c.name}" for r in catalog for c in r.columns if not (c.comment or "").strip()]
    assert missing == [], f"no comment on {', '.join(missing)}: describe them in sparkify/descriptions.py"
    assert [r.name for r in catalog if not r.comment.startswith("Grain: ")] == [], "a comment opens with the grain"


def test_the_descriptions_name_exactly_the_columns_that_exist(created):
    """Both directions: a column without a description, and a description of a column that
    does not exist (renamed, dropped, or not merged yet), both fail."""
    _, catalog = created
    assert list(descriptions.DESCRIPTIONS) == RELATIONS
    for relation in catalog:
        described = descriptions.DESCRIPTIONS[relation.name].columns
        live = [c.name for c in relation.columns]
        assert sorted(live) == sorted(described), (
            f"{relation.name}: columns without a description {sorted(set(live) - set(described))}, "
            f"descriptions of no column {sorted(set(described) - set(live))} (sparkify/descriptions.py)")


def test_the_catalog_holds_the_texts_as_written(created):
    """The statements quote every text right (single quotes doubled) on the way in."""
    _, catalog = created
    for relation in catalog:
        described = descriptions.DESCRIPTIONS[relation.name]
        assert relation.comment == described.comment
        assert {c.name: c.comment for c in relation.columns} == described.columns
    assert any("'" in text for d in descriptions.DESCRIPTIONS.values() for text in d.columns.values())
    assert descriptions.quoted("it's") == "'it''s'"


def test_the_committed_page_is_what_the_command_writes_now(created, tmp_path, capsys):
    warehouse, _ = created
    written = tmp_path / "data-dictionary.md"
    assert dictionary.main(["--config", str(warehouse.config), "--output", str(written), "-q"]) == 0
    assert f"Wrote {written}: {len(q.TABLES)} tables, {len(q.VIEWS)} view" in capsys.readouterr().out
    committed = (ROOT / "docs" / "data-dictionary.md").read_text()
    assert written.read_text() == committed, ("docs/data-dictionary.md is stale: run python3 tasks.py dictionary "
                                              "(after create_tables.py) and commit the result")


def test_the_page_documents_every_relation_key_and_join():
    page = (ROOT / "docs" / "data-dictionary.md").read_text()
    for name in RELATIONS:
        assert f"\n### {name}\n" in page
    for keys in q.INFORMATIONAL_KEYS.values():
        for key in keys:
            assert f"`{key}`" in page
    assert "| songplays | songs | `songplays.song_id = songs.song_id` | Matched plays only" in page
    assert "(no comment)" not in page and "(not stated)" not in page


def test_the_command_refuses_redshift_with_one_line(tmp_path, capsys):
    config = write_config(tmp_path / "dwh.cfg", host="example.abc123.us-west-2.redshift.amazonaws.com",
                          password="Not-a-real-secret-1", log_data="s3://bucket/log_data",
                          log_jsonpath="s3://bucket/log_json_path.json", song_data="s3://bucket/song_data",
                          arn="arn:aws:iam::123456789012:role/not-real")
    assert dictionary.main(["--config", str(config), "--output", str(tmp_path / "page.md")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and "PostgreSQL" in err[0]
    assert not (tmp_path / "page.md").exists()


def test_postgres_declares_no_key_that_would_break_the_merges(created):
    """PostgreSQL enforces keys: a foreign key would refuse the delete + insert merges of the
    dimensions, and a unique index on an event-grain table costs more than its insert."""
    warehouse, _ = created
    assert warehouse.query("select conrelid::regclass::text, conname from pg_constraint "
                           "where contype = 'f' and connamespace = current_schema()::regnamespace") == []
    unique = warehouse.query("select indrelid::regclass::text from pg_index "
                             "where indisunique and indrelid = any(%s::regclass[])", (EVENT_GRAIN_TABLES,))
    assert unique == []


def test_the_redshift_script_declares_the_keys_and_sets_every_comment():
    """On the reviewed golden script (tests/test_redshift_sql.py pins it to the dry run)."""
    script = GOLDEN_SCRIPT.read_text()
    for statement in descriptions.comment_statements():
        assert f"\n{statement};\n" in script, statement[:80]
    for table, keys in q.INFORMATIONAL_KEYS.items():
        create = re.search(rf"create table if not exists {table} \((.*?)\n\) ", script, re.DOTALL).group(1)
        for key in keys:
            assert f"\n    {key}" in create, (table, key)


def _declared_foreign_keys() -> set[tuple[str, str, str, str]]:
    return {(table, *FOREIGN_KEY.fullmatch(key).groups())
            for table, keys in q.INFORMATIONAL_KEYS.items() for key in keys if key.startswith("foreign key")}


def test_the_joins_marked_as_redshift_keys_are_the_declared_foreign_keys():
    marked = set()
    for join in descriptions.JOINS:
        if join.redshift_key:
            found = re.fullmatch(r"(\w+)\.(\w+) = (\w+)\.(\w+)", join.on)
            assert found and (found[1], found[3]) == (join.left, join.right), join
            marked.add((found[1], found[2], found[3], found[4]))
    assert marked == _declared_foreign_keys()


def test_tables_are_created_after_the_tables_they_reference():
    """Redshift needs a referenced table to exist, and refuses to drop it first."""
    created = [re.search(r"(\w+) \(\n", statement).group(1) for statement in q.create_table_queries]
    assert created == q.TABLES
    for table, _, parent, _ in _declared_foreign_keys():
        assert q.TABLES.index(parent) < q.TABLES.index(table), (table, parent)
    assert q.drop_table_queries == [f"drop table if exists {table}" for table in reversed(q.TABLES)]
