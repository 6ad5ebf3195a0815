"""Kept-alive HTTP connections for the kit's own calls (the relay's API, an OCSP
responder): one per thread and server, so a site's or a relay's worker threads do not pay
a TCP (and TLS) handshake per call. A request that meets a connection the server closed
while it was idle never reached the server, and is sent once more on a new one."""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.parse

__all__ = ["KeptConnections"]

_IDLE_CLOSED = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


class KeptConnections:
    """``tls``: the context for https servers (None: the system's trust)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._local = threading.local()

    def post(
        self, url: str, body: bytes, headers: dict[str, str], *, timeout: float, limit: int
    ) -> tuple[int, bytes]:
        """(status, at most ``limit`` bytes of the answer). Raises: OSError (unreachable,
        or an answer that is not HTTP)."""
        parts = urllib.parse.urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            connection = self._connection(parts, timeout)
            reused = connection.sock is not None
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                status, raw = response.status, response.read(limit)
                if not response.isclosed():  # more than was wanted: not reused
                    connection.close()
            except _IDLE_CLOSED:
                connection.close()
                if reused and attempt == 1:
                    continue  # closed while idle: the request never reached the server
                raise
            except OSError:
                connection.close()
                raise
            except http.client.HTTPException as exc:
                connection.close()
                raise OSError(f"the server answered no HTTP: {type(exc).__name__}") from None
            return status, raw
        raise AssertionError("unreachable")

    def _connection(
        self, parts: urllib.parse.SplitResult, timeout: float
    ) -> http.client.HTTPConnection:
        key = (parts.scheme, parts.hostname, parts.port)
        kept: dict[object, http.client.HTTPConnection] = self._local.__dict__.setdefault("kept", {})
        connection = kept.get(key)
        if connection is None:
            host = parts.hostname or ""
            if parts.scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, parts.port or 443, timeout=timeout, context=self._tls
                )
            else:
                connection = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout)
            kept[key] = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection
