"""The members list pages like every list of the platform (spvhub_common.paging): an opaque cursor, `limit`,
`next_cursor` (None on the last page) and `total`; `status=pending_approval` lists the requests to join. A cursor is
read only after the caller's access is checked, and a bad one is a 422 that changes nothing."""
from __future__ import annotations

from pfkit import FIRM_A, Env

MEMBERS = f"/api/portfolio/companies/{FIRM_A}/members"


async def _company_with_members(env: Env) -> list[str]:
    """A verified owner, four members added by the owner, two people asking to join; the ids in joining order."""
    await env.register("owner", FIRM_A)
    added = [f"m{i}" for i in range(4)]
    for user in added:
        assert (await env.add_member("owner", FIRM_A, user)).status_code == 201
    for user in ("asks1", "asks2"):
        await env.register(user, FIRM_A, verify=False)  # the company has a verified owner: a join request
    return ["owner", *added, "asks1", "asks2"]


async def _all_pages(env: Env, params: dict[str, object]) -> tuple[list[dict[str, object]], set[int | None]]:
    items: list[dict[str, object]] = []
    totals: set[int | None] = set()
    query = dict(params)
    for _ in range(20):
        r = await env.api.get(MEMBERS, params=query, headers=env.headers("owner"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["cif"] == FIRM_A and len(body["items"]) <= int(str(query["limit"]))
        items.extend(body["items"])
        totals.add(body["total"])
        if body["next_cursor"] is None:
            return items, totals
        query["cursor"] = body["next_cursor"]
    raise AssertionError("the pages never ended")


async def test_members_page_by_cursor_in_joining_order(env: Env) -> None:
    order = await _company_with_members(env)
    whole = (await env.api.get(MEMBERS, headers=env.headers("owner"))).json()
    assert [m["user_id"] for m in whole["items"]] == order and whole["next_cursor"] is None and whole["total"] == 7
    paged, totals = await _all_pages(env, {"limit": 2})
    assert paged == whole["items"] and totals == {7}  # every member once, in the same order, whatever the page size


async def test_join_requests_are_the_pending_members(env: Env) -> None:
    await _company_with_members(env)
    pending, totals = await _all_pages(env, {"limit": 1, "status": "pending_approval"})
    assert [(m["user_id"], m["status"], m["verified"]) for m in pending] == [
        ("asks1", "pending_approval", False), ("asks2", "pending_approval", False)]
    assert totals == {2}
    active, _ = await _all_pages(env, {"limit": 3, "status": "active"})
    assert [m["user_id"] for m in active] == ["owner", "m0", "m1", "m2", "m3"]


async def test_a_bad_cursor_is_refused_and_an_outsider_learns_nothing(env: Env) -> None:
    await _company_with_members(env)
    before = await env.events()
    for bad in ("not-a-cursor", "WzFd", "W10"):  # garbage, a one-value array, an empty array
        r = await env.api.get(MEMBERS, params={"cursor": bad}, headers=env.headers("owner"))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor", r.text
    r = await env.api.get(MEMBERS, params={"limit": 0}, headers=env.headers("owner"))
    assert r.status_code == 422
    first = (await env.api.get(MEMBERS, params={"limit": 2}, headers=env.headers("owner"))).json()
    r = await env.api.get(MEMBERS, params={"cursor": first["next_cursor"]}, headers=env.headers("stranger"))
    assert r.status_code == 403 and "items" not in r.json()
    r = await env.api.get(MEMBERS, params={"cursor": "not-a-cursor"}, headers=env.headers("stranger"))
    assert r.status_code == 403  # access is checked before the cursor is read
    assert await env.events() == before
