"""An SFTP server (asyncssh's own) for the sftp adapter tests: ``python -m ... DIR PORT``.

Serves ``DIR/root`` (chroot) to user ``gateway`` with the password in ``SFTP_PASSWORD``,
writes its host key to ``DIR/known_hosts`` and takes faults from ``DIR/fault``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncssh

from tests.support.faults import take_fault


def main(directory: Path, port: int) -> None:
    root = directory / "root"
    root.mkdir(parents=True, exist_ok=True)
    fault_file = directory / "fault"
    password = os.environ["SFTP_PASSWORD"]

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, given: str) -> bool:
            return username == "gateway" and given == password

    class FaultySftp(asyncssh.SFTPServer):
        def __init__(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
            super().__init__(chan, chroot=str(root).encode())

        async def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
            mode = take_fault(fault_file)
            if mode == "transient":
                raise asyncssh.SFTPFailure("storage busy (test fault)")
            if mode == "permanent":
                raise asyncssh.SFTPPermissionDenied("write refused (test fault)")
            if mode == "hang":
                await asyncio.sleep(3)
            return super().open(path, pflags, attrs)

    async def serve() -> None:
        key = asyncssh.generate_private_key("ssh-ed25519")
        public = key.export_public_key().decode().strip()
        (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {public}\n")
        await asyncssh.listen(
            "127.0.0.1",
            port,
            server_host_keys=[key],
            server_factory=Server,
            sftp_factory=FaultySftp,
        )
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
