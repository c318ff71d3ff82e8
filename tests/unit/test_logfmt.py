"""The log formats (bridge/logfmt.py), the password masking of bridge/redaction.py, and the
context every log call about one event carries (read from bridge's source)."""

from __future__ import annotations

import ast
import datetime as dt
import io
import json
import logging
import re
import sys
from pathlib import Path

import pytest

from bridge import config, logfmt, wire
from bridge.event import Event
from bridge.redaction import redact

pytestmark = pytest.mark.unit

BRIDGE = Path(logfmt.__file__).resolve().parent
SECRET = "Zq7-unit-s3cret"
EVENT_ID = "0b6f3c1e-8a51-4c1e-9a43-0f5a6bb1c2d3"


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"cannot reach amqp://paris:{SECRET}@127.0.0.1:5680/\nsecond line")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("bridge.apply", logging.WARNING, __file__, 1, msg, args, exc_info)


def _emit(log_format: str, record: logging.LogRecord) -> str:
    out = io.StringIO()
    logfmt.handler(log_format, out).handle(record)
    return out.getvalue()


def test_context_reads_the_leading_tokens_only():
    message = (
        f"site=PARIS event={EVENT_ID} table=sales.orders key={{'id': 1}} conflict: "
        "table=other site=X"
    )
    assert logfmt.context(message) == {
        "site": "PARIS",
        "event_id": EVENT_ID,
        "table": "sales.orders",
    }
    assert logfmt.context("site=PARIS queue=SITE_PARIS message=None dead-lettered") == {
        "site": "PARIS",
        "queue": "SITE_PARIS",
    }
    assert logfmt.context("verify: table orders: 2 key(s) differ") == {}


def test_json_line_has_the_fields_and_the_context():
    line = _emit(
        "json", _record("site=%s event=%s table=%s %s", "PARIS", EVENT_ID, "orders", "waiting")
    )
    assert line.count("\n") == 1
    obj = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["ts"])
    assert obj["level"] == "WARNING"
    assert obj["logger"] == "bridge.apply"
    assert obj["thread"] == "MainThread"
    assert obj["message"] == f"site=PARIS event={EVENT_ID} table=orders waiting"
    assert (obj["site"], obj["event_id"], obj["table"]) == ("PARIS", EVENT_ID, "orders")
    assert "exception" not in obj


def test_an_exception_is_one_json_line_with_its_traceback_masked():
    line = _emit("json", _record("site=%s crashed", "PARIS", exc=True))
    assert line.count("\n") == 1
    obj = json.loads(line)
    assert obj["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: cannot reach amqp://paris:***@127.0.0.1:5680/" in obj["exception"]
    assert SECRET not in line


@pytest.mark.parametrize("log_format", logfmt.FORMATS)
def test_passwords_are_masked_in_messages_and_tracebacks(log_format):
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/db"
    text = _emit(log_format, _record("site=%s cannot connect to %s", "PARIS", url, exc=True))
    assert "postgresql://postgres:***@127.0.0.1:1/db" in text
    assert "amqp://paris:***@127.0.0.1:5680/" in text
    assert SECRET not in text


def test_redact_masks_every_url_of_a_text():
    assert redact(f"amqp://a:{SECRET}@h1:5680/v,amqp://b:{SECRET}@h2/v") == (
        "amqp://a:***@h1:5680/v,amqp://b:***@h2/v"
    )
    # an unencoded '@' in the password: hidden whole, not up to its first '@'
    assert redact(f"postgresql://u:{SECRET}@x@db:5432/d") == "postgresql://u:***@db:5432/d"
    assert redact(f"'amqp://u:{SECRET}@h'") == "'amqp://u:***@h'"
    assert redact(f"host=h password={SECRET} user=u") == "host=h password=*** user=u"
    for plain in ("amqp://h:5680/v", "amqp://u@h/v", "amqp://u:***@h/"):
        assert redact(plain) == plain


def _event(event_id: str, table: str) -> Event:
    data = {"table": table, "op": "insert", "key": {"id": 1}, "row": {"id": 1}}
    return Event(event_id, dt.datetime.now(dt.UTC), "PARIS", f"{table}.insert", data)


def test_log_context_of_a_message():
    e = _event(EVENT_ID, "orders")
    f = _event("1c9d0d57-5b5e-4a3c-8f0e-2f8f6c1b9a11", "customers")
    body = wire.encode_events([e, f])
    assert wire.log_context(body, e.id) == f"event={e.id} table=customers,orders"
    assert wire.log_context(b"not json", "m1") == "message=m1"


def _log_calls() -> list[tuple[str, int, str, int]]:
    """Every log call of bridge/ with a literal format: (file, line, format, arguments
    after the format, -1 if they are unpacked)."""
    found = []
    for path in sorted(BRIDGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "log"
            ):
                continue
            args = node.args[1:] if node.func.attr == "log" else node.args
            if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                rest = args[1:]
                n = -1 if any(isinstance(a, ast.Starred) for a in rest) else len(rest)
                found.append((path.name, node.lineno, args[0].value, n))
    return found


# Lines about one event that cannot name its table: an ack says what became of an event
# at another site by its id alone (bridge/ackwire.py carries no table).
NO_TABLE = {("acks.py", "site=%s event=%s %s at %s: %s")}


def test_every_log_line_about_an_event_names_its_site_and_table():
    calls = _log_calls()
    assert len(calls) > 40, calls  # the walk found bridge's log calls
    missing = []
    for name, line, fmt, _ in calls:
        if "site=" in fmt and not fmt.startswith("site=%s"):
            missing.append((name, line, fmt, "site= must lead: the JSON fields read the start"))
        # (a line whose context is wire.log_context's, "site=%s %s", is tested above)
        if "event=" in fmt and (name, fmt) not in NO_TABLE:
            tokens = logfmt.context(fmt.replace("%s", "x").replace("%d", "1"))
            if not {"site", "event_id", "table"} <= set(tokens):
                missing.append((name, line, fmt, "no leading site= event= table="))
    assert missing == []


def test_progress_lines_become_log_records(caplog):
    lines = logfmt.LogLines(logging.getLogger("bridge.progress"))
    with caplog.at_level(logging.INFO, logger="bridge.progress"):
        lines.write("bootstrap orders: 10/")
        lines.write("20  50.0%\n")
        lines.write("bootstrap orders: 20 rows in 1.0s\n")
    assert not lines.isatty()
    assert [r.getMessage() for r in caplog.records] == [
        "bootstrap orders: 10/20  50.0%",
        "bootstrap orders: 20 rows in 1.0s",
    ]


def test_bridge_log_format_is_no_configuration_key(tmp_path):
    """BRIDGE_LOG_FORMAT (the command line's option) neither stops nor changes config
    loading, from the environment or from .env."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("BRIDGE_LOG_FORMAT=json\n")
    env = {
        "BRIDGE_SITE": "PARIS",
        "BRIDGE_DATABASE_URL": "postgresql://127.0.0.1/paris",
        "BRIDGE_AMQP_URL": "amqp://paris@127.0.0.1/",
        "BRIDGE_SITES": "PARIS",
        "BRIDGE_TABLES": "orders",
        "BRIDGE_LOG_FORMAT": "json",
    }
    cfg = config.load(None, env=env, dotenv=dotenv)
    assert cfg.site == "PARIS"
    assert "log_format" not in config.Config.__dataclass_fields__


def test_every_log_call_gives_its_format_its_arguments():
    """A wrong count is no error where it is logged: logging prints "--- Logging error ---"
    instead of the line, which a test of that path would not notice."""
    wrong = [
        (name, line, fmt, n)
        for name, line, fmt, n in _log_calls()
        if n >= 0 and len(re.findall(r"%[-#0 +]*\d*(?:\.\d+)?[sdrfi]", fmt)) != n
    ]
    assert wrong == []
