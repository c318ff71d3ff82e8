"""The small set of errors bridge raises. Each message tells the user what to do."""


class BridgeError(Exception):
    """Base of every error bridge raises on purpose."""


class ConfigError(BridgeError):
    """A configuration key is missing or wrong."""


class IdentifierError(BridgeError):
    """A table or column name is not a valid identifier."""


class SchemaError(BridgeError):
    """A business table cannot be captured (missing, no primary key, unsupported type)."""


class DatabaseError(BridgeError):
    """The site database cannot be reached or refused a statement."""


class BrokerError(BridgeError):
    """RabbitMQ cannot be reached or refused an operation."""


class BrokerLoginError(BrokerError):
    """RabbitMQ refused the login (user, password, or access to the vhost), or a TLS
    certificate check failed, before any connection of this process had worked: a
    configuration error. `bridge run` stops on it instead of retrying; a refusal after
    the link once worked is retried (a restarting broker may refuse logins for a moment)."""


class RefusedError(BridgeError):
    """bridge refuses an operation that would lose data or break the application; the
    message says why, and the command or flag that makes it safe or explicit."""


class EventError(BridgeError):
    """A message is not a valid bridge event. Such messages are dead-lettered, never applied."""


class AckError(BridgeError):
    """A message in an acks queue is not a valid acknowledgement (bridge/ackwire.py); it is
    dropped with a log line, never recorded."""


class VerifyError(BridgeError):
    """Sites hold different rows for a synced table."""


def one_line(message: object, secret: str | None = None) -> str:
    """`message` (an exception or a text) on one line, with `secret` (a password) masked.

    libpq's errors, as psycopg shows them, span several lines ("... failed: Connection
    refused" then "\\tIs the server running on that host ...?"): printed as they are, the
    second line loses its context in a log or after "Error:"."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return text.replace(secret, "***") if secret else text
