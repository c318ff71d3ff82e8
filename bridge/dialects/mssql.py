"""SQL Server (2017 and later): set-based capture triggers over `inserted`/`deleted`, a
dispatcher that polls, echo suppression through the session context key `bridge.applying`.

Connections go through pyodbc and Microsoft's ODBC Driver 18 for SQL Server
(`mssql+pyodbc://user:password@host:1433/dbname?driver=ODBC+Driver+18+for+SQL+Server
&TrustServerCertificate=yes`), wrapped in bridge/dialects/dbapi.py; pyodbc is imported
only when a connection is made, so everything else works without it. Each bridge session
starts from fixed settings whatever the server's or database's defaults (`SESSION`): READ
COMMITTED (a statement after a row lock sees what committed before the lock was granted;
the reads that must see the latest committed row whatever READ_COMMITTED_SNAPSHOT says lock
it: UPDLOCK, HOLDLOCK), errors instead of silent truncation or overflow (ANSI_WARNINGS,
ARITHABORT), ISO dates, and XACT_ABORT off so that a refused row rolls back to its
savepoint only. SQL Server has no session time zone: every time bridge stores is
SYSUTCDATETIME(), in DATETIME2(6) columns, read back as UTC.

What the capture sends for each type (bridge/codec.py's exact forms), and how apply reads
it back (sql_templates/mssql/_values.sql.j2, _input.sql.j2):

- TINYINT, SMALLINT, INT, BIGINT -> int: a JSON number.
- BIT -> bool: JSON true/false (FOR JSON's own form of a bit).
- DECIMAL, NUMERIC (spelt decimal) -> decimal: the text of the value at the column's
  scale ("12.50"); MONEY, SMALLMONEY: with their 4 decimal places (CONVERT style 2). A
  value with more decimal places than the column's scale is refused on apply, not rounded.
- FLOAT, REAL -> float: 17 significant digits (CONVERT style 3, lossless: every distinct
  float has its own text). PostgreSQL writes the shortest text that reads back exactly
  ("0.1" where SQL Server writes 17 digits): the values are equal, the texts are not, so a
  float column's rows differ in `bridge verify` between the two dialects, and a float in a
  primary key does not find its row version across them.
- DATETIME2, DATETIME, SMALLDATETIME -> timestamp: ISO-8601, six fractional digits, no
  zone ("2024-05-01T10:11:12.123456"); a DATETIME2(7)'s seventh digit is rounded.
- DATETIMEOFFSET -> timestamptz: converted to UTC (SWITCHOFFSET), with Z; applied as UTC
  (the offset the origin wrote in is not kept).
- DATE -> date (YYYY-MM-DD); TIME -> time, without trailing zeros after the seconds, as
  PostgreSQL writes it.
- UNIQUEIDENTIFIER -> uuid: lower-case text.
- BINARY, VARBINARY, IMAGE -> bytes: base64 (FOR JSON's own form of a varbinary).
- CHAR, VARCHAR, NCHAR, NVARCHAR, TEXT, NTEXT, SYSNAME, XML, SQL_VARIANT and the CLR types
  (geography, geometry, hierarchyid) -> text: their text (CONVERT to NVARCHAR(MAX) for
  the non-string ones). A JSON document is an NVARCHAR column with an ISJSON check: found
  by introspection (category `json`), it travels as its text and is named in the event's
  `json_text`; the native JSON type of SQL Server 2025 too. From CREATE TABLE text alone
  (bridge/offline.py) the check is not seen: the column is text, which changes nothing of
  what is written, only `json_text`.
- ROWVERSION (TIMESTAMP) and computed columns are never captured nor written: each site
  has its own.

An IDENTITY column is written only when a row is inserted (SET IDENTITY_INSERT, which
needs ALTER permission on the table); sites that insert into the same table need
identity ranges that do not overlap. TEXT, NTEXT and IMAGE columns cannot be read from
`inserted`/`deleted`: the capture reads them from the table (the row as the statement
left it), and a delete carries NULL for them.

The capture needs the database's compatibility level 130 or more (OPENJSON).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import make_url

from bridge import identifiers
from bridge.dialects import dbapi
from bridge.dialects.base import Column, Dialect, TableInfo
from bridge.errors import DatabaseError, SchemaError, one_line

# the system type's name (sys.types, lower case) -> bridge.codec kind
KINDS = {
    "tinyint": "int",
    "smallint": "int",
    "int": "int",
    "integer": "int",  # as sqlglot spells INT (bridge/offline.py)
    "bigint": "int",
    "bit": "bool",
    "decimal": "decimal",
    "numeric": "decimal",
    "money": "decimal",
    "smallmoney": "decimal",
    "float": "float",
    "real": "float",
    "datetime2": "timestamp",
    "datetime": "timestamp",
    "smalldatetime": "timestamp",
    "datetimeoffset": "timestamptz",
    "date": "date",
    "time": "time",
    "uniqueidentifier": "uuid",
    "binary": "bytes",
    "varbinary": "bytes",
    "image": "bytes",
    "rowversion": "bytes",  # never captured (introspection marks it generated)
    "timestamp": "bytes",  # SQL Server's old name of rowversion, not a date and time
    "json": "json",  # SQL Server 2025's native type
}

# the type of a column as bridge spells it (sql_type: the columns hash, the casts of
# apply), the same whether read from the catalog or from CREATE TABLE text: lower case,
# no spaces, SQL Server's defaults written out
DEFAULT_PARAMS = {
    "datetime2": "(7)",
    "datetimeoffset": "(7)",
    "time": "(7)",
    "decimal": "(18,0)",
    "char": "(1)",
    "varchar": "(1)",
    "nchar": "(1)",
    "nvarchar": "(1)",
    "binary": "(1)",
    "varbinary": "(1)",
}
SYNONYMS = {
    "integer": "int",
    "numeric": "decimal",  # the same type; sqlglot writes DECIMAL as NUMERIC
    "double precision": "float",
    "rowversion": "timestamp",
}


def normal_type(sql_type: str) -> str:
    """`DECIMAL(12, 2)` -> `decimal(12,2)`, `DATETIME2` -> `datetime2(7)`, `FLOAT(53)` ->
    `float`, `FLOAT(24)` -> `real`."""
    text = re.sub(r"\s*([(),])\s*", r"\1", " ".join(sql_type.lower().split()))
    name, _, params = text.partition("(")
    name = SYNONYMS.get(name, name)
    if name == "float" and params:
        return "real" if int(params.rstrip(")") or 53) <= 24 else "float"
    if name == "decimal" and params and "," not in params:
        return f"{name}({params.rstrip(')')},0)"
    if not params:
        return name + DEFAULT_PARAMS.get(name, "")
    return f"{name}({params}"


# What every bridge session sets once, at connect (see the module's text). NOCOUNT: a
# template of several statements returns its final SELECT as its first result.
SESSION = (
    "SET NOCOUNT ON; SET XACT_ABORT OFF; SET IMPLICIT_TRANSACTIONS OFF; "
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SET LOCK_TIMEOUT -1; "
    "SET ANSI_NULLS ON; SET ANSI_PADDING ON; SET ANSI_WARNINGS ON; SET ARITHABORT ON; "
    "SET CONCAT_NULL_YIELDS_NULL ON; SET QUOTED_IDENTIFIER ON; SET NUMERIC_ROUNDABORT OFF; "
    "SET TEXTSIZE 2147483647; SET LANGUAGE us_english; SET DATEFORMAT ymd; SET DATEFIRST 7"
)

DRIVER = "ODBC Driver 18 for SQL Server"

# server error numbers, by what bridge does about them
DEADLOCK = {
    1205,  # chosen as the deadlock victim (the transaction is rolled back)
    1222,  # lock request time out period exceeded
    3960,  # snapshot isolation update conflict
}
LOST = {
    233,  # no process is on the other end of the pipe
    596,  # the session is in the kill state
    4060,  # cannot open the database requested by the login
    6005,  # SHUTDOWN is in progress
    10053,  # the connection was aborted by the software in the host
    10054,  # the connection was forcibly closed by the remote host
    10060,  # connection attempt timed out
    10061,  # connection refused
    40197,  # (Azure) error processing the request: retry
    40501,  # (Azure) the service is busy
    40613,  # (Azure) database not currently available
}
FOREIGN_KEY = 547  # with "FOREIGN KEY" or "REFERENCE" in the message; else a CHECK
UNIQUE = {2627, 2601}  # a PRIMARY KEY or UNIQUE constraint; a unique index
UNWRITABLE = {
    515,  # cannot insert the value NULL
    547,  # CHECK constraint
    8152,  # string or binary data would be truncated
    2628,  # string or binary data would be truncated in table ..., column ... (2019+)
    8115,  # arithmetic overflow converting to a type
    220,  # arithmetic overflow for a smallint/tinyint
    232,  # arithmetic overflow for a type
    241,  # conversion failed when converting date and/or time from a string
    242,  # a date and time out of range
    245,  # conversion failed when converting a value to a type (bridge's own refusals too)
    8114,  # error converting data type
    8169,  # conversion failed when converting to uniqueidentifier
    8134,  # divide by zero
    517,  # adding a value to a date column caused an overflow
    544,  # cannot insert an explicit value for an identity column
    8102,  # cannot update an identity column
    271,  # cannot modify a computed column
    273,  # cannot insert an explicit value into a timestamp (rowversion) column
    6522,  # a CLR type refused its text (geography, geometry, hierarchyid)
    9400,  # XML parsing: unexpected end of input
    9455,  # XML parsing: illegal qualified name character
}
NUMBER = re.compile(r"\((\d+)\)\s*(?:\(SQL\w+\))")


def _driver() -> Any:
    import pyodbc

    return pyodbc


def error_numbers(exc: BaseException) -> list[int]:
    """The server's error numbers in a pyodbc error: its message ends each diagnostic
    record with `(number) (SQLExecDirectW)`."""
    text = " ".join(str(a) for a in getattr(exc, "args", ()))
    return [int(n) for n in NUMBER.findall(text)]


def classify(exc: BaseException) -> type[dbapi.DbError] | None:
    """A pyodbc error as one of dbapi's classes (None: not a database error)."""
    pyodbc = _driver()
    if not isinstance(exc, pyodbc.Error):
        return None
    numbers = error_numbers(exc)
    state = str(exc.args[0]) if exc.args else ""
    text = " ".join(str(a) for a in exc.args)
    if any(n in DEADLOCK for n in numbers) or state == "40001":
        return dbapi.Deadlock
    if any(n in LOST for n in numbers) or state.startswith("08"):
        return dbapi.ConnectionLost
    if FOREIGN_KEY in numbers and ("FOREIGN KEY" in text or "REFERENCE" in text):
        return dbapi.ForeignKeyViolation
    if any(n in UNIQUE for n in numbers):
        return dbapi.UniqueViolation
    if any(n in UNWRITABLE for n in numbers) or isinstance(
        exc, pyodbc.DataError | pyodbc.IntegrityError
    ):
        return dbapi.Unwritable
    if isinstance(exc, pyodbc.OperationalError | pyodbc.InterfaceError) and not numbers:
        return dbapi.ConnectionLost  # the driver's own: no server error number
    return dbapi.DbError


def _autocommit_off(raw: Any) -> None:
    raw.autocommit = False  # the driver begins a transaction at the next statement


def _autocommit_on(raw: Any) -> None:
    raw.autocommit = True


class Connection(dbapi.Connection):
    """dbapi's connection, binding datetimes as ISO-8601 text that the statements CAST
    to DATETIME2(6): the value's six fractional digits whatever precision the driver would
    give a datetime parameter."""

    def bind(self, sql: str, params: Mapping[str, Any] | None) -> tuple[str, Any]:
        text, args = super().bind(sql, params)
        if isinstance(args, list):
            args = [
                v.isoformat(timespec="microseconds") if isinstance(v, dt.datetime) else v
                for v in args
            ]
        return text, args


def connection_string(url: str) -> tuple[str, str | None]:
    """The ODBC connection string of a database URL, and its password (to keep out of
    messages). `?odbc_connect=...` gives the whole string as it is."""
    parsed = make_url(url)
    query = {k: str(v) for k, v in parsed.query.items()}
    password = str(parsed.password) if parsed.password else None
    if "odbc_connect" in query:
        return query["odbc_connect"], password
    if not parsed.database:
        raise DatabaseError(
            "database_url names no database: write it like mssql+pyodbc://user:password@"
            "host:1433/dbname?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes"
        )

    def braced(value: str) -> str:
        return "{" + value.replace("}", "}}") + "}"

    parts = {
        "DRIVER": braced(query.pop("driver", DRIVER)),
        "SERVER": f"{parsed.host or '127.0.0.1'},{parsed.port or 1433}",
        "DATABASE": braced(parsed.database),
        "APP": "bridge",
    }
    if parsed.username:
        parts["UID"] = braced(parsed.username)
        parts["PWD"] = braced(password or "")
    else:
        parts["Trusted_Connection"] = "yes"
    parts.update((k, braced(v) if ";" in v else v) for k, v in query.items())
    return ";".join(f"{k}={v}" for k, v in parts.items()), password


class MSSQLDialect(Dialect):
    name = "mssql"
    sqlglot_name = "tsql"
    title = "SQL Server"
    terminator = ";"
    batch_separator = "GO"  # sqlcmd and SSMS: CREATE TRIGGER must be alone in its batch
    transactional_ddl = True  # CREATE TRIGGER and CREATE TABLE roll back with the rest
    wakes_on_notify = False
    idle_poll = 0.05
    set_based_apply = False
    has_event_trigger = False
    row_filters = False  # its capture_install does not take `row_filter` yet: --where is refused
    capture_clock = "SYSUTCDATETIME()"
    default_bridge_schema = "dbo"  # where bridge's tables are unless the login's default differs
    errors = dbapi.ERRORS

    def key_text(self, key: dict[str, Any]) -> str:
        """As FOR JSON PATH writes the key the capture builds (_values.sql.j2, `key`):
        columns sorted by name, no spaces, non-ASCII as is, `/` escaped as `\\/`, control
        characters as \\b \\f \\n \\r \\t or \\u00xx (lower-case hex, as Python writes
        them)."""
        text = json.dumps(key, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return text.replace("/", "\\/")

    def column(
        self,
        index: int,
        name: str,
        sql_type: str,
        base_type: str,
        category: str = "",
        identity_always: bool = False,
    ) -> Column:
        """A column, its type spelt as normal_type() writes it (the catalog's and CREATE
        TABLE's spellings hash alike)."""
        base = SYNONYMS.get(base_type.lower(), base_type.lower())
        return super().column(index, name, normal_type(sql_type), base, category, identity_always)

    def kind_of(self, base_type: str, category: str = "") -> str:
        if category == "json":
            return "json"
        return KINDS.get(base_type.lower(), "text")

    def capture_function(self, table: str, prefix: str = "bridge_capture_") -> str:
        return ""  # the capture is in the trigger itself (capture_install.sql.j2)

    def capture_context(self, table: str) -> dict[str, Any]:
        """The one trigger of a table, `bridge_capture_<table>`, in the table's schema (a
        DML trigger is always in its table's schema)."""
        schema, _ = identifiers.split_qualified(table, self.sqlglot_name)
        name = identifiers.quote(
            identifiers.object_name("bridge_capture_", table, dialect=self.sqlglot_name),
            self.sqlglot_name,
            "trigger",
        )
        if schema:
            name = f"{identifiers.quote(schema, self.sqlglot_name, 'schema')}.{name}"
        return {"trigger": name}

    def printed(self, statement: str) -> str:
        """A statement as sqlcmd or SSMS runs it: terminated by `;`, then GO on its own
        line, which ends the batch (a CREATE TRIGGER must be the first statement of its
        batch; the DECLAREd variables of a template live for its batch)."""
        text = statement.rstrip()
        if not text.endswith(";"):
            text += ";"
        return f"{text}\n{self.batch_separator}"

    def connect(self, url: str, autocommit: bool = True) -> Connection:
        conninfo, password = connection_string(url)
        where = make_url(url).render_as_string()
        try:
            pyodbc = _driver()
        except ImportError:
            raise DatabaseError(
                "SQL Server needs the pyodbc package and Microsoft's ODBC Driver 18 for SQL "
                "Server: pip install 'bridge-sync[mssql]', and install msodbcsql18 as "
                "Microsoft documents for your system"
            ) from None
        try:
            raw = pyodbc.connect(conninfo, autocommit=True, timeout=10)
            cur = raw.cursor()
            cur.execute(SESSION)
            cur.close()
            raw.autocommit = autocommit
        except pyodbc.Error as exc:
            raise DatabaseError(
                f"cannot connect to SQL Server at {where}: {one_line(exc, password)}; check "
                "database_url (driver=, TrustServerCertificate=) and that the server is running"
            ) from None
        return Connection(
            raw,
            "qmark",
            classify,
            begin=_autocommit_off,
            end=_autocommit_on,
            savepoint="SAVE TRANSACTION {name}",
            release=None,
            rollback_to="ROLLBACK TRANSACTION {name}",
            row_filter=dbapi.utc_row,
        )

    def introspect(self, conn: dbapi.Connection, table: str) -> TableInfo:
        """Describe a business table; SchemaError if it is missing or has no primary key."""
        ref = self.table_ref(table)
        rows = conn.execute(self.render("introspect_columns"), {"table": ref.ref}).fetchall()
        if not rows:
            raise SchemaError(
                f"table {table!r} does not exist in this database (looked up as {ref.ref}: "
                "in the login's default schema, then dbo, unless qualified as schema.table); "
                f"create it first or fix the name in 'tables': {identifiers.SEE}"
            )
        generated = tuple(str(r[0]) for r in rows if r[6])
        rows = [r for r in rows if not r[6]]
        columns = tuple(
            self.column(int(position), name, sql_type, data_type, category, bool(identity))
            for name, position, sql_type, data_type, category, _pk, _gen, identity in rows
        )
        pk_rows = sorted((r[5], i) for i, r in enumerate(rows) if r[5] is not None)
        pk: tuple[Column, ...] = tuple(columns[i] for _, i in pk_rows)
        return self.described(table, columns, pk, generated)
