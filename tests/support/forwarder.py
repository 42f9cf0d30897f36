"""A TCP forwarder on a port of 127.0.0.1 to a real service: the service "comes up" on
that port when the forwarder starts, without stopping the machine's real service."""

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


@asynccontextmanager
async def forwarding(port: int, target_port: int) -> AsyncIterator[None]:
    open_writers: set[asyncio.StreamWriter] = set()

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await asyncio.open_connection("127.0.0.1", target_port)
        open_writers.update((writer, target_writer))
        await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))

    server = await asyncio.start_server(connect, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for writer in open_writers:  # Python 3.11 has no Server.close_clients()
            writer.close()
        await server.wait_closed()
