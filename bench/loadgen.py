"""Load generator: a minimal HTTP/1.1 keep-alive client on raw asyncio (uvloop), run in its
own process so that it does not share the server's event loop.

``closed``: a fixed number of connections, each sending its next request as soon as the
previous answer arrived (throughput). ``open``: requests start on a fixed schedule
(``rate``/s) whatever the server does, on as many connections as needed, and latency is
taken from the *scheduled* start, so a stalled server cannot hide its queueing delay
(no coordinated omission).

Prints one JSON object: the answers by status, the rate and latency percentiles of the
requests started in the measuring window (after ``warmup``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.workload import SENDER_TOKEN, requests

# uvloop's loop.time() has millisecond resolution: too coarse for latencies.
now = time.perf_counter


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport  # uvloop's TCPTransport is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._complete()

    def _complete(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        marker = head.find(b"\r\ncontent-length:")
        if marker >= 0:
            stop = head.find(b"\r\n", marker + 2)
            length = int(head[marker + 17 : stop if stop >= 0 else None])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        del self.buffer[:total]
        waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed by the server"))

    async def send(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


@dataclass
class Results:
    started_at: float
    warmup: float
    duration: float
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    measured: int = 0
    late_starts: int = 0

    def record(self, scheduled: float, done: float, status: str) -> None:
        # A request belongs to the window it was started (scheduled) in.
        offset = scheduled - self.started_at
        if self.warmup <= offset < self.warmup + self.duration:
            self.statuses[status] += 1
            self.latencies.append(done - scheduled)
            self.measured += 1

    def summary(self) -> dict[str, object]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            if not lat:
                return None
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

        ok = self.statuses.get("202", 0)
        return {
            "requests": self.measured,
            "accepted": ok,
            "rate": ok / self.duration,
            "statuses": dict(self.statuses),
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": lat[-1] * 1000 if lat else None,
            "late_starts": self.late_starts,
        }


class Client:
    def __init__(self, host: str, port: int, path: str, seed: int, share: float) -> None:
        self.host = host
        self.port = port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {SENDER_TOKEN}\r\n"
        ).encode()
        self.requests = requests(seed, share)
        self.idle: list[Connection] = []
        self.opened = 0

    def next_request(self) -> bytes:
        r = next(self.requests)
        return b"".join(
            [
                self.head,
                f"Content-Type: {r.content_type}\r\nContent-Length: {len(r.body)}\r\n\r\n".encode(),
                r.body,
            ]
        )

    async def connection(self) -> Connection:
        while self.idle:
            conn = self.idle.pop()
            if not conn.lost:
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, self.host, self.port)
        self.opened += 1
        return conn

    async def one(self, data: bytes) -> str:
        conn = await self.connection()
        try:
            status = await conn.send(data)
        except (ConnectionError, OSError) as exc:
            if conn.transport is not None:
                conn.transport.close()
            return type(exc).__name__
        self.idle.append(conn)
        return str(status)


async def closed_loop(client: Client, concurrency: int, warmup: float, duration: float) -> Results:
    results = Results(now(), warmup, duration)
    stop_at = results.started_at + warmup + duration

    async def user() -> None:
        while now() < stop_at:
            data = client.next_request()
            start = now()
            status = await client.one(data)
            results.record(start, now(), status)

    await asyncio.gather(*(user() for _ in range(concurrency)))
    return results


async def open_loop(
    client: Client, rate: float, warmup: float, duration: float, timeout: float
) -> Results:
    results = Results(now() + 0.05, warmup, duration)
    total = int(rate * (warmup + duration))
    tasks: set[asyncio.Task[None]] = set()

    async def timed(scheduled: float, data: bytes) -> None:
        try:
            status = await asyncio.wait_for(client.one(data), timeout)
        except TimeoutError:
            status = "timeout"
        results.record(scheduled, now(), status)

    for i in range(total):
        scheduled = results.started_at + i / rate
        data = client.next_request()
        delay = scheduled - now()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            results.late_starts += 1
        task = asyncio.create_task(timed(scheduled, data))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--path", default="/v1/submissions")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--attachment-share", type=float, default=0.10)
    parser.add_argument("--mode", choices=["closed", "open"], default="closed")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    client = Client(args.host, args.port, args.path, args.seed, args.attachment_share)

    async def run() -> Results:
        if args.mode == "closed":
            return await closed_loop(client, args.concurrency, args.warmup, args.duration)
        return await open_loop(client, args.rate, args.warmup, args.duration, args.timeout)

    try:
        import uvloop

        results = uvloop.run(run())
    except ImportError:
        results = asyncio.run(run())
    summary = results.summary()
    summary["connections"] = client.opened
    summary["wall_clock"] = time.time()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
