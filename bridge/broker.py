"""RabbitMQ connection details shared by the dispatcher, the consumer and the archiver."""

from __future__ import annotations

import ast
import contextlib
import copy
import datetime as dt
import itertools
import logging
import re
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pika
import pika.exceptions

from bridge.backoff import run_sessions
from bridge.config import Config
from bridge.errors import BridgeError, BrokerError, BrokerLoginError
from bridge.redaction import redact
from bridge.tls import (
    TlsSettings,
    certificate_refused,
    client_context,
    handshake_failure,
    server_hostname,
    uses_tls,
)

log = logging.getLogger(__name__)

EVENTS_EXCHANGE = "bridge.events"
DEAD_LETTER_EXCHANGE = "bridge.dlx"
# Direct exchange: routing key a site name -> that site's queue only. Replay and repair
# publish there (the archive site's broker user only), never to the fanout.
REPLAY_EXCHANGE = "bridge.replay"
REPLAY_HEADER = "x-bridge-replay"  # on a replayed message: "replay" or "repair"
ACKS_EXCHANGE = "bridge.acks"  # topic: routing key <ORIGIN>.<SENDER> (bridge/acks.py)
DEFAULT_EXCHANGE = ""  # RabbitMQ's default exchange (amq.default): routing key = queue name
EVENTS_HEADER = "x-bridge-events"  # events a batch message carries (bridge/wire.py)
REASON_HEADER = "x-bridge-reason"
QUEUE_HEADER = "x-bridge-queue"
# The broker user RabbitMQ validated for the original message (its user_id), kept by the
# consumer that dead-letters it: `bridge dlq retry` checks the event's origin against it.
USER_HEADER = "x-bridge-user-id"
DEAD_LETTERED_AT_HEADER = "x-bridge-dead-lettered-at"
# Set by a quorum queue on each delivery; not part of the message itself.
DELIVERY_COUNT_HEADER = "x-delivery-count"


def broker_user_of(site: str) -> str:
    """The broker user a site publishes with: its name in lower case."""
    return site.lower()


def username(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).username or "guest")


# pika's text for the close that ended a connection: "ConnectionClosedByBroker: (403) '...'"
_CLOSED_BY_BROKER = re.compile(r"^ConnectionClosedByBroker: \((\d+)\) (.+)$", re.S)


def refusal(exc: BaseException) -> str | None:
    """Why RabbitMQ refused to let this client in (user, password, vhost), with what to
    check; None if `exc` is something else.

    pika guesses a refusal from the stage at which a connection ended. Only a close the
    broker sent counts (403 ACCESS_REFUSED for the login, 530 NOT_ALLOWED for the vhost):
    a connection merely lost at that stage (a node stopping) is not a refusal."""
    if isinstance(exc, pika.exceptions.AuthenticationError):
        return f"login refused: no authentication mechanism in common ({exc})"
    if not isinstance(
        exc, pika.exceptions.ProbableAuthenticationError | pika.exceptions.ProbableAccessDeniedError
    ):
        return None
    match = _CLOSED_BY_BROKER.match(str(exc.args[0]) if exc.args else "")
    if match is None:
        return None
    code, reply = match.group(1), match.group(2)
    with contextlib.suppress(ValueError, SyntaxError):
        reply = str(ast.literal_eval(reply))  # pika quotes the broker's text like repr()
    if code == "403":
        return f"login refused ({reply}): check the user and password in amqp_url"
    if code == "530":
        return (
            f"login refused ({reply}): check the vhost in amqp_url and the user's permissions on it"
        )
    return None


def refused_at_start(exc: BaseException) -> bool:
    """Whether `exc` is a configuration error when no connection has worked yet: the
    broker refused the login, or a TLS certificate check failed (bridge/tls.py)."""
    return refusal(exc) is not None or certificate_refused(exc)


def describe(exc: BaseException) -> str:
    """A short, readable reason for a broker error, with what to check."""
    text = repr(exc)
    refused = refusal(exc)
    if refused is not None:
        return refused
    tls = handshake_failure(exc)
    if tls is not None:
        return tls
    if isinstance(
        exc, pika.exceptions.ProbableAuthenticationError | pika.exceptions.ProbableAccessDeniedError
    ):
        return "connection lost while logging in (a node stopping?)"
    if "ConnectionRefusedError" in text:
        return "connection refused: is HAProxy / RabbitMQ running? (scripts/cluster status)"
    if isinstance(
        exc, pika.exceptions.ConnectionClosedByBroker | pika.exceptions.ChannelClosedByBroker
    ):
        return f"closed by the broker ({exc.reply_code} {exc.reply_text})"
    if isinstance(exc, pika.exceptions.StreamLostError):
        return "connection lost (node or HAProxy went away)"
    return text


# What a part that talks to the broker retries after (a new session, with backoff).
RETRIED: tuple[type[BaseException], ...] = (BridgeError, pika.exceptions.AMQPError, OSError)


def keep_connected(
    session: Callable[[], None],
    stop: threading.Event,
    on_error: Callable[[BaseException], None],
    also: tuple[type[BaseException], ...] = (),
) -> None:
    """Run `session` again after each broker error (RETRIED, and `also`: the database's)
    until `stop` is set; a login or TLS certificate refused before any connection worked
    (BrokerLoginError) ends it (bridge/backoff.py run_sessions)."""
    run_sessions(session, stop, (*RETRIED, *also), on_error, fatal=(BrokerLoginError,))


def disconnect(conn: pika.BlockingConnection | None) -> None:
    """Close a broker connection if it is open; an error while closing is no news."""
    try:
        if conn is not None and conn.is_open:
            conn.close()
    except pika.exceptions.AMQPError:
        pass


def parameters(
    url: str,
    heartbeat: int = 30,
    tls: ssl.SSLContext | None = None,
    tls_settings: TlsSettings | None = None,
    timeout: float | None = None,
) -> pika.URLParameters:
    """pika's parameters for `url`; with `tls` (bridge/tls.py client_context), the
    connection is TLS and the server's certificate must name tls_server_name, else the
    URL's host. `timeout` (seconds) shortens the connect and handshake deadlines (10 s
    and 15 s) for a quick probe (`bridge status`)."""
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.socket_timeout = 10 if timeout is None else timeout
    params.stack_timeout = 15 if timeout is None else timeout
    # an amqps:// URL alone would get pika's own context; a plain one none at all
    params.ssl_options = None
    if tls is not None:
        name = server_hostname(url, tls_settings or TlsSettings())
        params.ssl_options = pika.SSLOptions(tls, server_hostname=name)
    return params


class Endpoints:
    """Round-robin over the configured broker addresses (HAProxy, or a list of nodes),
    with TLS when they are amqps:// addresses (one SSL context for all of them)."""

    def __init__(
        self,
        urls: Sequence[str],
        heartbeat: int = 30,
        tls: TlsSettings | None = None,
        timeout: float | None = None,
    ) -> None:
        if not urls:
            raise BrokerError("amqp_url is empty: give at least one amqp://user:pass@host:port/")
        users = {username(u) for u in urls}
        if len(users) != 1:
            raise BrokerError("every address in amqp_url must use the same broker user")
        self.urls = list(urls)
        self.user = users.pop()
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.tls_settings = tls or TlsSettings()
        # the scheme decides: `topology apply --amqp-url` may name plain addresses
        # (an administrator's) for a site whose own are amqps://
        self.tls: ssl.SSLContext | None = None
        if uses_tls(self.urls, TlsSettings()):
            self.tls = client_context(self.tls_settings)
        self._next: Iterator[str] = itertools.cycle(self.urls)
        self._lock = threading.Lock()
        self._worked = threading.Event()  # a connection with these credentials succeeded

    @classmethod
    def of(
        cls, config: Config, urls: Sequence[str] | None = None, timeout: float | None = None
    ) -> Endpoints:
        """The broker addresses of `config` (or `urls` instead), with its heartbeat and
        TLS settings: how every part of bridge connects."""
        urls = config.amqp_urls if urls is None else urls
        return cls(urls, config.heartbeat, config.tls, timeout)

    def parameters(self, url: str) -> pika.URLParameters:
        return parameters(url, self.heartbeat, self.tls, self.tls_settings, self.timeout)

    def next_url(self) -> str:
        with self._lock:
            return next(self._next)

    def connected(self) -> None:
        """Record that a connection succeeded: the user, password and vhost are right."""
        self._worked.set()

    def failure(self, reasons: list[str], refused: bool) -> BrokerError:
        """The error for failed connection attempts (`reasons`, one per address tried).

        A refused login or TLS certificate before any connection worked is a
        configuration error (BrokerLoginError: `bridge run` stops). After one worked it
        is retried like a lost connection: a broker node that is starting may refuse
        logins for a moment."""
        text = "cannot connect to RabbitMQ: " + "; ".join(reasons)
        if refused and not self._worked.is_set():
            return BrokerLoginError(text)
        return BrokerError(text)

    def blocking(self) -> pika.BlockingConnection:
        """Connect to the first address that answers, starting with the next in turn."""
        reasons, refused = [], False
        for _ in self.urls:
            url = self.next_url()
            try:
                conn = pika.BlockingConnection(self.parameters(url))
            except (pika.exceptions.AMQPError, ssl.SSLError) as exc:
                # pika raises a failed check of the server's certificate as it is
                refused = refused or refused_at_start(exc)
                reasons.append(f"{redact(url)}: {describe(exc)}")
                continue
            self.connected()
            return conn
        raise self.failure(reasons, refused)


def properties(
    event_id: str, type_: str, timestamp: dt.datetime, origin: str, user: str
) -> pika.BasicProperties:
    """AMQP properties of an event; RabbitMQ checks user_id against the connection's user."""
    return pika.BasicProperties(
        message_id=event_id,
        type=type_,
        timestamp=int(timestamp.timestamp()),
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        app_id="bridge",
        user_id=user,
        headers={"x-bridge-origin": origin},
    )


def one_event_properties(
    props: pika.BasicProperties, event_id: str, type_: str
) -> pika.BasicProperties:
    """The properties of one event of a batch sent on alone (to a dead-letter queue): the
    batch's, with the event's id and type."""
    one = copy.copy(props)
    one.message_id, one.type = event_id, type_
    one.headers = {k: v for k, v in (props.headers or {}).items() if k != EVENTS_HEADER}
    return one


def dead_letter_properties(
    props: pika.BasicProperties | None,
    queue: str,
    reason: str,
    publisher: str | None,
    user: str,
) -> pika.BasicProperties:
    """Properties of a message sent to a dead-letter queue: the original ones plus why.

    `publisher` is the broker user RabbitMQ validated when the message was first published
    (its `user_id`, '' if it had none); it goes into the `x-bridge-user-id` header. The dead
    letter is published with `user` (the connection's own broker user) as its `user_id`,
    which RabbitMQ checks: a reader of the dead-letter queue trusts that header only on a
    message whose `user_id` is the site's own user."""
    headers: dict[str, Any] = dict((props.headers or {}) if props else {})
    headers.pop(DELIVERY_COUNT_HEADER, None)
    headers[REASON_HEADER] = reason[:1000]
    headers[QUEUE_HEADER] = queue
    headers[USER_HEADER] = publisher or ""
    headers[DEAD_LETTERED_AT_HEADER] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return pika.BasicProperties(
        message_id=props.message_id if props else None,
        type=props.type if props else None,
        timestamp=props.timestamp if props else None,
        content_type=props.content_type if props else None,
        delivery_mode=pika.DeliveryMode.Persistent,
        app_id=props.app_id if props else None,
        user_id=user,
        headers=headers,
    )
