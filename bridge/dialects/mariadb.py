"""MariaDB (and MySQL 8): row-level capture triggers, a dispatcher that polls, echo
suppression through the session variable `@bridge_applying`.

Connections go through PyMySQL (`mysql+pymysql://user:password@host:3306/database`, or
`mariadb+pymysql://`), wrapped in bridge/dialects/dbapi.py. Every bridge session works in
UTC (`time_zone = '+00:00'`), reads committed data (READ COMMITTED: a statement after a
row lock sees what committed before the lock was granted, as PostgreSQL's statements do)
and refuses a value a column cannot hold instead of truncating it (strict SQL mode).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import make_url

from bridge import identifiers
from bridge.dialects import dbapi
from bridge.dialects.base import Column, Dialect, TableInfo
from bridge.errors import DatabaseError, SchemaError, one_line

# database_url parameters passed to pymysql.connect: TLS to the server. PyMySQL checks the
# server's certificate only with ssl_verify_cert=true, its name only with
# ssl_verify_identity=true (docs/configuration.md, "Database TLS").
TLS_OPTIONS = {
    "ssl_ca": str,
    "ssl_cert": str,
    "ssl_key": str,
    "ssl_verify_cert": bool,
    "ssl_verify_identity": bool,
}

# information_schema.COLUMNS.DATA_TYPE -> bridge.codec kind (tinyint(1) is a boolean: the
# type BOOLEAN is its alias; a JSON column is LONGTEXT with a json_valid check)
KINDS = {
    "tinyint": "int",
    "smallint": "int",
    "mediumint": "int",
    "int": "int",
    "bigint": "int",
    "year": "int",
    "decimal": "decimal",
    "float": "float",
    "double": "float",
    "datetime": "timestamp",
    "timestamp": "timestamptz",
    "date": "date",
    "time": "time",
    "binary": "bytes",
    "varbinary": "bytes",
    "tinyblob": "bytes",
    "blob": "bytes",
    "mediumblob": "bytes",
    "longblob": "bytes",
    "uuid": "uuid",
    "json": "json",
    "boolean": "bool",  # as a CREATE TABLE spells it (bridge/offline.py)
    "bool": "bool",
}

# What every bridge session sets (PyMySQL's init_command, run at each connect).
SESSION = (
    "SET SESSION time_zone = '+00:00', "
    "SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', "
    "SESSION tx_isolation = 'READ-COMMITTED'"
)

# server error numbers, by what bridge does about them
DEADLOCK = {1213, 1205}  # deadlock found; lock wait timeout (the statement is rolled back)
LOST = {2006, 2013, 2003, 2055, 1927, 4031}  # gone away, lost, cannot connect, killed
FOREIGN_KEY = {1216, 1217, 1451, 1452}
UNIQUE = {1062, 1586}
UNWRITABLE = {
    1048,  # column cannot be null
    1264,  # out of range
    1265,  # data truncated
    1292,  # incorrect value
    1366,  # incorrect integer/decimal value
    1406,  # data too long
    1411,  # incorrect datetime value
    3819,  # check constraint
    4025,  # check constraint (MariaDB)
    1690,  # value out of range
    4078,  # illegal parameter data type
}


NUMBERS = dbapi.ErrorNumbers(
    frozenset(DEADLOCK),
    frozenset(FOREIGN_KEY),
    frozenset(UNIQUE),
    frozenset(UNWRITABLE),
    frozenset(LOST),
)


def classify(exc: BaseException) -> type[dbapi.DbError] | None:
    """A PyMySQL error as one of dbapi's classes (None: not a database error)."""
    import pymysql

    if not isinstance(exc, pymysql.err.Error):
        return None
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    kind = NUMBERS.kind(code)
    if kind is not None:
        return kind
    if isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError):
        return dbapi.Unwritable
    if isinstance(exc, pymysql.err.InterfaceError) or code >= 2000:  # the client's own
        return dbapi.ConnectionLost
    return dbapi.DbError


class MariaDBDialect(Dialect):
    name = "mariadb"
    sqlglot_name = "mysql"
    title = "MariaDB"
    terminator = ";"
    transactional_ddl = False  # CREATE TRIGGER commits: install runs statement by statement
    wakes_on_notify = False
    idle_poll = 0.05
    set_based_apply = False
    has_event_trigger = False
    row_filters = True  # capture_install.sql.j2 takes `row_filter`
    capture_clock = "UTC_TIMESTAMP(6)"
    errors = dbapi.ERRORS

    def key_text(self, key: dict[str, Any]) -> str:
        """As JSON_OBJECT writes it, columns sorted (the capture lists them so): `{"id": 42}`,
        non-ASCII as is."""
        return json.dumps(key, sort_keys=True, ensure_ascii=False)

    def connect(self, url: str, autocommit: bool = True) -> dbapi.Connection:
        import pymysql
        import pymysql.cursors

        parsed = make_url(url)
        if not parsed.database:
            raise DatabaseError(
                "database_url names no database: write it like "
                "mysql+pymysql://user:password@host:3306/dbname"
            )
        password = str(parsed.password) if parsed.password else None
        tls = dbapi.driver_options(parsed.query, TLS_OPTIONS, "PyMySQL")
        try:
            raw = pymysql.connect(
                host=parsed.host or "127.0.0.1",
                port=parsed.port or 3306,
                user=parsed.username or "root",
                password=password or "",
                database=parsed.database,
                charset="utf8mb4",
                autocommit=autocommit,
                connect_timeout=10,
                init_command=SESSION,
                program_name="bridge",
                **tls,
            )
        except pymysql.err.Error as exc:
            raise DatabaseError(
                f"cannot connect to MariaDB at {parsed.render_as_string()}: "
                f"{one_line(exc, password)}; check database_url and that the server is running"
            ) from None
        return dbapi.Connection(
            raw,
            "pyformat",
            classify,
            begin="START TRANSACTION",
            server_cursor=lambda c: c.cursor(pymysql.cursors.SSCursor),
            row_filter=dbapi.utc_row,
        )

    def kind_of(self, base_type: str, category: str = "") -> str:
        if category == "bool":
            return "bool"
        if category == "json":
            return "json"
        return KINDS.get(base_type.lower(), "text")

    def capture_function(self, table: str, prefix: str = "bridge_capture_") -> str:
        return ""  # the capture is in the triggers themselves (capture_install.sql.j2)

    def capture_context(self, table: str) -> dict[str, Any]:
        """The three triggers of a table, `bridge_ins_<table>` and so on, in its schema."""
        schema, _ = identifiers.split_qualified(table, self.sqlglot_name)
        names = {}
        for op, short in (("insert", "ins"), ("update", "upd"), ("delete", "del")):
            name = identifiers.quote(
                identifiers.object_name(f"bridge_{short}_", table, dialect=self.sqlglot_name),
                self.sqlglot_name,
                "trigger",
            )
            names[f"on_{op}"] = (
                f"{identifiers.quote(schema, self.sqlglot_name, 'schema')}.{name}"
                if schema
                else name
            )
        return {"triggers": names}

    def printed(self, statement: str) -> str:
        """A trigger's body holds `;`: for the mysql client, it is sent between DELIMITER
        lines."""
        text = statement.rstrip().rstrip(";")
        if "CREATE TRIGGER" in text:
            return f"DELIMITER $$\n{text}\n$$\nDELIMITER ;"
        return text + ";"

    def introspect(self, conn: dbapi.Connection, table: str) -> TableInfo:
        """Describe a business table; SchemaError if it is missing or has no primary key."""
        ref = self.table_ref(table)
        schema, _, bare = table.rpartition(".")
        rows = conn.execute(
            self.render("introspect_columns"), {"schema": schema or None, "table": bare}
        ).fetchall()
        if not rows:
            raise SchemaError(
                f"table {table!r} does not exist in this database (looked up as {ref.ref} in "
                "the database of database_url unless qualified); create it first or fix the "
                "name in 'tables'"
            )
        generated = tuple(r[0] for r in rows if r[6])
        rows = [r for r in rows if not r[6]]
        columns = tuple(
            self.column(position, name, sql_type, data_type, category)
            for name, position, sql_type, data_type, category, _pk, _gen in rows
        )
        pk_rows = sorted((r[5], i) for i, r in enumerate(rows) if r[5] is not None)
        pk: tuple[Column, ...] = tuple(columns[i] for _, i in pk_rows)
        return self.described(table, columns, pk, generated)
