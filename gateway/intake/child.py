"""An intake process: ``python -m gateway.intake.child FD SCHEMA_DIR...``.

Loads the schema registry, answers READY, then examines one message per frame read from
the socket FD until end-of-file (the API process closed it or died). Frames are
``!I``-length-prefixed pickles: ``(request_id, body)`` in, ``(request_id, ok, value)``
out, where ``value`` is an ``Examined`` or the ``GatewayError`` that rejects the message.
"""

from __future__ import annotations

import io
import pickle
import signal
import socket
import sys
from pathlib import Path

from gateway.errors import GatewayError
from gateway.intake.pipeline import examine
from gateway.intake.processes import FRAME, READY
from gateway.intake.registry import SchemaRegistry


def _send(stream: io.BufferedIOBase, request_id: int, ok: bool, value: object) -> None:
    frame = pickle.dumps((request_id, ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(frame)) + frame)
    stream.flush()


def _read(stream: io.BufferedIOBase) -> bytes | None:
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    frame = stream.read(size)
    return frame if len(frame) == size else None


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group; the API process decides when we stop
    # (it closes the socket), so that no answer is cut off half-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    reader, writer = sock.makefile("rb"), sock.makefile("wb")
    try:
        registry = SchemaRegistry.load([Path(arg) for arg in argv[1:]])
    except GatewayError as exc:
        _send(writer, READY, False, exc)
        return 1
    _send(writer, READY, True, None)
    try:
        while (frame := _read(reader)) is not None:
            request_id, body = pickle.loads(frame)  # noqa: S301 (our API process)
            try:
                _send(writer, request_id, True, examine(body, registry))
            except GatewayError as exc:
                _send(writer, request_id, False, exc)
            except Exception as exc:  # a bug, not the message: answer 500, do not hang
                _send(writer, request_id, False, GatewayError(f"intake failed: {exc!r}"))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the API process is gone
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
