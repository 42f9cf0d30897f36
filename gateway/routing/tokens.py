"""Bearer tokens: how they are made, and which hashes are refused.

A token is checked by one SHA-256 lookup per request (no slow password hash on the hot
path), which is safe only for tokens with enough entropy: a SHA-256 of a short or common
word is reversed by a dictionary in seconds. The configuration holds only hashes, so the
gateway cannot measure a token's length; what it can do is refuse hashes of tokens that
are well known or trivially guessable (this list) and make good tokens easy
(``xoev-gateway token new``). See ``docs/security.md``.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import string
from functools import cache

TOKEN_BYTES = 32
"""``token new`` draws 32 random bytes (256 bits), URL-safe base64: 43 characters."""

MIN_TOKEN_BITS = 128
"""The least entropy ``token new --bytes`` allows."""

DEMO_TOKENS = {
    "demo-sender-token": "the public demo sender token of the example configuration",
    "demo-admin-token": "the public demo admin token of the example configuration",
}

# Tokens people type when asked for one. Not a password list: a token is never chosen by
# a person when `token new` is used; these catch the ones that were.
_COMMON_WORDS = """
secret secrets changeme change-me changeit password passwort passw0rd admin administrator
root token bearer test testing test123 demo example sample default guest user sender
letmein welcome qwerty qwertz asdf asdfgh abc abcdef abc123 123 1234 12345 123456 1234567
12345678 123456789 1234567890 0000 00000000 111111 password1 password123 secret123 admin123
token123 geheim geheimnis hallo sommer winter xoev gateway xoev-gateway efa efa-portal portal
api api-key apikey key my-token mytoken sender-token admin-token sender-secret admin-secret
"""
_COMMON = tuple(_COMMON_WORDS.split())


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(nbytes: int = TOKEN_BYTES) -> str:
    """A fresh random token (``secrets.token_urlsafe``)."""
    if nbytes * 8 < MIN_TOKEN_BITS:
        raise ValueError(f"a token needs at least {MIN_TOKEN_BITS // 8} random bytes")
    return secrets.token_urlsafe(nbytes)


@cache
def weak_hashes() -> dict[str, str]:
    """SHA-256 → why it is refused: the common tokens above (also capitalised and upper
    case), and every token of up to 3 lowercase letters or digits (~47,000, built
    once per process in ~0.1 s, when a configuration is first loaded)."""
    weak: dict[str, str] = {}
    for word in _COMMON:
        for variant in (word, word.capitalize(), word.upper()):
            weak[sha256_hex(variant)] = "a well-known token"
    alphabet = string.ascii_lowercase + string.digits
    for length in range(1, 4):
        for chars in itertools.product(alphabet, repeat=length):
            weak.setdefault(hashlib.sha256("".join(chars).encode()).hexdigest(), "a short token")
    for token, why in DEMO_TOKENS.items():
        weak[sha256_hex(token)] = why
    return weak


DEMO_HASHES = frozenset(sha256_hex(token) for token in DEMO_TOKENS)


def weakness(token_sha256: str, name: str) -> str | None:
    """Why a configured hash is refused, or None. ``name`` (the sender's or admin's) is a
    guess too: its own name, or the name with ``-token``/``-secret`` appended."""
    for guess in (name, f"{name}-token", f"{name}-secret", f"{name}token"):
        if sha256_hex(guess) == token_sha256:
            return "a token made of its own name"
    return weak_hashes().get(token_sha256)
