"""What AWS documents as unsupported in Redshift, as a checker for our SQL.

From the Redshift developer guide's pages "Unsupported PostgreSQL features", "Unsupported
PostgreSQL data types" and "Unsupported PostgreSQL functions", plus PostgreSQL-only
statements our engines vary on purpose (UNLOGGED, TRUNCATE inside a batch), and
restrictions a function's own page states (see sort_based_with_distinct). Types are
found in sqlglot's syntax tree; function calls and syntax are matched on the text with
string literals and comments removed, so a word inside a string never counts.

script_violations() adds what only the order of a session's statements shows (a LOCK with
no statement_timeout in effect), for a whole script such as tests/golden/redshift.sql.
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

# AWS, Redshift Database Developer Guide, "Data load operations" (copy-parameters-data-load),
# MAXERROR: "The upper limit is 100000"; a larger value fails the COPY before it reads a row.
MAXERROR_LIMIT = 100_000
MAXERROR_TOO_HIGH = "MAXERROR above 100,000, Redshift's limit"

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
    # AWS, Redshift Database Developer Guide, "System monitoring (provisioned only)": the STL,
    # STV, SVL and SVCS tables and views exist on provisioned clusters only; the SYS monitoring
    # views serve Redshift Serverless too ("System view mapping for migrating to SYS monitoring
    # views").
    (r"\b(stl|stv|svl|svcs)_[a-z_]+", "system views of provisioned clusters only (STL, STV, SVL, SVCS): "
                                      "Redshift Serverless has none; use the SYS monitoring views"),
]

SYSTEM_COLUMNS = {"oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"}

# The sort-based aggregates. AWS, Redshift Database Developer Guide, "LISTAGG function"
# (r_LISTAGG.html), usage notes: LISTAGG, PERCENTILE_CONT and MEDIAN cannot be used with
# other distinct aggregate functions; Redshift rejects such a SELECT with "Using
# LISTAGG/PERCENTILE_CONT/MEDIAN aggregate functions with other distinct aggregate function
# not supported". PostgreSQL accepts it, so only this check finds it before production.
SORT_BASED_WITH_DISTINCT = ("PERCENTILE_CONT, MEDIAN or LISTAGG in a SELECT with a DISTINCT aggregate "
                            "(compute them in separate CTEs)")

# AWS, Redshift Database Developer Guide, "EXTRACT function": the result is an INTEGER for a
# TIMESTAMP (DOUBLE PRECISION only for a TIMESTAMPTZ); PostgreSQL's keeps the fraction of a
# second. EXTRACT(epoch FROM t) agrees on both engines only when t is whole seconds, which a
# statement shows by truncating it: EXTRACT(epoch FROM date_trunc('second' or coarser, t)).
UNTRUNCATED_EPOCH = ("EXTRACT(epoch ...) of a time not truncated to whole seconds (an integer on Redshift, "
                     "a fraction on PostgreSQL): extract it from date_trunc('second', ...)")
_EPOCH = re.compile(r"\b(?:extract\s*\(\s*epoch\s+from|date_part\s*\(\s*'epoch'\s*,)\s*")
_WHOLE_SECONDS = re.compile(r"date_trunc\s*\(\s*'(second|minute|hour|day|week|month|quarter|year|decade|century|"
                            r"millennium)'\s*,")


def untruncated_epochs(sql: str) -> int:
    """How many EXTRACT(epoch FROM …) (or date_part('epoch', …)) in sql take a time that is
    not truncated to whole seconds or coarser."""
    text = re.sub(r"--[^\n]*", " ", sql).lower()
    return sum(1 for found in _EPOCH.finditer(text) if not _WHOLE_SECONDS.match(text, found.end()))


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
    if untruncated_epochs(sql):
        found.append(UNTRUNCATED_EPOCH)
    if any(int(count) > MAXERROR_LIMIT for count in re.findall(r"\bmaxerror\s+(?:as\s+)?(\d+)", text)):
        found.append(MAXERROR_TOO_HIGH)
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

# AWS, Redshift Database Developer Guide, "LOCK": the lock is ACCESS EXCLUSIVE, "waiting if
# necessary for any conflicting locks to be released", for as long as that takes; and
# "statement_timeout": it stops any statement that runs longer, 0 (the default) turning the
# limit off. So every LOCK must run while a statement_timeout above 0 is set in the session.
UNBOUNDED_LOCK = "LOCK with no statement_timeout in effect (it would wait for ever; set one before it)"
_SET_TIMEOUT = re.compile(r"set\s+(?:session\s+)?statement_timeout\s*(?:to|=)\s*'?(\d+|default)'?")
_RESET_TIMEOUT = re.compile(r"reset\s+(?:statement_timeout|all)\b")


def order_violations(statements: list[str]) -> list[str]:
    """What is wrong with statements in the order one session sends them, though each may
    pass alone: a LOCK while no statement_timeout bounds its wait."""
    found, bounded = [], False
    for statement in statements:
        text = " ".join(re.sub(r"--[^\n]*", " ", statement).lower().split())  # a value may be quoted
        setting = _SET_TIMEOUT.match(text)
        if setting:
            bounded = setting.group(1) != "default" and int(setting.group(1)) > 0
        elif _RESET_TIMEOUT.match(text):
            bounded = False
        elif re.match(r"lock\b", text) and not bounded:
            found.append(UNBOUNDED_LOCK)
    return found


# AWS, Redshift Database Developer Guide, "EXTRACT function", return type: INTEGER for a
# TIMESTAMP, so EXTRACT(epoch FROM t) overflows for any t after 2038-01-19 03:14:07 UTC. The
# load's statements compare against the run's clock, which gets there; they take an epoch
# from the client as a BIGINT parameter instead. (The report's and analyses' queries take
# differences of the epochs of loaded events: flagged above when not in whole seconds.)
EPOCH_OVERFLOWS = ("EXTRACT(epoch ...) in a load statement: an INTEGER on Redshift, it overflows after "
                   "2038-01-19 (pass the epoch as a BIGINT parameter)")


def script_violations(statements: list[str]) -> list[str]:
    """Every statement's violations and those of their order, for one session's script (a
    run of the load: no EXTRACT(epoch ...) at all there)."""
    found = [reason for statement in statements for reason in violations(statement)]
    if any(_EPOCH.search(re.sub(r"--[^\n]*", " ", statement).lower()) for statement in statements):
        found.append(EPOCH_OVERFLOWS)
    return sorted(set(found + order_violations(statements)))
