"""The analysts' read-only login on the embedded warehouse, made once and used by default.

`tasks.py serve` and `tasks.py psql` make it when missing: a login in the analysts' role
([CLUSTER] ANALYST_ROLE), so it reads what that role is granted (the star schema, its views
and summaries) and nothing else, in read-only transactions, with no right to create even
temporary tables. Its password is generated once into a file beside the data, git-ignored,
readable by its owner alone, in libpq's password-file format: a URL naming the file
(`?passfile=…`) works as printed in psql, SQLAlchemy and anything else on libpq, and the
password itself never appears in a URL, a banner or a log.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from pathlib import Path

import psycopg2
from psycopg2 import sql as pgsql

from . import embedded
from .config import Config
from .warehouse import WarehouseError

LOGIN = "analyst"


def password_file(config: Config) -> Path:
    return config.path.parent / ".pgdata.analyst.pgpass"


def password(config: Config) -> str:
    """The login's password, generated (and its file written whole) the first time."""
    path = password_file(config)
    try:
        line = path.read_text(encoding="utf-8").strip()
        # host:port:database:user:password; the generated password has no ':' or '\'.
        if line.count(":") >= 4 and line.rsplit(":", 1)[1]:
            return line.rsplit(":", 1)[1]
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(24)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"*:*:*:{LOGIN}:{value}\n")
    os.replace(temporary, path)
    return value


def url(config: Config, driver: str = "postgresql") -> str:
    """The read-only login's URL over loopback TCP, naming its password file."""
    passfile = urllib.parse.quote(str(password_file(config)))
    return (f"{driver}://{LOGIN}@{embedded.LOOPBACK}:{config.db_port}/{urllib.parse.quote(config.db_name)}"
            f"?passfile={passfile}")


def ensure(config: Config, params: dict) -> str | None:
    """Makes the analysts' role and the read-only login in it when missing, and sets the
    login's password from its file; returns the login's name (None: no analysts' role is
    configured). params: the embedded server's superuser parameters."""
    role = config.analyst_role
    if not role:
        return None
    secret = password(config)
    try:
        conn = psycopg2.connect(dbname=config.db_name, **params)
    except psycopg2.Error as exc:
        raise WarehouseError(f"making the read-only login: {_first_line(exc)}") from None
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for name, options in ((role, "nologin"), (LOGIN, "login")):
                cur.execute("select 1 from pg_roles where rolname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(pgsql.SQL("create role {} " + options).format(pgsql.Identifier(name)))
            login, database = pgsql.Identifier(LOGIN), pgsql.Identifier(config.db_name)
            cur.execute(pgsql.SQL("grant {} to {}").format(pgsql.Identifier(role), login))
            cur.execute(pgsql.SQL("alter role {} login nosuperuser nocreatedb nocreaterole password %s").format(login),
                        (secret,))
            cur.execute(pgsql.SQL("alter role {} set default_transaction_read_only = on").format(login))
            # PUBLIC may create temporary tables in any database by default; the owner keeps
            # the right (its loads use them), the analysts' login has none to create anything.
            cur.execute(pgsql.SQL("revoke create, temporary on database {} from public").format(database))
            cur.execute(pgsql.SQL("revoke create on schema public from public"))
    except psycopg2.Error as exc:
        raise WarehouseError(config.redact(f"making the read-only login {LOGIN}: {_first_line(exc)}")) from None
    finally:
        conn.close()
    return LOGIN


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
