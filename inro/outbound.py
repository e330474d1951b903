"""Requests to URLs a customer entered (integration webhooks): never to an internal address.

A URL is checked twice: when it is entered (so the admin form and the API can say why it is refused)
and when it is called. At call time the host is resolved once, every address it resolves to is
checked, and the connection goes to that checked address (the Host header and TLS certificate still
name the host): a DNS answer that changes between the check and the connection (DNS rebinding) can
not send the request elsewhere. Redirects are not followed: a 3xx is a failed delivery, so a public
URL cannot bounce the request to an internal one.

Refused: loopback, private (RFC 1918, unique-local), link-local (including the cloud metadata
address 169.254.169.254), multicast, reserved, unspecified, shared (carrier-grade NAT) and every
other non-global address, IPv4-mapped IPv6 forms included. OUTBOUND_ALLOWED_NETWORKS lists networks
exempted on purpose (a receiver on localhost in development and tests); empty in production.
"""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from inro.errors import ApplicationError

MAX_URL_LENGTH = 500


class UnsafeURLError(ApplicationError):
    """A URL the server will not call; the message says why (shown in the admin and the API)."""

    code = "unsafe_url"
    status = 400

    def __init__(self, reason: str, *, field: str = "url") -> None:
        super().__init__(f"This URL cannot be used: {reason}", fields={field: [reason]})
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    address: str  # the checked IP the connection goes to


def _allowed_networks():
    return [ipaddress.ip_network(net, strict=False) for net in getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", [])]


def address_refusal(address: str) -> str | None:
    """Why the server must not connect to this IP, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in _allowed_networks()):
        return None
    for test, kind in ((ip.is_loopback, "a loopback"), (ip.is_link_local, "a link-local"),
                       (ip.is_multicast, "a multicast"), (ip.is_unspecified, "an unspecified"),
                       (ip.is_reserved, "a reserved"), (ip.is_private, "a private")):
        if test:
            return f"{ip} is {kind} address; the server only calls public internet addresses."
    if not ip.is_global:
        return f"{ip} is not a public internet address; the server only calls public ones."
    return None


def _parsed(url: str) -> tuple[str, str, int, str]:
    url = (url or "").strip()
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURLError(f"use at most {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURLError("it is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURLError("enter an http:// or https:// URL with a host name.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError("credentials in the URL are not allowed; the request is signed instead.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeURLError("it contains spaces or control characters.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise UnsafeURLError(f"the host name {host!r} does not resolve.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise UnsafeURLError(f"the host name {host!r} does not resolve.")
    return addresses


def url_target(url: str) -> Target:
    """Resolve and check a URL; the address to connect to. Raises UnsafeURLError saying why not.

    Every address the host resolves to must be public: a name with one public and one internal
    address would otherwise reach the internal one on some attempts.
    """
    scheme, host, port, path = _parsed(url)
    addresses = _resolve(host, port)
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None:
            shown = "" if host == address.split("%", 1)[0] else f"{host} resolves to "
            raise UnsafeURLError(shown + reason)
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


def url_checked(url: str) -> str:
    """The URL, stripped, when the server may call it; UnsafeURLError (400, saying why) otherwise."""
    url_target(url)
    return (url or "").strip()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # certificate names the host


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST to a customer's URL, connecting only to the checked address; the response status.

    Raises UnsafeURLError when the URL (as it resolves now) is refused, OSError on network failure.
    A redirect is returned as its 3xx status and not followed.
    """
    target = url_target(url)
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target.host, target.port, address=target.address, timeout=timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # a bounded read: the body is not used
        return response.status
    except http.client.HTTPException as error:
        raise OSError(f"Bad HTTP response: {error}") from error
    finally:
        connection.close()
