"""Per-submission CPU cost of the FIT-Connect checks: SET verification + decryption + hashes
+ metadata schema, for N submissions with one 100 kB attachment (4096-bit keys, as in
production). Usage: python bench/fitconnect_decrypt.py [N]"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

from joserfc.jwk import RSAKey

from gateway.sources.fitconnect import crypto
from gateway.sources.fitconnect.client import Submission
from gateway.sources.fitconnect.settings import DestinationKeys
from gateway.sources.fitconnect.subscriber import Subscriber, Tags
from gateway.testing.fitconnect.sender import OutgoingAttachment, build_metadata


def main(n: int) -> None:
    per_submission = cost(n)
    print(
        f"{n} submissions: {per_submission * n / 1000:.2f} s, {per_submission:.1f} ms each "
        f"(2 SET verifications, 3 JWE decryptions, hashes, schema, 1 SET signature)"
    )


def cost(n: int) -> float:
    """CPU milliseconds per submission for the checks of one submission (single thread)."""
    enc = RSAKey.generate_key(4096, private=True)
    sig = RSAKey.generate_key(4096, private=True)
    service = RSAKey.generate_key(4096, private=True)
    public = crypto.rsa_key(crypto.public_jwk(enc, purpose="wrapKey", kid="k"), purpose="wrapKey")
    keys = DestinationKeys(crypto.DecryptionKeys([enc]), sig, "s")
    subscriber = Subscriber.__new__(Subscriber)
    subscriber.keys = keys
    service_keys = {
        "svc": crypto.rsa_key(crypto.public_jwk(service, purpose="verify"), purpose="verify")
    }
    xml = b"<x>" + b"a" * 4000 + b"</x>"
    work = []
    for _ in range(n):
        attachment = OutgoingAttachment(os.urandom(100_000))
        metadata = build_metadata(xml, (attachment,), ("urn:de:fim:leika:leistung:1", "x"))
        sub = Submission.model_validate(
            {
                "destinationId": str(uuid.uuid4()),
                "submissionId": str(uuid.uuid4()),
                "caseId": str(uuid.uuid4()),
                "attachments": [attachment.attachment_id],
                "serviceType": {"identifier": "urn:de:fim:leika:leistung:1"},
                "encryptedMetadata": crypto.encrypt(json.dumps(metadata).encode(), public, kid="k"),
                "encryptedData": crypto.encrypt(xml, public, kid="k"),
            }
        )
        att = {attachment.attachment_id: crypto.encrypt(attachment.content, public, kid="k")}
        tags = Tags(
            crypto.auth_tag(sub.encrypted_metadata or ""),
            crypto.auth_tag(sub.encrypted_data or ""),
            {k: crypto.auth_tag(v) for k, v in att.items()},
        )
        claims = {
            "jti": "1",
            "iss": "https://x",
            "iat": 1,
            "sub": "s",
            "txn": "t",
            "events": {"e": {"authenticationTags": tags.as_json()}},
        }
        sets = [crypto.sign_set(claims, service, kid="svc") for _ in range(2)]
        work.append((sub, att, tags, sets))
    started = time.perf_counter()
    for sub, att, tags, sets in work:
        for token in sets:
            crypto.verify_set(token, service_keys)
        subscriber._open(sub, att, tags)
        accept = {
            "jti": "2",
            "iss": "d",
            "iat": 1,
            "sub": "s",
            "txn": "t",
            "events": {"a": {"authenticationTags": tags.as_json()}},
        }
        crypto.sign_set(accept, sig, kid="s")
    elapsed = time.perf_counter() - started
    return elapsed / n * 1000


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
