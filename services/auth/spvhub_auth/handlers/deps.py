"""The ports every use case of the auth service works with, and the small helpers its sections share."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from spvhub_common.clock import Clock, SystemClock
from spvhub_common.crypto import SecretBox
from spvhub_common.errors import AppError
from spvhub_common.pii import PersonIds
from spvhub_common.uow import SqlUnitOfWork

from spvhub_auth import domain
from spvhub_auth.adapters.anaf import AnafGateway
from spvhub_auth.adapters.keys import KeyRing
from spvhub_auth.settings import Settings

LOCALES = ("ro", "en")
SLOW_DOWN = ("Prea multe cereri într-un timp scurt. Încercați din nou peste {retry} secunde. / "
             "Too many requests in a short time. Try again in {retry} seconds.")


@dataclass
class Deps:
    """The ports handlers work with (built by bootstrap; tests substitute any of them).

    Platform sessions (JWT iat/exp, login slowdowns, account links, API keys) use `wall`, the system time,
    because other services verify platform JWTs against the wall clock; everything about ANAF connections uses
    `clock` (it follows the emulator in dev and tests)."""

    settings: Settings
    uow: Callable[[], SqlUnitOfWork]
    clock: Clock                 # ANAF timeline (follows the emulator in dev/test)
    ring: KeyRing
    box: SecretBox
    anaf: AnafGateway
    hasher: PasswordHasher
    wall: Clock = SystemClock()  # platform sessions

    @property
    def pii(self) -> PersonIds:
        """Person keys and sealed CNPs under the installation's secret (settings.pii_secret)."""
        ids = self.__dict__.get("_pii")
        if ids is None:
            ids = self.__dict__["_pii"] = PersonIds.from_settings(self.settings)
        return ids


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def domain_error(exc: domain.DomainError, status: int = 400) -> AppError:
    return AppError(exc.message, code=exc.code, status=status, details=exc.details)
