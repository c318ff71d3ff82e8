"""Passwords out of text: one function for URLs given alone (a broker or database URL in
a message) and for any text that may hold some (a log line, an exception's traceback)."""

from __future__ import annotations

import re

# scheme://user:password@ : the password runs to the last '@' before the host (an
# unencoded '@' in a password is still hidden whole), never across '/', whitespace or
# quotes, so that a list of URLs ("amqp://a:x@h1/,amqp://b:y@h2/") loses every password
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)(?P<password>[^\s/'\"]*)@"
)
# libpq's key=value connection strings ("host=... password=secret")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|\S+)")


def redact(text: str) -> str:
    """`text` with the password of every URL in it (`scheme://user:password@host`) and of
    every `password=...` replaced by ***, for logs and messages."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)
