import pika.exceptions
import pytest

from bridge.broker import Endpoints, describe, refusal
from bridge.errors import BrokerError, BrokerLoginError, one_line

pytestmark = pytest.mark.unit

# what pika raises, built as pika builds them (connection.py, _on_stream_terminated)
WRONG_PASSWORD = pika.exceptions.ProbableAuthenticationError(
    "ConnectionClosedByBroker: (403) 'ACCESS_REFUSED - Login was refused using "
    "authentication mechanism PLAIN. For details see the broker logfile.'"
)
NO_VHOST_ACCESS = pika.exceptions.ProbableAccessDeniedError(
    "ConnectionClosedByBroker: (530) \"NOT_ALLOWED - access to vhost '/' refused for user 'paris'\""
)
LOST_WHILE_LOGGING_IN = pika.exceptions.ProbableAuthenticationError(
    "StreamLostError: ('Transport indicated EOF',)"
)


def test_a_refusal_the_broker_sent_is_named_with_what_to_check():
    assert refusal(WRONG_PASSWORD) == (
        "login refused (ACCESS_REFUSED - Login was refused using authentication mechanism "
        "PLAIN. For details see the broker logfile.): check the user and password in amqp_url"
    )
    assert refusal(NO_VHOST_ACCESS) == (
        "login refused (NOT_ALLOWED - access to vhost '/' refused for user 'paris'): check "
        "the vhost in amqp_url and the user's permissions on it"
    )


def test_a_connection_lost_while_logging_in_is_not_a_refusal():
    # pika calls it a probable authentication error from the stage alone
    assert refusal(LOST_WHILE_LOGGING_IN) is None
    assert refusal(pika.exceptions.StreamLostError("EOF")) is None
    assert "connection lost while logging in" in describe(LOST_WHILE_LOGGING_IN)


def test_a_refusal_is_a_login_error_only_until_a_connection_worked():
    endpoints = Endpoints(["amqp://paris:x@127.0.0.1:5680/"])
    assert type(endpoints.failure(["r"], refused=True)) is BrokerLoginError
    assert type(endpoints.failure(["r"], refused=False)) is BrokerError
    endpoints.connected()
    assert type(endpoints.failure(["r"], refused=True)) is BrokerError


def test_one_line_joins_libpq_lines_and_masks_a_secret():
    text = (
        'connection failed: connection to server at "h", port 9 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections? pw-1"
    )
    assert one_line(text, "pw-1") == (
        'connection failed: connection to server at "h", port 9 failed: Connection refused '
        "Is the server running on that host and accepting TCP/IP connections? ***"
    )
