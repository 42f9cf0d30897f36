from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import RSAKey

REPO = Path(__file__).resolve().parents[2]


def _find_shared() -> Path:
    # CI: a fresh clone with shared/ beside it. Developers: a git worktree further down.
    for ancestor in REPO.parents:
        candidate = ancestor / "shared" / "fit-connect"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "fit-connect"


SHARED_FIT = _find_shared()
VECTORS = SHARED_FIT / "test-vectors" / "jose-utils"


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.skip(
            f"FIT-Connect test vectors not present at {VECTORS} (shared/ not beside the repo)"
        )
    return VECTORS


@pytest.fixture(scope="session")
def openapi_path() -> Path:
    path = SHARED_FIT / "openapi" / "submission-api.v1.1.3.yaml"
    if not path.is_file():
        pytest.skip(f"Submission API OpenAPI document not present at {path}")
    return path


def properties(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@dataclass(frozen=True)
class KeyRing:
    encryption: RSAKey  # destination: private, RSA-OAEP-256
    signing: RSAKey  # destination: private, PS512 (the subscriber signs accept/reject)
    service: RSAKey  # the emulated delivery service's own PS512 key

    def write(self, directory: Path) -> tuple[Path, Path]:
        enc = directory / "encryption.jwk.json"
        sig = directory / "signing.jwk.json"
        _write_private(enc, jwk(self.encryption, "enc-key-1", "unwrapKey", "RSA-OAEP-256"))
        _write_private(sig, jwk(self.signing, "sig-key-1", "sign", "PS512"))
        return enc, sig


def jwk(key: RSAKey, kid: str, op: str, alg: str) -> dict[str, Any]:
    data = dict(key.as_dict(private=True))
    data.update(kid=kid, key_ops=[op], alg=alg)
    return data


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))
    path.chmod(0o600)


@pytest.fixture(scope="session")
def test_keys() -> KeyRing:
    """Three 4096-bit keys, generated once per session (a few seconds)."""
    return KeyRing(*(RSAKey.generate_key(4096, private=True) for _ in range(3)))
