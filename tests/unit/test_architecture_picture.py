"""The architecture picture cannot go stale silently: docs/architecture.svg carries the
sha256 of the docs/architecture.dot it was rendered from (docs/render stamps it), and
the names the picture shows are the code's. Needs no Graphviz."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from bridge import broker, topology

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SOURCES = sorted(DOCS.glob("*.dot"))
STAMP = re.compile(r"<!-- rendered from (?P<name>\S+) sha256:(?P<digest>[0-9a-f]{64}) -->")


def test_there_is_a_picture() -> None:
    assert DOCS / "architecture.dot" in SOURCES


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_svg_is_rendered_from_the_current_source(source: Path) -> None:
    svg = source.with_suffix(".svg")
    assert svg.is_file(), f"{svg.name} is missing: run docs/render"
    stamps = STAMP.findall(svg.read_text())
    assert len(stamps) == 1, f"{svg.name} has {len(stamps)} stamps: render it with docs/render"
    name, digest = stamps[0]
    assert name == source.name
    current = hashlib.sha256(source.read_bytes()).hexdigest()
    assert digest == current, (
        f"{svg.name} was rendered from another {source.name}: run docs/render and commit both"
    )


def test_picture_is_shown_in_the_docs() -> None:
    assert "](architecture.svg)" in (DOCS / "architecture.md").read_text()
    assert "](docs/architecture.svg)" in (ROOT / "README.md").read_text()


def code_text() -> str:
    parts = [p.read_text() for p in (ROOT / "bridge").rglob("*.py")]
    parts += [p.read_text() for p in (ROOT / "sql_templates").rglob("*.j2")]
    return "\n".join(parts)


def test_names_in_the_picture_are_the_codes() -> None:
    """Exchanges, tables, headers and settings (`bridge.x`, `bridge_x`, `x-...`) appear in
    bridge/ or sql_templates/; queues are the ones topology declares for its sites."""
    dot = (DOCS / "architecture.dot").read_text()
    labels = "\n".join(re.findall(r'label="([^"]*)"', dot))
    code = code_text()
    names = set(re.findall(r"\bbridge[._][a-z_]+[a-z]", labels))
    names |= set(re.findall(r"\bx-[a-z-]+[a-z]", labels))
    assert {"bridge.events", "bridge.replay", "bridge.dlx", "bridge_outbox"} <= names
    unknown = sorted(n for n in names if n not in code)
    assert unknown == [], f"names in architecture.dot that the code does not have: {unknown}"

    sites = ["PARIS", "LONDON", "MADRID"]
    declared = set(topology.queue_names(sites, "PARIS"))
    declared |= {f"{q}.dlq" for q in topology.queue_names(sites, "PARIS")}
    declared |= set(topology.acks_queue_names(sites))
    queues = set(re.findall(r"\bSITE_[A-Z_]+(?:\.dlq|\.acks)?", labels)) - {"SITE_"}
    assert queues, "the picture shows no queue"
    assert sorted(queues - declared) == [], "queues topology does not declare"
    assert broker.EVENTS_EXCHANGE in labels and broker.ACKS_EXCHANGE in labels
