"""A TCP forwarder on a port of 127.0.0.1 to a real service, so that tests can make the
service come up, go down and come back for a process without touching the machine's real
PostgreSQL or RabbitMQ, which colleagues' concurrent runs share.

Started, the port accepts connections and relays them to the service. An outage
(:meth:`Forwarder.outage`) closes every relayed connection on both ends (the process sees
its connections drop, the service rolls back or requeues what they held) and stops
listening, so new connections are refused, as by a stopped service; afterwards it listens
on the same port again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


class Forwarder:
    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self.target_port = target_port
        self.outages = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def up(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        # reuse_address (the default on Unix): the port is bound again right after an outage.
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Stop listening and close every relayed connection, both ends."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):  # Python 3.11 has no Server.close_clients()
            writer.close()
        self._writers.clear()
        await server.wait_closed()

    @asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """The service is down inside the block, up again after it."""
        await self.stop()
        self.outages += 1
        try:
            yield
        finally:
            await self.start()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        if self._server is None:  # an outage began while this one connected
            writer.close()
            target_writer.close()
            return
        pair = (writer, target_writer)
        self._writers.update(pair)
        try:
            await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))
        finally:
            self._writers.difference_update(pair)


def redirected(url: str, real_port: int, port: int) -> str:
    """``url`` of the service on ``127.0.0.1:real_port``, pointed at a forwarder's ``port``."""
    assert f"127.0.0.1:{real_port}" in url, url
    return url.replace(f"127.0.0.1:{real_port}", f"127.0.0.1:{port}")


@asynccontextmanager
async def forwarding(port: int, target_port: int) -> AsyncIterator[Forwarder]:
    """A started :class:`Forwarder`; stopped (all its connections closed) on exit."""
    forwarder = Forwarder(port, target_port)
    await forwarder.start()
    try:
        yield forwarder
    finally:
        await forwarder.stop()
