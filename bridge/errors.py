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


class EventError(BridgeError):
    """A message is not a valid bridge event. Such messages are dead-lettered, never applied."""


class VerifyError(BridgeError):
    """Sites hold different rows for a synced table."""
