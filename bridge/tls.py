"""TLS to the broker (amqps://): the one client context every broker connection uses,
and readable reasons for the handshake failures it can meet."""

from __future__ import annotations

import re
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.errors import ConfigError

SCHEMES = ("amqp", "amqps")


@dataclass(frozen=True)
class TlsSettings:
    """The tls_* configuration keys (docs/configuration.md). Empty strings are defaults:
    no ca_file = the system's trust store, no cert_file = no client certificate, no
    server_name = the host of each URL."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""

    @property
    def given(self) -> list[str]:
        """The tls_* keys that are set."""
        return [
            f"tls_{name}"
            for name, value in (
                ("ca_file", self.ca_file),
                ("cert_file", self.cert_file),
                ("key_file", self.key_file),
                ("server_name", self.server_name),
            )
            if value
        ]


def scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def uses_tls(urls: Sequence[str], settings: TlsSettings, key: str = "amqp_url") -> bool:
    """Whether the broker addresses `urls` are TLS ones (every one amqps://), checking
    they agree with each other and with `settings`. A ConfigError says what to write."""
    schemes = {scheme(u) for u in urls}
    unknown = sorted(schemes - set(SCHEMES))
    if unknown:
        raise ConfigError(
            f"'{key}': scheme {unknown[0]}:// is not a broker address; write "
            "amqp://user:pass@host:port/vhost, or amqps:// for TLS"
        )
    if len(schemes) > 1:
        raise ConfigError(
            f"'{key}' mixes amqp:// and amqps:// addresses: TLS is all or nothing, write "
            "amqps:// for every address (TLS ports, e.g. HAProxy 5690 and nodes 5691-5693 "
            "on the local cluster) or amqp:// for every one"
        )
    tls = schemes == {"amqps"}
    if not tls and settings.given:
        raise ConfigError(
            f"{', '.join(settings.given)} set but '{key}' is amqp:// (no TLS): write "
            "amqps://... (a TLS port) to connect with TLS, or remove the tls_* keys"
        )
    if bool(settings.cert_file) != bool(settings.key_file):
        raise ConfigError(
            "a client certificate needs both tls_cert_file and tls_key_file (the private "
            "key); set both, or neither to connect without one"
        )
    return tls


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """The client side of every TLS connection to the broker: TLS 1.2 or later, the
    server's certificate required and checked against tls_ca_file (else the system's
    trust store), its name checked against the URL's host (or tls_server_name), and the
    client certificate presented if one is configured."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    try:
        if settings.ca_file:
            context.load_verify_locations(cafile=settings.ca_file)
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"tls_ca_file {settings.ca_file!r} cannot be read as PEM CA certificates "
            f"({exc}): give the CA file that signed the broker's certificate"
        ) from None
    if settings.cert_file:
        try:
            context.load_cert_chain(settings.cert_file, settings.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"tls_cert_file {settings.cert_file!r} / tls_key_file {settings.key_file!r} "
                f"cannot be loaded ({exc}): give a PEM certificate and its unencrypted "
                "private key"
            ) from None
    return context


def server_hostname(url: str, settings: TlsSettings) -> str:
    """The name the server's certificate must carry for `url`."""
    return settings.server_name or urllib.parse.urlsplit(url).hostname or ""


def handshake_failure(exc: BaseException) -> str | None:
    """What went wrong in a TLS handshake, with what to check; None if `exc` is not a
    TLS failure."""
    found = _classify(exc)
    return None if found is None else found[1]


def certificate_refused(exc: BaseException) -> bool:
    """Whether a handshake failed on a certificate (the broker's not trusted or not
    matching, or ours refused): a configuration error, unlike a handshake cut short by a
    node going away."""
    found = _classify(exc)
    return found is not None and found[0]


def _classify(exc: BaseException) -> tuple[bool, str] | None:
    """(whether a certificate was refused, the message) for a TLS failure, else None.
    pika raises the ssl error itself when the server's certificate fails our checks, but
    only its text (inside an IncompatibleProtocolError) when the broker refused ours."""
    cause = _ssl_error(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = getattr(cause, "verify_message", None) or str(cause)
        code = getattr(cause, "verify_code", None)
        if code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return True, (
                f"TLS: the broker's certificate does not match the server name ({reason}): "
                "connect to a name the certificate carries, or set tls_server_name to one"
            )
        if code in (9, 10):  # X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED
            return True, f"TLS: the broker's certificate is not valid now ({reason}): renew it"
        return True, (
            f"TLS: the broker's certificate is not trusted ({reason}): check tls_ca_file "
            "(the CA that signed the broker's certificate; default: the system's trust store)"
        )
    if cause is None and _CLOSED_AFTER_HANDSHAKE in str(exc):
        return True, (
            "TLS: the broker closed the connection right after the TLS handshake: it "
            "refused the client certificate (TLS 1.3 says so only after the handshake, "
            "and the alert may be lost): check tls_cert_file and tls_key_file (a "
            "certificate signed by a CA the broker trusts; one is needed if the broker "
            "requires it), else the broker's log"
        )
    reason = getattr(cause, "reason", None)
    match = _SSL_REASON.search(f"[SSL: {reason}]" if reason else str(cause or exc))
    if match is None:
        return None
    code = match.group(1)
    if code in _CLIENT_CERT_REFUSED:
        return True, (
            f"TLS: the broker refused the client certificate ({code}): check tls_cert_file "
            "and tls_key_file (a certificate signed by a CA the broker trusts), or leave "
            "both empty if the broker does not require one"
        )
    if code in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
        return False, (
            f"TLS: no TLS on that port ({code}): amqps:// needs the broker's TLS port "
            "(the local cluster: 5690 through HAProxy, 5691-5693 on the nodes)"
        )
    return False, f"TLS handshake failed ({code}): check the tls_* keys and the broker's TLS port"


# pika's report of a TLS connection the broker closed once the handshake was done, as it
# sent the AMQP header: "StreamLostError: ("Stream connection lost: SSLEOFError(8, ...
# (a TLS error during the handshake itself comes as the ssl error, not as text)
_CLOSED_AFTER_HANDSHAKE = "Stream connection lost: SSLEOFError("
# "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca": OpenSSL's reason code
_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")
# alerts a TLS server sends when it rejects the client's certificate
_CLIENT_CERT_REFUSED = (
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "TLSV1_ALERT_ACCESS_DENIED",
)


def _ssl_error(exc: BaseException | None) -> ssl.SSLError | None:
    """The ssl.SSLError in `exc`, its arguments or its causes: pika's SelectConnection
    reports AMQPConnectionWorkflowFailed, whose .exceptions hold an
    AMQPConnectorTransportSetupError, whose .exception is the SSLCertVerificationError."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, ssl.SSLError):
            return exc
        inner = [a for a in exc.args if isinstance(a, BaseException)]
        inner += [e for e in getattr(exc, "exceptions", ()) if isinstance(e, BaseException)]
        wrapped = getattr(exc, "exception", None)
        inner += [wrapped] if isinstance(wrapped, BaseException) else []
        exc = inner[-1] if inner else exc.__cause__ or exc.__context__
        seen += 1
    return None
