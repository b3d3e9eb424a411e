"""The caller's notification preferences: e-mail on/off per kind and the invoice digest per company. The language
is shown, not set here: it is the user's one locale, a setting of the profile (auth), followed by the read model."""
from __future__ import annotations

from typing import Any

from spvhub_common.access import require_access
from spvhub_common.errors import AppError
from spvhub_common.security import Principal

from spvhub_notifier import domain
from spvhub_notifier.adapters import repository as repo
from spvhub_notifier.adapters.orm import access_grants
from spvhub_notifier.domain import KINDS
from spvhub_notifier.handlers.deps import Deps
from spvhub_notifier.handlers.inbox import locale_for

# the invitation e-mail goes to a person without account; the account's own e-mails cannot be switched off
EMAIL_KINDS = [k for k in KINDS if k != "invitation" and k not in domain.ACCOUNT_KINDS]


async def get_preferences(deps: Deps, user: Principal) -> dict[str, Any]:
    async with deps.uow() as uow:
        s = uow.session
        locale = await locale_for(uow, user)
        prefs = await repo.email_choices(s, user.user_id)
        cifs = await repo.visible_cifs(s, user.user_id)
        digest = await repo.digest_choices(s, user.user_id)
        names = await repo.company_names(s, cifs)
    return {"locale": locale, "locales": list(domain.LOCALES),
            "email": {k: prefs.get(k, KINDS[k].email_default) for k in EMAIL_KINDS},
            "companies": [{"cif": c, "name": names.get(c), "invoice_digest": digest.get(c, True)} for c in cifs]}


async def update_preferences(deps: Deps, user: Principal, *, locale: str | None = None,
                             email: dict[str, bool] | None = None,
                             company_digest: dict[str, bool] | None = None) -> dict[str, Any]:
    """Partial update in one transaction: a bad kind or an inaccessible company changes nothing. A language is
    refused before anything is written: it is changed in the profile, for the API, e-mails and notifications alike."""
    if locale is not None:
        raise AppError(
            "The language is a setting of your profile, used everywhere (also for notifications and e-mails); "
            "change it in your account settings (PATCH /api/auth/me).",
            code="locale_is_profile_setting", status=422, details={"setting": "PATCH /api/auth/me"},
            messages={"ro": "Limba este o setare a profilului, folosită peste tot (și pentru notificări și e-mailuri); "
                            "schimbați-o din setările contului (PATCH /api/auth/me)."})
    async with deps.uow() as uow:
        s = uow.session
        for kind, on in (email or {}).items():
            if kind not in EMAIL_KINDS:
                raise AppError(f"Unknown notification kind '{kind}'.", code="unknown_notification_kind",
                               status=422, details={"kinds": EMAIL_KINDS})
            await repo.set_email_choice(s, user.user_id, kind, bool(on))
        for cif, on in (company_digest or {}).items():
            await require_access(s, access_grants, user.user_id, cif)
            await repo.set_digest_choice(s, user.user_id, cif, bool(on))
        await uow.commit()
    return await get_preferences(deps, user)
