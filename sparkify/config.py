"""Reading and checking dwh.cfg.

The file keeps the course template's sections and keys so that a config written for the
course works unchanged; everything the toolkit adds is optional and has a default.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "dwh.cfg"

ENGINES = ("embedded", "postgres", "redshift")
REDSHIFT_HOST_SUFFIXES = (".redshift.amazonaws.com", ".redshift-serverless.amazonaws.com")
MAXERROR_LIMIT = 100_000
# The embedded warehouse's port for `tasks.py serve`, chosen without editing the tracked dwh.cfg.
PORT_ENV = "SPARKIFY_PORT"  # Redshift's COPY (AWS: "Data load operations", MAXERROR)


class ConfigError(Exception):
    """A problem the user fixes in dwh.cfg; the message names the key and the fix."""


@dataclass(frozen=True)
class Source:
    """An [S3] value: either an s3:// URL or a local path resolved against the config file."""

    url: str

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    @property
    def path(self) -> Path:
        if self.is_s3:
            raise ValueError(f"{self.url} is not a local path")
        return Path(self.url)

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class Config:
    path: Path
    engine: str
    host: str
    db_name: str
    db_user: str
    db_password: str = field(repr=False)
    db_port: int
    iam_role_arn: str = field(repr=False)
    log_data: Source
    log_jsonpath: Source
    song_data: Source
    max_errors: int
    s3_region: str = "us-west-2"
    s3_endpoint_url: str = ""
    manifest_prefix: str = ""
    truncate_columns: bool = False
    accept_invalid_chars: bool = True
    analyst_role: str = "sparkify_analyst"
    schema_contract: str = "report"
    freshness_warn_after: timedelta | None = None
    freshness_error_after: timedelta | None = None

    @property
    def dialect(self) -> str:
        """SQL dialect: the embedded server and any PostgreSQL speak 'postgres'."""
        return "redshift" if self.engine == "redshift" else "postgres"

    @property
    def embedded_dir(self) -> Path:
        """Where the embedded server keeps its data: beside the config file, git-ignored."""
        return self.path.parent / ".pgdata"

    @property
    def embedded_user(self) -> str:
        """Who the embedded warehouse's scripts and clients are: DB_USER, or the server's
        superuser when DB_USER is empty."""
        return self.db_user or "postgres"

    @property
    def embedded_password_file(self) -> Path:
        """Where the embedded warehouse's generated password is kept when DB_PASSWORD is empty."""
        return self.path.parent / ".pgdata.password"

    def describe_target(self) -> str:
        """The target as a URL with the password masked, safe to print."""
        if self.engine == "embedded":
            return f"embedded PostgreSQL ({self.embedded_dir.name}/, database {self.db_name})"
        secret = ":***" if self.db_password else ""
        return f"{self.engine}://{self.db_user}{secret}@{self.host}:{self.db_port}/{self.db_name}"

    def secrets(self) -> list[str]:
        return [s for s in (self.db_password, self.iam_role_arn) if s]

    def redact(self, text: str) -> str:
        """Masks every secret of this config in text bound for a terminal, log or report."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


def _value(parser: configparser.ConfigParser, section: str, key: str, path: Path,
           required: bool = True, default: str = "") -> str:
    if not parser.has_section(section):
        if not required:
            return default
        raise ConfigError(f"{path}: section [{section}] is missing; add it as in the shipped dwh.cfg")
    if not parser.has_option(section, key):
        if not required:
            return default
        raise ConfigError(f"{path}: key {key} is missing in [{section}]; add '{key} = ...' as in the shipped dwh.cfg")
    raw = parser.get(section, key).strip()
    # The course template quotes its values ('s3://udacity-dend/log_data'); accept both.
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        raw = raw[1:-1].strip()
    return raw


def _source(parser: configparser.ConfigParser, key: str, path: Path) -> Source:
    raw = _value(parser, "S3", key, path)
    if not raw:
        raise ConfigError(f"{path}: [S3] {key} is empty; set it to an s3:// URL or a local path")
    if raw.startswith("s3://"):
        if len(raw) <= len("s3://") or raw[len("s3://")] == "/":
            raise ConfigError(f"{path}: [S3] {key} = {raw} has no bucket; write s3://BUCKET/PREFIX")
        return Source(raw)
    if "://" in raw:
        raise ConfigError(f"{path}: [S3] {key} = {raw} is neither s3:// nor a local path")
    local = Path(os.path.expanduser(raw))
    if not local.is_absolute():
        local = path.parent / local
    local = local.resolve()
    if not local.exists():
        raise ConfigError(f"{path}: [S3] {key} = {raw} does not exist ({local}); fix the path")
    if not os.access(local, os.R_OK):
        raise ConfigError(f"{path}: [S3] {key} = {raw} is not readable; fix its permissions")
    return Source(str(local))


def _engine(parser: configparser.ConfigParser, host: str, path: Path) -> str:
    explicit = _value(parser, "CLUSTER", "ENGINE", path, required=False).lower()
    if explicit:
        if explicit not in ENGINES:
            raise ConfigError(f"{path}: [CLUSTER] ENGINE = {explicit} is unknown; use one of {', '.join(ENGINES)}")
        if explicit == "embedded" and host:
            raise ConfigError(f"{path}: [CLUSTER] ENGINE = embedded needs an empty HOST; clear HOST or change ENGINE")
        if explicit != "embedded" and not host:
            raise ConfigError(f"{path}: [CLUSTER] ENGINE = {explicit} needs HOST; set HOST")
        return explicit
    if not host:
        return "embedded"
    if host.lower().endswith(REDSHIFT_HOST_SUFFIXES):
        return "redshift"
    return "postgres"


def _bool(parser: configparser.ConfigParser, section: str, key: str, path: Path, default: bool) -> bool:
    raw = _value(parser, section, key, path, required=False).lower()
    if raw == "":
        return default
    if raw in ("true", "yes", "on", "1"):
        return True
    if raw in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"{path}: [{section}] {key} = {raw} is not true or false; write true or false")


def _int(parser: configparser.ConfigParser, section: str, key: str, path: Path,
         required: bool, default: int) -> int:
    raw = _value(parser, section, key, path, required=required, default=str(default))
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{path}: [{section}] {key} = {raw} is not a whole number; write e.g. {default}") from None
    if value < 0:
        raise ConfigError(f"{path}: [{section}] {key} = {raw} is negative; write 0 or more")
    return value


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Reads, checks and resolves a config file; raises ConfigError with a one-line fix."""
    cfg_path = Path(path) if path is not None else DEFAULT_CONFIG
    cfg_path = cfg_path.expanduser().resolve()
    if not cfg_path.is_file():
        raise ConfigError(f"config file {cfg_path} not found; pass --config PATH or copy the shipped dwh.cfg")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte-order mark.
        with open(cfg_path, encoding="utf-8-sig") as handle:
            parser.read_file(handle)
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{cfg_path}: cannot be read as an INI file ({first_line}); fix its syntax") from None

    host = _value(parser, "CLUSTER", "HOST", cfg_path)
    engine = _engine(parser, host, cfg_path)
    db_name = _value(parser, "CLUSTER", "DB_NAME", cfg_path)
    if not db_name:
        raise ConfigError(f"{cfg_path}: [CLUSTER] DB_NAME is empty; name the database, e.g. sparkify")
    db_user = _value(parser, "CLUSTER", "DB_USER", cfg_path)
    db_password = _value(parser, "CLUSTER", "DB_PASSWORD", cfg_path)
    if engine != "embedded" and not db_user:
        raise ConfigError(f"{cfg_path}: [CLUSTER] DB_USER is empty; set the database user for {host}")
    default_port = 5439 if engine == "redshift" else 5432
    raw_port = _value(parser, "CLUSTER", "DB_PORT", cfg_path)
    db_port = port_value(raw_port, f"{cfg_path}: [CLUSTER] DB_PORT") if raw_port else default_port
    if engine == "embedded" and os.environ.get(PORT_ENV, "").strip():
        db_port = port_value(os.environ[PORT_ENV], f"the environment variable {PORT_ENV}")
    iam_role_arn = _value(parser, "IAM_ROLE", "ARN", cfg_path)
    if engine == "redshift" and not iam_role_arn:
        raise ConfigError(f"{cfg_path}: [IAM_ROLE] ARN is empty; Redshift's COPY needs a role that can read the bucket")

    config = Config(
        path=cfg_path,
        engine=engine,
        host=host,
        db_name=db_name,
        db_user=db_user,
        db_password=db_password,
        db_port=db_port,
        iam_role_arn=iam_role_arn,
        log_data=_source(parser, "LOG_DATA", cfg_path),
        log_jsonpath=_source(parser, "LOG_JSONPATH", cfg_path),
        song_data=_source(parser, "SONG_DATA", cfg_path),
        max_errors=_max_errors(parser, cfg_path),
        s3_region=_value(parser, "S3", "REGION", cfg_path, required=False) or "us-west-2",
        s3_endpoint_url=_endpoint(parser, cfg_path),
        manifest_prefix=_manifest_prefix(parser, cfg_path),
        truncate_columns=_bool(parser, "ETL", "TRUNCATECOLUMNS", cfg_path, default=False),
        accept_invalid_chars=_bool(parser, "ETL", "ACCEPTINVCHARS", cfg_path, default=True),
        analyst_role=_role(parser, cfg_path),
        schema_contract=_schema_contract(parser, cfg_path),
        freshness_warn_after=_duration(parser, "FRESHNESS_WARN_AFTER", cfg_path),
        freshness_error_after=_duration(parser, "FRESHNESS_ERROR_AFTER", cfg_path),
    )
    if (config.freshness_warn_after and config.freshness_error_after
            and config.freshness_warn_after > config.freshness_error_after):
        raise ConfigError(f"{cfg_path}: [ETL] FRESHNESS_WARN_AFTER is longer than FRESHNESS_ERROR_AFTER; "
                          "warn first: make it shorter or equal")
    if engine == "redshift":
        for key in ("LOG_DATA", "LOG_JSONPATH", "SONG_DATA"):
            if not getattr(config, key.lower()).is_s3:
                raise ConfigError(f"{cfg_path}: [S3] {key} is a local path, but Redshift's COPY reads only "
                                  "S3; set it to an s3:// URL")
    return config


# dlt's schema contract modes that apply to a whole batch: evolve (here: report, record and
# load the change) and freeze (fail the batch). evolve is taken as report.
SCHEMA_CONTRACTS = {"report": "report", "evolve": "report", "freeze": "freeze"}


def _schema_contract(parser: configparser.ConfigParser, path: Path) -> str:
    raw = _value(parser, "ETL", "SCHEMA_CONTRACT", path, required=False).lower()
    if raw == "":
        return "report"
    if raw not in SCHEMA_CONTRACTS:
        raise ConfigError(f"{path}: [ETL] SCHEMA_CONTRACT = {raw} is not a contract; write report (record "
                          "schema changes and load) or freeze (fail the batch on any change)")
    return SCHEMA_CONTRACTS[raw]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _duration(parser: configparser.ConfigParser, key: str, path: Path) -> timedelta | None:
    """[ETL] FRESHNESS_*: a duration such as 90m, 36h or 2d; empty: no threshold."""
    raw = _value(parser, "ETL", key, path, required=False).lower()
    if raw == "":
        return None
    match = _DURATION.fullmatch(raw)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{path}: [ETL] {key} = {raw} is not a duration; write e.g. 90m, 36h or 2d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def port_value(raw: str, where: str) -> int:
    """A TCP port given as text (an environment variable, --port), checked."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{where} = {raw} is not a port number; use a whole number from 1 to 65535, "
                          "e.g. 5433") from None
    return check_port(value, where)


def check_port(value: int, where: str) -> int:
    """A TCP port is 1 to 65535; 0 would let the system pick one that nobody could be told."""
    if not 1 <= value <= 65535:
        raise ConfigError(f"{where} = {value} is not a TCP port; use a number from 1 to 65535, e.g. 5433")
    return value


def _max_errors(parser: configparser.ConfigParser, path: Path) -> int:
    """[ETL] MAXERROR: a load fails at this many rejected records. Redshift's COPY takes at
    most 100,000 (AWS: "Data load operations", MAXERROR), and so does the local COPY."""
    value = _int(parser, "ETL", "MAXERROR", path, required=False, default=100)
    if value > MAXERROR_LIMIT:
        raise ConfigError(f"{path}: [ETL] MAXERROR = {value} is over Redshift's limit of {MAXERROR_LIMIT:,}; "
                          f"write {MAXERROR_LIMIT} or less")
    return value


def _role(parser: configparser.ConfigParser, path: Path) -> str:
    """[CLUSTER] ANALYST_ROLE: the read-only role create_tables.py grants the star schema to
    (default sparkify_analyst; empty: none). A plain lower-case name, as it goes into SQL."""
    if not parser.has_option("CLUSTER", "ANALYST_ROLE"):
        return "sparkify_analyst"
    raw = _value(parser, "CLUSTER", "ANALYST_ROLE", path, required=False)
    if raw and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", raw):
        raise ConfigError(f"{path}: [CLUSTER] ANALYST_ROLE = {raw} is not a plain name; use lower-case letters, "
                          "digits and _, e.g. sparkify_analyst (or leave it empty for no role)")
    return raw


def _endpoint(parser: configparser.ConfigParser, path: Path) -> str:
    raw = _value(parser, "S3", "ENDPOINT_URL", path, required=False)
    if raw and not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{path}: [S3] ENDPOINT_URL = {raw} must start with http:// or https://")
    return raw


def _manifest_prefix(parser: configparser.ConfigParser, path: Path) -> str:
    raw = _value(parser, "S3", "MANIFEST_PREFIX", path, required=False)
    if raw and not raw.startswith("s3://"):
        raise ConfigError(f"{path}: [S3] MANIFEST_PREFIX = {raw} must be an s3:// prefix Redshift can read")
    return raw.rstrip("/")
