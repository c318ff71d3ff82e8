"""The Oracle dialect, checked without a server (there is none on these machines): golden
files reviewed by eye, every statement of every template rendered and parsed by sqlglot
where it can read it, identifier quoting, and the Python side (kinds, key text, error
classes, binds, printing).

sqlglot reads Oracle SQL, not PL/SQL: the blocks (CREATE TRIGGER, CREATE PACKAGE,
BEGIN/DECLARE ... END;) are checked here by other means (balanced blocks, every name quoted,
the DDL they run parsed), and on a real server by tests/integration/test_oracle_live.py.

Regenerate the golden files with BRIDGE_UPDATE_GOLDEN=1 (tests/unit/test_templates.py).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from bridge import apply, codec, install, offline, sql
from bridge.dialects import by_name, dbapi
from bridge.dialects.base import TableInfo, literal
from bridge.dialects.oracle import OracleConnection, OracleDialect, classify, is_plsql
from bridge.errors import IdentifierError
from tests import sqlcheck
from tests.unit.test_templates import check_golden

pytestmark = pytest.mark.unit

ORA = OracleDialect()

# The golden files' table: a composite key (REGION, ID) and a column of each common type.
# Written unquoted, as DBAs do: Oracle stores the names in upper case, which is how bridge
# (always quoting) must name them.
ORDERS_DDL = """
CREATE TABLE ORDERS (
    REGION      VARCHAR2(8 CHAR)  NOT NULL,
    ID          NUMBER(19)        NOT NULL,
    CUSTOMER    NVARCHAR2(100),
    AMOUNT      NUMBER(12, 2),
    RATE        NUMBER,
    PAID        NUMBER(1),
    SCORE       BINARY_DOUBLE,
    NOTE        CLOB,
    PHOTO       BLOB,
    TOKEN       RAW(16),
    CHECKSUM    RAW(32),
    ORDERED_ON  DATE,
    UPDATED_AT  TIMESTAMP(6),
    SHIPPED_AT  TIMESTAMP(6) WITH TIME ZONE,
    DOC         CLOB CONSTRAINT ORDERS_DOC_JSON CHECK (DOC IS JSON),
    CONSTRAINT ORDERS_PK PRIMARY KEY (REGION, ID)
)
"""

# another schema, names that need quoting (mixed case, reserved words), a timestamp that
# keeps fewer fractional digits, a key with a DATE
LINES_DDL = """
CREATE TABLE APP."Lines" (
    "order_id" NUMBER(19) NOT NULL,
    "Line"     VARCHAR2(20) NOT NULL,
    "date"     DATE,
    "level"    NUMBER(5),
    "At"       TIMESTAMP(3),
    "ratio"    BINARY_FLOAT,
    "Total"    NUMBER(*, 0),
    CONSTRAINT LINES_PK PRIMARY KEY ("order_id", "Line")
)
"""

KEYS_DDL = "CREATE TABLE KEYS_ONLY (K VARCHAR2(10) PRIMARY KEY)"


def orders_info() -> TableInfo:
    """ORDERS described offline, as the federation names it: `orders`, its columns in lower
    case (OracleDialect.normalize); DOC's IS JSON check makes it a JSON column."""
    return offline.table_from_ddl(ORA, ORDERS_DDL, "orders")


def infos() -> list[TableInfo]:
    return [
        orders_info(),
        offline.table_from_ddl(ORA, LINES_DDL, "APP.Lines"),
        offline.table_from_ddl(ORA, KEYS_DDL, "keys_only"),
    ]


def printed(statements: list[str]) -> str:
    """A script as `--sql` prints it (SQL*Plus: `;` after SQL, `/` after PL/SQL)."""
    return "\n\n".join(ORA.printed(s) for s in statements) + "\n"


def apply_statements(info: TableInfo) -> list[str]:
    """The apply statements of a table (their upsert and insert carry every column), the
    upsert and insert of an event that lacks NOTE, the policy column's comparison,
    verify's read and the start of an apply transaction."""
    ctx = {"table": info.table, "info": info}
    some = [(c, "text") for c in info.columns if c.name != "note"]
    return [
        *dataclasses.astuple(apply.statements(ORA, info)),
        ORA.render("apply_upsert", present=some, new_row=False, **ctx),
        ORA.render("apply_upsert", present=some, new_row=True, **ctx),
        ORA.render("apply_compare", column=info.column("updated_at"), theirs="text", mine="text"),
        ORA.render("verify_rows", **ctx),
        ORA.render("apply_begin", tables=["'\"ORDERS\"'"], names=["'orders'", "'APP.Lines'"]),
    ]


# --- golden files ----------------------------------------------------------------------------


def test_capture_install_golden() -> None:
    statements = install.trigger_statements(ORA, orders_info(), bridge_schema="BRIDGE")
    check_golden("oracle_capture_install.sql", printed(statements))


def test_init_golden() -> None:
    check_golden("oracle_init.sql", printed(install.init_statements(ORA, "PARIS")))


def test_apply_golden() -> None:
    statements = [s for text in apply_statements(orders_info()) for s in dbapi.split(text)]
    check_golden("oracle_apply.sql", printed(statements))


def test_verify_chunk_golden() -> None:
    check_golden("oracle_verify.sql", printed(sqlcheck.verify_statements(ORA, orders_info())))


# --- every template, every statement ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rendered:
    template: str
    table: str | None
    statements: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.template}[{self.table}]" if self.table else self.template


def template_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".sql.j2")
        for p in (sql.templates_dir() / "oracle").glob("*.sql.j2")
        if not p.name.startswith("_")
    )


def split(text: str) -> tuple[str, ...]:
    return tuple(dbapi.split(text))


def render_all(tables: list[TableInfo]) -> list[Rendered]:
    """Every template, rendered as bridge renders it (install's functions, apply.statements,
    the Applier's and the dispatcher's switches)."""
    out: list[Rendered] = []
    per_table = {t for t, _ in apply.TEMPLATES.values()} | {"verify_rows"}
    for name in template_names():
        if name == "init":
            out.append(Rendered(name, None, tuple(install.init_statements(ORA, "PARIS"))))
        elif name == "capture_install":
            out += [
                Rendered(name, i.table.name, tuple(install.trigger_statements(ORA, i, True, "BR")))
                for i in tables
            ]
        elif name == "capture_uninstall":
            out += [
                Rendered(name, i.table.name, tuple(install.uninstall_statements(ORA, i.table.name)))
                for i in tables
            ]
        elif name == "apply_begin":
            names = [literal(i.table.name) for i in tables]
            refs = [literal(i.table.ref) for i in tables]
            out.append(Rendered(name, None, tuple(ORA.statements(name, tables=refs, names=names))))
        elif name == "apply_compare":
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        ORA.render(name, column=c, theirs="text", mine="text")
                        for c in i.columns
                        if c.kind not in ("json", "bytes", "text")
                    ),
                )
                for i in tables
            ]
        elif name == "cleanup":
            for switches in sqlcheck.cleanup_variants():
                out.append(Rendered(name, None, split(ORA.render(name, **switches))))
        elif name in ("apply_constraints", "uninit_guard", "status"):
            switch = {"apply_constraints": "deferred", "status": "backlog"}.get(name, "outbox")
            for on in (False, True):
                out.append(Rendered(name, None, split(ORA.render(name, **{switch: on}))))
        elif name == "uninit":
            out.append(Rendered(name, None, split(ORA.render(name, functions=[]))))
        elif name == "inbox_has":
            ids = [literal("6f1c1d5e-8e0a-4c1e-9d55-7b8a3c0e9f10")] * 2
            out.append(Rendered(name, None, split(ORA.render(name, ids=ids))))
        elif name == "archive_version":
            types = [literal(f"orders.{op}") for op in ("insert", "update", "delete")]
            out.append(Rendered(name, None, split(ORA.render(name, types=types))))
        elif name == "archive_replay":
            out += [
                Rendered(name, None, split(ORA.render(name, **switches)))
                for switches in sqlcheck.archive_replay_variants()
            ]
        elif name in per_table and name != "verify_rows":
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        s
                        for field, (template, _) in apply.TEMPLATES.items()
                        if template == name
                        for s in split(getattr(apply.statements(ORA, i), field))
                    ),
                )
                for i in tables
            ]
        elif name in ("verify_rows", "verify_count", "bootstrap_any", "bootstrap_tombstones"):
            out += [
                Rendered(name, i.table.name, split(ORA.render(name, table=i.table, info=i)))
                for i in tables
            ]
        elif name.startswith("verify_chunk"):
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        s
                        for lower in (False, True)
                        for upper in (False, True)
                        for s in split(
                            ORA.render(name, table=i.table, info=i, lower=lower, upper=upper)
                        )
                    ),
                )
                for i in tables
            ]
        elif name == "bootstrap_rows":  # as bridge/bootstrap.py renders it
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        s
                        for after in (False, True)
                        for count in (False, True)
                        for s in split(
                            ORA.render(name, table=i.table, info=i, after=after, count=count)
                        )
                    ),
                )
                for i in tables
            ]
        else:
            out.append(Rendered(name, None, split(ORA.render(name))))
    return out


def rendered() -> list[Rendered]:
    return render_all(infos())


def statements() -> Iterator[tuple[str, str]]:
    for r in rendered():
        for s in r.statements:
            yield r.label, s


def test_every_template_of_mariadb_has_its_oracle_form() -> None:
    """The core renders the same templates whatever the dialect."""
    mariadb = {p.name for p in (sql.templates_dir() / "mariadb").glob("*.sql.j2")}
    oracle = {p.name for p in (sql.templates_dir() / "oracle").glob("*.sql.j2")}
    assert mariadb - oracle == set()
    assert oracle - mariadb == {"session.sql.j2"}  # run at connect (OracleDialect.connect)


def test_every_template_is_rendered_with_statements() -> None:
    done = rendered()
    assert {r.template for r in done} == set(template_names())
    empty = {r.label for r in done if not r.statements}
    # nothing to set (the sessions are set at connect); no column of KEYS_ONLY has an order
    assert empty == {"verify_begin", "apply_compare[keys_only]"}


def test_every_template_says_what_it_is_for() -> None:
    """A Jinja comment at the top of each template (the tiny ones excepted)."""
    missing = []
    for path in sorted((sql.templates_dir() / "oracle").glob("*.sql.j2")):
        text = path.read_text()
        if len(text.splitlines()) > 3 and not text.startswith("{#"):
            missing.append(path.name)
    assert missing == []


# Valid Oracle that sqlglot reads as an opaque command; the live test runs them.
SERVER_ONLY = re.compile(
    r"^\s*(ALTER SESSION|SET CONSTRAINTS|LOCK TABLE|ALTER TABLE bridge_outbox MODIFY)\b",
    re.IGNORECASE,
)


def parse(statement: str) -> exp.Expression:
    """One SQL statement, its `%(name)s` parameters as the binds they become."""
    text = re.sub(r"%\((\w+)\)s", r":\1", statement).replace("%%", "%")
    return sqlglot.parse_one(text, read="oracle")


def test_every_sql_statement_parses() -> None:
    """Every statement that is not PL/SQL is read by sqlglot (read="oracle") as what it is,
    not passed through as an opaque command."""
    opaque, parsed, blocks = [], 0, 0
    for label, stmt in statements():
        if is_plsql(stmt):
            blocks += 1
            continue
        if SERVER_ONLY.match(stmt):
            continue
        try:
            tree = parse(stmt)
        except sqlglot.errors.ParseError as exc:
            opaque.append(f"{label}: {str(exc).splitlines()[0]}: {stmt[:100]}")
            continue
        if isinstance(tree, exp.Command):
            opaque.append(f"{label}: {stmt[:100]}")
        parsed += 1
    assert opaque == []
    assert parsed > 60 and blocks > 20


BLOCK_OPEN = re.compile(r"\b(BEGIN|IF|LOOP|CASE)\b")
BLOCK_CLOSE = re.compile(r"\bEND(\s+(IF|LOOP|CASE))?\b")


def code_of(text: str) -> str:
    """PL/SQL text without its comments, string literals (q'[...]' too) and quoted names,
    read from left to right (an apostrophe in a comment opens no string)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif text.startswith("q'[", i):
            i = text.index("]'", i) + 2
            out.append("''")
        elif text[i] == "'":
            j = i + 1
            while text[j] != "'" or text.startswith("''", j):
                j += 2 if text.startswith("''", j) else 1
            i = j + 1
            out.append("''")
        elif text[i] == '"':
            i = text.index('"', i + 1) + 1
            out.append('""')
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def balanced(block: str) -> bool:
    """BEGIN/IF/LOOP/CASE each closed by its END, in order (a package has one END more
    than its BEGINs: its own)."""
    stack: list[str] = []
    code = code_of(block)
    for m in re.finditer(r"\bEND\s+(IF|LOOP|CASE)\b|\bEND\b|\b(BEGIN|IF|LOOP|CASE)\b", code):
        word = m.group(0).split()
        if word[0] != "END":
            stack.append(word[0])
        elif len(word) == 2:
            if not stack or stack.pop() != word[1]:
                return False
        else:
            # END closes a BEGIN, a CASE expression, or a package/subprogram (no opener)
            if stack and stack[-1] in ("BEGIN", "CASE"):
                stack.pop()
    return not stack


def test_every_plsql_block_is_balanced_and_terminated() -> None:
    problems = []
    for label, stmt in statements():
        if not is_plsql(stmt):
            continue
        if not re.search(r"\bEND(\s+\w+)?;\s*$", stmt):
            problems.append(f"{label}: does not end with END;")
        if not balanced(stmt):
            problems.append(f"{label}: unbalanced blocks")
    assert problems == []


def test_the_balance_check_sees_a_missing_end() -> None:
    assert balanced("BEGIN IF x THEN y; END IF; END;")
    assert not balanced("BEGIN IF x THEN y; END; END;")
    assert not balanced("BEGIN LOOP x; END IF; END;")


def test_the_ddl_inside_init_blocks_parses() -> None:
    """init's CREATE TABLE and CREATE INDEX run from blocks (create if missing): sqlglot
    reads each of them."""
    ddl = [
        m.group(1)
        for s in install.init_statements(ORA, "PARIS")
        for m in re.finditer(r"EXECUTE IMMEDIATE (?:q'\[(.*?)\]'|'(CREATE INDEX[^']*)')", s, re.S)
    ]
    ddl = [d for d in ddl if d] + [
        m.group(1)
        for s in install.init_statements(ORA, "PARIS")
        for m in re.finditer(r"EXECUTE IMMEDIATE '(CREATE INDEX[^']*)'", s)
    ]
    assert len(ddl) == 12  # bridge_acks and its index among them
    for text in ddl:
        tree = sqlglot.parse_one(text, read="oracle")
        assert isinstance(tree, exp.Create), text


def test_sql_sent_to_the_server_has_no_trailing_semicolon() -> None:
    """python-oracledb refuses `;` after plain SQL; PL/SQL keeps its `END;`."""
    wrong = [
        label for label, stmt in statements() if not is_plsql(stmt) and stmt.rstrip().endswith(";")
    ]
    assert wrong == []


# --- quoting -----------------------------------------------------------------------------------


def names_in_code(statement: str) -> list[str]:
    """Quoted identifiers of a statement (outside strings and comments)."""
    text = code_of(statement.replace('"', "\x00"))  # keep the quoted names through code_of
    return re.findall("\x00([^\x00]*)\x00", text)


def test_names_that_need_quoting_are_quoted_everywhere() -> None:
    """Mixed case and reserved words ("Lines", "date", "level") never appear bare."""
    lines = next(i for i in infos() if i.table.name == "app.Lines")  # APP: normalized
    found: set[str] = set()
    for r in rendered():
        if r.table != "app.Lines":
            continue
        for stmt in r.statements:
            bare = code_of(stmt)
            for name in ("Lines", "order_id", "Line", "At", "Total"):
                assert not re.search(rf"(?<![\w.]){name}\b", bare), (r.label, name, stmt)
            found |= set(names_in_code(stmt))
    assert {"APP", "Lines", "order_id", "Line", "date", "level", "At"} <= found
    assert lines.table.ref == '"APP"."Lines"'


def test_the_trigger_is_named_after_the_table_in_its_schema() -> None:
    context = ORA.capture_context("APP.Lines")
    assert context["trigger"] == '"APP"."bridge_capture_Lines"'
    assert ORA.capture_context("ORDERS")["trigger"] == '"bridge_capture_ORDERS"'


def test_a_name_too_long_is_refused() -> None:
    longest = "T" * 128
    ORA.table_ref(longest)  # Oracle allows 128 (12.2 and later)
    with pytest.raises(IdentifierError, match="longer than 128"):
        ORA.table_ref("T" * 129)
    with pytest.raises(IdentifierError, match="too long"):
        ORA.capture_context("T" * 120)  # bridge_capture_ + 120 > 128
    with pytest.raises(IdentifierError, match="longer than 128"):
        ORA.column(1, "C" * 129, "NUMBER(19)", "number")
    with pytest.raises(IdentifierError, match="not a valid identifier"):
        ORA.table_ref('ORDERS"; DROP TABLE X; --')


def test_bridge_schema_and_reserved_columns_in_the_capture() -> None:
    text = "\n".join(install.trigger_statements(ORA, infos()[1], bridge_schema="BRIDGE"))
    assert '"BRIDGE".bridge_outbox' in text
    assert '"BRIDGE".bridge_session.applying = 0' in text
    assert ':NEW."date"' in text and ':OLD."level"' in text
    assert 'ON "APP"."Lines"' in text


# --- kinds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql_type", "base", "kind"),
    [
        ("NUMBER(19)", "number", "int"),
        ("NUMBER(19,0)", "number", "int"),
        ("NUMBER(*,0)", "number", "int"),
        ("NUMBER(5,-2)", "number", "int"),
        ("NUMBER(1)", "number", "bool"),
        ("NUMBER(1,0)", "number", "bool"),
        ("NUMBER(12, 2)", "number", "decimal"),
        ("NUMBER", "number", "decimal"),
        ("INTEGER", "integer", "int"),
        ("BINARY_DOUBLE", "binary_double", "float"),
        ("DOUBLE PRECISION", "double precision", "float"),
        ("BINARY_FLOAT", "binary_float", "float"),
        ("FLOAT(126)", "float", "float"),
        ("VARCHAR2(40 CHAR)", "varchar2", "text"),
        ("NVARCHAR2(100)", "nvarchar2", "text"),
        ("CHAR(2)", "char", "text"),
        ("CLOB", "clob", "text"),
        ("NCLOB", "nclob", "text"),
        ("BLOB", "blob", "bytes"),
        ("RAW(16)", "raw", "uuid"),
        ("RAW(32)", "raw", "bytes"),
        ("LONG RAW", "long raw", "bytes"),
        ("DATE", "date", "timestamp"),
        ("TIMESTAMP(6)", "timestamp", "timestamp"),
        ("TIMESTAMP(6) WITH TIME ZONE", "timestamp with time zone", "timestamptz"),
        ("TIMESTAMP(6) WITH LOCAL TIME ZONE", "timestamp with local time zone", "timestamptz"),
        ("TIMESTAMPLTZ", "timestampltz", "timestamptz"),
        ("JSON", "json", "json"),
        ("BOOLEAN", "boolean", "bool"),
        ("INTERVAL DAY(2) TO SECOND(6)", "interval day to second", "text"),
    ],
)
def test_kind_of_each_type(sql_type: str, base: str, kind: str) -> None:
    assert ORA.column(1, "C", sql_type, base).kind == kind
    assert offline.base_type(sql_type) in (base, base.replace(" to second", " to second"))


def test_a_json_check_makes_a_json_column() -> None:
    assert ORA.column(1, "DOC", "CLOB", "clob", "json").kind == "json"
    assert ORA.kind_of("clob") == "text"


def test_orders_kinds() -> None:
    kinds = {c.name: c.kind for c in orders_info().columns}
    assert kinds == {
        "region": "text",
        "id": "int",
        "customer": "text",
        "amount": "decimal",
        "rate": "decimal",
        "paid": "bool",
        "score": "float",
        "note": "text",
        "photo": "bytes",
        "token": "uuid",
        "checksum": "bytes",
        "ordered_on": "timestamp",
        "updated_at": "timestamp",
        "shipped_at": "timestamptz",
        "doc": "json",
    }
    # named as the federation names them, quoted as Oracle stores them
    assert [(c.name, c.ref) for c in orders_info().pk] == [
        ("region", '"REGION"'),
        ("id", '"ID"'),
    ]
    assert orders_info().table.ref == '"ORDERS"' and orders_info().table.name == "orders"


def test_names_are_normalized_as_sqlalchemy_does() -> None:
    from bridge.dialects.oracle import denormalize, normalize

    assert [normalize(n) for n in ("ORDERS", "Lines", "lines", "A1_B", "1")] == [
        "orders",
        "Lines",
        "lines",
        "a1_b",
        "1",
    ]
    assert [denormalize(n) for n in ("orders", "Lines", "ORDERS", "a1_b")] == [
        "ORDERS",
        "Lines",
        "ORDERS",
        "A1_B",
    ]
    # configured in either case, one table of the federation
    assert ORA.table_ref("ORDERS") == ORA.table_ref("orders")
    assert ORA.table_ref("app.orders").ref == '"APP"."ORDERS"'
    assert ORA.capture_context("orders")["trigger"] == '"bridge_capture_ORDERS"'


# --- the key's text -----------------------------------------------------------------------------


def json_object_text(pairs: list[tuple[str, Any]]) -> str:
    """What JSON_OBJECT writes for the capture's key members, in order: names as given,
    numbers (TO_CHAR ... FORMAT JSON) as their digits, strings with `"`, `\\` and control
    characters escaped, other characters as they are, no spaces."""

    def string(text: str) -> str:
        out = []
        for ch in text:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch in "\b\f\n\r\t":
                out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
            elif ord(ch) < 0x20:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'

    members = [
        string(k) + ":" + (str(v) if isinstance(v, int) else string(str(v))) for k, v in pairs
    ]
    return "{" + ",".join(members) + "}"


@pytest.mark.parametrize(
    "key",
    [
        {"ID": 42, "REGION": "EU"},
        {"REGION": 'Zürich "Nord" l\'été', "ID": -7},
        {"AMOUNT": "12.50", "ID": 12345678901234567890},
        {"b": "tab\there", "a": "back\\slash"},
        {"TOKEN": "0b6f1c2e-1111-4222-8333-944445555666"},
    ],
)
def test_key_text_is_what_the_capture_writes(key: dict[str, Any]) -> None:
    pairs = sorted(key.items())  # the capture lists the key's columns sorted by name
    assert ORA.key_text(key) == json_object_text(pairs)
    assert codec.loads(ORA.key_text(key)) == key


def test_key_text_of_a_decoded_event_keeps_decimals() -> None:
    key = codec.loads('{"ID": 1, "RATE": 0.50}')
    assert ORA.key_text(key) == '{"ID":1,"RATE":0.50}'


def test_the_capture_lists_the_key_sorted_by_name() -> None:
    trigger = install.trigger_statements(ORA, orders_info(), bridge_schema="BRIDGE")[0]
    key = re.search(r"SELECT (JSON_OBJECT\('id'.*?RETURNING VARCHAR2\(4000\)\))", trigger)
    assert key is not None
    assert key.group(1) == (
        "JSON_OBJECT('id' VALUE TO_CHAR(:NEW.\"ID\", 'TM9') FORMAT JSON, "
        "'region' VALUE :NEW.\"REGION\" NULL ON NULL RETURNING VARCHAR2(4000))"
    )


# --- errors -------------------------------------------------------------------------------------


def stand_in() -> types.ModuleType:
    """The few names of python-oracledb that bridge/dialects/oracle.py uses, where the
    driver is not installed (it is an optional dependency: bridge-sync[oracle])."""
    module = types.ModuleType("oracledb")

    class Error(Exception):
        pass

    class DatabaseError(Error):
        pass

    class InterfaceError(Error):
        pass

    class IntegrityError(DatabaseError):
        pass

    class DataError(DatabaseError):
        pass

    class _Error:
        """As the driver's: the message, and its code as `full_code`."""

        def __init__(self, message: str) -> None:
            self.message = message
            self.full_code = message.split(":")[0]

        def __str__(self) -> str:
            return self.message

    errors = types.ModuleType("oracledb.errors")
    errors._Error = _Error  # type: ignore[attr-defined]
    for name, value in {
        "Error": Error,
        "DatabaseError": DatabaseError,
        "InterfaceError": InterfaceError,
        "IntegrityError": IntegrityError,
        "DataError": DataError,
        "errors": errors,
    }.items():
        setattr(module, name, value)
    for name in ("NUMBER", "TIMESTAMP", "CLOB", "NCLOB", "BLOB", "LONG", "LONG_RAW"):
        setattr(module, f"DB_TYPE_{name}", f"DB_TYPE_{name}")
    return module


@pytest.fixture
def oracledb(monkeypatch: pytest.MonkeyPatch) -> Any:
    """python-oracledb, or a stand-in for its exceptions and type names."""
    try:
        import oracledb as driver
    except ImportError:
        driver = stand_in()
        monkeypatch.setitem(sys.modules, "oracledb", driver)
        monkeypatch.setitem(sys.modules, "oracledb.errors", driver.errors)
    return driver


def oracle_error(driver: Any, full_code: str, cls: Any = None) -> BaseException:
    """An exception as python-oracledb raises it: args[0] an _Error with `full_code`."""
    detail = driver.errors._Error(f"{full_code}: message from the server")
    return (cls or driver.DatabaseError)(detail)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ORA-00060", dbapi.Deadlock),
        ("ORA-04068", dbapi.Deadlock),
        ("ORA-00001", dbapi.UniqueViolation),
        ("ORA-02291", dbapi.ForeignKeyViolation),
        ("ORA-02292", dbapi.ForeignKeyViolation),
        ("ORA-03113", dbapi.ConnectionLost),
        ("ORA-03114", dbapi.ConnectionLost),
        ("ORA-03135", dbapi.ConnectionLost),
        ("ORA-00028", dbapi.ConnectionLost),
        ("DPY-4011", dbapi.ConnectionLost),
        ("DPY-1001", dbapi.ConnectionLost),
        ("ORA-12899", dbapi.Unwritable),
        ("ORA-01438", dbapi.Unwritable),
        ("ORA-01722", dbapi.Unwritable),
        ("ORA-01830", dbapi.Unwritable),
        ("ORA-01861", dbapi.Unwritable),
        ("ORA-02290", dbapi.Unwritable),
        ("ORA-01400", dbapi.Unwritable),
        ("ORA-01465", dbapi.Unwritable),
        ("ORA-20101", dbapi.Unwritable),
        ("ORA-00942", dbapi.DbError),
        ("ORA-00900", dbapi.DbError),
    ],
)
def test_classify(oracledb: Any, code: str, kind: type[dbapi.DbError]) -> None:
    assert classify(oracle_error(oracledb, code)) is kind


def test_classify_reads_the_message_when_there_is_no_code(oracledb: Any) -> None:
    assert classify(oracledb.DatabaseError("ORA-00060: deadlock detected")) is dbapi.Deadlock
    assert classify(oracledb.IntegrityError("constraint")) is dbapi.Unwritable
    assert classify(ValueError("not a database error")) is None


def test_a_driver_error_is_raised_as_its_class(oracledb: Any) -> None:
    class Raw:
        def execute(self, *_: Any) -> None:
            raise oracle_error(oracledb, "ORA-00001")

    conn = OracleConnection(object(), "named", classify)
    with pytest.raises(dbapi.UniqueViolation) as caught:
        conn.call(Raw().execute, "INSERT")
    assert "ORA-00001" in str(caught.value)


# --- binds and the session ------------------------------------------------------------------------


def test_binds_become_named_oracle_binds() -> None:
    conn = OracleConnection(object(), "named", classify)
    text, args = conn.bind(
        "SELECT 1 FROM t WHERE a = %(p1)s AND b = %(p1)s AND c = %(key)s AND d LIKE 'x%%'",
        {"p1": 5, "key": "k", "unused": 1},
    )
    assert text == "SELECT 1 FROM t WHERE a = :p1 AND b = :p1 AND c = :key AND d LIKE 'x%'"
    assert args == {"p1": 5, "key": "k"}


def test_a_reserved_word_is_not_a_bind_name() -> None:
    """ORA-01745: `:table` is not a bind variable; bridge's `table` parameter goes as
    `:table_`."""
    conn = OracleConnection(object(), "named", classify)
    text, args = conn.bind(
        "SELECT STANDARD_HASH(%(table)s || CHR(10) || %(key)s, 'SHA256') FROM DUAL",
        {"table": "ORDERS", "key": '{"ID":1}'},
    )
    assert text == "SELECT STANDARD_HASH(:table_ || CHR(10) || :key, 'SHA256') FROM DUAL"
    assert args == {"table_": "ORDERS", "key": '{"ID":1}'}


def test_lists_and_aware_datetimes_are_bound_as_oracle_takes_them() -> None:
    import datetime as dt

    conn = OracleConnection(object(), "named", classify)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    _, args = conn.bind("SELECT %(gaps)s, %(ts)s FROM DUAL", {"gaps": [3, 5], "ts": when})
    assert args == {"gaps": "[3, 5]", "ts": dt.datetime(2026, 1, 2, 1, 4, 5, 123456)}


def test_a_template_with_several_statements_keeps_the_last_rows() -> None:
    """A PL/SQL block, then the SELECT of what it kept: the SELECT's rows are read; a
    statement without rows reads as none (cleanup reads every statement)."""

    class RawCursor:
        description: Any = None

        def __init__(self) -> None:
            self.executed: list[tuple[str, Any]] = []

        def execute(self, text: str, args: Any) -> None:
            self.executed.append((text, args))
            self.description = [("N",)] if text.startswith("SELECT") else None

        def fetchall(self) -> list[tuple[Any, ...]]:
            return [(7,)]

        def close(self) -> None:
            pass

    raw_cursor = RawCursor()

    class Raw:
        def cursor(self) -> RawCursor:
            return raw_cursor

    conn = OracleConnection(Raw(), "named", classify)
    cur = conn.execute(
        ORA.render("cleanup", dry_run=False, kind="inbox").split("-- bridge:statement")[0]
        + "-- bridge:statement\nSELECT 7 AS n FROM DUAL",
        {"cutoff": 90, "limit": 10},
    )
    assert cur.fetchall() == [(7,)]
    assert ":cutoff" in raw_cursor.executed[0][0]
    assert raw_cursor.executed[0][1] == {"cutoff": 90, "limit": 10}
    only_block = conn.execute("BEGIN NULL; END;")
    assert only_block.fetchall() == [] and only_block.fetchone() is None


def test_input_type_handler(oracledb: Any) -> None:
    import datetime as dt

    from bridge.dialects.oracle import input_type

    class FakeCursor:
        def var(self, typ: Any, arraysize: int = 1, inconverter: Any = None) -> Any:
            return (typ, inconverter)

    cur = FakeCursor()
    assert input_type(cur, True, 1) == (oracledb.DB_TYPE_NUMBER, int)
    assert input_type(cur, dt.datetime(2026, 1, 1), 1)[0] is oracledb.DB_TYPE_TIMESTAMP
    assert input_type(cur, "x" * 4001, 1)[0] is oracledb.DB_TYPE_CLOB
    assert input_type(cur, "é" * 2001, 1)[0] is oracledb.DB_TYPE_CLOB  # 4002 bytes
    assert input_type(cur, b"x" * 2001, 1)[0] is oracledb.DB_TYPE_BLOB
    assert input_type(cur, "short", 1) is None and input_type(cur, 5, 1) is None


def test_the_url_must_name_a_service() -> None:
    from bridge.errors import DatabaseError

    with pytest.raises(DatabaseError, match="service_name=FREEPDB1"):
        ORA.connect("oracle+oracledb://bridge:secret@127.0.0.1:1521/")


def test_the_dialect_is_found_by_url_name() -> None:
    assert isinstance(by_name("oracle"), OracleDialect)


def test_session_statements() -> None:
    session = ORA.statements("session")
    assert "ALTER SESSION SET TIME_ZONE = '+00:00'" in session
    assert "ALTER SESSION SET ISOLATION_LEVEL = READ COMMITTED" in session
    assert all(not s.endswith(";") for s in session)


# --- printing -------------------------------------------------------------------------------------


def test_printed_sql_ends_with_a_semicolon_and_plsql_with_a_slash() -> None:
    assert ORA.printed("SELECT 1 FROM DUAL") == "SELECT 1 FROM DUAL;"
    assert ORA.printed("SELECT 1 FROM DUAL;") == "SELECT 1 FROM DUAL;"
    assert ORA.printed("BEGIN\n    NULL;\nEND;") == "BEGIN\n    NULL;\nEND;\n/"
    assert ORA.printed("DECLARE x NUMBER; BEGIN NULL; END;").endswith("END;\n/")
    trigger = 'CREATE OR REPLACE TRIGGER "t" AFTER INSERT ON "T" FOR EACH ROW\nBEGIN NULL; END;'
    assert ORA.printed(trigger).endswith("END;\n/")
    assert ORA.printed("CREATE OR REPLACE PACKAGE p AS x NUMBER; END p;").endswith("END p;\n/")
    assert ORA.printed("CREATE TABLE t (x NUMBER)") == "CREATE TABLE t (x NUMBER);"


def test_the_install_script_reads_like_a_dba_script() -> None:
    script = printed(install.trigger_statements(ORA, orders_info(), bridge_schema="BRIDGE"))
    assert "generated by bridge" in script and "columns hash" in script
    assert "bridge uninstall-triggers --table orders" in script
    assert script.count("\n/\n") == 1  # the trigger; the MERGE ends with `;`
    init = printed(install.init_statements(ORA, "PARIS"))
    assert init.count("COMMENT ON TABLE") == 8


def test_the_capture_sends_json_documents_as_text() -> None:
    trigger = install.trigger_statements(ORA, orders_info(), bridge_schema="BRIDGE")[0]
    assert "'json_text' VALUE '[\"doc\"]' FORMAT JSON" in trigger
