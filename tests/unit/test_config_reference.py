"""docs/configuration.md's key table is the configuration reference: it must name exactly
the fields of bridge.config.Config, with their real defaults, and every key must work in
its `BRIDGE_<KEY>` environment form.

How a row is read (`| \\`key\\` | default | meaning |`, in the table under the
`| key | default | meaning |` header):
- `required`: the field has no default (bridge refuses to start without it; `tables` may be
  left out by the commands docs/configuration.md lists, which the meaning column says).
- `none`: the default is empty: None, `""`, or an empty mapping or tuple. `` `""` `` is
  accepted too for an empty string.
- otherwise the default in backticks, as Python prints it: a number is compared as a
  number (`3600.0` and `3600` are both 3600.0) and an int field's default must be written
  without a fraction; a string is compared as written (`` `direct` `` is "direct"); a bool
  as `true`/`false` (or `True`/`False`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from bridge import config

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
HEADER = "| key | default | meaning |"
ROW = re.compile(r"^\| `(?P<key>[a-z_][a-z0-9_]*)` \| (?P<default>[^|]+?) \| .+\|$")
FIELDS = {f.name: f for f in dataclasses.fields(config.Config)}

# the environment form of each key that is not a plain number: the value to set, and what
# Config must then hold. A new non-numeric key needs an entry here (the test says so).
REQUIRED_ENV = {
    "BRIDGE_SITE": "london",
    "BRIDGE_DATABASE_URL": "postgresql://bridge@127.0.0.1:5432/london",
    "BRIDGE_AMQP_URL": "amqp://london:secret@127.0.0.1:5680/",
    "BRIDGE_SITES": "PARIS,LONDON,MADRID",
    "BRIDGE_TABLES": "orders",
}
ENV_SAMPLES: dict[str, tuple[str, Any]] = {
    "site": ("madrid", "MADRID"),
    "database_url": ("postgresql://bridge@db:5432/x", "postgresql://bridge@db:5432/x"),
    "amqp_url": (
        "amqp://a:b@h1:5672/,amqp://a:b@h2:5672/",
        "amqp://a:b@h1:5672/,amqp://a:b@h2:5672/",
    ),
    "sites": ("PARIS, LONDON ,MADRID,ROME", ("PARIS", "LONDON", "MADRID", "ROME")),
    "tables": (
        "orders,customers:none",
        (config.TableConfig("orders", "lww"), config.TableConfig("customers", "none")),
    ),
    "archive_site": ("MADRID", "MADRID"),
    "acks": ("topic", "topic"),
    "metrics_address": ("127.0.0.1:9464", "127.0.0.1:9464"),
    # files that exist (TLS keys are read only with amqps:// addresses: ENV_CONTEXT)
    "tls_ca_file": (__file__, __file__),
    "tls_cert_file": (__file__, __file__),
    "tls_key_file": (__file__, __file__),
    "tls_server_name": ("broker.example", "broker.example"),
    "peers": (
        "PARIS=postgresql://p/db,MADRID=postgresql://m/db",
        {
            "PARIS": "postgresql://p/db",
            "MADRID": "postgresql://m/db",
        },
    ),
}


# what a key needs beside it to be accepted
TLS_URL = {"BRIDGE_AMQP_URL": "amqps://a:b@h1:5671/"}
ENV_CONTEXT: dict[str, dict[str, str]] = {
    "tls_ca_file": TLS_URL,
    "tls_cert_file": {**TLS_URL, "BRIDGE_TLS_KEY_FILE": __file__},
    "tls_key_file": {**TLS_URL, "BRIDGE_TLS_CERT_FILE": __file__},
    "tls_server_name": TLS_URL,
}


def documented() -> dict[str, str]:
    """key -> default cell of the key table, in its order; a key listed twice fails."""
    lines = DOC.read_text().splitlines()
    assert HEADER in lines, f"{DOC} has no key table (header {HEADER!r})"
    rows: dict[str, str] = {}
    for line in lines[lines.index(HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        assert match, f"{DOC}: row not of the form | `key` | default | meaning |: {line!r}"
        key = match["key"]
        assert key not in rows, f"{DOC}: key {key!r} documented twice"
        rows[key] = match["default"].strip()
    return rows


def test_every_field_is_documented_and_every_documented_key_exists() -> None:
    keys = documented()
    undocumented = sorted(set(FIELDS) - set(keys))
    invented = sorted(set(keys) - set(FIELDS))
    assert undocumented == [], f"Config fields missing from the table in {DOC}: {undocumented}"
    assert invented == [], f"keys in {DOC} that Config does not have: {invented}"


def field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def check_default(key: str, cell: str, default: Any) -> None:
    where = f"{DOC}, key {key!r}: default written {cell!r}"
    if default is dataclasses.MISSING:
        assert cell == "required", f"{where}, but the field has no default: write required"
        return
    assert cell != "required", f"{where}, but the field defaults to {default!r}"
    if cell == "none" or cell == '`""`':
        assert default in (None, "") or (
            isinstance(default, dict | tuple | list) and not default
        ), f"{where}, but the field defaults to {default!r}"
        if cell == '`""`':
            assert default == "", f"{where}, but the field defaults to {default!r}"
        return
    assert len(cell) > 2 and cell[0] == cell[-1] == "`", f"{where}: put the default in backticks"
    text = cell[1:-1]
    if isinstance(default, bool):
        assert text in (str(default), str(default).lower()), f"{where}, field says {default!r}"
    elif isinstance(default, int):
        assert re.fullmatch(r"-?\d+", text), f"{where}: an int field's default is a whole number"
        assert int(text) == default, f"{where}, but the field defaults to {default!r}"
    elif isinstance(default, float):
        assert float(text) == default, f"{where}, but the field defaults to {default!r}"
    elif isinstance(default, str):
        assert text == default, f"{where}, but the field defaults to {default!r}"
    else:
        pytest.fail(f"{where}: no rule for a default of type {type(default).__name__}; add one")


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_documented_default_is_the_fields_default(key: str) -> None:
    keys = documented()
    if key not in keys:
        pytest.fail(f"{key!r} is not documented (see the test above)")
    check_default(key, keys[key], field_default(FIELDS[key]))


def env_sample(key: str) -> tuple[str, Any]:
    """A value of `BRIDGE_<KEY>` that differs from the default, and what Config holds then."""
    if key in ENV_SAMPLES:
        return ENV_SAMPLES[key]
    default = field_default(FIELDS[key])
    if isinstance(default, int) and not isinstance(default, bool):
        return str(default + 7), default + 7
    if isinstance(default, float):
        return str(default + 1.5), default + 1.5
    pytest.fail(f"no environment sample for {key!r}: add one to ENV_SAMPLES in this test")


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_every_key_is_accepted_in_its_environment_form(key: str) -> None:
    value, expected = env_sample(key)
    env = {**REQUIRED_ENV, **ENV_CONTEXT.get(key, {})}
    env[f"BRIDGE_{key.upper()}"] = value
    cfg = config.load(path=None, env=env, dotenv=None)
    got = getattr(cfg, key)
    assert got == expected, f"BRIDGE_{key.upper()}={value!r} gave {key}={got!r}"
    assert got != field_default(FIELDS[key]), "the sample must differ from the default"


def test_the_rules_catch_a_wrong_default() -> None:
    """The comparison is not vacuous: a wrong default, or required for a defaulted field,
    is refused."""
    with pytest.raises(AssertionError):
        check_default("batch_size", "`501`", 500)
    with pytest.raises(AssertionError):
        check_default("poll_interval", "`5`", 6.0)
    with pytest.raises(AssertionError):
        check_default("acks", "`off`", "direct")
    with pytest.raises(AssertionError):
        check_default("site", "`PARIS`", dataclasses.MISSING)
    with pytest.raises(AssertionError):
        check_default("heartbeat", "required", 30)
    with pytest.raises(AssertionError):
        check_default("peers", "none", {"PARIS": "x"})
    check_default("cleanup_interval", "`3600`", 3600.0)
    check_default("peers", "none", {})
