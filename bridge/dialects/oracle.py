"""Oracle Database (19c and later): one row-level capture trigger per table, a dispatcher
that polls, echo suppression through the package variable `bridge_session.applying`.

Connections go through python-oracledb in thin mode (no Instant Client):
`oracle+oracledb://user:password@host:1521/?service_name=FREEPDB1` (or `.../SID` for a
SID), wrapped in bridge/dialects/dbapi.py. The driver is imported inside `connect()` only.
Every bridge session is made independent of the server's and the login's defaults
(session.sql.j2): UTC session time zone, fixed NLS date, timestamp and number formats,
binary comparison, READ COMMITTED (a statement after a row lock sees what committed before
the lock was granted, as PostgreSQL's statements do).

Names. A table created without quotes (`CREATE TABLE orders ...`) is stored as ORDERS with
columns ID, AMOUNT: bridge names it `orders` and its columns `id`, `amount`, as the other
sites' databases do (`normalize`), so configure it as `orders` at every site and the
events of an Oracle site and a PostgreSQL site name the same table and columns. A name
with a lower-case letter in the catalog (created quoted: "Lines") keeps its case. bridge's
own objects are created unquoted (BRIDGE_OUTBOX, BRIDGE_SESSION...) in the schema of
database_url's user.
Identifiers may be 128 bytes long (12.2 and later).

Kinds of the catalog's types (bridge/codec.py):

- NUMBER(p) / NUMBER(p,0) / INTEGER -> int, except NUMBER(1), which is taken as a boolean
  (the usual Oracle flag column: 1 true, 0 false; another value is sent as its number,
  which the receiving site refuses: it is logged there as a conflict, never dropped).
  Declare a flag that is not a boolean NUMBER(2) to have it synced as an int.
- NUMBER(p,s>0), NUMBER -> decimal, sent as a string: with exactly s decimals for
  NUMBER(p,s) (`12.50`, as PostgreSQL and MariaDB write numeric(12,2)), in the fewest
  characters otherwise (`0.5`, never `.5`). A value with more decimals than the column
  holds is refused (Oracle would round it silently).
- BINARY_DOUBLE, BINARY_FLOAT, FLOAT -> float (`Infinity`, `-Infinity`, `NaN` as
  PostgreSQL writes them).
- DATE -> timestamp: an Oracle DATE has a time of day (to the second). Its counterpart
  elsewhere is a timestamp; an incoming value with a fraction of a second is refused, an
  incoming date (`2024-05-01`) is taken as midnight.
- TIMESTAMP(n) -> timestamp; TIMESTAMP WITH (LOCAL) TIME ZONE -> timestamptz, sent in UTC.
  An incoming value with more fractional digits than the column holds is refused.
- RAW(16) -> uuid (lower-case 8-4-4-4-12 text, PostgreSQL's uuid); other RAW, BLOB, LONG
  RAW -> bytes (base64).
- VARCHAR2, NVARCHAR2, CHAR, NCHAR, CLOB, NCLOB -> text.
- a CLOB/VARCHAR2/BLOB with an IS JSON check constraint (ALL_JSON_COLUMNS), or the JSON
  type (21c) -> json, its document sent as text.
- BOOLEAN (23ai) -> bool.
- Oracle has no date-only nor time-of-day type: no column is of kind date or time.

Oracle stores '' as NULL. An empty string arriving from another site becomes NULL here
(or is refused by a NOT NULL column: logged as a conflict), and `bridge verify` then
reports the table as different from a site that holds ''. Keep '' out of synced columns,
or accept that difference.

Privileges (the DBA grants them; `bridge init --sql` prints the script):
- bridge's user: CREATE TABLE, CREATE PROCEDURE, CREATE TRIGGER (CREATE ANY TRIGGER for
  tables of other schemas), a quota on its tablespace, and EXECUTE ON SYS.DBMS_LOCK (the
  dispatcher's lease, dispatcher_lease.sql.j2).
- the owner of each captured table (its capture trigger runs with the owner's rights):
  INSERT, SELECT ON bridge's BRIDGE_OUTBOX, SELECT ON BRIDGE_ROW_VERSION and EXECUTE ON
  BRIDGE_SESSION, granted directly (not through a role).
The database character set must be AL32UTF8: in another one, a character it cannot hold
would be replaced without an error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from sqlalchemy.engine import make_url

from bridge import codec, identifiers
from bridge.dialects import dbapi
from bridge.dialects.base import Column, Dialect, TableInfo, TableRef
from bridge.errors import DatabaseError, SchemaError, one_line
from bridge.event import MAX_PAYLOAD_BYTES

# database_url parameters passed to oracledb.connect: TLS to the listener (protocol=tcps;
# thin mode checks the server's certificate against wallet_location's ewallet.pem, else
# the system's trust store, and its DN with ssl_server_dn_match, on by default).
# docs/configuration.md, "Database TLS"
TLS_OPTIONS = {
    "protocol": str,
    "wallet_location": str,
    "wallet_password": str,
    "ssl_server_dn_match": bool,
    "ssl_server_cert_dn": str,
}

# base type (lower case, without its parameters) -> bridge.codec kind. NUMBER and RAW are
# decided by their precision and length (`category`, see OracleDialect.column).
KINDS = {
    "number": "decimal",
    "integer": "int",
    "int": "int",
    "smallint": "int",
    "float": "float",
    "binary_double": "float",
    "binary_float": "float",
    "double precision": "float",  # how sqlglot writes BINARY_DOUBLE (bridge/offline.py)
    "real": "float",
    "date": "timestamp",
    "timestamp": "timestamp",
    "timestamp with time zone": "timestamptz",
    "timestamp with local time zone": "timestamptz",
    "timestampltz": "timestamptz",  # sqlglot's spelling of the one above
    "timestamptz": "timestamptz",
    "raw": "bytes",
    "blob": "bytes",
    "long raw": "bytes",
    "json": "json",
    "boolean": "bool",
}

# NUMBER(p), NUMBER(p,s), NUMBER(*,0) as the catalog and sqlglot spell them
NUMBER = re.compile(r"^\s*NUMBER\s*\(\s*(\*|\d+)\s*(?:,\s*(-?\d+)\s*)?\)\s*$", re.IGNORECASE)
RAW16 = re.compile(r"^\s*RAW\s*\(\s*16\s*\)\s*$", re.IGNORECASE)
SCALE = re.compile(r"\(\s*(\d+)\s*\)")

# Oracle's reserved words (V$RESERVED_WORDS, RESERVED = 'Y'): a bind variable may not be
# named by one (ORA-01745). Parameters so named (`table`) are bound as `:table_`.
# fmt: off
RESERVED = frozenset((
    "access", "add", "all", "alter", "and", "any", "as", "asc", "audit", "between", "by",
    "char", "check", "cluster", "column", "comment", "compress", "connect", "create",
    "current", "date", "decimal", "default", "delete", "desc", "distinct", "drop", "else",
    "exclusive", "exists", "file", "float", "for", "from", "grant", "group", "having",
    "identified", "immediate", "in", "increment", "index", "initial", "insert", "integer",
    "intersect", "into", "is", "level", "like", "lock", "long", "maxextents", "minus",
    "mlslabel", "mode", "modify", "noaudit", "nocompress", "not", "nowait", "null", "number",
    "of", "offline", "on", "online", "option", "or", "order", "pctfree", "prior", "privileges",
    "public", "raw", "rename", "resource", "revoke", "row", "rowid", "rownum", "rows",
    "select", "session", "set", "share", "size", "smallint", "start", "successful", "synonym",
    "sysdate", "table", "then", "to", "trigger", "uid", "union", "unique", "update", "user",
    "validate", "values", "varchar", "varchar2", "view", "whenever", "where", "with",
))
# fmt: on
PARAM = re.compile(r"%\((\w+)\)s")

# Server error numbers (ORA-nnnnn), by what bridge does about them.
DEADLOCK = {
    60,  # deadlock detected: this statement was rolled back
    4061,  # existing state of a package invalidated (init replaced BRIDGE_SESSION)
    4065,  # not executed, package altered or dropped
    4068,  # existing state of packages discarded: the next call works
    30006,  # resource busy, WAIT timeout expired
    8177,  # cannot serialize access (not in READ COMMITTED, listed for safety)
}
LOST = {
    28,  # session killed
    1012,  # not logged on
    1033,  # initialization or shutdown in progress
    1034,  # not available
    1089,  # immediate shutdown
    1092,  # instance terminated
    2396,  # idle time exceeded
    3113,  # end-of-file on communication channel
    3114,  # not connected
    3135,  # connection lost contact
    12514,  # listener does not know the service
    12528,  # listener: all instances blocking
    12537,  # connection closed
    12541,  # no listener
    12547,  # lost contact
    12571,  # packet writer failure
}
LOST_DRIVER = {
    1001,  # DPY-1001 not connected
    4011,  # DPY-4011 the database or network closed the connection
    6005,  # DPY-6005 cannot connect
}
FOREIGN_KEY = {2291, 2292}  # parent key not found; child record found
UNIQUE = {1}  # unique constraint violated
UNWRITABLE = {
    1400,  # cannot insert NULL
    1407,  # cannot update to NULL
    1401,  # inserted value too large
    1438,  # value larger than the precision allows
    1426,  # numeric overflow
    1465,  # invalid hex number (RAW, uuid)
    1722,  # invalid number
    1830,  # date format picture ends before converting the whole string
    1839,  # date not valid for the month
    1840,  # input value not long enough for the date format
    1841,  # year out of range
    1843,  # not a valid month
    1847,  # day of month
    1850,  # hour
    1851,  # minute
    1852,  # seconds
    1858,  # non-numeric character where a numeric was expected
    1861,  # literal does not match the format string
    1878,  # field not found in the datetime (a time in a DST gap)
    1880,  # fractional seconds
    2290,  # check constraint violated
    6502,  # PL/SQL numeric or value error
    12899,  # value too large for column
    22835,  # buffer too small for CLOB to CHAR conversion
    40441,  # JSON syntax error
    20101,  # bridge_session.refuse: a value the column cannot hold exactly
    20102,  # the capture: an event larger than a message may be
}
CODE = re.compile(r"\b(ORA|DPY|DPI)-(\d{4,5})\b")


def error_code(exc: BaseException) -> tuple[str, int]:
    """("ORA", 60) for ORA-00060, ("DPY", 4011) for DPY-4011; ("", 0) if none is named.
    python-oracledb puts an `_Error` with `full_code` in args[0]; its text is the fallback."""
    detail = exc.args[0] if exc.args else None
    full = getattr(detail, "full_code", None)
    match = CODE.search(full if isinstance(full, str) and full else str(exc))
    return (match.group(1), int(match.group(2))) if match else ("", 0)


NUMBERS = dbapi.ErrorNumbers(
    frozenset(DEADLOCK),
    frozenset(FOREIGN_KEY),
    frozenset(UNIQUE),
    frozenset(UNWRITABLE),
    frozenset(LOST),
)


def classify(exc: BaseException) -> type[dbapi.DbError] | None:
    """A python-oracledb error as one of dbapi's classes (None: not a database error)."""
    import oracledb

    if not isinstance(exc, oracledb.Error):
        return None
    prefix, code = error_code(exc)
    if prefix in ("DPY", "DPI"):
        if code in LOST_DRIVER or 4000 <= code < 5000:
            return dbapi.ConnectionLost
        return dbapi.DbError
    kind = NUMBERS.kind(code)
    if kind is not None:
        return kind
    if isinstance(exc, oracledb.InterfaceError):
        return dbapi.ConnectionLost
    if isinstance(exc, oracledb.IntegrityError | oracledb.DataError):
        return dbapi.Unwritable
    return dbapi.DbError


# Longer binds than these go as LOBs: SQL's VARCHAR2 and RAW stop at 4000 and 2000 bytes
# (unless MAX_STRING_SIZE = EXTENDED), and JSON_TABLE over a LONG bind would fail.
MAX_VARCHAR_BYTES = 4000
MAX_RAW_BYTES = 2000


def input_type(cursor: Any, value: Any, arraysize: int) -> Any:
    """python-oracledb's input type handler of bridge's connections: booleans as 1/0 (no
    BOOLEAN in SQL before 23ai), datetimes as TIMESTAMP (microseconds kept), long text as
    CLOB, long bytes as BLOB. None: the driver's own choice."""
    import oracledb

    if isinstance(value, bool):
        return cursor.var(oracledb.DB_TYPE_NUMBER, arraysize=arraysize, inconverter=int)
    if isinstance(value, dt.datetime):
        return cursor.var(oracledb.DB_TYPE_TIMESTAMP, arraysize=arraysize)
    if isinstance(value, str) and len(value.encode()) > MAX_VARCHAR_BYTES:
        return cursor.var(oracledb.DB_TYPE_CLOB, arraysize=arraysize)
    if isinstance(value, bytes) and len(value) > MAX_RAW_BYTES:
        return cursor.var(oracledb.DB_TYPE_BLOB, arraysize=arraysize)
    return None


def output_type(cursor: Any, metadata: Any) -> Any:
    """python-oracledb's output type handler: CLOBs as str, BLOBs as bytes (payloads, JSON
    texts), not LOB locators to read one by one."""
    import oracledb

    if metadata.type_code in (oracledb.DB_TYPE_CLOB, oracledb.DB_TYPE_NCLOB):
        return cursor.var(oracledb.DB_TYPE_LONG, arraysize=cursor.arraysize)
    if metadata.type_code is oracledb.DB_TYPE_BLOB:
        return cursor.var(oracledb.DB_TYPE_LONG_RAW, arraysize=cursor.arraysize)
    return None


def bind_name(name: str) -> str:
    """The bind variable a template's `%(name)s` becomes: the name, with `_` after an
    Oracle reserved word (`table` -> `table_`, ORA-01745 otherwise)."""
    return f"{name}_" if name.lower() in RESERVED else name


class OracleCursor(dbapi.Cursor):
    """dbapi.Cursor, where fetching after a statement without rows (a PL/SQL block, DML)
    reads no rows, as PyMySQL does (python-oracledb raises DPY-1003): bridge/cleanup.py
    reads after each statement of its template."""

    def _no_rows(self) -> bool:
        return self._rows is None and getattr(self.raw, "description", None) is None

    def fetchone(self) -> tuple[Any, ...] | None:
        return None if self._no_rows() else super().fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [] if self._no_rows() else super().fetchall()

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        return [] if self._no_rows() else super().fetchmany(size)


class OracleConnection(dbapi.Connection):
    """dbapi.Connection, with parameters named by a reserved word renamed (`bind_name`)
    and OracleCursor's cursors."""

    def cursor(self, name: str | None = None) -> dbapi.Cursor:
        return OracleCursor(self, super().cursor(name).raw)

    def bind(self, sql: str, params: Any) -> tuple[str, Any]:
        if params and any(bind_name(k) != k for k in params):
            renamed = {bind_name(k): v for k, v in params.items()}
            sql = PARAM.sub(lambda m: f"%({bind_name(m.group(1))})s", sql)
            return super().bind(sql, renamed)
        return super().bind(sql, params)


def _autocommit(on: bool) -> Any:
    def switch(raw: Any) -> None:
        raw.autocommit = on

    return switch


def _precision(sql_type: str) -> int | None:
    """TIMESTAMP(3) -> 3; TIMESTAMP -> None (6)."""
    match = SCALE.search(sql_type)
    return int(match.group(1)) if match else None


class OracleDialect(Dialect):
    name = "oracle"
    sqlglot_name = "oracle"
    title = "Oracle"
    terminator = ";"
    batch_separator = "/"  # printed after a PL/SQL block only (see printed)
    transactional_ddl = False  # every DDL statement commits: install runs one by one
    wakes_on_notify = False
    idle_poll = 0.05
    set_based_apply = False
    has_event_trigger = False
    row_filters = False  # its capture_install does not take `row_filter` yet: --where is refused
    capture_clock = "SYS_EXTRACT_UTC(SYSTIMESTAMP)"
    errors = dbapi.ERRORS

    # -- values --------------------------------------------------------------------------
    def key_text(self, key: dict[str, Any]) -> str:
        """As JSON_OBJECT writes the capture's key (_values.sql.j2, `key`): columns sorted
        by name, no spaces, non-ASCII characters as they are (AL32UTF8), `"` and `\\`
        escaped, integers as their digits, decimals, timestamps and the rest as strings
        (codec.dumps: compact, non-ASCII as is, a decimal read from an event with its
        digits)."""
        return codec.dumps(key, sort_keys=True)

    def column(
        self,
        index: int,
        name: str,
        sql_type: str,
        base_type: str,
        category: str = "",
        identity_always: bool = False,
    ) -> Column:
        """A column; NUMBER and RAW get their kind from their precision and length, which
        `sql_type` spells (`NUMBER(12,2)`, `NUMBER(1)`, `RAW(16)`): introspection and a
        CREATE TABLE read offline (bridge/offline.py) pass the same text."""
        column = super().column(
            index,
            normalize(name),
            sql_type,
            base_type,
            category or self.category(sql_type),
            identity_always,
        )
        return dataclasses.replace(column, ref=identifiers.quote(name, self.sqlglot_name, "column"))

    @staticmethod
    def category(sql_type: str) -> str:
        """The kind a type's parameters decide: NUMBER(1) bool, NUMBER(p[,0]) or a negative
        scale int, NUMBER(p,s>0) decimal, RAW(16) uuid; '' for the others."""
        number = NUMBER.match(sql_type)
        if number:
            precision, scale = number.group(1), int(number.group(2) or 0)
            if scale > 0:
                return "decimal"
            return "bool" if precision == "1" and scale == 0 else "int"
        if RAW16.match(sql_type):
            return "uuid"
        return ""

    def kind_of(self, base_type: str, category: str = "") -> str:
        if category:
            return category
        return KINDS.get(base_type.lower(), "text")

    # -- naming ----------------------------------------------------------------------------
    def stored_name(self, name: str) -> str:
        """`orders` -> ORDERS, `sales.orders` -> SALES.ORDERS: a name without upper-case
        letters is what Oracle stores in upper case (see `normalize`)."""
        return ".".join(denormalize(part) for part in name.split("."))

    def table_ref(self, name: str) -> TableRef:
        """A table as the federation names it (`orders`, whatever the case it was
        configured in when Oracle stores it in upper case), quoted as Oracle stores it."""
        return super().table_ref(".".join(normalize(part) for part in name.split(".")))

    def capture_function(self, table: str, prefix: str = "bridge_capture_") -> str:
        return ""  # the capture is in the trigger itself (capture_install.sql.j2)

    def capture_context(self, table: str) -> dict[str, Any]:
        """The capture trigger of a table, `bridge_capture_<table>`, in the table's schema
        (within Oracle's 128-character limit: IdentifierError otherwise), and the largest
        event the capture may write."""
        stored = self.stored_name(table)
        schema, _ = identifiers.split_qualified(stored, self.sqlglot_name)
        bare = identifiers.object_name("bridge_capture_", stored, dialect=self.sqlglot_name)
        name = identifiers.quote(bare, self.sqlglot_name, "trigger")
        qualified = (
            f"{identifiers.quote(schema, self.sqlglot_name, 'schema')}.{name}" if schema else name
        )
        # the largest event the capture writes (bridge/event.py)
        return {"trigger": qualified, "max_payload": MAX_PAYLOAD_BYTES}

    def printed(self, statement: str) -> str:
        """SQL*Plus style: a plain statement ends with `;`, a PL/SQL block (CREATE TRIGGER,
        CREATE PACKAGE, BEGIN/DECLARE ... END;) with a `/` on its own line. The statements
        sent to the server carry no `;` after plain SQL, and their own `END;` after PL/SQL."""
        text = statement.rstrip()
        if is_plsql(text):
            return text + "\n/"
        return text.rstrip(";") + ";"

    # -- connections -----------------------------------------------------------------------
    def connect(self, url: str, autocommit: bool = True) -> OracleConnection:
        parsed = make_url(url)
        service = parsed.query.get("service_name")
        if isinstance(service, tuple):
            service = service[0]
        if not service and not parsed.database:
            raise DatabaseError(
                "database_url names no Oracle service: write it like "
                "oracle+oracledb://user:password@host:1521/?service_name=FREEPDB1 (or "
                "oracle+oracledb://user:password@host:1521/SID for a SID)"
            )
        try:
            import oracledb
        except ImportError:
            raise DatabaseError(
                "python-oracledb is not installed: install it with pip install "
                "'bridge-sync[oracle]' (thin mode: no Oracle client needed)"
            ) from None
        password = str(parsed.password) if parsed.password else None
        tls = dbapi.driver_options(parsed.query, TLS_OPTIONS, "python-oracledb")
        shown = parsed.difference_update_query(["wallet_password"]).render_as_string()
        try:
            raw = oracledb.connect(
                user=parsed.username,
                password=password,
                host=parsed.host or "127.0.0.1",
                port=parsed.port or 1521,
                service_name=service or None,
                sid=None if service else parsed.database,
                tcp_connect_timeout=10,
                program="bridge",
                **tls,
            )
        except oracledb.Error as exc:
            raise DatabaseError(
                f"cannot connect to Oracle at {shown}: "
                f"{one_line(exc, password)}; check database_url and that the listener and "
                "the database are up"
            ) from None
        raw.autocommit = autocommit
        raw.inputtypehandler = input_type
        raw.outputtypehandler = output_type
        conn = OracleConnection(
            raw,
            "named",
            classify,
            begin=_autocommit(False),
            end=_autocommit(True),
            savepoint="SAVEPOINT {name}",
            release=None,  # Oracle has no RELEASE SAVEPOINT
            rollback_to="ROLLBACK TO SAVEPOINT {name}",
            row_filter=dbapi.utc_row,
        )
        try:
            for statement in self.statements("session"):
                conn.execute(statement)
        except dbapi.DbError as exc:
            conn.close()
            raise DatabaseError(
                f"cannot set up the Oracle session: {one_line(exc, password)}"
            ) from None
        return conn

    def introspect(self, conn: Any, table: str) -> TableInfo:
        """Describe a business table; SchemaError if it is missing or has no primary key."""
        ref = self.table_ref(table)
        schema, bare = identifiers.split_qualified(self.stored_name(table), self.sqlglot_name)
        rows = conn.execute(
            self.render("introspect_columns"), {"schema": schema, "table": bare}
        ).fetchall()
        if not rows:
            hint = (
                f" (Oracle folds unquoted names to upper case: a table created as {bare} "
                f"without quotes is {bare.upper()}; write it so in 'tables')"
                if bare != bare.upper()
                else ""
            )
            raise SchemaError(
                f"table {table!r} does not exist or is not visible to bridge's user (looked "
                f"up as {ref.ref}, in the schema of database_url's user unless qualified)"
                f"{hint}; create it, grant bridge's user access, or fix the name in 'tables'"
            )
        columns: list[Column] = []
        pk_rows: list[tuple[int, int]] = []
        generated: list[str] = []
        for row in rows:
            name, position, sql_type, base, is_json, pk_position, virtual, identity = row
            if virtual:
                generated.append(name)
                continue
            if identity == "ALWAYS":
                raise SchemaError(
                    f"column {name} of {table} is GENERATED ALWAYS AS IDENTITY: Oracle lets "
                    "no session write it, so bridge cannot apply the other sites' rows; make "
                    f"it GENERATED BY DEFAULT (ALTER TABLE {ref.ref} MODIFY "
                    f'"{name}" GENERATED BY DEFAULT ON NULL AS IDENTITY) and give each site '
                    "its own range (START WITH), then run install-triggers again"
                )
            column = self.column(
                int(position), name, sql_type, base.lower(), "json" if is_json else ""
            )
            if pk_position is not None:
                pk_rows.append((int(pk_position), len(columns)))
            columns.append(column)
        pk = tuple(columns[i] for _, i in sorted(pk_rows))
        return self.described(table, tuple(columns), pk, tuple(generated))


def normalize(name: str) -> str:
    """A name as Oracle's catalog holds it -> as the federation writes it: all upper case
    (what an unquoted name becomes: ORDERS, CUSTOMER_ID) is written in lower case, as the
    other databases hold it (orders, customer_id); a name with a lower-case letter (created
    quoted: "Lines") stays as it is. SQLAlchemy's Oracle dialect has the same convention.
    So a PostgreSQL site's `orders.customer` and an Oracle site's ORDERS.CUSTOMER are one
    table and one column of the federation."""
    return name.lower() if name == name.upper() and name != name.lower() else name


def denormalize(name: str) -> str:
    """The inverse: a name without upper-case letters is stored in upper case. (A table
    stored in lower case, created as "orders" with quotes, cannot be reached: rename it.)"""
    return name.upper() if name == name.lower() and name != name.upper() else name


PLSQL_HEAD = re.compile(
    r"^\s*(CREATE\s+(OR\s+REPLACE\s+)?(EDITIONABLE\s+|NONEDITIONABLE\s+)?"
    r"(TRIGGER|PACKAGE|PROCEDURE|FUNCTION|TYPE)\b|BEGIN\b|DECLARE\b)",
    re.IGNORECASE,
)


def is_plsql(statement: str) -> bool:
    """Whether a statement is a PL/SQL block or unit (it ends with its own `END;`).
    Leading SQL comments (`-- ...`) are skipped."""
    lines = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
    return bool(PLSQL_HEAD.match("\n".join(lines)))
