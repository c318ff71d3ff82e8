"""`bridge run`: the dispatcher, the consumer and (at the archive site) the archiver, each
in its own thread with its own connections, until SIGTERM or SIGINT.

On a signal each part finishes the batch in hand (the dispatcher waits for the confirms of
what it published, the consumers commit and acknowledge what they hold) and the process
exits 0. Anything that is not finished is redone after a restart: nothing is lost.

Lost connections are retried for ever, with backoff. One thing is not: RabbitMQ refusing
the login (user, password, vhost) before any connection of the process worked. That is a
configuration error: the process stops and exits 1 with that one reason. A refusal after
the link once worked is retried (a broker node restarting may refuse logins for a moment).
With `metrics_address` set, Prometheus metrics and a health check are served there
(bridge/serve.py) from the start of the parts until they stopped.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from types import FrameType

from bridge import install, liveness
from bridge.acks import AckReceiver, AckSender
from bridge.apply import Applier
from bridge.archive import Archiver
from bridge.broker import Endpoints
from bridge.cleanup import schedule
from bridge.config import Config
from bridge.consumer import Consumer
from bridge.dialects import for_url
from bridge.dispatcher import Dispatcher
from bridge.errors import BridgeError
from bridge.metrics import Metrics, Sources
from bridge.probe import Probe
from bridge.progress import QueueProgress
from bridge.serve import Endpoint
from bridge.stats import Stats

log = logging.getLogger(__name__)


class Bridge:
    """One site's bridge process; `start()` then `stop()`, or `run_forever()`."""

    def __init__(self, config: Config, stats: Stats | None = None) -> None:
        self.config = config
        self.dialect = for_url(config.database_url)
        self.endpoints = Endpoints.of(config)
        self.stop_event = threading.Event()
        self.stats = stats or Stats()
        self.threads: list[threading.Thread] = []
        self.failed = False
        # the error a part stopped on that retrying cannot fix (a refused broker login
        # before any connection worked): run_forever raises it once everything stopped
        self.fatal: BridgeError | None = None
        # metrics_address: /metrics and /healthz (bridge/serve.py), None when off
        self.probe: Probe | None = None
        self.metrics: Metrics | None = None
        self.endpoint: Endpoint | None = None
        self.linked: list[str] = []  # the parts that must hold a broker connection

    @property
    def metrics_port(self) -> int | None:
        """The port /metrics is served on (the one bound for a port 0), None when off."""
        return self.endpoint.port if self.endpoint is not None else None

    def health(self) -> list[str]:
        """Why this bridge is not healthy (bridge/liveness.py); empty if it is."""
        assert self.probe is not None
        return liveness.reasons(
            self.stop_event.is_set(), self.threads, self.stats, self.linked, self.probe
        )

    def check(self) -> None:
        """Refuse to start on a database that is not ready; warn about column drift."""
        conn = self.dialect.connect(self.config.database_url)
        try:
            install.require_initialised(self.dialect, conn, self.config.site)
            install.require_current(self.dialect, conn)
            for table, problem in install.drift(
                self.dialect, conn, [t.name for t in self.config.tables]
            ).items():
                log.error("site=%s table=%s %s", self.config.site, table, problem)
        finally:
            conn.close()

    def start(self) -> None:
        self.check()
        if self.config.metrics_address:
            self.probe = Probe(self.config, self.dialect)
            self.metrics = Metrics(
                Sources(self.config.site, self.stats, self.probe, lambda: self.threads, self.health)
            )
            self.endpoint = Endpoint(
                self.config.site, self.config.metrics_address, self.metrics.registry, self.health
            )
        applier = Applier(self.config, self.dialect, connect_now=False)
        # how far the consumer has taken the own queue: what the dispatcher republishes on
        applier.progress = progress = QueueProgress(applier.clock)
        sender = (
            AckSender(self.config, self.endpoints, self.stop_event, self.stats)
            if self.config.acks != "off"
            else None
        )
        parts: list[tuple[str, Callable[[], None]]] = [
            (
                "dispatcher",
                Dispatcher(
                    self.config, self.dialect, self.endpoints, self.stop_event, self.stats, progress
                ).run,
            ),
            (
                "consumer",
                Consumer(
                    self.config,
                    self.config.queue,
                    applier,
                    self.endpoints,
                    self.stop_event,
                    self.stats,
                    progress,
                    sender.send if sender is not None else None,
                ).run,
            ),
            ("cleanup", lambda: schedule(self.config, self.dialect, self.stop_event)),
        ]
        if sender is not None:
            parts.append(("ack-sender", sender.run))
        # the emitter records what its events became (the archive site: every site's, in
        # topic mode); whatever this site's own `acks`, as the other sites may send them
        parts.append(
            (
                "acks",
                AckReceiver(
                    self.config, self.dialect, self.endpoints, self.stop_event, self.stats
                ).run,
            )
        )
        if self.config.is_archive:
            parts.append(
                (
                    "archiver",
                    Consumer(
                        self.config,
                        self.config.archive_queue,
                        Archiver(self.config, self.dialect, connect_now=False),
                        self.endpoints,
                        self.stop_event,
                        self.stats,
                        # topic mode: the archive tells every emitter it stored its events
                        acks=partial(sender.send, archive=True)
                        if sender is not None and self.config.acks == "topic"
                        else None,
                    ).run,
                )
            )
        for name, target in parts:
            thread = threading.Thread(
                target=self._guard(name, target), name=f"bridge-{name}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        self.linked = ["dispatcher", "consumer"] + ["archiver"] * self.config.is_archive
        if self.endpoint is not None:
            self.endpoint.start()
            log.info(
                "site=%s metrics on http://%s/metrics, health on /healthz (port %d)",
                self.config.site,
                self.config.metrics_address,
                self.endpoint.port,
            )
        log.info(
            "site=%s bridge running: %s", self.config.site, ", ".join(name for name, _ in parts)
        )

    def _guard(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BridgeError as exc:  # a clear reason: said once, by run_forever
                log.debug("site=%s %s stopped: %s", self.config.site, name, exc)
                if self.fatal is None:
                    self.fatal = exc
                self.failed = True
                self.stop_event.set()
            except Exception:
                log.exception("site=%s %s crashed; stopping the bridge", self.config.site, name)
                self.failed = True
                self.stop_event.set()

        return run

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.endpoint is not None:
            self.endpoint.stop()
        if self.probe is not None:
            self.probe.close()

    def run_forever(self, report_every: float = 30.0) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info(
                "site=%s %s received: finishing the batch in hand",
                self.config.site,
                signal.Signals(signum).name,
            )
            self.stop_event.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # `kill -USR1 <pid>`: every thread's stack on stderr, for a bridge that seems stuck
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        self.start()
        while not self.stop_event.wait(report_every):
            log.info("site=%s %s", self.config.site, self.stats)
        self.stop()
        log.info("site=%s stopped: %s", self.config.site, self.stats)
        if self.fatal is not None:
            raise self.fatal
