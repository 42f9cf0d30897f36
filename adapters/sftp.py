"""SFTP file drop: the ``filedrop`` layout, written to a directory on an SFTP server.

Per delivery: ``<delivery_id>.attachments/<file_name>`` (``Attachment.file_name``),
``<delivery_id>.xml``, the mapped document (named by ``mapped_name``, as in ``filedrop``)
and last ``<delivery_id>.json`` (the completion marker). Each file is uploaded under a
dot-prefixed temp name and renamed into place with the ``posix-rename@openssh.com``
extension (an atomic replace on the server), so the Fachverfahren's importer never sees
half a file and a redelivery replaces the same files instead of creating a second case.

The server's host key must be known (``known_hosts``); auth by password (from the
environment) or a private key file.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

import asyncssh
from pydantic import Field, model_validator

from adapters._mapped import DEFAULT_PATTERN, NamePattern, mapped_file
from adapters.filedrop import metadata
from gateway.sdk import (
    Adapter,
    AdapterSettings,
    Delivery,
    PermanentDeliveryError,
    Receipt,
    SecretEnv,
    TransientDeliveryError,
    secret_from_env,
)

# Retrying cannot fix these: the path or the rights are wrong (an operator must act).
PERMANENT_SFTP_CODES = {
    asyncssh.FX_PERMISSION_DENIED,
    asyncssh.FX_NO_SUCH_FILE,
    asyncssh.FX_NO_SUCH_PATH,
    asyncssh.FX_WRITE_PROTECT,
    asyncssh.FX_INVALID_FILENAME,
    asyncssh.FX_NOT_A_DIRECTORY,
    asyncssh.FX_FILE_IS_A_DIRECTORY,
    asyncssh.FX_OP_UNSUPPORTED,
}


class SftpSettings(AdapterSettings):
    host: str
    port: int = 22
    username: str
    password_env: SecretEnv | None = None
    client_key: Path | None = None
    known_hosts: Path
    """OpenSSH known_hosts file with the server's host key (never skipped)."""
    directory: str = "."
    """Remote directory the Fachverfahren imports from (created if missing)."""
    connect_timeout_seconds: float = Field(default=15.0, gt=0)
    mapped_name: NamePattern = DEFAULT_PATTERN
    """File name of the mapped document; placeholders in ``adapters._mapped.FIELDS``."""

    @model_validator(mode="after")
    def _one_credential(self) -> SftpSettings:
        if (self.password_env is None) == (self.client_key is None):
            raise ValueError("set exactly one of password_env or client_key")
        return self


class SftpDropAdapter(Adapter[SftpSettings]):
    settings_model = SftpSettings

    async def deliver(self, delivery: Delivery) -> Receipt:
        s = self.settings
        try:
            async with (
                asyncssh.connect(
                    s.host,
                    port=s.port,
                    username=s.username,
                    password=secret_from_env(s.password_env) if s.password_env else None,
                    client_keys=[str(s.client_key)] if s.client_key else None,
                    known_hosts=str(s.known_hosts),
                    connect_timeout=s.connect_timeout_seconds,
                ) as conn,
                conn.start_sftp_client() as sftp,
            ):
                await self._upload(sftp, delivery)
        except (asyncssh.PermissionDenied, asyncssh.HostKeyNotVerifiable) as exc:
            raise PermanentDeliveryError(f"SSH refused: {exc.reason}") from None
        except asyncssh.SFTPError as exc:
            problem = f"SFTP error {exc.code}: {exc.reason}"
            if exc.code in PERMANENT_SFTP_CODES:
                raise PermanentDeliveryError(problem) from None
            raise TransientDeliveryError(problem) from None
        except (asyncssh.Error, OSError) as exc:
            raise TransientDeliveryError(f"SFTP connection failed: {exc}") from None
        target = posixpath.join(s.directory, f"{delivery.delivery_id}.xml")
        return Receipt(reference=target, message=f"uploaded to {s.host}:{s.directory}")

    async def _upload(self, sftp: asyncssh.SFTPClient, delivery: Delivery) -> None:
        directory = self.settings.directory
        stem = delivery.delivery_id
        await sftp.makedirs(directory, exist_ok=True)
        if delivery.attachments:
            att_dir = posixpath.join(directory, f"{stem}.attachments")
            await sftp.makedirs(att_dir, exist_ok=True)
            for att in delivery.attachments:
                await self._atomic(sftp, posixpath.join(att_dir, att.file_name), att.path)
        await self._atomic(sftp, posixpath.join(directory, f"{stem}.xml"), delivery.xml)
        mapped = mapped_file(delivery, self.settings.mapped_name)
        if mapped is not None:
            await self._atomic(sftp, posixpath.join(directory, mapped[0]), mapped[1])
        meta = metadata(delivery, mapped[0] if mapped is not None else None)
        await self._atomic(sftp, posixpath.join(directory, f"{stem}.json"), meta)

    async def _atomic(self, sftp: asyncssh.SFTPClient, target: str, content: bytes | Path) -> None:
        head, name = posixpath.split(target)
        tmp = posixpath.join(head, f".{name}.tmp")
        if isinstance(content, Path):
            await sftp.put(str(content), tmp)
        else:
            async with sftp.open(tmp, "wb") as remote:
                await remote.write(content)
        await sftp.posix_rename(tmp, target)
