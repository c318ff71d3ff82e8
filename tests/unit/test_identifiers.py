import pytest

from bridge import identifiers
from bridge.errors import IdentifierError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "dialect", "quoted"),
    [
        ("orders", "postgres", '"orders"'),
        ("Orders", "postgres", '"Orders"'),
        ("order_lines$2", "postgres", '"order_lines$2"'),
        ("orders", "tsql", "[orders]"),
        ("orders", "oracle", '"orders"'),
        ("orders", "mysql", "`orders`"),
    ],
)
def test_quote_per_dialect(name, dialect, quoted):
    assert identifiers.quote(name, dialect) == quoted


def test_schema_qualified():
    assert identifiers.quote_qualified("sales.orders") == '"sales"."orders"'


@pytest.mark.parametrize(
    "name",
    ['orders"; DROP TABLE x; --', "1orders", "", "ord ers", "a.b.c", "orders;", "x" * 64, "é"],
)
def test_invalid_names_are_refused(name):
    with pytest.raises(IdentifierError):
        identifiers.quote_qualified(name)


def test_generated_object_name_too_long():
    with pytest.raises(IdentifierError, match="too long"):
        identifiers.object_name("bridge_capture_", "x" * 60)
