"""The HTTP endpoint of `bridge run` (`metrics_address`): GET /metrics in the Prometheus
text format, GET /healthz (200 `{"healthy": true}`, or 503 with the reasons), served by
a daemon thread until the bridge stops. Off unless configured; listening anywhere but on
a loopback address is the user's choice, and logged as a warning (anyone who reaches the
port reads the site's counters: no credentials, but backlog and table names)."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from bridge.config import split_address
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

Reasons = Callable[[], list[str]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Every scrape would be a log line: none."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


class Endpoint:
    """Binds at construction (a port in use fails `bridge run` at once), serves after
    `start()`, until `stop()`."""

    def __init__(
        self, site: str, address: str, registry: CollectorRegistry, reasons: Reasons
    ) -> None:
        host, port = split_address(address)
        if not is_loopback(host):
            log.warning(
                "site=%s metrics and health served on %s, beyond this host: make sure only "
                "your monitoring reaches it",
                site,
                address,
            )
        self.metrics = make_wsgi_app(registry)
        self.reasons = reasons
        server = _Server6 if ":" in host else _Server
        try:
            self.server = make_server(
                host, port, self._app, server_class=server, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {address} ({exc.strerror or exc}): choose another "
                "metrics_address, or leave it empty to turn it off"
            ) from None
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="bridge-metrics", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self.metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            reasons = self.reasons()
            body = json.dumps(
                {"healthy": False, "reasons": reasons} if reasons else {"healthy": True}
            ).encode()
            status = "503 Service Unavailable" if reasons else "200 OK"
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"GET /metrics or /healthz\n"]
