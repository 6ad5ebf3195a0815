"""A loopback TCP forwarder for tests and benchmarks: counts the bytes each way (what the
wire figures measure) and keeps its connections' transports (so a test can cut them)."""

from __future__ import annotations

import asyncio

__all__ = ["Forwarder"]


class Forwarder(asyncio.Protocol):
    """One accepted connection, forwarded to ``target`` on loopback. ``totals``: its
    "up" and "down" byte counts are added to; ``opened``: its transport is appended."""

    def __init__(
        self,
        target: int,
        totals: dict[str, int] | None = None,
        opened: list[asyncio.Transport] | None = None,
    ) -> None:
        self.target = target
        self.totals = totals if totals is not None else {"up": 0, "down": 0}
        self.opened = opened
        self.peer: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.opened is not None:
            self.opened.append(transport)
        asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        outer = self

        class Back(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                outer.totals["down"] += len(data)
                outer.transport.write(data)

            def connection_lost(self, exc: Exception | None) -> None:
                outer.transport.close()

        transport, _ = await loop.create_connection(Back, "127.0.0.1", self.target)
        self.peer = transport
        for chunk in self.pending:
            transport.write(chunk)

    def data_received(self, data: bytes) -> None:
        self.totals["up"] += len(data)
        if self.peer is None:
            self.pending.append(data)
        else:
            self.peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()
