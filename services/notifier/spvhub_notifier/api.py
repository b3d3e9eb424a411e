"""HTTP API of the notifier service: the in-app inbox (the bell) and notification preferences."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from spvhub_common.http import app_deps
from spvhub_common.paging import Page
from spvhub_common.security import CurrentUser

from spvhub_notifier import handlers
from spvhub_notifier.handlers import Deps

router = APIRouter(prefix="/api/notifier", tags=["notifier"])


ServiceDeps = Annotated[Deps, Depends(app_deps)]


class Action(BaseModel):
    action: Literal["accept", "decline"]
    method: str
    href: str


class NotificationOut(BaseModel):
    id: str
    kind: str
    cif: str | None
    title: str
    summary: str
    created_at: datetime
    read: bool
    read_at: datetime | None
    url: str
    actionable: bool
    action_state: str | None = Field(None, description="accepted | declined | revoked once the action is settled")
    actions: list[Action]
    data: dict[str, Any]


class NotificationReadOut(NotificationOut):
    unread: int = Field(..., description="the caller's unread count after the change")


class UnreadOut(BaseModel):
    unread: int


class ReadAllOut(BaseModel):
    marked: int
    unread: int


class InboxOut(Page[NotificationOut]):
    unread: int
    locale: str


class CompanyPref(BaseModel):
    cif: str
    name: str | None = None
    invoice_digest: bool


class PreferencesOut(BaseModel):
    locale: str = Field(..., description="the user's one language, read-only here: set in the profile "
                                         "(PATCH /api/auth/me)")
    locales: list[str]
    email: dict[str, bool]
    companies: list[CompanyPref]


class CompanyPrefIn(BaseModel):
    cif: str = Field(..., max_length=20)
    invoice_digest: bool


class PreferencesIn(BaseModel):
    locale: str | None = Field(None, description="not settable here: answered 422 `locale_is_profile_setting`; "
                                                 "the language is changed in the profile (PATCH /api/auth/me)")
    email: dict[str, bool] | None = Field(None, description="per notification kind: e-mail on/off")
    companies: list[CompanyPrefIn] | None = Field(None, description="per company: the new-invoices digest on/off")


@router.get("/notifications", response_model=InboxOut, summary="The inbox, newest first, with the unread count")
async def inbox(user: CurrentUser, deps: ServiceDeps, limit: int = Query(50, ge=1, le=200),
                cursor: str | None = Query(None, max_length=200, description="`next_cursor` of the previous page"),
                before: str | None = Query(None, max_length=200, deprecated=True,
                                           description="older name of `cursor` (also its raw `timestamp|id` form)"),
                unread_only: bool = False, kind: str | None = None) -> dict[str, Any]:
    return await handlers.list_inbox(deps, user, limit=limit, cursor=cursor or before, unread_only=unread_only,
                                     kind=kind)


@router.get("/notifications/unread-count", response_model=UnreadOut, summary="The bell")
async def unread(user: CurrentUser, deps: ServiceDeps) -> dict[str, int]:
    return await handlers.unread_count(deps, user)


@router.post("/notifications/read-all", response_model=ReadAllOut, summary="Mark every notification read")
async def read_all(user: CurrentUser, deps: ServiceDeps) -> dict[str, int]:
    return await handlers.mark_all_read(deps, user)


@router.post("/notifications/{notification_id}/read", response_model=NotificationReadOut,
             summary="Mark one notification read")
async def read_one(notification_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.mark_read(deps, user, notification_id, True)


@router.post("/notifications/{notification_id}/unread", response_model=NotificationReadOut,
             summary="Mark one notification unread again")
async def unread_one(notification_id: str, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.mark_read(deps, user, notification_id, False)


@router.get("/preferences", response_model=PreferencesOut)
async def get_prefs(user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.get_preferences(deps, user)


@router.put("/preferences", response_model=PreferencesOut, summary="Partial update of the caller's preferences")
async def put_prefs(body: PreferencesIn, user: CurrentUser, deps: ServiceDeps) -> dict[str, Any]:
    return await handlers.update_preferences(
        deps, user, locale=body.locale, email=body.email,
        company_digest={c.cif: c.invoice_digest for c in body.companies} if body.companies is not None else None)
