"""PostgreSQL: statement-level capture triggers with transition tables, LISTEN/NOTIFY
wake-up, echo suppression through the `bridge.applying` setting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from bridge import codec, identifiers
from bridge.dialects.base import Column, Dialect, Errors, TableInfo
from bridge.errors import ConfigError, DatabaseError, IdentifierError, SchemaError, one_line

KINDS = {
    "int2": "int",
    "int4": "int",
    "int8": "int",
    "oid": "int",
    "numeric": "decimal",
    "float4": "float",
    "float8": "float",
    "bool": "bool",
    "bytea": "bytes",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp",
    "date": "date",
    "time": "time",
    "json": "json",
    "jsonb": "json",
    "uuid": "uuid",
    # the same types as a CREATE TABLE spells them (bridge/offline.py reads DDL text)
    "smallint": "int",
    "integer": "int",
    "int": "int",
    "bigint": "int",
    "decimal": "decimal",
    "real": "float",
    "double precision": "float",
    "boolean": "bool",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
}
# Other types by their category (pg_type.typcategory): arrays, composites, and the
# categories whose to_jsonb is the JSON string of the type's text output (strings,
# intervals, network addresses, enums, geometry, ranges, bit strings, timetz, money).
# The rest (user-defined: xml, macaddr, hstore, PostGIS...) may have a cast to json that
# to_jsonb would use instead of their text: "other", sent as text like arrays.
CATEGORY_KINDS = {"A": "array", "C": "record"} | dict.fromkeys("STIEGRVDN", "text")
# The search path of bridge's own connections, unless database_url names one
# (`?search_path=sales,public`): PostgreSQL's default, set as a connection option so that
# what a role or database sets (ALTER ROLE ... SET search_path) cannot change which tables
# and functions bridge's statements reach. pg_catalog, not listed, is searched first.
SEARCH_PATH = ("$user", "public")


def search_path(query: Mapping[str, Any]) -> str:
    """The search_path of bridge's connections, as a setting's value (no spaces: it goes
    into libpq's `options`), from database_url's `search_path` parameter or SEARCH_PATH."""
    given = query.get("search_path")
    if given is None:
        names: list[str] = list(SEARCH_PATH)
    else:
        names = [n.strip() for n in str(given).split(",") if n.strip()]
        if not names:
            raise ConfigError(
                "database_url's search_path is empty: name the schemas, as "
                '?search_path=sales,public (see "Search path" in docs/configuration.md)'
            )
    try:
        return ",".join(
            '"$user"' if n == "$user" else identifiers.quote(n, "postgres", "schema") for n in names
        )
    except IdentifierError as exc:
        raise ConfigError(f"database_url's search_path: {exc}") from None


class PostgresDialect(Dialect):
    name = "postgresql"
    sqlglot_name = "postgres"
    title = "PostgreSQL"
    terminator = ";"
    transactional_ddl = True
    wakes_on_notify = True
    set_based_apply = True
    insert_skips_existing = True
    key_as_json = True
    has_event_trigger = True
    row_filters = True  # capture_install.sql.j2 takes `row_filter`
    capture_clock = "pg_catalog.clock_timestamp()"
    default_bridge_schema = "public"
    errors = Errors(
        any=(psycopg.Error,),
        deadlock=(psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure),
        lost=(psycopg.OperationalError, psycopg.InterfaceError),
        unwritable=(psycopg.IntegrityError, psycopg.DataError, psycopg.ProgrammingError),
        foreign_key=(psycopg.errors.ForeignKeyViolation,),
        unique=(psycopg.errors.UniqueViolation,),
    )

    def bind_structured(self, value: Any) -> Any:
        return Jsonb({"v": value}, dumps=codec.dumps)

    def is_json(self, value: Any) -> bool:
        return isinstance(value, Jsonb)

    def connect(self, url: str, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A connection with bridge's fixed search path (`search_path`)."""
        parsed = make_url(url)
        query = dict(parsed.query)
        path = search_path(query)
        query.pop("search_path", None)
        options = " ".join(filter(None, [str(query.pop("options", "")), f"-c search_path={path}"]))
        conninfo = parsed.set(drivername="postgresql", query=query).render_as_string(
            hide_password=False
        )
        try:
            return psycopg.connect(
                conninfo,
                autocommit=autocommit,
                connect_timeout=10,
                application_name="bridge",
                options=options,
            )
        except psycopg.OperationalError as exc:
            password = str(parsed.password) if parsed.password else None
            raise DatabaseError(
                f"cannot connect to PostgreSQL at {parsed.render_as_string()}: "
                f"{one_line(exc, password)}; check database_url and that the server is running"
            ) from None

    def kind_of(self, base_type: str, category: str = "") -> str:
        if category == "json":  # a CHECK says so (bridge/offline.py)
            return "json"
        if base_type in KINDS:
            return KINDS[base_type]
        return CATEGORY_KINDS.get(category, "other") if category else "text"

    def capture_function(self, table: str, prefix: str = "bridge_capture_") -> str:
        """The capture function of a table; with prefix `bridge_altered_` (as long as
        `bridge_capture_`, so a name that fits fits both), its after-ALTER form."""
        schema, _ = identifiers.split_qualified(table, self.sqlglot_name)
        name = identifiers.quote(
            identifiers.object_name(prefix, table, dialect=self.sqlglot_name),
            self.sqlglot_name,
            "function",
        )
        return (
            f"{identifiers.quote(schema, self.sqlglot_name, 'schema')}.{name}" if schema else name
        )

    def introspect(self, conn: psycopg.Connection[Any], table: str) -> TableInfo:
        """Describe a business table; SchemaError if it is missing or has no primary key."""
        ref = self.table_ref(table)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self.render("introspect_columns"), {"table": ref.ref})
            rows = cur.fetchall()
        if not rows:
            raise SchemaError(
                f"table {table!r} does not exist in this database (looked up as {ref.ref}, "
                "case-sensitive, through the search_path unless schema-qualified); create it "
                f"first or fix the name in 'tables': {identifiers.SEE}"
            )
        generated = tuple(r["name"] for r in rows if r["generated"])
        rows = [r for r in rows if not r["generated"]]
        columns = tuple(
            self.column(
                r["attnum"],
                r["name"],
                r["sql_type"],
                r["base_type"],
                r["category"],
                r["identity_always"],
            )
            for r in rows
        )
        pk_rows = sorted(
            (r["pk_position"], i) for i, r in enumerate(rows) if r["pk_position"] is not None
        )
        pk: tuple[Column, ...] = tuple(columns[i] for _, i in pk_rows)
        return self.described(
            table, columns, pk, generated, pk_deferrable=any(r["pk_deferrable"] for r in rows)
        )
