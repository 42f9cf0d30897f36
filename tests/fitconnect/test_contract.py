"""The source contract's public surface, and the shipped metadata schema."""

from __future__ import annotations

import json
from importlib import resources

import gateway.sources.base as base
from gateway.errors import AuthError, ConfigError, Forbidden, InvalidMessage, NoRoute, Unavailable
from gateway.sources.fitconnect.subscriber import metadata_validator
from tests.fitconnect.conftest import SHARED_FIT, FakeSink


def test_public_surface_is_pinned() -> None:
    assert sorted(base.__all__) == [
        "AcceptResult",
        "IncomingAttachment",
        "IncomingSubmission",
        "Problem",
        "Source",
        "SubmissionSink",
        "Unavailable",
        "is_rejection",
        "problem_of",
    ]
    assert isinstance(FakeSink(), base.SubmissionSink)


def test_rejection_versus_our_outage() -> None:
    assert base.is_rejection(NoRoute("x"))
    assert base.is_rejection(InvalidMessage("x", []))
    assert base.is_rejection(Forbidden("sender may not send this service"))
    assert not base.is_rejection(AuthError("unknown sender identity"))  # our configuration
    assert not base.is_rejection(ConfigError("x"))
    assert not base.is_rejection(Unavailable("store down"))
    assert not base.is_rejection(RuntimeError("bug"))
    problem = base.problem_of(NoRoute("no route for 09162000"))
    assert (problem.type, problem.status) == ("https://xoev-gateway.de/problems/no-route", 422)


def test_attachment_has_content_or_path() -> None:
    import pytest

    with pytest.raises(ValueError, match="either"):
        base.IncomingAttachment("a", "text/plain", "0" * 64, 0)


def test_shipped_metadata_schema_is_the_shared_one_and_accepts_the_real_example() -> None:
    shipped = resources.files("gateway.sources.fitconnect").joinpath("metadata.schema.v1.0.0.json")
    shared = SHARED_FIT / "schemas" / "metadata.schema.v1.0.0.json"
    if shared.is_file():
        assert json.loads(shipped.read_text("utf-8")) == json.loads(shared.read_text("utf-8"))
    example = SHARED_FIT / "examples" / "decrypted-metadata-from-jose-utils-jwe.json"
    if example.is_file():
        assert list(metadata_validator().iter_errors(json.loads(example.read_text("utf-8")))) == []
    bad = {"contentStructure": {"attachments": [{"attachmentId": "x"}]}}
    assert list(metadata_validator().iter_errors(bad))
