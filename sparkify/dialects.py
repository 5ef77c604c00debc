"""What differs between PostgreSQL and Redshift, in one place, as data.

One Dialect per engine holds everything the toolkit does differently there: the physical
design its CREATE statements are filled with (render), the statements only it runs or runs
in its own words (roles, the load lock's bounds and holders, BRIN indexes), and flags for
what the engine does by itself (Redshift skips an ANALYZE that would change
little; it COPYs from S3). The warehouse chooses its dialect once,
when it connects (warehouse.connect; the dry run's recorder takes the same one), and the
pipeline only ever asks it: it never asks which engine it is on.

sql_queries keeps what is the same on both engines: the statements as templates, and the
fragments they share (FRAGMENTS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sql_queries as q

# PostgreSQL: give up on a table lock after this long instead of waiting forever behind
# another session's open transaction; Redshift: the bound of the load lock's wait.
LOCK_TIMEOUT_S = 60

# --- physical design ---------------------------------------------------------------------
# Redshift: small dimensions are copied to every node (DISTSTYLE ALL) so joins with the
# fact never move data; the fact is distributed on user_id (sessions and per-user analysis
# stay on one slice) and sorted on start_time (every report filters by time).
# PostgreSQL: staging is UNLOGGED (rebuilt each batch, so no WAL is written for it).
# {<table>_keys}: the table's INFORMATIONAL_KEYS, on Redshift only.
# {batch_by_user}: the batch's temporary tables of events, plays and users, distributed like
# the facts they are joined to. CREATE TABLE AS does not inherit a distribution key, and
# AWS's merge advice is to give the staging table the target's distribution key (Redshift
# Database Developer Guide: CREATE TABLE AS, "CTAS usage notes"; "Creating a temporary
# staging table"); CTAS takes DISTSTYLE and DISTKEY before AS ("CREATE TABLE AS", syntax).
POSTGRES_PHYSICAL = {
    "staging_table": "create unlogged table",
    "staging": "",
    "fact": "",
    "dimension": "",
    "time_dimension": "",
    "rollup": "",
    "batch_by_user": "",
    **{f"{table}_keys": "" for table in q.INFORMATIONAL_KEYS},
}
REDSHIFT_PHYSICAL = {
    "staging_table": "create table",
    "staging": "diststyle even",
    "fact": "diststyle key distkey (user_id) compound sortkey (start_time)",
    "dimension": "diststyle all",
    "time_dimension": "diststyle all sortkey (start_time)",
    "rollup": "diststyle even",
    "batch_by_user": " diststyle key distkey (user_id)",
    **{f"{table}_keys": "".join(f",\n    {key}" for key in keys) for table, keys in q.INFORMATIONAL_KEYS.items()},
}


@dataclass(frozen=True)
class Dialect:
    """One engine's fills, engine-only statements and flags.

    Statements that take the caller's values use psycopg2's named parameters, so one call
    serves every engine: a dialect's statement reads the names it needs and ignores the rest.
    """

    name: str
    physical: dict[str, str]
    # Whether a role exists (%s: its name); whether the connected user may create roles;
    # what an administrator runs to give an analyst a login with the role ({role}).
    role_exists: str
    may_create_roles: str
    analyst_login: str
    # The analysts' grants ({role}, {schema}: the caller's).
    role_grants: list[str]
    # The load lock, on etl_lock (a table of its own, read by nobody), and around it what
    # bounds the wait and what lifts the bound again.
    load_lock: str
    lock_wait_bound: list[str]
    lock_wait_unbound: list[str]
    # The sessions holding the load lock: (pid, client name, user, state, since, last
    # statement), any of the last five NULL where the engine does not say it.
    load_lock_holders: str
    # Ends an earlier attempt's session (%(pid)s; %(client)s: this process's client name).
    terminate_own_session: str
    # create_tables: indexes after the tables; a batch: steps after its inserts.
    create_index_queries: list[str] = field(default_factory=list)
    brin_new_blocks_queries: list[q.Step] = field(default_factory=list)
    # libpq options for each new connection, and statements each new session runs
    # (server version from which the engine has the setting, statement).
    connect_options: str = ""
    session_setup: tuple[tuple[int, str], ...] = ()
    # The engine skips an ANALYZE of a table whose rows changed little, itself.
    skips_needless_analyze: bool = False
    # An ANALYZE names one table at most (else one statement analyzes them all).
    analyzes_one_table_per_statement: bool = False
    # Staging is the engine's own COPY from S3 (else the toolkit's COPY … FROM STDIN).
    copies_from_s3: bool = False
    # The engine logs only some of the records whose invalid characters it replaced.
    caps_replacement_log: bool = False
    # The session's server process comes with the connection (else: ask the server).
    pid_from_handshake: bool = True

    def analyze(self, tables: list[str]) -> list[str]:
        """The statements that ANALYZE tables (none for none: a bare ANALYZE is every table's)."""
        if self.analyzes_one_table_per_statement or not tables:
            return [q.analyze.format(tables=table) for table in tables]
        return [q.analyze.format(tables=", ".join(tables))]

    def fills(self) -> dict[str, str]:
        return {**self.physical, **q.FRAGMENTS}

    def render(self, statement: str, **values: object) -> str:
        """The statement as this engine receives it: its placeholders filled with the
        physical design, the shared fragments, and values, the caller's own (table, role, …)."""
        fills = self.fills()
        if clash := fills.keys() & values.keys():
            raise ValueError(f"{sorted(clash)}: names of the dialect's fills, not the caller's to fill")
        return statement.format(**fills, **values)


_ANALYST_READS = ", ".join(q.ANALYST_TABLES)

# PostgreSQL has no sort keys: a BRIN index on start_time is its zone map, so a batch's
# time window reads only the blocks of that window (rows arrive in time order, a day's
# batch after the day before). It costs nothing measurable to maintain. Redshift gets the
# same from the sort keys above. BRIN indexes a range of blocks only when asked
# (brin_summarize_new_values, or VACUUM), and a range it has not indexed always "may
# match": a batch's new blocks would be read by every later window until autovacuum came
# by. The batch has them indexed itself, after its inserts.
POSTGRES = Dialect(
    name="postgres",
    physical=POSTGRES_PHYSICAL,
    role_exists="select count(*) from pg_roles where rolname = %s",
    may_create_roles="select count(*) from pg_roles where rolname = current_user and (rolcreaterole or rolsuper)",
    # One CREATE ROLE … IN ROLE.
    analyst_login="create role ana login password '…' in role {role}",
    role_grants=["grant usage on schema {schema} to {role}",
                 f"grant select on {_ANALYST_READS} to {{role}}"],
    # EXCLUSIVE conflicts with itself (one load at a time) and not with ACCESS SHARE, so a
    # session that has read etl_lock, even the owner's idle transaction, holds up no load.
    load_lock="lock table etl_lock in exclusive mode",
    # PostgreSQL bounds every statement's lock waits with lock_timeout (connect_options).
    lock_wait_bound=[],
    lock_wait_unbound=[],
    load_lock_holders="""
select a.pid, a.application_name, a.usename, a.state, coalesce(a.state_change, a.backend_start), left(a.query, 200)
from pg_locks l
join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'relation' and l.relation = 'etl_lock'::regclass and l.granted
  and l.mode in ('ExclusiveLock', 'AccessExclusiveLock') and l.pid <> pg_backend_pid()
order by a.pid
""",
    # Only a session that still bears this process's name: a pid the server has given to
    # another session since is left alone.
    terminate_own_session=("select pg_terminate_backend(pid) from pg_stat_activity "
                           "where pid = %(pid)s and application_name = %(client)s"),
    create_index_queries=[f"create index if not exists {table}_start_time on {table} using brin (start_time)"
                          for table in q.TIME_ORDERED_TABLES],
    brin_new_blocks_queries=[q.Step(f"{table}_start_time: summarize new blocks",
                                    f"select brin_summarize_new_values('{table}_start_time')")
                             for table in q.TIME_ORDERED_TABLES],
    connect_options=f"-c lock_timeout={LOCK_TIMEOUT_S * 1000}",
    # Stop a query whose client died (SIGKILL) at once instead of when it finishes, so the
    # locks it holds do not make the next run wait (PostgreSQL 14 and later).
    session_setup=((140000, "set client_connection_check_interval = 1000"),),
)

# Redshift grants to a role with TO ROLE (AWS: GRANT, "ROLE role_name") and lists roles in
# svv_roles (AWS: SVV_ROLES). Its LOCK waits for ever: statement_timeout (milliseconds)
# bounds it (AWS: statement_timeout).
REDSHIFT = Dialect(
    name="redshift",
    physical=REDSHIFT_PHYSICAL,
    # The RBAC views show a non-superuser only the roles it owns or can reach (AWS: SVV_ROLES),
    # so "absent" there may be a role an administrator made: the grants are tried all the
    # same (schema.grant_analyst_role).
    role_exists="select count(*) from svv_roles where role_name = %s",
    # CREATE ROLE needs a superuser or the CREATE ROLE system privilege (AWS: CREATE ROLE,
    # "Required privileges"): pg_user.usesuper, or a CREATE ROLE row in
    # SVV_SYSTEM_PRIVILEGES, which shows a non-superuser the privileges of itself and of the
    # roles it has (AWS: SVV_SYSTEM_PRIVILEGES).
    may_create_roles="""
select (select count(*) from pg_user where usename = current_user and usesuper)
     + (select count(*) from svv_system_privileges where system_privilege = 'CREATE ROLE')
""",
    # AWS: CREATE USER, then GRANT ROLE role TO user.
    analyst_login="create user ana password '…'; grant role {role} to ana",
    role_grants=["grant usage on schema {schema} to role {role}",
                 f"grant select on {_ANALYST_READS} to role {{role}}"],
    # LOCK has no modes on Redshift: it is ACCESS EXCLUSIVE (AWS: LOCK), and etl_lock is
    # granted to no analyst, so only the owner's own reads of it could hold a load up.
    load_lock="lock table etl_lock",
    lock_wait_bound=[f"set statement_timeout to {LOCK_TIMEOUT_S * 1000}"],
    lock_wait_unbound=["reset statement_timeout"],
    # SVV_TRANSACTIONS (pid, relation, granted, txn_owner, txn_start) shows every user the
    # transactions of its own sessions, on provisioned clusters and Serverless (AWS:
    # SVV_TRANSACTIONS), where STV_LOCKS is provisioned-only and superusers' only. The
    # client's name (warehouse.client_name) is in SYS_CONNECTION_LOG, which only superusers
    # see (AWS: SYS_CONNECTION_LOG): a PID is not unique over time, so the name taken is
    # that of the newest session start with this PID before the holder's transaction began;
    # for other users it is NULL, and a session without a name is never ended
    # (loadlock.end_dead_holders), only named.
    load_lock_holders="""
select pid, application_name, txn_owner, 'holding it' as state, txn_start, cast(null as varchar)
from (
    select t.pid, trim(c.application_name) as application_name, trim(t.txn_owner) as txn_owner, t.txn_start,
           row_number() over (partition by t.pid order by c.record_time desc) as newest
    from svv_transactions t
    left join sys_connection_log c
      on c.session_id = t.pid and c.record_time <= t.txn_start and trim(c.event) = 'initiating session'
    where t.lockable_object_type = 'relation' and t.granted and t.pid <> pg_backend_pid()
      and t.relation = (select oid from pg_class where relname = 'etl_lock'
                        and relnamespace = (select oid from pg_namespace where nspname = current_schema()))
) holders
where newest = 1
order by pid
""",
    # An earlier attempt's session, by the pid this process recorded for it, and only while a
    # transaction of this user holds something (SVV_TRANSACTIONS): a session that holds
    # nothing is no obstacle, and is left alone.
    terminate_own_session="""
select pg_terminate_backend(pid)
from (select distinct pid from svv_transactions where pid = %(pid)s and trim(txn_owner) = current_user) ours
""",
    # ANALYZE skips a table whose rows changed by less than analyze_threshold_percent.
    skips_needless_analyze=True,
    # AWS, Redshift Database Developer Guide, "ANALYZE": "You can't specify more than one
    # table_name with a single ANALYZE table_name statement."
    analyzes_one_table_per_statement=True,
    copies_from_s3=True,
    # SYS_COPY_REPLACEMENTS logs the first 100 rows per slice of each COPY.
    caps_replacement_log=True,
    pid_from_handshake=False,
)

DIALECTS = {dialect.name: dialect for dialect in (POSTGRES, REDSHIFT)}


def of(name: str) -> Dialect:
    """The dialect config.dialect names."""
    return DIALECTS[name]
