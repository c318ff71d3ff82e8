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


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ord ers", "is not a valid identifier: use ASCII letters, digits, _ or $"),
        ('"orders"', "is not a valid identifier"),
        ("a.b.c", "has too many parts: use table or schema.table"),
        ("x" * 64, "is longer than 63 characters"),
    ],
)
def test_a_refusal_says_what_is_accepted_and_points_to_the_doc(name, message):
    with pytest.raises(IdentifierError) as refused:
        identifiers.quote_qualified(name)
    assert message in str(refused.value)
    assert str(refused.value).endswith('see "Table names" in docs/configuration.md')


def test_the_longest_table_name_leaves_room_for_the_capture_function():
    assert identifiers.object_name("bridge_capture_", "x" * 48) == "bridge_capture_" + "x" * 48
    with pytest.raises(IdentifierError, match='see "Table names"'):
        identifiers.object_name("bridge_capture_", "x" * 49)
