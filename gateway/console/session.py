"""Console logins: who may log in, and the signed, expiring session cookie with its CSRF token.

The session lives in the cookie itself (no server-side table): ``base64url(json) . HMAC``
signed with ``Settings.console_secret`` or a random key per process. It carries the admin's
name, its expiry and a random CSRF token that every state-changing form sends back
(checked on POST, constant-time). The cookie is HttpOnly and SameSite=Strict; Secure when
the request came over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from gateway.routing.access import Admin
from gateway.routing.config import GatewayConfig

SESSION_COOKIE = "xg_console"
LOGIN_COOKIE = "xg_console_login"
"""Carries the login form's CSRF token before there is a session (login CSRF)."""
LOGIN_FORM_SECONDS = 600.0


def authenticate_admin(config: GatewayConfig, token: str) -> Admin | None:
    """The admin a console login token stands for, or None: the one place that decides
    who may use the console (the ``admins:`` of the configuration; sender tokens never)."""
    principal = config.authenticate(token)
    return principal if isinstance(principal, Admin) else None


def admin_still_valid(config: GatewayConfig, name: str) -> bool:
    """A session outlives no change of the configuration that removes its admin."""
    return name in config.admins


@dataclass(frozen=True)
class Session:
    admin: str
    expires_at: float
    csrf: str


class SessionSigner:
    def __init__(self, key: bytes | None, lifetime: float) -> None:
        self._key = key if key else secrets.token_bytes(32)
        self.lifetime = lifetime

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.digest(self._key, payload, hashlib.sha256)).decode()

    def _dump(self, data: dict[str, object]) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload.decode()}.{self._sign(payload)}"

    def _load(self, value: str) -> dict[str, object] | None:
        payload, _, signature = value.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload))
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        expires = data.get("exp")
        if not isinstance(expires, int | float) or expires <= time.time():
            return None
        return data

    def new_session(self, admin: str) -> tuple[Session, str]:
        session = Session(admin, time.time() + self.lifetime, secrets.token_urlsafe(32))
        return session, self._dump(
            {"sub": session.admin, "exp": session.expires_at, "csrf": session.csrf}
        )

    def session(self, value: str | None) -> Session | None:
        data = self._load(value) if value else None
        if data is None:
            return None
        admin, expires, csrf = data.get("sub"), data.get("exp"), data.get("csrf")
        if not (isinstance(admin, str) and isinstance(expires, int | float)):
            return None
        if not isinstance(csrf, str):
            return None
        return Session(admin, float(expires), csrf)

    def new_login_form(self) -> tuple[str, str]:
        """A CSRF token for the login form and the cookie that carries it."""
        token = secrets.token_urlsafe(32)
        return token, self._dump({"exp": time.time() + LOGIN_FORM_SECONDS, "csrf": token})

    def login_form_token(self, value: str | None) -> str | None:
        data = self._load(value) if value else None
        token = data.get("csrf") if data else None
        return token if isinstance(token, str) else None


def same_token(sent: str | None, expected: str | None) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(str(sent), str(expected))
