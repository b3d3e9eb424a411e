"""The in-app inbox (the bell): list newest first with the unread count, mark read or unread, mark all read.
Items are rendered in the reader's language when read, so a change of language applies to old items too."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from spvhub_common.errors import NotFound
from spvhub_common.paging import decode_cursor, encode_cursor, time_key
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork

from spvhub_notifier import domain
from spvhub_notifier.adapters import repository as repo
from spvhub_notifier.adapters.repository import Notification
from spvhub_notifier.handlers.deps import Deps


async def locale_for(uow: SqlUnitOfWork, user: Principal) -> str:
    """The user's one language: auth's profile locale as announced to the read model, else the token's."""
    known = await repo.known_locale(uow.session, user.user_id)
    return domain.normalize_locale(known or user.locale)


def _item(deps: Deps, n: Notification, locale: str) -> dict[str, Any]:
    params = dict(n.params)
    url = domain.action_url(deps.links_base, n.kind, params, deps.ui_paths)
    rendered = deps.renderer.render(n.kind, locale, params, url=url)
    return {"id": n.id, "kind": n.kind, "cif": n.cif, "title": rendered.title, "summary": rendered.summary,
            "created_at": n.created_at, "read": n.read_at is not None, "read_at": n.read_at,
            "url": url, "actionable": n.actionable, "action_state": n.action_state,
            "actions": domain.inbox_actions(n.kind, params, n.action_state), "data": params}


def _position(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) after which a page starts: the opaque `next_cursor`, or the raw `timestamp|id` form
    earlier releases returned (still accepted for one release; `|` never occurs in an opaque cursor)."""
    if "|" in cursor:
        ts, _, bid = cursor.partition("|")
    else:
        ts, bid = decode_cursor(cursor, 2)
    return time_key(ts, bid)


async def list_inbox(deps: Deps, user: Principal, *, limit: int = 50, cursor: str | None = None,
                     unread_only: bool = False, kind: str | None = None) -> dict[str, Any]:
    """Newest first; `cursor` is the `next_cursor` of the previous page."""
    position = _position(cursor) if cursor else None
    async with deps.uow() as uow:
        locale = await locale_for(uow, user)
        rows = await repo.list_notifications(uow.session, user.user_id, limit=limit + 1, unread_only=unread_only,
                                             kind=kind, before=position)
        unread = await repo.count_unread(uow.session, user.user_id)
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return {"items": [_item(deps, r, locale) for r in rows], "unread": unread, "next_cursor": nxt,
            "locale": locale}


async def unread_count(deps: Deps, user: Principal) -> dict[str, int]:
    async with deps.uow() as uow:
        return {"unread": await repo.count_unread(uow.session, user.user_id)}


async def mark_read(deps: Deps, user: Principal, notification_id: str, read: bool = True) -> dict[str, Any]:
    async with deps.uow() as uow:
        n = await repo.set_read(uow.session, user.user_id, notification_id, read)
        if n is None:
            raise NotFound("No such notification.", code="notification_not_found")
        await uow.commit()
        locale = await locale_for(uow, user)
        unread = await repo.count_unread(uow.session, user.user_id)
    return {**_item(deps, n, locale), "unread": unread}


async def mark_all_read(deps: Deps, user: Principal) -> dict[str, int]:
    async with deps.uow() as uow:
        marked = await repo.mark_all_read(uow.session, user.user_id)
        await uow.commit()
    return {"marked": marked, "unread": 0}
