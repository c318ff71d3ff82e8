"""Checks of the generated SQL, shared by tests/unit/test_templates.py (no database) and
tests/integration/test_sql_on_server.py (the real PostgreSQL):

- every template of the dialect rendered, for table shapes that reach every branch of the
  templates (schema-qualified, composite text key, identity key, every value kind, 120
  columns, key only);
- a small SQL scanner that knows strings, quoted identifiers, comments and dollar quotes:
  the bodies of functions (`$bridge$ ... $bridge$`) and the arguments of the calls that
  PostgreSQL limits to 100 arguments (FUNC_MAX_ARGS).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import meta

from bridge import apply, bulk, install, sql
from bridge.dialects.base import Dialect, TableInfo, literal

# Variadic functions: PostgreSQL refuses a call with more than FUNC_MAX_ARGS (100)
# arguments ("cannot pass more than 100 arguments to a function"), at install time for
# a trigger body only when that branch first runs.
LIMITED = (
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "concat",
    "concat_ws",
    "format",
)
MAX_ARGS = 100

# --- table shapes --------------------------------------------------------------------------


# pg_type.typcategory of the base types the shapes use (what introspection reads)
CATEGORIES = {
    "int2": "N", "int4": "N", "int8": "N", "numeric": "N", "float8": "N",
    "text": "S", "bool": "B", "bytea": "U", "uuid": "U", "json": "U", "jsonb": "U",
    "date": "D", "time": "D", "timestamp": "D", "timestamptz": "D", "_text": "A",
}  # fmt: skip


@dataclass(frozen=True)
class Shape:
    """A business table: columns as (name, type as format_type() prints it, base type), in
    their order (attnum); `identity` a GENERATED ALWAYS AS IDENTITY column, `generated` the
    stored generated columns (name -> expression), which are not captured."""

    table: str
    columns: tuple[tuple[str, str, str], ...]
    pk: tuple[str, ...]
    identity: str | None = None
    generated: tuple[tuple[str, str], ...] = ()
    deferrable: bool = False  # PRIMARY KEY ... DEFERRABLE

    def info(self, dialect: Dialect) -> TableInfo:
        computed = dict(self.generated)
        cols = tuple(
            dialect.column(
                attnum,
                name,
                sql_type,
                base,
                CATEGORIES[base],
                identity_always=name == self.identity,
            )
            for attnum, (name, sql_type, base) in enumerate(self.columns, 1)
            if name not in computed
        )
        pk = tuple(c for name in self.pk for c in cols if c.name == name)
        return TableInfo(
            table=dialect.table_ref(self.table),
            columns=cols,
            pk=pk,
            non_pk=tuple(c for c in cols if c not in pk),
            identity_always=self.identity is not None,
            generated=tuple(name for name, _, _ in self.columns if name in computed),
            pk_deferrable=self.deferrable,
        )

    def ddl(self) -> str:
        """CREATE TABLE for PostgreSQL (names as written, all quoted)."""
        computed = dict(self.generated)
        defs = [
            f'"{name}" {sql_type}'
            + (" GENERATED ALWAYS AS IDENTITY" if name == self.identity else "")
            + (f" GENERATED ALWAYS AS ({computed[name]}) STORED" if name in computed else "")
            for name, sql_type, _ in self.columns
        ]
        defs.append(
            "PRIMARY KEY ("
            + ", ".join(f'"{c}"' for c in self.pk)
            + (") DEFERRABLE" if self.deferrable else ")")
        )
        table = ".".join(f'"{part}"' for part in self.table.split("."))
        return f"CREATE TABLE {table} (\n    " + ",\n    ".join(defs) + "\n)"


SHAPES = (
    # the golden files' table: a column of each way a value is captured: to_jsonb as is
    # (id, Customer), overridden (Amount, updated_at, blob, doc, tags), a json column set
    # aside before to_jsonb (legacy), a generated column (total) and an identity column
    # written only on insert (seq)
    Shape(
        "orders",
        (
            ("id", "bigint", "int8"),
            ("Customer", "text", "text"),
            ("Amount", "numeric(12,2)", "numeric"),
            ("updated_at", "timestamp with time zone", "timestamptz"),
            ("blob", "bytea", "bytea"),
            ("total", "numeric", "numeric"),
            ("doc", "jsonb", "jsonb"),
            ("legacy", "json", "json"),
            ("tags", "text[]", "_text"),
            ("seq", "bigint", "int8"),
        ),
        pk=("id",),
        identity="seq",
        generated=(("total", '"Amount" * 2'),),
    ),
    # another schema, a composite key with text, every other kind
    Shape(
        "sales.Lines",
        (
            ("order_id", "bigint", "int8"),
            ("Line", "text", "text"),
            ("ref", "uuid", "uuid"),
            ("doc", "jsonb", "jsonb"),
            ("day", "date", "date"),
            ("at_time", "time without time zone", "time"),
            ("local_ts", "timestamp without time zone", "timestamp"),
            ("ok", "boolean", "bool"),
            ("ratio", "double precision", "float8"),
            ("small", "smallint", "int2"),
        ),
        pk=("order_id", "Line"),
    ),
    # a GENERATED ALWAYS identity key: the upsert must override it
    Shape(
        "events",
        (("id", "bigint", "int8"), ("note", "text", "text")),
        pk=("id",),
        identity="id",
    ),
    # wider than one jsonb_build_object call can take (240 arguments for the row)
    Shape("wide", tuple((f"c{i}", "numeric", "numeric") for i in range(120)), pk=("c0",)),
    # nothing but its key: an upsert has nothing to update
    Shape("tags", (("tag", "text", "text"),), pk=("tag",)),
    # a DEFERRABLE key (keys swapped or shifted in one statement): no ON CONFLICT
    Shape(
        "ranks",
        (("pos", "integer", "int4"), ("name", "text", "text"), ("seq", "bigint", "int8")),
        pk=("pos",),
        identity="seq",
        deferrable=True,
    ),
    Shape("slots", (("slot", "integer", "int4"),), pk=("slot",), deferrable=True),
)

# --- every template rendered -----------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    template: str
    table: str | None  # the table it was rendered for, if any
    statements: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.template}[{self.table}]" if self.table else self.template


def template_names(dialect: Dialect) -> list[str]:
    """Every template of the dialect a statement comes from (macros files start with _)."""
    return sorted(
        p.name.removesuffix(".sql.j2")
        for p in (sql.templates_dir() / dialect.name).glob("*.sql.j2")
        if not p.name.startswith("_")
    )


def _variables(dialect: Dialect, name: str) -> set[str]:
    env = sql.environment(dialect.name)
    assert env.loader is not None
    source = env.loader.get_source(env, f"{name}.sql.j2")[0]
    return set(meta.find_undeclared_variables(env.parse(source)))


def render_all(dialect: Dialect, infos: list[TableInfo], site: str = "PARIS") -> list[Rendered]:
    """Every template, rendered as bridge renders it: install's own functions for what
    they install, {table, info} per table for the per-table templates, nothing for the
    rest. A template needing anything else fails here until this function learns it."""
    out: list[Rendered] = []
    for name in template_names(dialect):
        if name == "init":
            out.append(Rendered(name, None, tuple(install.init_statements(dialect, site))))
        elif name == "capture_install":
            out += [
                Rendered(name, i.table.name, tuple(install.trigger_statements(dialect, i)))
                for i in infos
            ]
        elif name == "capture_uninstall":
            out += [
                Rendered(
                    name, i.table.name, tuple(install.uninstall_statements(dialect, i.table.name))
                )
                for i in infos
            ]
        elif name == "apply_begin":
            tables = [literal(i.table.ref) for i in infos]
            names = [literal(i.table.name) for i in infos]
            out.append(
                Rendered(name, None, tuple(dialect.statements(name, tables=tables, names=names)))
            )
        elif name == "apply_compare":
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        dialect.render(name, column=c, theirs=theirs, mine="text")
                        for c in i.columns
                        if c.base_type != "json"  # no order: cannot be a policy column
                        for theirs in ("text", "json")
                    ),
                )
                for i in infos
            ]
        elif name == "cleanup":
            for switches in cleanup_variants():
                out.append(Rendered(name, None, tuple(dialect.statements(name, **switches))))
        elif name == "uninit":
            functions = [dialect.capture_function(i.table.name) for i in infos]
            out.append(Rendered(name, None, tuple(dialect.statements(name, functions=functions))))
        elif name == "apply_constraints":
            for deferred in (False, True):
                out.append(Rendered(name, None, tuple(dialect.statements(name, deferred=deferred))))
        elif name == "inbox_has":
            ids = [literal("6f1c1d5e-8e0a-4c1e-9d55-7b8a3c0e9f10")] * 2
            out.append(Rendered(name, None, tuple(dialect.statements(name, ids=ids))))
        elif name == "archive_version":
            types = [literal(f"orders.{op}") for op in ("insert", "update", "delete")]
            out.append(Rendered(name, None, tuple(dialect.statements(name, types=types))))
        elif name == "archive_replay":
            out += [
                Rendered(name, None, tuple(dialect.statements(name, **switches)))
                for switches in archive_replay_variants()
            ]
        elif name == "status":
            for backlog in (False, True):
                out.append(Rendered(name, None, tuple(dialect.statements(name, backlog=backlog))))
        elif name == "uninit_guard":
            for outbox in (False, True):
                out.append(Rendered(name, None, tuple(dialect.statements(name, outbox=outbox))))
        elif name.startswith("verify_chunk"):
            # a key range (lower, upper] with either end open, as bridge/verify_sites.py
            # renders it
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        dialect.render(name, table=i.table, info=i, lower=lower, upper=upper)
                        for lower in (False, True)
                        for upper in (False, True)
                    ),
                )
                for i in infos
            ]
        elif name == "bootstrap_rows":
            # bridge/bootstrap.py: the first chunk and those after a key, and their count
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        dialect.render(name, table=i.table, info=i, after=after, count=count)
                        for after in (False, True)
                        for count in (False, True)
                    ),
                )
                for i in infos
            ]
        elif name in bulk.TEMPLATES:
            # the set-based apply, as bridge/bulk.py renders it: not for a DEFERRABLE key
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        dialect.render(name, table=i.table, info=i, **switches)
                        for switches in bulk.variants(name, i)
                    ),
                )
                for i in infos
                if not i.pk_deferrable
            ]
        elif name in {template for template, _ in apply.TEMPLATES.values()}:
            out += [
                Rendered(
                    name,
                    i.table.name,
                    tuple(
                        getattr(apply.statements(dialect, i), field)
                        for field, (template, _) in apply.TEMPLATES.items()
                        if template == name
                    ),
                )
                for i in infos
            ]
        else:
            needs = _variables(dialect, name)
            if not needs:
                out.append(Rendered(name, None, tuple(dialect.statements(name))))
            elif needs <= {"table", "info"}:
                out += [
                    Rendered(
                        name, i.table.name, tuple(dialect.statements(name, table=i.table, info=i))
                    )
                    for i in infos
                ]
            else:
                raise AssertionError(
                    f"template {name} needs {sorted(needs)}: teach tests/sqlcheck.py "
                    "render_all how bridge renders it"
                )
    return out


def cleanup_variants() -> list[dict[str, Any]]:
    """cleanup as bridge/cleanup.py renders it: every kind counted, or one kind purged."""
    from bridge.cleanup import KINDS

    return [{"dry_run": True, "kind": None}] + [{"dry_run": False, "kind": k} for k in KINDS]


def archive_replay_variants() -> list[dict[str, Any]]:
    """archive_replay as bridge/replay.py renders it: counted or read, every filter or none."""
    every = {
        "since": True,
        "until": True,
        "origins": [literal("PARIS"), literal("MADRID")],
        "exclude": literal("LONDON"),
        "types": [literal(f"orders.{op}") for op in ("insert", "update", "delete")],
    }
    none = {"since": False, "until": False, "origins": [], "exclude": None, "types": []}
    return [{"count": count, **filters} for count in (False, True) for filters in (every, none)]


def placeholders_to_params(statement: str) -> tuple[str, list[str]]:
    """psycopg's %(name)s (and binary %(name)b) placeholders as PostgreSQL's $1, $2 …
    (PREPARE's), and the names in their order; %% becomes %."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"%%|%\((\w+)\)[sb]", number, statement), names


# --- the scanner -----------------------------------------------------------------------------

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _ident_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


@dataclass(frozen=True)
class Atom:
    """A string, quoted identifier, comment or dollar-quoted string at text[start:end]."""

    kind: str  # "string", "identifier", "comment", "dollar"
    start: int
    end: int
    body: str  # the content between the quotes (a dollar quote's body)


def atom_at(text: str, i: int) -> Atom | None:
    """The atom starting at text[i], or None if an ordinary character is there."""
    c, n = text[i], len(text)
    prev = text[i - 1] if i else " "
    if c == "'":
        # E'...' strings take backslash escapes
        escapes = prev in "eE" and (i < 2 or not _ident_char(text[i - 2]))
        j = i + 1
        while j < n:
            if (escapes and text[j] == "\\") or text.startswith("''", j):  # an escaped char
                j += 2
            elif text[j] == "'":
                return Atom("string", i, j + 1, text[i + 1 : j])
            else:
                j += 1
        raise ValueError(f"unterminated string at offset {i}: {text[i : i + 60]!r}")
    if c == '"':
        j = i + 1
        while j < n:
            if text.startswith('""', j):
                j += 2
            elif text[j] == '"':
                return Atom("identifier", i, j + 1, text[i + 1 : j].replace('""', '"'))
            else:
                j += 1
        raise ValueError(f"unterminated quoted identifier at offset {i}: {text[i : i + 60]!r}")
    if text.startswith("--", i):
        j = text.find("\n", i)
        return Atom("comment", i, n if j < 0 else j, "")
    if text.startswith("/*", i):
        j = text.find("*/", i + 2)
        if j < 0:
            raise ValueError(f"unterminated comment at offset {i}")
        return Atom("comment", i, j + 2, "")
    if c == "$" and not _ident_char(prev):
        m = _DOLLAR.match(text, i)
        if m:
            close = text.find(m.group(0), m.end())
            if close < 0:
                raise ValueError(f"unterminated {m.group(0)} quote at offset {i}")
            return Atom("dollar", i, close + len(m.group(0)), text[m.end() : close])
    return None


def atoms(text: str) -> Iterator[Atom]:
    i = 0
    while i < len(text):
        atom = atom_at(text, i)
        if atom:
            yield atom
            i = atom.end
        else:
            i += 1


def dollar_bodies(text: str) -> list[str]:
    """The bodies of the dollar-quoted strings of `text` (a function's code), nested ones
    included."""
    found = []
    for atom in atoms(text):
        if atom.kind == "dollar":
            found.append(atom.body)
            found += dollar_bodies(atom.body)
    return found


@dataclass(frozen=True)
class Call:
    name: str
    args: int
    at: int  # offset of the name in the scanned text
    text: str  # the call, name to closing parenthesis


def _arguments(text: str, open_paren: int) -> tuple[int, int]:
    """Arguments of the call whose "(" is at `open_paren`: (count, offset of its ")")."""
    depth, commas, content, i = 0, 0, False, open_paren + 1
    while i < len(text):
        atom = atom_at(text, i)
        if atom:
            content = content or atom.kind != "comment"
            i = atom.end
            continue
        c = text[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            if depth == 0:
                if c == "]":
                    raise ValueError(f"unbalanced ] at offset {i}")
                return (commas + 1 if content else 0), i
            depth -= 1
        elif c == "," and depth == 0:
            commas += 1
        if not c.isspace():
            content = True
        i += 1
    raise ValueError(f"call at offset {open_paren} is never closed: {text[open_paren:][:60]!r}")


def calls(text: str, names: tuple[str, ...] = LIMITED) -> list[Call]:
    """Every call of one of `names` in `text`, nested calls included (outside strings,
    comments and dollar quotes: scan a function's body with dollar_bodies)."""
    found: list[Call] = []
    wanted = {n.lower() for n in names}
    i = 0
    while i < len(text):
        atom = atom_at(text, i)
        name: str | None = None
        if atom:
            start, i = atom.start, atom.end
            if atom.kind == "identifier" and atom.body in wanted:  # "jsonb_build_object"(
                name = atom.body
        elif (
            _ident_char(text[i])
            and not text[i].isdigit()
            and (i == 0 or not _ident_char(text[i - 1]))
        ):
            start = i
            while i < len(text) and _ident_char(text[i]):
                i += 1
            if text[start:i].lower() in wanted:
                name = text[start:i].lower()
        else:
            i += 1
            continue
        if name is None:
            continue
        j = i
        while j < len(text) and text[j].isspace():
            j += 1
        if j < len(text) and text[j] == "(":
            count, close = _arguments(text, j)
            found.append(Call(name, count, start, text[start : close + 1]))
    return found


def every_call(text: str, names: tuple[str, ...] = LIMITED) -> list[Call]:
    """calls() in `text` and in every function body inside it."""
    return [c for piece in (text, *dollar_bodies(text)) for c in calls(piece, names)]


def too_many_arguments(text: str, limit: int = MAX_ARGS) -> list[str]:
    """One line per call in `text` (function bodies included) with more than `limit`
    arguments: what PostgreSQL would refuse."""
    return [
        f"{c.name}() with {c.args} arguments (PostgreSQL takes at most {limit}): {c.text[:120]}…"
        for c in every_call(text)
        if c.args > limit
    ]


def is_plpgsql_function(statement: str) -> bool:
    head = statement.lstrip().upper()
    return head.startswith(("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")) and bool(
        dollar_bodies(statement)
    )


VERIFY_CHUNK = ("verify_chunk_bounds", "verify_chunk_sum", "verify_chunk_keys", "verify_chunk_rows")


def verify_statements(dialect: Dialect, info: TableInfo) -> list[str]:
    """`bridge verify`'s statements for the golden files: the whole table's chunk bounds
    and sum (no range), then each template over a range (lower, upper]."""
    ctx = {"table": info.table, "info": info}
    return [
        dialect.render("verify_count", **ctx),
        dialect.render("verify_chunk_bounds", lower=False, upper=False, **ctx),
        dialect.render("verify_chunk_sum", lower=False, upper=False, **ctx),
        *(dialect.render(name, lower=True, upper=True, **ctx) for name in VERIFY_CHUNK),
    ]
