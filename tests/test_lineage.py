"""docs/lineage.md is generated from the batch's step records and fails here when stale."""

from __future__ import annotations

from conftest import ROOT

import sql_queries as q
from tools import lineage


def test_the_committed_page_is_what_the_tool_writes_now():
    committed = (ROOT / "docs" / "lineage.md").read_text()
    assert lineage.render() == committed, "docs/lineage.md is stale: run python3 tools/lineage.py and commit it"


def test_every_table_a_batch_writes_is_drawn_with_where_its_rows_come_from():
    written = {edge.target for edge in lineage.edges()}
    assert set(q.STAR_TABLES) | set(q.ROLLUP_TABLES) <= written
    sources_of = {}
    for edge in lineage.edges():
        sources_of.setdefault(edge.target, set()).add(edge.source)
    assert sources_of["staging_events"] == {"LOG_DATA files"}
    assert {"staging_events", "songs", "text_repairs"} <= sources_of["songplays"]
    assert "staging_events" in sources_of["app_events"]
    assert "songplays" in sources_of["plays_by_song"] and "app_events" in sources_of["session_parts"]
    assert {"batch_open_stretches", "app_events"} <= sources_of["user_levels"]


def test_each_kind_of_statement_is_read_for_what_it_writes_and_reads():
    assert lineage.statement_tables("insert into a (x) select x from b join c on b.k = c.k") == ("insert", "a",
                                                                                                 ["b", "c"])
    assert lineage.statement_tables("create table a as with w as (select * from b) select * from w") == (
        "create", "a", ["b"])
    assert lineage.statement_tables("delete from a using b where a.k = b.k") == ("delete", "a", ["b"])
    assert lineage.statement_tables("update a set x = b.x from b where a.k = b.k") == ("update", "a", ["b"])
