"""What AWS documents as unsupported in Redshift, as a checker for our SQL.

From the Redshift developer guide's pages "Unsupported PostgreSQL features", "Unsupported
PostgreSQL data types" and "Unsupported PostgreSQL functions", plus PostgreSQL-only
statements our engines vary on purpose (UNLOGGED, TRUNCATE inside a batch), and
restrictions a function's own page states (see sort_based_with_distinct). Types are
found in sqlglot's syntax tree; function calls and syntax are matched on the text with
string literals and comments removed, so a word inside a string never counts.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

UNSUPPORTED_FUNCTIONS = {
    # aggregate functions
    "string_agg", "array_agg", "every", "xml_agg", "xmlagg", "corr", "covar_pop", "covar_samp",
    "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx",
    "regr_sxy", "regr_syy", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
    # date/time
    "clock_timestamp", "justify_days", "justify_hours", "justify_interval", "pg_sleep",
    "transaction_timestamp",
    # math
    "div", "setseed", "width_bucket",
    # set returning
    "generate_series", "generate_subscripts", "unnest",
    # string
    "bit_length", "overlay", "convert", "convert_from", "convert_to", "encode", "format",
    "quote_nullable", "regexp_matches", "regexp_split_to_array", "regexp_split_to_table",
    # system information
    "current_query", "inet_client_addr", "inet_client_port", "inet_server_addr", "inet_server_port",
    "pg_conf_load_time", "pg_is_other_temp_schema", "pg_listening_channels", "pg_my_temp_schema",
    "pg_postmaster_start_time", "pg_trigger_depth",
    # advisory locks, object size and location, sequences
    "pg_advisory_lock", "pg_advisory_xact_lock", "pg_try_advisory_lock", "pg_advisory_unlock",
    "pg_database_size", "pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
    "pg_relation_filepath", "nextval", "currval", "setval", "lastval",
    # arrays, JSON building, text search
    "array_length", "array_upper", "array_lower", "array_cat", "array_append", "array_to_string",
    "string_to_array", "json_build_object", "jsonb_build_object", "to_json", "to_jsonb", "row_to_json",
    "to_tsvector", "to_tsquery", "plainto_tsquery", "ts_rank", "ts_headline",
}

UNSUPPORTED_TYPES = {
    "SERIAL", "BIGSERIAL", "SMALLSERIAL", "MONEY", "JSON", "JSONB", "UUID", "BIT", "VARBIT", "BYTEA",
    "XML", "HSTORE", "INET", "CIDR", "MACADDR", "MACADDR8", "TSVECTOR", "TSQUERY", "INT4RANGE",
    "INT8RANGE", "NUMRANGE", "TSRANGE", "TSTZRANGE", "DATERANGE", "POINT", "LINE", "LSEG", "BOX",
    "PATH", "POLYGON", "CIRCLE", "ARRAY", "LIST", "TXID_SNAPSHOT", "NAME", "OBJECT_IDENTIFIER",
}

UNSUPPORTED_SYNTAX = [
    (r"\bon\s+conflict\b", "ON CONFLICT (use staging + delete/insert or MERGE)"),
    (r"\bdistinct\s+on\b", "DISTINCT ON (use row_number() over (...))"),
    (r"\breturning\b", "RETURNING"),
    (r"\bcreate\s+(unique\s+)?index\b", "indexes"),
    (r"\binherits\b", "table inheritance"),
    (r"\btablespace\b", "tablespaces"),
    (r"\bcollate\b", "collations"),
    (r"\bover\s*\([^)]*\bnulls\s+(first|last)\b", "NULLS clause in window functions"),
    (r"\bis\s+(not\s+)?distinct\s+from\b", "IS DISTINCT FROM"),
    (r"\barray\s*\[", "array constructors"),
    (r"\[\s*\d*\s*\]", "subscripts or array types"),
    (r"\brow\s*\(", "row constructors"),
    (r"->>?|#>>?|@>|<@|\?\||\?&", "JSON and array operators"),
    (r"\blateral\b", "LATERAL"),
    (r"\bwith\s+ordinality\b", "table functions"),
    (r"\bfilter\s*\(\s*where\b", "aggregate FILTER"),
    (r"\b(from|join)\s*\(\s*values\b", "VALUES lists used as constant tables"),
    (r"\bcreate\s+(temp\s+|temporary\s+)?sequence\b", "sequences"),
    (r"\bcreate\s+(constraint\s+)?trigger\b", "triggers"),
    (r"\bcreate\s+type\b", "composite and enumerated types"),
    (r"\bcreate\s+extension\b", "extensions"),
    (r"\bpartition\s+by\s+(range|list|hash)\b", "table partitioning"),
    (r"\bunlogged\b", "UNLOGGED tables (PostgreSQL only)"),
    (r"\btruncate\b", "TRUNCATE (commits the batch's transaction on Redshift; use DELETE)"),
    (r"\bexclude\s+using\b", "exclusion constraints"),
    (r"\bcheck\s*\(", "check constraints"),
    (r"\brollback\s+to\s+savepoint\b", "ROLLBACK TO SAVEPOINT"),
]

SYSTEM_COLUMNS = {"oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"}

# The sort-based aggregates. AWS, Redshift Database Developer Guide, "LISTAGG function"
# (r_LISTAGG.html), usage notes: LISTAGG, PERCENTILE_CONT and MEDIAN cannot be used with
# other distinct aggregate functions; Redshift rejects such a SELECT with "Using
# LISTAGG/PERCENTILE_CONT/MEDIAN aggregate functions with other distinct aggregate function
# not supported". PostgreSQL accepts it, so only this check finds it before production.
SORT_BASED_WITH_DISTINCT = ("PERCENTILE_CONT, MEDIAN or LISTAGG in a SELECT with a DISTINCT aggregate "
                            "(compute them in separate CTEs)")


def _strip_literals(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def violations(sql: str) -> list[str]:
    """Every construct in sql that Redshift does not support, as readable reasons."""
    found = []
    text = _strip_literals(sql).lower()
    for pattern, reason in UNSUPPORTED_SYNTAX:
        if re.search(pattern, text):
            found.append(reason)
    # Function calls by name in the text: sqlglot renames some (string_agg becomes GROUP_CONCAT).
    for name in re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(", text):
        if name in UNSUPPORTED_FUNCTIONS:
            found.append(f"function {name}()")
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except sqlglot.errors.ParseError as exc:
        return found + [f"does not parse: {str(exc).splitlines()[0]}"]
    for node in tree.walk():
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in UNSUPPORTED_FUNCTIONS:
                found.append(f"function {name}()")
        if isinstance(node, exp.DataType) and node.this.name in UNSUPPORTED_TYPES:
            found.append(f"type {node.this.name}")
        if isinstance(node, exp.ColumnDef) and node.name.lower() in SYSTEM_COLUMNS:
            found.append(f"column named {node.name} (a PostgreSQL system column name)")
    if any(sort_based_with_distinct(select) for select in tree.find_all(exp.Select)):
        found.append(SORT_BASED_WITH_DISTINCT)
    return sorted(set(found))


def _is_sort_based(node) -> bool:
    if isinstance(node, (exp.PercentileCont, exp.Median, exp.GroupConcat)):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() == "listagg"


def sort_based_with_distinct(select: exp.Select) -> bool:
    """Whether this one SELECT (not the queries nested in it) has a sort-based aggregate and
    a DISTINCT aggregate other than it (LISTAGG(DISTINCT …) alone is allowed)."""
    sort_based = distinct = False
    for expression in select.expressions:
        for node in expression.walk(prune=lambda n: isinstance(n, (exp.Select, exp.Subquery, exp.Window))):
            if isinstance(node, (exp.Select, exp.Subquery, exp.Window)):
                continue  # another query's, or a window function's (not an aggregate of this SELECT)
            if _is_sort_based(node):
                sort_based = True
            elif isinstance(node, exp.Distinct) and not _is_sort_based(node.parent):
                distinct = True
    return sort_based and distinct
