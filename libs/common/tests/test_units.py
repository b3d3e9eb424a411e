"""Unit tests of libs/common pieces that need no infrastructure."""
from __future__ import annotations

import base64
import json
import logging
import os

import pytest
from pydantic import ValidationError
from spvhub_common.crypto import SecretBox
from spvhub_common.events import CATALOGUE, decode, encode, to_envelope
from spvhub_common.events.auth import ConnectionRevoked
from spvhub_common.logging import configure_logging, get_logger, redact_value
from spvhub_common.settings import ServiceSettings


def test_secret_box_round_trip_rotation_and_tamper_detection():
    k1, k2 = os.urandom(32), os.urandom(32)
    old = SecretBox({"k1": k1}, "k1")
    blob = old.encrypt("refresh-token-value", aad="conn-1")
    assert b"refresh-token-value" not in blob
    rotated = SecretBox({"k1": k1, "k2": k2}, "k2")
    assert rotated.decrypt(blob, aad="conn-1") == "refresh-token-value"
    assert rotated.needs_rotation(blob) and not rotated.needs_rotation(rotated.encrypt("x"))
    from cryptography.exceptions import InvalidTag
    with pytest.raises(InvalidTag):
        rotated.decrypt(blob, aad="conn-2")  # bound to its row
    spec = f"k1:{base64.b64encode(k1).decode()},k2:{base64.b64encode(k2).decode()}"
    from_config = SecretBox.from_config(spec, "k2")
    assert from_config.decrypt(old.encrypt("v")) == "v" and from_config.active_key_id == "k2"


def test_settings_refuse_placeholder_secrets_outside_dev():
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings(env="prod")
    ok = ServiceSettings(env="prod", s3_secret_key="x" * 24, service_token="y" * 32, pii_secret="z" * 32)
    assert "x" * 24 not in repr(ok)


def test_envelope_is_cloudevents_structured_and_round_trips():
    ev = ConnectionRevoked(connection_id="c1", company_cif="14399840", user_id="u1", reason="user")
    env = to_envelope(ev, "auth")
    body = json.loads(encode(env))
    assert body["specversion"] == "1.0" and body["type"] == "ro.spvhub.auth.connection-revoked.v1"
    assert body["source"] == "/spvhub/auth" and body["subject"] == "14399840" and body["partitionkey"] == "14399840"
    assert decode(encode(env))[1] == ev
    with pytest.raises(ValueError):
        decode(b'{"specversion":"1.0","id":"1","source":"x","type":"ro.spvhub.nope.v1","time":"2026-01-01T00:00:00Z",'
               b'"data":{}}')


def test_every_catalogue_topic_is_named_service_dot_event():
    services = {"auth", "portfolio", "invitations", "efactura", "etransport", "notifier", "webhooks", "testkit"}
    for t, cls in CATALOGUE.items():
        svc, _, name = cls.topic.partition(".")
        assert svc in services and name and name == name.lower(), t
        assert t == f"ro.spvhub.{cls.topic}.v{cls.version}"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    import structlog
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def test_logs_never_carry_tokens(capsys, restore_logging):
    configure_logging("test")
    jwt_like = "eyJhbGciOiJSUzUxMiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl"
    get_logger("t").info("calling ANAF", access_token=jwt_like, url=f"https://x/?t={jwt_like}",
                         headers={"Authorization": f"Bearer {jwt_like}"})
    logging.getLogger("stdlib").warning("Authorization: Bearer %s", jwt_like)
    out = capsys.readouterr().out
    assert jwt_like not in out and "[redacted" in out
    assert redact_value({"client_secret": "s3cr3t", "nested": [f"Bearer {jwt_like}"]}) == {
        "client_secret": "[redacted]", "nested": ["Bearer [redacted]"]}


def test_one_time_codes_in_logged_urls_are_redacted():
    line = "GET /api/auth/anaf/callback?code=26e70aee&state=abc.def HTTP/1.1 join?invitation=tok123"
    out = redact_value(line)
    assert "26e70aee" not in out and "abc.def" not in out and "tok123" not in out and "/callback?code=" in out


async def test_rate_limit_errors_carry_retry_after():
    import httpx
    from fastapi import FastAPI
    from spvhub_common.errors import TooManyRequests, install_error_handlers
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/x")
    async def x():
        raise TooManyRequests("Slow down.", details={"retry_after_seconds": 12.4})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/x")
    assert r.status_code == 429 and r.headers["Retry-After"] == "12"
    assert r.json()["error"] == {"code": "rate_limited", "message": "Slow down.",
                                 "details": {"retry_after_seconds": 12.4}}


def test_trusted_proxies_come_from_the_environment_as_a_plain_or_json_list(monkeypatch):
    """./dev, compose and Kubernetes set SPVHUB_TRUSTED_PROXIES as a comma-separated list: services start with it."""
    from spvhub_common.settings import ServiceSettings
    for raw, want in (("127.0.0.1/32", ["127.0.0.1/32"]),
                      ("10.0.0.0/8, 172.16.0.0/12", ["10.0.0.0/8", "172.16.0.0/12"]),
                      ('["192.168.0.0/16"]', ["192.168.0.0/16"])):
        monkeypatch.setenv("SPVHUB_TRUSTED_PROXIES", raw)
        assert ServiceSettings(env="test").trusted_proxies == want
