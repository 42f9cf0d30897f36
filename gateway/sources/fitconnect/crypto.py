"""FIT-Connect cryptography: JWE decryption, SET signing and verification, callback HMAC.

Everything cryptographic is done by ``joserfc`` (on ``cryptography``); this module only picks
the algorithms FIT-Connect fixes and checks what the transport promises:

- JWE compact, ``alg=RSA-OAEP-256``, ``enc=A256GCM``, optional ``zip=DEF``; metadata, data and
  every attachment are separate JWEs. Several private keys may be configured (key rotation):
  the one named by the JWE's ``kid`` is used, else each in turn.
- SETs (security event tokens) are JWS compact, ``alg=PS512``, ``typ=secevent+jwt``, ``kid``.
- Callbacks carry ``callback-authentication`` = lowercase hex HMAC-SHA512 over
  ``<callback-timestamp>.<raw body>``; timestamps older than five minutes are refused.

Two contained workarounds around joserfc (1.x):

- joserfc checks RSA-OAEP keys against the key operations ``encrypt``/``decrypt``, while FIT-Connect
  keys say ``wrapKey``/``unwrapKey`` (RFC 7517 for key wrapping). We check ``key_ops`` ourselves
  and import the key without it.
- joserfc's default JWE registry refuses ciphertexts above 64 kB and inflates ``zip=DEF``
  content only up to 250 kB; attachments are megabytes. ``_Registry`` raises both limits to
  ``MAX_PLAINTEXT`` (still bounded, so a deflate bomb costs at most that much memory).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwa import JWEZipModel
from joserfc.jwe import JWERegistry
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from gateway.errors import AuthError, ConfigError

JWE_ALG = "RSA-OAEP-256"
JWE_ENC = "A256GCM"
SET_ALG = "PS512"
SET_TYP = "secevent+jwt"
MIN_RSA_BITS = 4096
CALLBACK_MAX_AGE = 300  # seconds
MAX_PLAINTEXT = 512 * 1024 * 1024  # bytes; bounds a decompressed or decrypted part


class CryptoError(Exception):
    """A JOSE object failed a check; ``str()`` says which one (never secret material)."""


class DecryptionFailed(CryptoError):
    pass


class SignatureInvalid(CryptoError):
    pass


class UnknownSigningKey(SignatureInvalid):
    """The SET names a ``kid`` the key set does not hold (refetch the JWKS, then give up)."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"no key with kid {kid!r}")
        self.kid = kid


class CallbackRejected(AuthError):
    """A callback whose HMAC or timestamp does not check out (answer 401, fetch nothing)."""

    slug = "fit-connect-callback"
    title = "Callback authentication failed"


# --- registries (see the module docstring) ------------------------------------------------


class _Deflate(JWEZipModel):
    name = "DEF"
    description = "DEFLATE, bounded"
    recommended = True

    def compress(self, s: bytes) -> bytes:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return compressor.compress(s) + compressor.flush()

    def decompress(self, s: bytes) -> bytes:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        value = inflater.decompress(s, MAX_PLAINTEXT)
        if inflater.unconsumed_tail:
            raise DecryptionFailed(f"inflated content exceeds {MAX_PLAINTEXT} bytes")
        return value


class _Registry(JWERegistry):
    max_ciphertext_length = MAX_PLAINTEXT
    max_aad_length = 4096


_Registry.algorithms = {
    "alg": {JWE_ALG: JWERegistry.algorithms["alg"][JWE_ALG]},
    "enc": {JWE_ENC: JWERegistry.algorithms["enc"][JWE_ENC]},
    "zip": {"DEF": _Deflate()},
}
_JWE_REGISTRY = _Registry(algorithms=[JWE_ALG, JWE_ENC, "DEF"])
_JWS_REGISTRY = JWSRegistry(algorithms=[SET_ALG])


# --- keys ---------------------------------------------------------------------------------


def rsa_key(jwk: Mapping[str, Any], *, purpose: str) -> RSAKey:
    """Import an RSA JWK for ``purpose`` (``unwrapKey``, ``wrapKey``, ``sign`` or ``verify``)."""
    if jwk.get("kty") != "RSA":
        raise ConfigError(f"JWK {jwk.get('kid')!r} is no RSA key")
    ops = jwk.get("key_ops")
    if ops is not None and purpose not in ops:
        raise ConfigError(f"JWK {jwk.get('kid')!r} has key_ops {ops}, needs {purpose!r}")
    expected = SET_ALG if purpose in ("sign", "verify") else JWE_ALG
    if jwk.get("alg", expected) != expected:
        raise ConfigError(f"JWK {jwk.get('kid')!r} is for {jwk.get('alg')}, needs {expected}")
    if purpose in ("sign", "unwrapKey") and "d" not in jwk:
        raise ConfigError(f"JWK {jwk.get('kid')!r} is a public key, a private key is needed")
    plain = {k: v for k, v in jwk.items() if k not in ("key_ops", "use", "x5c")}
    try:
        return RSAKey.import_key(plain)
    except (JoseError, ValueError) as exc:
        raise ConfigError(f"JWK {jwk.get('kid')!r} cannot be read: {exc}") from exc


def key_bits(key: RSAKey) -> int:
    return int(key.public_key.key_size)


def check_key_strength(key: RSAKey, *, production: bool, name: str) -> None:
    """Refuse RSA keys below 4096 bit in production (FIT-Connect's minimum for every key)."""
    if production and key_bits(key) < MIN_RSA_BITS:
        raise ConfigError(
            f"{name}: RSA key of {key_bits(key)} bit refused in production "
            f"(FIT-Connect requires {MIN_RSA_BITS})"
        )


def load_jwk_file(path: Path) -> dict[str, Any]:
    """Read a private JWK file; refuse it if group or others may access it (mode 0600)."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key file ({exc.strerror})") from exc
    if mode & 0o077:
        raise ConfigError(f"{path}: mode {mode:04o} lets group/others read a private key; use 0600")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a JWK JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JWK JSON object")
    return data


def public_jwk(key: RSAKey, *, purpose: str, kid: str | None = None) -> dict[str, Any]:
    """The public half as FIT-Connect publishes it (``key_ops`` and ``alg`` set)."""
    data: dict[str, Any] = dict(key.as_dict(private=False))
    data["kid"] = kid or key.kid or key.thumbprint()
    data["key_ops"] = [purpose]
    data["alg"] = SET_ALG if purpose == "verify" else JWE_ALG
    return data


# --- JWE ----------------------------------------------------------------------------------


def auth_tag(token: str) -> str:
    """The authentication tag of a compact JWE: its fifth (last) segment."""
    parts = token.strip().split(".")
    if len(parts) != 5:
        raise DecryptionFailed("not a compact JWE (five segments expected)")
    return parts[4]


@dataclass(frozen=True)
class Decrypted:
    plaintext: bytes
    auth_tag: str
    header: Mapping[str, Any]


class DecryptionKeys:
    """The destination's private encryption keys: the current one and older ones in rotation."""

    def __init__(self, keys: Iterable[RSAKey]) -> None:
        self.keys = list(keys)
        if not self.keys:
            raise ConfigError("at least one decryption key is needed")
        self._by_kid = {k.kid: k for k in self.keys if k.kid}

    def decrypt(self, token: str) -> Decrypted:
        tag = auth_tag(token)
        try:
            header = json.loads(jws_b64decode(token.split(".", 1)[0]))
        except ValueError as exc:
            raise DecryptionFailed("JWE header is not JSON") from exc
        if not isinstance(header, dict):
            raise DecryptionFailed("JWE header is not an object")
        if header.get("alg") != JWE_ALG or header.get("enc") != JWE_ENC:
            raise DecryptionFailed(
                f"JWE uses alg={header.get('alg')} enc={header.get('enc')}, "
                f"expected {JWE_ALG}/{JWE_ENC}"
            )
        kid = header.get("kid")
        candidates = [self._by_kid[kid]] if kid in self._by_kid else self.keys
        for key in candidates:
            try:
                obj = jwe.decrypt_compact(token, key, registry=_JWE_REGISTRY)
            except (JoseError, ValueError, DecryptionFailed):
                continue
            assert obj.plaintext is not None
            return Decrypted(obj.plaintext, tag, header)
        raise DecryptionFailed(f"JWE does not decrypt with any configured key (kid {kid!r})")


def encrypt(plaintext: bytes, public_key: RSAKey, *, kid: str, deflate: bool = False) -> str:
    """Encrypt as a FIT-Connect sender does (used by the emulator's sender and tests)."""
    header: dict[str, Any] = {"alg": JWE_ALG, "enc": JWE_ENC, "kid": kid, "cty": "application/json"}
    if deflate:
        header["zip"] = "DEF"
    return jwe.encrypt_compact(header, plaintext, public_key, registry=_JWE_REGISTRY)


def jws_b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# --- SETs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityEvent:
    """A verified SET: its claims and its one event."""

    token: str
    kid: str
    claims: Mapping[str, Any]
    event: str
    payload: Mapping[str, Any]

    @property
    def issuer(self) -> str:
        return str(self.claims.get("iss", ""))


def set_kid(token: str) -> str:
    try:
        header = json.loads(jws_b64decode(token.split(".", 1)[0]))
    except ValueError as exc:
        raise SignatureInvalid("SET header is not JSON") from exc
    if not isinstance(header, dict):
        raise SignatureInvalid("SET header is not an object")
    if header.get("alg") != SET_ALG:
        raise SignatureInvalid(f"SET alg is {header.get('alg')!r}, expected {SET_ALG}")
    if header.get("typ") != SET_TYP:
        raise SignatureInvalid(f"SET typ is {header.get('typ')!r}, expected {SET_TYP}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureInvalid("SET header has no kid")
    return kid


def verify_set(token: str, keys: Mapping[str, RSAKey]) -> SecurityEvent:
    """Verify a SET with the key its ``kid`` names; check the claims FIT-Connect requires."""
    kid = set_kid(token)
    key = keys.get(kid)
    if key is None:
        raise UnknownSigningKey(kid)
    try:
        obj = jws.deserialize_compact(token, key, registry=_JWS_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise SignatureInvalid(f"SET signature does not verify (kid {kid})") from exc
    try:
        claims = json.loads(obj.payload)
    except ValueError as exc:
        raise SignatureInvalid("SET payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise SignatureInvalid("SET payload is not an object")
    missing = [c for c in ("jti", "iss", "iat", "sub", "txn", "events") if c not in claims]
    if missing:
        raise SignatureInvalid(f"SET lacks claims {missing}")
    events = claims["events"]
    if not isinstance(events, dict) or len(events) != 1:
        raise SignatureInvalid("SET must carry exactly one event")
    ((event, payload),) = events.items()
    if not isinstance(payload, dict):
        raise SignatureInvalid("SET event payload is not an object")
    return SecurityEvent(token, kid, claims, event, payload)


def sign_set(claims: Mapping[str, Any], key: RSAKey, *, kid: str) -> str:
    header = {"typ": SET_TYP, "alg": SET_ALG, "kid": kid}
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(header, payload, key, registry=_JWS_REGISTRY)


# --- callbacks ----------------------------------------------------------------------------


def callback_signature(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha512).hexdigest()


def check_callback(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    max_age: int = CALLBACK_MAX_AGE,
) -> None:
    """Raise ``CallbackRejected`` unless the HMAC over the raw body and timestamp is right and
    the timestamp is at most ``max_age`` seconds old. ``headers`` must be case-insensitive."""
    signature = headers.get("callback-authentication")
    timestamp = headers.get("callback-timestamp")
    if not signature or not timestamp:
        raise CallbackRejected("callback-authentication and callback-timestamp are required")
    if not timestamp.isdigit():
        raise CallbackRejected("callback-timestamp is not a Unix time in seconds")
    current = time.time() if now is None else now
    age = current - int(timestamp)
    if age > max_age:
        raise CallbackRejected(f"callback-timestamp is {int(age)} s old (at most {max_age})")
    if age < -max_age:
        raise CallbackRejected("callback-timestamp lies in the future")
    expected = callback_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise CallbackRejected("callback-authentication does not match")


def sha512_hex(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()
