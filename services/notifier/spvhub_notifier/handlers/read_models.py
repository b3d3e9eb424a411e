"""The notifier's copies of other services' data: users (address, name, language) from auth and company names
from portfolio, read when a notice is written or an e-mail is sent."""
from __future__ import annotations

from spvhub_common.events import CloudEvent
from spvhub_common.events.auth import EmailVerified, ProfileUpdated, UserRegistered
from spvhub_common.events.portfolio import CompanyRegistered, CompanyUpdated
from spvhub_common.uow import SqlUnitOfWork

from spvhub_notifier import domain
from spvhub_notifier.adapters import repository as repo
from spvhub_notifier.handlers.deps import Deps


async def on_user_registered(event: UserRegistered, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await repo.upsert_user(uow.session, event.user_id, event.email, event.name, domain.normalize_locale(event.locale))


async def on_profile_updated(event: ProfileUpdated, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """auth's profile language is the user's one language: the next notice and e-mail use it. Setting the same
    values again changes nothing, so a redelivery is harmless; auth keys the topic by user, so one user's changes
    arrive in order. A change read before the user's registration (another topic) is kept, not lost."""
    await repo.set_user_profile(uow.session, event.user_id, event.name, domain.normalize_locale(event.locale))


async def on_email_verified(event: EmailVerified, envelope: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """A confirmed change of address: e-mails go to the new one from now on."""
    await repo.set_user_email(uow.session, event.user_id, event.email)


async def on_company(event: CompanyRegistered | CompanyUpdated, envelope: CloudEvent, uow: SqlUnitOfWork,
                     deps: Deps) -> None:
    await repo.upsert_company(uow.session, event.cif, event.name)
