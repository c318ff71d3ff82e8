"""How `bridge` writes its log: text for people, or one JSON object per line for log
shippers (`--log-format json`), with passwords masked in both.

bridge's log calls carry their context as leading `key=value` tokens of the message
(`site=PARIS event=0b6f... table=orders conflict: ...`). The JSON formatter lifts those
tokens into fields (`event=` becomes `event_id`, `message=` `message_id`, `entry=`
`entry_id`) and keeps the message whole; docs/operations.md, "Logs", lists the fields.
Only the run of tokens at the start is read, so a reason quoted later in the message
(which may hold anything) never sets a field.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import sys
from typing import Any, TextIO, cast

from bridge.redaction import redact

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"

# token in a message -> field of the JSON object
FIELDS = {
    "site": "site",
    "event": "event_id",
    "table": "table",
    "origin": "origin",
    "queue": "queue",
    "message": "message_id",
    "entry": "entry_id",
}
_TOKEN = re.compile(r"(?P<key>[a-z_]+)=(?P<value>\S+)(?:\s+|$)")


def context(message: str) -> dict[str, str]:
    """The fields named by the leading `key=value` tokens of a log message (known keys
    only; the first other word ends them). A value printed as None (no id) is left out."""
    fields: dict[str, str] = {}
    pos = 0
    while (m := _TOKEN.match(message, pos)) and m["key"] in FIELDS:
        if m["value"] != "None":
            fields[FIELDS[m["key"]]] = m["value"]
        pos = m.end()
    return fields


class RedactFilter(logging.Filter):
    """Masks the password of every URL (`scheme://user:***@`) and `password=` in a record's
    message and exception text, whatever logged it (bridge, pika, psycopg): defense in
    depth behind the code's own care. Installed on the handler by `setup`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ts (ISO-8601 UTC, milliseconds), level,
    logger, thread, message, the context fields of the message, and `exception` (the
    traceback, newlines escaped) when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": message,
            **context(message),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class LogLines(io.TextIOBase):
    """A text stream whose every line becomes an INFO record of `logger`: where progress
    lines (bridge/meter.py) go in the JSON format, so that stderr stays one JSON object
    per line."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self._partial = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            if line.strip():
                self.logger.info("%s", line.strip())
        return len(text)


_progress: TextIO | None = None  # set by setup() in the JSON format


def progress_stream() -> TextIO:
    """Where progress meters write: stderr, or log records in the JSON format."""
    return _progress if _progress is not None else sys.stderr


def handler(log_format: str, stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) in `log_format`, passwords masked."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: use one of {', '.join(FORMATS)}")
    h = logging.StreamHandler(sys.stderr if stream is None else stream)
    h.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    h.addFilter(RedactFilter())
    return h


def setup(level: str, log_format: str = "text") -> None:
    """Send every log record at `level` and above to stderr in `log_format` (as
    logging.basicConfig: nothing changes where the root logger has handlers already, as
    under pytest). pika logs only at DEBUG (its own warnings repeat what bridge reports
    with context)."""
    global _progress
    logging.basicConfig(level=level.upper(), handlers=[handler(log_format)])
    lines = LogLines(logging.getLogger("bridge.progress"))
    _progress = cast(TextIO, lines) if log_format == "json" else None
    logging.getLogger("pika").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.CRITICAL
    )
