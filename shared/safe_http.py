"""Outbound HTTP to addresses a caller chose (image URLs, webhooks), guarded against SSRF.

A URL must be `https` (plain `http` only for the hosts in API_FETCH_ALLOWED_HOSTS, meant
for tests and `make run`). Its host is resolved once; if any address is loopback, private,
link-local (cloud metadata included), multicast, reserved or unspecified the request is
refused, and the connection goes to the address that was checked (no second DNS answer can
swap it). Redirects are followed by hand, each hop checked the same way; the body is capped
in bytes and the whole exchange in time.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3

from shared.errors import BadRequest, PayloadTooLarge

MAX_REDIRECTS = 3
CHUNK = 64 * 1024
Resolver = Callable[[str, int], list[str]]


class UnsafeUrl(BadRequest):
    """HTTP 400: a URL Proteus will not fetch (scheme, or an address it must not reach)."""

    code = "unsafe_url"


class FetchFailed(BadRequest):
    """HTTP 400: the URL could not be fetched (connection, status, timeout)."""

    code = "fetch_failed"


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


class SafeClient:
    """Makes guarded requests; `allowed_hosts` skip the address check (and may use http)."""

    def __init__(
        self, *, field: str, timeout_s: float, allowed_hosts: Collection[str] = (), resolver: Resolver = resolve
    ) -> None:
        self.field = field
        self.timeout_s = timeout_s
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.resolver = resolver

    def _target(self, url: str) -> tuple[str, str, int, str, str]:
        """(scheme, host, port, address to connect to, path) of an allowed URL."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        allowed = host in self.allowed_hosts
        if parts.scheme != "https" and not (parts.scheme == "http" and allowed):
            raise UnsafeUrl(f"{self.field} must be an https URL, got {_short(url)}", field=self.field)
        if not host or parts.username or parts.password:
            raise UnsafeUrl(
                f"{self.field} must be an https URL with a host and no credentials, got {_short(url)}", field=self.field
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise UnsafeUrl(f"{self.field} has a bad port: {_short(url)}", field=self.field) from None
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError):
            raise FetchFailed(
                f"{self.field}: the host {host!r} of {_short(url)} does not resolve", field=self.field
            ) from None
        if not addresses:
            raise FetchFailed(f"{self.field}: the host {host!r} has no address", field=self.field)
        if not allowed:
            for address in addresses:
                if not is_public_address(address):
                    raise UnsafeUrl(
                        f"{self.field} {_short(url)} resolves to {address}, a private, loopback, link-local or "
                        f"metadata address; only public addresses are fetched",
                        field=self.field,
                    )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return parts.scheme, host, port, addresses[0], path

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int,
        follow_redirects: bool = True,
    ) -> Response:
        """One guarded exchange; the response body is read up to `max_bytes` (413 beyond)."""
        deadline = time.monotonic() + self.timeout_s
        for _ in range(MAX_REDIRECTS + 1):
            scheme, host, port, address, path = self._target(url)
            response = self._once(method, scheme, host, port, address, path, body, headers or {}, deadline)
            location = response.headers.get("location")
            if follow_redirects and response.status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if response.status == 303:
                    method, body = "GET", None
                response.release_conn()
                continue
            return self._read(response, url, max_bytes, deadline)
        raise FetchFailed(f"{self.field}: more than {MAX_REDIRECTS} redirects from {_short(url)}", field=self.field)

    def _once(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        address: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        deadline: float,
    ) -> Any:
        remaining = max(0.1, deadline - time.monotonic())
        timeout = urllib3.Timeout(connect=min(remaining, 5.0), read=remaining)
        pool: urllib3.HTTPConnectionPool
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address, port, server_hostname=host, assert_hostname=host, timeout=timeout, retries=False, maxsize=1
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
        default_port = 443 if scheme == "https" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        try:
            return pool.urlopen(
                method,
                path,
                body=body,
                headers={"Host": host_header, **headers},
                redirect=False,
                preload_content=False,
                retries=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise FetchFailed(f"{self.field}: could not reach {host}: {type(exc).__name__}", field=self.field) from None

    def _read(self, response: Any, url: str, max_bytes: int, deadline: float) -> Response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            response.release_conn()
            raise PayloadTooLarge(
                f"{self.field} {_short(url)} is {declared} bytes; at most {max_bytes} are allowed", field=self.field
            )
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.stream(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"{self.field} {_short(url)} is over {max_bytes} bytes", field=self.field)
                if time.monotonic() > deadline:
                    raise FetchFailed(f"{self.field}: {_short(url)} took over {self.timeout_s:g} s", field=self.field)
                chunks.append(chunk)
        except urllib3.exceptions.HTTPError as exc:
            raise FetchFailed(
                f"{self.field}: reading {_short(url)} failed: {type(exc).__name__}", field=self.field
            ) from None
        finally:
            response.release_conn()
        return Response(response.status, headers, b"".join(chunks))


def _short(url: str) -> str:
    return repr(url if len(url) <= 200 else url[:200] + "...")
