"""Console sessions: signed, expiring, bound to one key; the admin check is one function."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from gateway.console.session import (
    SessionSigner,
    admin_still_valid,
    authenticate_admin,
    same_token,
)
from gateway.routing.config import load_config
from tests.conftest import DEMO_ADMIN_TOKEN, DEMO_SENDER_TOKEN


def test_a_session_round_trips_and_refuses_tampering_expiry_and_other_keys():
    signer = SessionSigner(b"k" * 32, lifetime=60)
    session, cookie = signer.new_session("admin")
    assert signer.session(cookie) == session
    assert len(session.csrf) >= 40
    payload, signature = cookie.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload))
    forged = base64.urlsafe_b64encode(json.dumps({**data, "sub": "root"}).encode()).decode()
    assert signer.session(f"{forged}.{signature}") is None
    assert signer.session(cookie + "x") is None
    assert signer.session("garbage") is None
    assert signer.session(None) is None
    assert SessionSigner(b"j" * 32, lifetime=60).session(cookie) is None
    _, expired = SessionSigner(b"k" * 32, lifetime=-1).new_session("admin")
    assert signer.session(expired) is None


def test_a_random_key_per_process_when_none_is_configured():
    _, cookie = SessionSigner(None, lifetime=60).new_session("admin")
    assert SessionSigner(None, lifetime=60).session(cookie) is None


def test_login_form_tokens_are_signed_and_compared_in_constant_time():
    signer = SessionSigner(b"k" * 32, lifetime=60)
    token, cookie = signer.new_login_form()
    assert signer.login_form_token(cookie) == token
    assert signer.session(cookie) is None  # a login form's cookie is no session
    assert same_token(token, token)
    assert not same_token("", "")
    assert not same_token(token, None)
    assert not same_token(token[:-1], token)


def test_only_admins_log_in(tmp_path: Path):
    config = load_config(Path(__file__).parents[2] / "deploy" / "config")
    admin = authenticate_admin(config, DEMO_ADMIN_TOKEN)
    assert admin is not None and admin.name == "admin"
    assert authenticate_admin(config, DEMO_SENDER_TOKEN) is None
    assert authenticate_admin(config, "nonsense") is None
    assert admin_still_valid(config, "admin")
    assert not admin_still_valid(config, "efa-portal")
    assert not admin_still_valid(config, "gone")
