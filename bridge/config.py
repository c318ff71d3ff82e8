"""Site configuration: `bridge.toml`, then `.env`, then `BRIDGE_*` environment variables.

Later sources override earlier ones. Every key of the file can be given as
`BRIDGE_<KEY>` (upper case); lists are comma-separated, tables as
`orders,customers:none` (name, optional `:policy`), peers as `LONDON=url,MADRID=url`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError
from bridge.tls import TlsSettings, uses_tls

SITE_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,30}$")
POLICIES = ("lww", "none", "manual")
# where a site sends what became of the events it received (bridge/acks.py): to the
# emitter's queue SITE_<ORIGIN>.acks through the default exchange, through the topic
# exchange bridge.acks to the emitter and the archive site, or nowhere
ACK_MODES = ("direct", "topic", "off")

EXAMPLE = """\
site = "PARIS"
database_url = "postgresql://bridge@127.0.0.1:5432/paris"
amqp_url = "amqp://paris:secret@127.0.0.1:5680/"
sites = ["PARIS", "LONDON", "MADRID"]

[tables]
orders = "lww"
"""


@dataclass(frozen=True)
class TableConfig:
    """One synced business table and its conflict policy."""

    name: str
    policy: str = "lww"

    @property
    def policy_column(self) -> str | None:
        """The column compared by a `column:<name>` policy, else None."""
        return self.policy.split(":", 1)[1] if self.policy.startswith("column:") else None


@dataclass(frozen=True)
class Config:
    site: str
    database_url: str
    amqp_url: str
    sites: tuple[str, ...]
    tables: tuple[TableConfig, ...]
    archive_site: str = "PARIS"
    retention_days: int = 90
    batch_size: int = 500
    poll_interval: float = 5.0
    republish_after: float = 60.0
    max_in_flight: int = 1000
    prefetch: int = 200
    message_events: int = 100
    message_bytes: int = 256 * 1024
    cleanup_interval: float = 3600.0
    heartbeat: int = 30
    acks: str = "direct"
    status_max_backlog_age: float = 300.0
    # host:port where `bridge run` serves /metrics and /healthz (bridge/serve.py); "": off
    metrics_address: str = ""
    peers: Mapping[str, str] = field(default_factory=dict)
    # TLS to the broker, used when amqp_url is amqps:// (bridge/tls.py)
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_server_name: str = ""

    @property
    def amqp_urls(self) -> list[str]:
        return [u.strip() for u in self.amqp_url.split(",") if u.strip()]

    @property
    def tls(self) -> TlsSettings:
        return TlsSettings(
            self.tls_ca_file, self.tls_cert_file, self.tls_key_file, self.tls_server_name
        )

    @property
    def queue(self) -> str:
        return site_queue(self.site)

    @property
    def acks_queue(self) -> str:
        return acks_queue(self.site)

    @property
    def archive_queue(self) -> str:
        return f"{site_queue(self.archive_site)}_HISTO"

    @property
    def is_archive(self) -> bool:
        return self.site == self.archive_site

    def table(self, name: str) -> TableConfig | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None


def site_queue(site: str) -> str:
    return f"SITE_{site}"


def acks_queue(site: str) -> str:
    """The queue where a site receives the acknowledgements of the events it emitted."""
    return f"{site_queue(site)}.acks"


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file: KEY=VALUE lines, `#` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{lineno}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    dotenv: str | os.PathLike[str] | None = ".env",
    require_tables: bool = True,
) -> Config:
    """Load the configuration of this site. `path` falls back to `BRIDGE_CONFIG`, then
    `bridge.toml` in the working directory if it exists. `require_tables=False` for the
    commands that name their tables themselves (`install-triggers --table`) or need none
    (`init`): 'tables' may then be missing, and is empty."""
    environ: dict[str, str] = {}
    if dotenv is not None:
        environ.update(read_dotenv(Path(dotenv)))
    environ.update(os.environ if env is None else env)

    raw: dict[str, Any] = {}
    file = path or environ.get("BRIDGE_CONFIG")
    if file is None and Path("bridge.toml").is_file():
        file = "bridge.toml"
    if file is not None:
        p = Path(file)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; create it, for example:\n{EXAMPLE}")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p} is not valid TOML: {exc}") from exc
    known = set(Config.__dataclass_fields__)
    for key, value in environ.items():
        name = key[len("BRIDGE_") :].lower()
        # other BRIDGE_* variables belong to the project's scripts (BRIDGE_CLUSTER_DIR, ...)
        if key.startswith("BRIDGE_") and name in known:
            raw[name] = value
    return from_mapping(raw, require_tables)


def from_mapping(raw: Mapping[str, Any], require_tables: bool = True) -> Config:
    """Validate raw values (from TOML or the environment) into a Config. 'tables' is
    required unless `require_tables` is False (then it may be missing, and is empty)."""
    known = set(Config.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown configuration key(s) {', '.join(unknown)}; known keys are "
            f"{', '.join(sorted(known))}"
        )
    required = ("site", "database_url", "amqp_url", "sites") + ("tables",) * require_tables
    for key in required:
        if key not in raw or raw[key] in ("", [], {}, None):
            raise ConfigError(
                f"missing configuration key '{key}': set it in bridge.toml or as "
                f"BRIDGE_{key.upper()}; for example:\n{EXAMPLE}"
            )
    site = _site_name("site", raw["site"])
    sites = tuple(_site_name("sites", s) for s in _as_list(raw["sites"]))
    if site not in sites:
        raise ConfigError(f"'site' {site} is not in 'sites' {list(sites)}: add it to 'sites'")
    archive = _site_name("archive_site", raw.get("archive_site", "PARIS"))
    if archive not in sites:
        raise ConfigError(
            f"'archive_site' {archive} is not in 'sites' {list(sites)}: add it or set "
            "archive_site to one of them"
        )
    values: dict[str, Any] = {
        "site": site,
        "sites": sites,
        "archive_site": archive,
        "database_url": _string("database_url", raw["database_url"]),
        "amqp_url": _string("amqp_url", raw["amqp_url"]),
        "tables": _tables(raw["tables"]) if raw.get("tables") not in ("", [], {}, None) else (),
        "peers": _peers(raw.get("peers", {})),
        "acks": _ack_mode(raw.get("acks", "direct")),
        "metrics_address": _address("metrics_address", raw.get("metrics_address", "")),
    }
    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file", "tls_server_name"):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string (a file path or a name), got {value!r}")
        values[key] = value.strip()
    urls = [u.strip() for u in values["amqp_url"].split(",") if u.strip()]
    uses_tls(
        urls,
        TlsSettings(
            values["tls_ca_file"],
            values["tls_cert_file"],
            values["tls_key_file"],
            values["tls_server_name"],
        ),
    )
    for key, kind, minimum in (
        ("retention_days", int, 1),
        ("batch_size", int, 1),
        ("max_in_flight", int, 1),
        ("prefetch", int, 1),
        ("message_events", int, 1),
        ("message_bytes", int, 1024),
        ("heartbeat", int, 0),
        ("poll_interval", float, 0.01),
        ("republish_after", float, 1.0),
        ("cleanup_interval", float, 1.0),
        ("status_max_backlog_age", float, 0.0),
    ):
        if key in raw:
            values[key] = _number(key, raw[key], kind, minimum)
    return Config(**values)


def _ack_mode(value: Any) -> str:
    mode = str(value).strip().lower()
    if mode not in ACK_MODES:
        raise ConfigError(
            f"'acks': {value!r} is not an acknowledgement mode; use one of "
            f"{', '.join(ACK_MODES)} (see docs/configuration.md)"
        )
    return mode


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets: `[::1]:9464`) as (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(address)
    return host, int(port)


def _address(key: str, value: Any) -> str:
    address = str(value).strip()
    if not address:
        return ""
    try:
        split_address(address)
    except ValueError:
        raise ConfigError(
            f"'{key}': {value!r} is not host:port; give e.g. 127.0.0.1:9464 ([::1]:9464 for "
            "IPv6), or leave it empty to turn it off"
        ) from None
    return address


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    raise ConfigError(f"expected a list or a comma-separated string, got {value!r}")


def _site_name(key: str, value: Any) -> str:
    name = str(value).strip().upper()
    if not SITE_NAME.match(name):
        raise ConfigError(
            f"'{key}': {value!r} is not a valid site name; use letters, digits and _ "
            "starting with a letter, e.g. PARIS"
        )
    return name


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"'{key}' must be a non-empty string, got {value!r}")
    return value.strip()


def _number(key: str, value: Any, kind: type, minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"'{key}' must be a {kind.__name__} >= {minimum}, got {value!r}"
        ) from None
    if number < minimum:
        raise ConfigError(f"'{key}' must be >= {minimum}, got {value!r}")
    return number


def _policy(table: str, policy: str) -> str:
    policy = policy.strip()
    if policy in POLICIES or (policy.startswith("column:") and len(policy) > len("column:")):
        return policy
    raise ConfigError(
        f"table {table!r}: unknown conflict policy {policy!r}; use one of "
        f"{', '.join(POLICIES)} or column:<updated_at column>"
    )


def _tables(value: Any) -> tuple[TableConfig, ...]:
    items: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for name, spec in value.items():
            extra = sorted(set(spec) - {"policy"}) if isinstance(spec, Mapping) else []
            if extra:
                # `sales.orders = "lww"` in TOML is a table `sales` holding a key `orders`
                raise ConfigError(
                    f"'tables': {name!r} has unknown key(s) {extra}; a schema-qualified "
                    f'name must be quoted in TOML: "{name}.{extra[0]}" = "lww" (see "Table '
                    'names" in docs/configuration.md)'
                )
            policy = spec.get("policy", "lww") if isinstance(spec, Mapping) else str(spec)
            items.append((str(name), policy))
    else:
        for entry in _as_list(value):
            name, _, policy = entry.partition(":")
            items.append((name.strip(), policy or "lww"))
    if not items:
        raise ConfigError("'tables' is empty: list the business tables to sync, e.g. orders")
    return tuple(TableConfig(name, _policy(name, policy)) for name, policy in items)


def _peers(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for entry in _as_list(value):
            name, sep, url = entry.partition("=")
            if not sep:
                raise ConfigError(f"'peers': expected NAME=database_url, got {entry!r}")
            pairs.append((name, url))
    return {_site_name("peers", k): v.strip() for k, v in pairs}
