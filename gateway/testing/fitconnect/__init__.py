"""A local FIT-Connect Submission API emulator and sender (test tool, also for demos and
operators' smoke tests): ``Emulator`` (the ASGI app and its state), ``run``/``start_in_thread``,
``send`` (the sender) and the Typer sub-app ``emulator_cli``."""

from gateway.testing.fitconnect.emulator import Emulator, Faults
from gateway.testing.fitconnect.sender import OutgoingAttachment, Sent, Tamper, send
from gateway.testing.fitconnect.server import (
    DestinationFiles,
    EmulatorServer,
    ensure_destination_keys,
    register,
    run,
    start_in_thread,
)

__all__ = [
    "DestinationFiles",
    "Emulator",
    "EmulatorServer",
    "Faults",
    "OutgoingAttachment",
    "Sent",
    "Tamper",
    "ensure_destination_keys",
    "register",
    "run",
    "send",
    "start_in_thread",
]
