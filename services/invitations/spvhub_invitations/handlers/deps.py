"""What the invitations use cases need, built once by `bootstrap.build` and kept at `app.state.deps`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from spvhub_common.clock import Clock
from spvhub_common.pii import DEV_PII_SECRET, PersonIds
from spvhub_common.uow import SqlUnitOfWork


@dataclass
class Deps:
    """What the use cases need: a unit-of-work factory, the clock, the token key and the public base URL."""

    uow: Callable[[], SqlUnitOfWork]
    clock: Clock
    token_key: bytes
    public_base_url: str
    max_bulk: int = 500
    join_path: str = "/join?invitation={token}"  # the person-facing link: public_base_url + this
    access_wait_seconds: float = 3.0  # how long an answer waits for the access read model to catch up
    expiry_interval: float = 60.0  # seconds between scans for expired invitations
    # a CNP typed as the client becomes its person key; portfolio's sealed CNPs open to be masked (bootstrap passes
    # the installation's PII secret)
    pii: PersonIds = field(default_factory=lambda: PersonIds(DEV_PII_SECRET))
