"""What the notifier's use cases need, built once by `bootstrap.build` and kept at `app.state.deps`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spvhub_common.clock import Clock
from spvhub_common.uow import SqlUnitOfWork

from spvhub_notifier.adapters.account_links import AccountLinks
from spvhub_notifier.adapters.invitations_client import InvitationLinks
from spvhub_notifier.adapters.smtp import EmailSender
from spvhub_notifier.adapters.templates import Renderer


@dataclass
class Deps:
    uow: Callable[[], SqlUnitOfWork]
    clock: Clock
    renderer: Renderer
    sender: EmailSender
    links: InvitationLinks
    links_base: str
    mail_from: str
    retry_base: float = 2.0
    retry_max: float = 60.0
    max_attempts: int = 500
    lease: float = 120.0
    batch: int = 50
    unknown_recipient_attempts: int = 30
    ui_paths: dict[str, str] | None = None  # per kind, a path replacing domain.KINDS' default
    account_links: AccountLinks | None = None  # auth's links of account e-mails
    send_interval: float = 1.0  # seconds between runs of the e-mail sender
    digest_interval: float = 3600.0  # seconds between invoice digests
