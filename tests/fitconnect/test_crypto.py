"""The shared FIT-Connect vectors, checked with the same crypto code the gateway runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from gateway.errors import ConfigError
from gateway.sources.fitconnect import crypto
from tests.fitconnect.conftest import SHARED_FIT, properties

HMAC_SECRET = "insecure_unsafe_qHScgrg_kP-R31jHUwp3GkVkGJolvBchz65b74Lzue0"
BODY_A = (
    b'{"type":"https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions",'
    b'"submissionIds":["f39ab143-d91a-474a-b69f-b00f1a1873c2"]}'
)
MAC_A = (
    "798cd0edb70c08e5b32aa8a18cbbc8ff6b3078c51af6d011ff4e32e470c746234fc4314821fe5185264b02"
    "9e962bd37de33f3b9fc5f1a93c40ce6672845e90df"
)
BODY_B = (
    b'{"type":"https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions",'
    b'"submissionIds":["f39ab143-d91a-474a-b69f-b00f1a1873c2"],"submissions":[{"destinationId":'
    b'"d12caea8-f372-4eb1-b102-b0a228253a11","submissionId":"f39ab143-d91a-474a-b69f-b00f1a1873c2",'
    b'"caseId":"9eec7d3e-dc66-4f82-9f52-1520bf96a32e"}]}'
)
MAC_B = (
    "2056b372b5bcec06d8f11ab79b84b42d6cbe1c8e1178cdfa36e4385dcf717758aaa7599f417d9ec3e079087884"
    "f4fd59680bf713621383e2d4414ef74fb10df3"
)
TS = "1672527599"


def test_jwe_vector_decrypts_to_the_example_metadata(vectors: Path) -> None:
    key = crypto.rsa_key(json.loads((vectors / "privateKey.txt").read_text()), purpose="unwrapKey")
    token = (vectors / "encodedString.txt").read_text().strip()
    decrypted = crypto.DecryptionKeys([key]).decrypt(token)
    expected = (
        SHARED_FIT / "examples" / "decrypted-metadata-from-jose-utils-jwe.json"
    ).read_bytes()
    assert json.loads(decrypted.plaintext) == json.loads(expected)
    assert decrypted.header["zip"] == "DEF"
    assert decrypted.auth_tag == "gZGx1fiD_gmTXJ2f_Esh_A"


def test_jwe_picks_the_key_by_kid_and_falls_back_to_trying_each(vectors: Path) -> None:
    right = crypto.rsa_key(
        json.loads((vectors / "privateKey.txt").read_text()), purpose="unwrapKey"
    )
    other = RSAKey.generate_key(2048, private=True)
    token = (vectors / "encodedString.txt").read_text().strip()
    assert crypto.DecryptionKeys([other, right]).decrypt(token).plaintext
    # without kids on the keys, each is tried in turn
    plain = RSAKey.import_key({k: v for k, v in right.as_dict(private=True).items() if k != "kid"})
    assert crypto.DecryptionKeys([other, plain]).decrypt(token).plaintext
    with pytest.raises(crypto.DecryptionFailed):
        crypto.DecryptionKeys([other]).decrypt(token)


def test_garbage_jwe_fails_cleanly(vectors: Path) -> None:
    key = crypto.rsa_key(json.loads((vectors / "privateKey.txt").read_text()), purpose="unwrapKey")
    keys = crypto.DecryptionKeys([key])
    token = (vectors / "encodedString.txt").read_text().strip()
    parts = token.split(".")
    parts[3] = parts[3][:-4] + ("AAAA" if not parts[3].endswith("AAAA") else "BBBB")
    for bad in ("not-a-jwe", "a.b.c.d.e", ".".join(parts)):
        with pytest.raises(crypto.DecryptionFailed):
            keys.decrypt(bad)


def test_set_vector_verifies_and_the_negative_vector_does_not(vectors: Path) -> None:
    props = properties(vectors / "demo.properties")
    jwks = json.loads((vectors / "jwks.json").read_text())["keys"]
    keys = {k["kid"]: crypto.rsa_key(k, purpose="verify") for k in jwks}
    event = crypto.verify_set(props["data.jws"], keys)
    assert event.event == "https://schema.fitko.de/fit-connect/events/create-submission"
    assert event.issuer == "https://submission-api-testing.fit-connect.fitko.dev"
    with pytest.raises(crypto.UnknownSigningKey):
        crypto.verify_set(props["data.jws_fail"], keys)
    # and with the key offered under the failing token's kid, the signature still fails
    forged = {"dd0409e5-410e-4d98-85b6-f81a40b8d980": next(iter(keys.values()))}
    with pytest.raises(crypto.SignatureInvalid):
        crypto.verify_set(props["data.jws_fail"], forged)


def test_sign_and_verify_a_set(vectors: Path) -> None:
    signer = json.loads((vectors / "jwks2.json").read_text())["keys"][1]  # the 4096-bit one
    signer = {**signer, "key_ops": ["sign"]}
    key = crypto.rsa_key(signer, purpose="sign")
    claims = {
        "jti": "1",
        "iss": "x",
        "iat": 1,
        "sub": "submission:1",
        "txn": "case:1",
        "events": {"https://schema.fitko.de/fit-connect/events/accept-submission": {}},
    }
    token = crypto.sign_set(claims, key, kid=signer["kid"])
    public = crypto.rsa_key(crypto.public_jwk(key, purpose="verify"), purpose="verify")
    event = crypto.verify_set(token, {signer["kid"]: public})
    assert event.claims == claims
    header = json.loads(crypto.jws_b64decode(token.split(".")[0]))
    assert header == {"typ": "secevent+jwt", "alg": "PS512", "kid": signer["kid"]}


@pytest.mark.parametrize(("body", "mac"), [(BODY_A, MAC_A), (BODY_B, MAC_B)])
def test_callback_hmac_vectors(body: bytes, mac: str) -> None:
    assert crypto.callback_signature(HMAC_SECRET, TS, body) == mac
    headers = {"callback-authentication": mac, "callback-timestamp": TS}
    crypto.check_callback(HMAC_SECRET, headers, body, now=int(TS) + 10)


def test_callback_refuses_wrong_mac_old_timestamp_and_reserialised_body() -> None:
    headers = {"callback-authentication": MAC_B, "callback-timestamp": TS}
    with pytest.raises(crypto.CallbackRejected, match="old"):
        crypto.check_callback(HMAC_SECRET, headers, BODY_B, now=int(TS) + 301)
    pretty = json.dumps(json.loads(BODY_B), indent=2).encode()
    with pytest.raises(crypto.CallbackRejected, match="does not match"):
        crypto.check_callback(HMAC_SECRET, headers, pretty, now=int(TS))
    with pytest.raises(crypto.CallbackRejected):
        crypto.check_callback("wrong-secret", headers, BODY_B, now=int(TS))
    with pytest.raises(crypto.CallbackRejected):
        crypto.check_callback(HMAC_SECRET, {}, BODY_B, now=int(TS))
    assert crypto.CallbackRejected("x").status == 401


def test_small_keys_are_refused_in_production_only(tmp_path: Path) -> None:
    small = RSAKey.generate_key(2048, private=True)
    crypto.check_key_strength(small, production=False, name="k")
    with pytest.raises(ConfigError, match="2048 bit"):
        crypto.check_key_strength(small, production=True, name="k")


def test_private_key_files_must_be_0600(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text("{}")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        crypto.load_jwk_file(path)
    path.chmod(0o600)
    assert crypto.load_jwk_file(path) == {}


def test_key_ops_are_checked() -> None:
    key = RSAKey.generate_key(2048, private=True)
    data = {**key.as_dict(private=True), "key_ops": ["verify"], "alg": "PS512"}
    with pytest.raises(ConfigError, match="key_ops"):
        crypto.rsa_key(data, purpose="unwrapKey")
    with pytest.raises(ConfigError, match="public key"):
        crypto.rsa_key(key.as_dict(private=False), purpose="sign")


def test_sha512_hex() -> None:
    assert crypto.sha512_hex(b"") == (
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
    )
