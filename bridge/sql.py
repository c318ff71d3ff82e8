"""Render the SQL templates under `sql_templates/<dialect>/`.

Python chooses the template and passes validated, already-quoted identifiers; every
statement bridge runs in a site database comes from here. A template may hold several
statements separated by a line `-- bridge:statement`.
"""

from __future__ import annotations

import sys
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2

STATEMENT_SEPARATOR = "-- bridge:statement"


def templates_dir() -> Path:
    candidates = [
        Path(__file__).resolve().parent.parent / "sql_templates",
        Path(sys.prefix) / "share" / "bridge" / "sql_templates",
    ]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"sql_templates not found in {[str(c) for c in candidates]}")


@cache
def environment(dialect: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / dialect)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(dialect: str, name: str, **context: Any) -> str:
    """Render `sql_templates/<dialect>/<name>.sql.j2` into one SQL text."""
    return environment(dialect).get_template(f"{name}.sql.j2").render(**context).strip()


def statements(dialect: str, name: str, **context: Any) -> list[str]:
    """Render a template and split it into its statements, as written in the template."""
    return list(split(render(dialect, name, **context)))


@lru_cache(maxsize=4096)
def split(text: str) -> tuple[str, ...]:
    """The statements of a rendered template (remembered: the same few texts are run for
    every event)."""
    return tuple(p.strip() for p in text.split(STATEMENT_SEPARATOR) if p.strip())
