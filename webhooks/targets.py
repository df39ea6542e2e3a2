"""Where a webhook may be sent, and the one HTTP request of an attempt.

SSRF: an endpoint URL is user input that makes the platform send requests from inside its
network. In production only ``https`` URLs whose host resolves to public addresses are accepted,
and the check runs again at every attempt, on the addresses the request then connects to (the
connection is made to the checked address itself, so a DNS answer that changes between the check
and the connect cannot redirect it). ``settings.dev`` and ``settings.test`` allow ``http`` and
private or loopback targets (``WEBHOOKS_ALLOW_HTTP``, ``WEBHOOKS_ALLOW_PRIVATE_TARGETS``) for local
receivers. Redirects are not followed.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from .models import URL_MAX_LENGTH

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESPONSE_BODY_KEPT = 1000
USER_AGENT = "videoplatform-webhooks/1.0"
# Names that mean "this machine or its network" whatever DNS says.
LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".localdomain", ".home.arpa")


class TargetRefused(Exception):
    """The URL is not a place webhooks may be sent (an API 400; at delivery time, a failed attempt)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_public_address(address: IpAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, shared, reserved or multicast
    (an IPv4 address embedded in IPv6, mapped or 6to4 or Teredo, is judged as itself)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not address.is_multicast


def _parse(url: str) -> SplitResult:
    if len(url) > URL_MAX_LENGTH:
        raise TargetRefused("url_too_long", f"The URL is longer than {URL_MAX_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise TargetRefused("invalid_url", "The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("invalid_url", f"The URL is not valid: {exc}.") from exc
    allowed = ("https", "http") if settings.WEBHOOKS_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise TargetRefused("insecure_url", f"The URL must start with {' or '.join(allowed)}://.")
    if not parts.hostname:
        raise TargetRefused("invalid_url", "The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("invalid_url", "The URL must not carry credentials (user:password@).")
    if parts.fragment:
        raise TargetRefused("invalid_url", "The URL must not have a #fragment.")
    if port == 0:
        raise TargetRefused("invalid_url", "The URL's port must be 1-65535.")
    return parts


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _check_address(address: IpAddress, host: str) -> None:
    if not settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS and not is_public_address(address):
        raise TargetRefused(
            "private_target",
            f"{host} is (or resolves to) {address}, a private, loopback or reserved address: "
            "webhooks are only sent to public addresses.",
        )


def _resolve(host: str, port: int) -> list[IpAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused("unresolvable_host", f"{host} could not be resolved: {exc}.") from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
    if not addresses:
        raise TargetRefused("unresolvable_host", f"{host} has no address.")
    return addresses


def _default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def url_check(url: str) -> str:
    """``url`` if webhooks may be sent there; TargetRefused otherwise.

    A host name that does not resolve now is accepted (its DNS may be set up later): the check at
    each attempt decides. One that resolves to a refused address, or a local name, is refused now.
    """
    parts = _parse(url)
    host = parts.hostname or ""
    if not settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS:
        lowered = host.lower().rstrip(".")
        if lowered == "localhost" or lowered.endswith(LOCAL_NAMES):
            raise TargetRefused("private_target", f"{host} is a local name: webhooks go to public hosts.")
        try:
            addresses = _resolve(host, _default_port(parts))
        except TargetRefused:
            return url
        for address in addresses:
            _check_address(address, host)
    return url


@dataclass(frozen=True)
class Response:
    status: int | None
    body: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address checked beforehand, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, address: IpAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self.address), self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address; the certificate is verified against the URL's host name."""

    def __init__(self, host: str, port: int, address: IpAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((str(self.address), self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Response:
    """One POST of ``body`` to ``url``: the target checked (as above), the answer within ``timeout``
    seconds in all (connect, send, status and the first bytes of the body), no redirects."""
    started = time.monotonic()

    def done(status: int | None, body_text: str = "", error: str = "") -> Response:
        return Response(status, body_text, error[:500], int((time.monotonic() - started) * 1000))

    try:
        parts = _parse(url)
        host = parts.hostname or ""
        addresses = _resolve(host, _default_port(parts))
        for address in addresses:
            _check_address(address, host)
    except TargetRefused as exc:
        return done(None, error=f"refused: {exc.message}")
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, _default_port(parts), addresses[0], timeout)
    # The socket timeout bounds each read; the watchdog bounds the whole exchange.
    watchdog = threading.Timer(timeout, _abort, (connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection.request(
            "POST", target, body=body, headers={"User-Agent": USER_AGENT, **headers, "Connection": "close"}
        )
        answer = connection.getresponse()
        text = answer.read(RESPONSE_BODY_KEPT).decode("utf-8", errors="replace")
        if time.monotonic() - started > timeout:
            return done(None, error=f"timed out after {timeout:g} s")
        return done(answer.status, text)
    except TimeoutError:
        return done(None, error=f"timed out after {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() - started >= timeout:
            return done(None, error=f"timed out after {timeout:g} s")
        return done(None, error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    finally:
        watchdog.cancel()
        connection.close()


def _abort(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
