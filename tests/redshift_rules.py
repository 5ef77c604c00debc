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
    # AWS, Redshift Database Developer Guide, "ANALYZE": "You can't specify more than one
    # table_name with a single ANALYZE table_name statement."
    (r"^\s*analyze\s+(verbose\s+)?[\w.]+\s*,", "ANALYZE of more than one table (one table a statement)"),
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
    if untyped_union_literals(tree):
        found.append(UNTYPED_IN_UNION)
    return sorted(set(found))


# AWS, Redshift Database Developer Guide, "UNION, INTERSECT, and EXCEPT": the branches must
# have "compatible data types", and set operations "don't allow implicit conversion between
# different categories of data types" ("Type compatibility and conversion"). A bare string
# literal or NULL has no type of its own; where the first branch, which names the columns,
# has one, the engine guesses the column's type (a CHAR of the literal's length, or a type
# from the other branches), and the engines guess differently. So the first branch casts
# each such value, and the other branches follow its type.
UNTYPED_IN_UNION = ("an untyped literal ('text' or NULL) in the first branch of UNION/INTERSECT/EXCEPT: "
                    "cast it (cast('…' as varchar(n)))")


def untyped_union_literals(tree) -> bool:
    """Whether the first branch of a set operation in tree selects a bare string literal or NULL."""
    for operation in tree.find_all(exp.SetOperation):
        first = operation.left
        while isinstance(first, exp.SetOperation):
            first = first.left
        if not isinstance(first, exp.Select):
            continue
        for expression in first.expressions:
            value = expression.this if isinstance(expression, exp.Alias) else expression
            if isinstance(value, exp.Null) or (isinstance(value, exp.Literal) and value.is_string):
                return True
    return False


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


# AWS, Redshift Database Developer Guide, "Table constraints" (t_Defining_constraints.html):
# uniqueness, primary key and foreign key constraints are informational only, the planner
# uses them and assumes they are valid, and "if your application allows invalid foreign keys
# or primary keys, some queries could return incorrect results. For example, a SELECT
# DISTINCT query might return duplicate rows if the primary key is not unique." A check of a
# key, or a view analysts rely on, must therefore not be a query the planner may answer from
# the declared key: no GROUP BY or DISTINCT of exactly a declared key, no anti-join (LEFT JOIN
# … WHERE parent key IS NULL) on a declared key's bare columns. Comparing an expression of
# the key (a cast) asks the data instead.
RELIES_ON_DECLARED_KEY = "a query the planner may answer from a declared key: "


def declared_keys(create_statements: list[str]) -> dict[str, list[tuple[str, ...]]]:
    """Each table's declared primary keys, as column tuples, from its (rendered) CREATE
    statements: a column's own 'primary key' or a 'primary key (…)' of the table."""
    keys: dict[str, list[tuple[str, ...]]] = {}
    for statement in create_statements:
        named = re.search(r"create\s+(?:unlogged\s+|temp\s+)?table\s+(?:if\s+not\s+exists\s+)?(\w+)", statement, re.I)
        if not named:
            continue
        found = [tuple(c.strip() for c in cols.split(","))
                 for cols in re.findall(r"primary\s+key\s*\(([^)]*)\)", statement, re.I)]
        found += [(column,) for column in re.findall(r"^\s*(\w+)\s+[^\n]*?\bprimary\s+key\b(?!\s*\()", statement,
                                                     re.I | re.M)]
        keys[named[1].lower()] = found
    return keys


def _tables_by_alias(select: exp.Select) -> dict[str, str]:
    """The tables of one SELECT's FROM and JOINs, by alias (or name)."""
    tables = {}
    for table in [*select.find_all(exp.Table)]:
        if table.find_ancestor(exp.Select) is select:
            tables[(table.alias_or_name or table.name).lower()] = table.name.lower()
    return tables


def _key_column(column: exp.Expression, tables: dict[str, str],
                keys: dict[str, list[tuple[str, ...]]]) -> tuple[str, str] | None:
    """(table, column) when column is a bare column of a single-column declared key."""
    if not isinstance(column, exp.Column):
        return None
    owners = [tables[column.table.lower()]] if column.table else list(tables.values())
    for table in owners:
        if (column.name.lower(),) in keys.get(table, []):
            return table, column.name.lower()
    return None


def declared_key_reliance(sql: str, keys: dict[str, list[tuple[str, ...]]]) -> list[str]:
    """Where sql may be answered from a declared key instead of the data (see above)."""
    found = []
    tree = sqlglot.parse_one(sql, read="postgres")
    for select in tree.find_all(exp.Select):
        tables = _tables_by_alias(select)
        group = select.args.get("group")
        if group is not None and all(isinstance(e, exp.Column) for e in group.expressions):
            grouped = tuple(e.name.lower() for e in group.expressions)
            for table in tables.values():
                if grouped in keys.get(table, []):
                    found.append(f"{RELIES_ON_DECLARED_KEY}GROUP BY the declared key {table} ({', '.join(grouped)})")
        if select.args.get("distinct") is not None:
            for expression in select.expressions:
                key = _key_column(expression.unalias(), tables, keys)
                if key:
                    found.append(f"{RELIES_ON_DECLARED_KEY}SELECT DISTINCT of the declared key {key[0]}.{key[1]}")
        where = select.args.get("where")
        nulls = [n.this for n in (where.find_all(exp.Is) if where else []) if isinstance(n.expression, exp.Null)]
        for join in select.args.get("joins") or []:
            if join.side.lower() != "left" or join.args.get("on") is None:
                continue
            for equal in join.args["on"].find_all(exp.EQ):
                for side in (equal.this, equal.expression):
                    key = _key_column(side, tables, keys)
                    if key and any(isinstance(n, exp.Column) and n.sql() == side.sql() for n in nulls):
                        found.append(f"{RELIES_ON_DECLARED_KEY}an anti-join on the declared key {key[0]}.{key[1]}")
    return sorted(set(found))


# AWS, Redshift Database Developer Guide, "Performing a merge operation by replacing existing
# rows" / "Creating a temporary staging table": when the join is not on the distribution key,
# "add a redundant join predicate on the distribution key columns to enable a collocated
# join"; and "Choose the best distribution style": a join of tables distributed on the same
# key is collocated (DS_DIST_NONE) only when the join condition includes that key. So every
# join between two tables distributed on user_id, an IN (subquery) semi-join among them, must
# equate their user_id columns. A subquery of the logged-out rows alone (user_id is null), which
# equality can never match, is the exception: their few rows all lie on one slice.
MISSING_DISTKEY_PREDICATE = "a join of tables distributed on {key} without {key} = {key} (data would move): "
_DISTKEY = re.compile(r"create\s+(?:temp\s+)?table\s+(?:if\s+not\s+exists\s+)?(\w+)[^;]*?distkey\s*\((\w+)\)",
                      re.I | re.S)


def distributed_on(statements: list[str], key: str = "user_id") -> set[str]:
    """The tables the (rendered Redshift) CREATE statements distribute on key."""
    return {table.lower() for statement in statements for table, column in _DISTKEY.findall(statement)
            if column.lower() == key}


def _source_tables(query: exp.Expression) -> list[str]:
    """The tables a query reads directly (FROM, JOIN, USING, and DELETE's target), not those
    of the queries nested in it; a derived table counts as the tables it reads."""
    found = []
    for table in query.find_all(exp.Table):
        owner = table.find_ancestor(exp.Select, exp.Delete, exp.Update)
        if owner is query:
            found.append(table.name.lower())
    for subquery in query.find_all(exp.Subquery):
        if (isinstance(subquery.parent, (exp.From, exp.Join)) and isinstance(subquery.this, exp.Select)
                and subquery.find_ancestor(exp.Select, exp.Delete, exp.Update) is query):
            found += _source_tables(subquery.this)
    return found


def _equates_key(condition: exp.Expression | None, key: str) -> bool:
    return condition is not None and any(
        isinstance(eq.this, exp.Column) and isinstance(eq.expression, exp.Column)
        and eq.this.name.lower() == key and eq.expression.name.lower() == key
        and eq.this.table != eq.expression.table
        for eq in condition.find_all(exp.EQ))


def _only_null_keys(query: exp.Expression, key: str) -> bool:
    where = query.args.get("where")
    return where is not None and any(isinstance(node.this, exp.Column) and node.this.name.lower() == key
                                     and isinstance(node.expression, exp.Null)
                                     for node in where.find_all(exp.Is))


def missing_distkey_predicates(sql: str, distributed: set[str], key: str = "user_id") -> list[str]:
    """The joins and semi-joins in sql between two tables of distributed that do not equate key."""
    found = []
    tree = sqlglot.parse_one(sql, read="postgres")
    for query in [tree, *tree.find_all(exp.Select)]:
        if not isinstance(query, (exp.Select, exp.Delete, exp.Update)):
            continue
        joins = query.args.get("joins") or []
        outer = [t for t in _source_tables(query) if t in distributed]
        # Explicit joins (and DELETE … USING): the ON, or the WHERE, must equate key.
        for join in joins:
            joined = [t for t in _source_tables_of(join.this) if t in distributed]
            if joined and [t for t in outer if t not in joined] and not _equates_key(join.args.get("on"), key):
                found.append(f"{MISSING_DISTKEY_PREDICATE.format(key=key)}{', '.join(sorted(set(outer)))}")
        if isinstance(query, exp.Delete) and query.args.get("using"):
            used = [t.name.lower() for t in query.args["using"] if isinstance(t, exp.Table)]
            if outer and any(t in distributed for t in used) and not _equates_key(query.args.get("where"), key):
                found.append(f"{MISSING_DISTKEY_PREDICATE.format(key=key)}{', '.join(sorted(set(outer)))}")
        # Semi- and anti-joins: x IN (SELECT … FROM another distributed table).
        if not outer:
            continue
        for member in query.find_all(exp.In):
            inner = member.args.get("query")
            if inner is None or member.find_ancestor(exp.Select, exp.Delete, exp.Update) is not query:
                continue
            inner = inner.this if isinstance(inner, exp.Subquery) else inner
            if not isinstance(inner, exp.Select):
                continue
            if any(t in distributed for t in _source_tables(inner)) and not _only_null_keys(inner, key):
                found.append(f"{MISSING_DISTKEY_PREDICATE.format(key=key)}{member.sql()[:80]}")
    return sorted(set(found))


def _source_tables_of(node: exp.Expression) -> list[str]:
    if isinstance(node, exp.Table):
        return [node.name.lower()]
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select):
        return _source_tables(node.this)
    return []
