"""Outside dev/test no service starts on a placeholder secret, and the default env is the strict one: a deployment
that forgets SPVHUB_ENV cannot run on the public dev service token, dev keys or MinIO's factory password."""
from __future__ import annotations

import base64
import importlib
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError
from spvhub_common.settings import ServiceSettings
from spvhub_devtools.gateway_conf import SERVICES

STRONG = {
    "service_token": "st-" + "Q7w9Zk2Lm4Np6Rt8" * 2,
    "s3_secret_key": "s3-" + "Vb5Xc7Hj9Kd2Fg4S" * 2,
    "token_key_spec": "k2:" + base64.b64encode(b"k" * 32).decode(),
    "token_key_active": "k2",
    "anaf_client_secret": "f" * 64 + "0",
    "invitation_token_key": "inv-" + "Yt6Ur8Ie2Wo4Pq7A" * 2,
    "smtp_password": "smtp-" + "Mn3Bv5Cx7Zl9Kj2H",
    "pii_secret": "pii-" + "Gh4Jk6Lp8Qr2St5V" * 2,
}
# What a careless deployment would carry over from this repository or a vendor manual.
PLACEHOLDER_VALUES = ("dev-service-token", "spvhub-dev-secret", "minioadmin", "changeme", "dev-only-anything")


def settings_class(service: str) -> type[ServiceSettings]:
    return importlib.import_module(f"spvhub_{service}.settings").Settings  # type: ignore[no-any-return]


def secret_fields(cls: type[ServiceSettings]) -> list[str]:
    return [n for n, f in cls.model_fields.items() if f.annotation is SecretStr and n != "pg_password"]


def strong_values(cls: type[ServiceSettings]) -> dict[str, str]:
    return {k: v for k, v in STRONG.items() if k in cls.model_fields}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SPVHUB_")}


def test_the_default_env_is_strict() -> None:
    assert ServiceSettings.model_fields["env"].default == "prod"
    env = _clean_env()
    out = subprocess.run([sys.executable, "-c", "from spvhub_common.settings import ServiceSettings as S; "
                          "print(S(service_token='x' * 32, s3_secret_key='y' * 32, pii_secret='z' * 32).env)"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "prod"


@pytest.mark.parametrize("service", SERVICES)
def test_service_refuses_to_start_on_default_secrets_without_an_env(service: str) -> None:
    """`python -m spvhub_<service>` with nothing configured: refused at start, naming what to set."""
    out = subprocess.run([sys.executable, "-m", f"spvhub_{service}"], env=_clean_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    assert "refused outside dev/test" in out.stderr or "outside dev/test" in out.stderr, out.stderr[-2000:]
    assert "service_token" in out.stderr
    # nothing secret is echoed back, not even the real ones set beside a placeholder
    env = {**_clean_env(), "SPVHUB_S3_SECRET_KEY": "REALSECRET-" + "x7" * 12,
           "SPVHUB_SERVICE_TOKEN": "dev-service-token"}
    out = subprocess.run([sys.executable, "-m", f"spvhub_{service}"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "service_token" in out.stderr
    assert "REALSECRET" not in out.stderr and "dev-service-token" not in out.stderr


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("env", ["prod", "staging"])
def test_every_placeholder_secret_is_refused_outside_dev(service: str, env: str) -> None:
    cls = settings_class(service)
    good = strong_values(cls)
    cls(env=env, **good)  # real-looking secrets: accepted
    fields = secret_fields(cls)
    assert {"service_token", "s3_secret_key"} <= set(fields)
    for field in fields:
        for value in PLACEHOLDER_VALUES:
            with pytest.raises(ValidationError) as err:
                cls(env=env, **{**good, field: value})
            assert field in str(err.value), (service, field, value)
            assert value not in str(err.value)  # the refusal does not echo any value
            assert not any(v in str(err.value) for v in good.values() if len(v) > 8)
    # the same placeholders are fine where they belong
    for dev_env in ("dev", "test"):
        cls(env=dev_env)


def test_short_service_token_and_optional_empty_credentials() -> None:
    with pytest.raises(ValidationError, match="service_token"):
        ServiceSettings(env="prod", **{**STRONG, "service_token": "short-token"})
    # an SMTP relay without login and PostgreSQL without a password are legitimate; placeholders there are not
    notifier = settings_class("notifier")
    notifier(env="prod", **{**strong_values(notifier), "smtp_password": ""})
    with pytest.raises(ValidationError, match="smtp_password"):
        notifier(env="prod", **{**strong_values(notifier), "smtp_password": "changeme"})
    with pytest.raises(ValidationError, match="pg_password"):
        ServiceSettings(env="prod", **{k: v for k, v in STRONG.items() if k in ServiceSettings.model_fields},
                        pg_password="postgres")
