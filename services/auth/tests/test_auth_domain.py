"""Unit tests of the auth rules (no I/O): dates a person must act by, renewal schedule, warnings, reasons,
settings that refuse dev-only secrets."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from spvhub_auth import domain
from spvhub_auth.settings import Settings
from spvhub_common.ids import InvalidTaxId, normalize_cif

T0 = datetime(2026, 3, 10, 8, tzinfo=UTC)


def test_must_act_by_is_the_earliest_limit() -> None:
    refresh = T0 + timedelta(days=365)
    assert domain.must_act_by(refresh, domain.family_horizon(T0, 730)) == refresh
    late_refresh = T0 + timedelta(days=1000)
    assert domain.must_act_by(late_refresh, domain.family_horizon(T0, 730)) == T0 + timedelta(days=730)
    assert domain.family_horizon(T0, 0) is None and domain.must_act_by(late_refresh, None) == late_refresh


def test_next_renewal_at_fraction_and_never_after_must_act_by() -> None:
    exp = T0 + timedelta(days=90)
    assert domain.next_renewal(T0, exp, T0 + timedelta(days=365), 0.75) == T0 + timedelta(days=67.5)
    assert domain.next_renewal(T0, exp, T0 + timedelta(days=10), 0.75) == T0 + timedelta(days=10)


def test_warnings_each_once_and_only_the_most_urgent_after_a_jump() -> None:
    act = T0 + timedelta(days=100)
    offs = [30, 14, 7, 1]
    assert domain.warning_due(act, act - timedelta(days=31), offs, []) is None
    assert domain.warning_due(act, act - timedelta(days=29), offs, []) == (30, [30])
    assert domain.warning_due(act, act - timedelta(days=29), offs, [30]) is None
    # the service was down from day -29 to day -6: one warning (7), and 14 is settled with it
    assert domain.warning_due(act, act - timedelta(days=6), offs, [30]) == (7, [14, 7])
    assert domain.warning_due(act, act + timedelta(minutes=1), offs, [30, 14, 7]) is None  # too late for warnings


@pytest.mark.parametrize("text,reason", [
    ("Refresh token family expired; a new certificate login is required", domain.HORIZON_REACHED),
    ("Certificate serial replaced by a renewed certificate", domain.CERTIFICATE_RENEWED),
    ("Certificate no longer valid", domain.REVOKED_REASON),
    ("Refresh token was already used or revoked", domain.REVOKED_REASON),
    ("Refresh Token status is expired", domain.HORIZON_REACHED),
    ("", domain.UNKNOWN),
])
def test_reauth_reasons(text: str, reason: str) -> None:
    assert domain.reauth_reason(text, T0, T0 + timedelta(days=5), None) == reason


def test_messages_name_the_cif_in_both_languages() -> None:
    for loc in ("ro", "en"):
        for reason in (domain.HORIZON_REACHED, domain.CERTIFICATE_RENEWED, domain.REVOKED_REASON, domain.UNKNOWN):
            assert "1000017" in domain.reauth_message(reason, "1000017", "34:01", loc)
    msg = domain.no_rights_message("1000017", "34:01")
    assert "1000017" in msg and "another company's certificate" in msg and "less than a day old" in msg


def test_cif_normalisation() -> None:
    assert normalize_cif(" ro 1000017 ") == "1000017"
    with pytest.raises(InvalidTaxId):
        normalize_cif("RO12A")


def test_token_facts_read_serial_dates_and_login_time() -> None:
    import base64
    import json

    def jwt(claims: dict) -> str:  # type: ignore[type-arg]
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        return f"{enc({'alg': 'RS512'})}.{enc(claims)}.sig"
    iat = int(T0.timestamp())
    access = jwt({"serial": "34:01", "iat": iat, "exp": iat + 90 * 86400, "efactura": "EFACTURA"})
    refresh = jwt({"iat": iat, "exp": iat + 365 * 86400, "auth_time": iat - 86400, "jti": "x"})
    f = domain.TokenFacts.read(access, refresh, T0, 7776000)
    assert f.serial == "34:01" and f.services == ["efactura"]
    assert f.access_expires_at == T0 + timedelta(days=90) and f.refresh_expires_at == T0 + timedelta(days=365)
    assert f.certificate_login_at == T0 - timedelta(days=1)


def test_dev_secrets_refused_outside_dev() -> None:
    Settings(env="test")
    with pytest.raises(ValueError, match="token_key_spec"):
        Settings(env="prod", service_token="a-real-service-token", s3_secret_key="real-s3-secret-value",
                 pii_secret="p" * 32)
    Settings(env="prod", service_token="a-real-service-token", s3_secret_key="real-s3-secret-value",
             pii_secret="p" * 32,
             token_key_spec="k2:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", token_key_active="k2",
             anaf_client_secret="f" * 64 + "0")
