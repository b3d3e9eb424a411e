"""Signing per Standard Webhooks (the spec's published test vector), stable message ids, and the target rules."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from spvhub_common.errors import AppError
from spvhub_webhooks import domain
from standardwebhooks import Webhook


def test_signature_matches_the_published_test_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    at = datetime.fromtimestamp(1614265330, UTC)
    h = domain.signed_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, b'{"test": 2432232314}')
    assert h == {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
                 "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}


def test_a_new_secret_verifies_its_own_signature() -> None:
    secret = domain.new_secret()
    assert secret.startswith("whsec_")
    body = b'{"a":1}'
    h = domain.signed_headers(secret, "msg_x", datetime.now(UTC), body)
    assert Webhook(secret).verify(body, h) == {"a": 1}


def test_webhook_id_is_stable_per_event_and_endpoint() -> None:
    assert domain.webhook_id("ev1", "ep1") == domain.webhook_id("ev1", "ep1")
    assert domain.webhook_id("ev1", "ep1") != domain.webhook_id("ev1", "ep2")
    assert domain.webhook_id("ev1", "ep1") != domain.webhook_id("ev2", "ep1")


@pytest.mark.parametrize("addr", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1",
                                  "fe80::1", "fc00::1", "0.0.0.0", "::ffff:127.0.0.1", "100.64.0.1", "224.0.0.1"])
def test_private_loopback_and_link_local_addresses_are_not_allowed(addr: str) -> None:
    assert not domain.address_allowed(addr)


def test_public_addresses_are_allowed() -> None:
    assert domain.address_allowed("8.8.8.8") and domain.address_allowed("2001:4860:4860::8888")


@pytest.mark.parametrize("url", ["http://example.ro/hook", "https://127.0.0.1/h", "https://localhost/h",
                                 "https://[::1]/h", "https://169.254.169.254/latest", "ftp://example.ro/",
                                 "https://user:pw@example.ro/", "https:///nohost"])
def test_strict_targets_refuse(url: str) -> None:
    with pytest.raises(AppError) as err:
        domain.check_url_shape(url, strict=True)
    assert err.value.code == "webhook_target_refused"


def test_dev_targets_may_be_local_http() -> None:
    assert domain.check_url_shape("http://127.0.0.1:9000/h", strict=False) == ("http", "127.0.0.1", 9000)


def test_backoff_grows_and_is_capped() -> None:
    d = [domain.next_delay(n, 5, 3600).total_seconds() for n in (1, 2, 3, 20)]
    assert 4 <= d[0] <= 6 and 8 <= d[1] <= 12 and 16 <= d[2] <= 24 and d[3] <= 3600 * 1.2


def test_the_integrators_guide_lists_exactly_the_subscribable_events() -> None:
    """docs/integrators.md is what an integrator reads before subscribing: its table must not drift from the code."""
    import re
    from pathlib import Path

    from spvhub_webhooks.domain import SUBSCRIBABLE

    guide = (Path(__file__).resolve().parents[3] / "docs" / "integrators.md").read_text(encoding="utf-8")
    section = guide.split("## The event catalogue", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(ro\.spvhub\.[^`]+)` \|", section, re.M)
    assert listed == [s.type for s in SUBSCRIBABLE]
