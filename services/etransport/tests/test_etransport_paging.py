"""The transports list pages by an opaque cursor: walking it with a small `limit` gives every transport the caller may
see exactly once, in the list order (newest transport date first, undated last, then newest first seen, UIT and
carrier), with `total` on every page and no `next_cursor` on the last; a cursor that is not one is refused (422
`invalid_cursor`) without answering a page."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from spvhub_common.paging import encode_cursor
from sqlalchemy import text

SEEN = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


async def seed(h: Any, c1: str, c2: str) -> list[tuple[Any, ...]]:
    """Transports with ties on every sort column but the last, undated ones, and one UIT carried by both carriers;
    returns their (transport_date, first_seen_at, uit, carrier) rows."""
    rows: list[tuple[Any, ...]] = []
    days = [date(2026, 3, 1), date(2026, 3, 2), None]
    for i in range(12):
        rows.append((days[i % 3], SEEN + timedelta(minutes=i % 2), f"UIT{i % 5:02d}{i:02d}", c1 if i % 4 else c2))
    rows.append((date(2026, 3, 2), SEEN, "UITSHARED", c1))
    rows.append((date(2026, 3, 2), SEEN, "UITSHARED", c2))
    async with h.runtime.engine.begin() as conn:
        for d, seen, uit, carrier in rows:
            await conn.execute(text(
                "INSERT INTO transports (carrier_cif, uit, state, transport_date, first_seen_at, last_seen_at) "
                "VALUES (:c, :u, :s, :d, :f, :f)"), {"c": carrier, "u": uit, "s": "active" if uit[-1] != "3" else
                                                     "expired", "d": d, "f": seen})
    return rows


def list_order(rows: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    def key(r: tuple[Any, ...]) -> tuple[Any, ...]:
        d, seen, uit, carrier = r
        return (d is None, -(d.toordinal() if d else 0), -seen.timestamp(), uit, carrier)
    return [(r[2], r[3]) for r in sorted(rows, key=key)]


async def walk(h: Any, user: str, limit: int, **params: Any) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    got: list[tuple[str, str]] = []
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = await h.api.get("/api/etransport/transports", headers=h.headers(user),
                            params={"limit": limit, **params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body)
        got += [(x["uit"], x["carrier_cif"]) for x in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return got, pages
        assert len(pages) < 50


async def test_cursor_walk_gives_every_transport_once_in_order(harness) -> None:
    h = await harness(start_relay=False)
    c1, c2 = h.carriers[0], h.carriers[1]
    rows = await seed(h, c1, c2)
    await h.grant("u", c1)
    await h.grant("u", c2)
    expected = list_order(rows)

    got, pages = await walk(h, "u", 3)
    assert got == expected
    assert len(pages) == 5 and all(len(p["items"]) == 3 for p in pages[:-1]) and len(pages[-1]["items"]) == 2
    assert all(p["total"] == len(rows) for p in pages)
    assert all(set(p) == {"items", "next_cursor", "total"} for p in pages)
    assert all(c not in "+/=" for p in pages[:-1] for c in p["next_cursor"])  # no URL-encoding needed

    # one big page says the same; the older `page_size` still sets the page length
    assert (await walk(h, "u", 500))[0] == expected
    r = await h.api.get("/api/etransport/transports", params={"page_size": 4}, headers=h.headers("u"))
    assert len(r.json()["items"]) == 4 and r.json()["next_cursor"]

    # filters and scope hold on every page: one carrier, one state
    only_c1, _ = await walk(h, "u", 2, company=c1)
    assert only_c1 == [x for x in expected if x[1] == c1]
    expired, pages = await walk(h, "u", 2, state="expired")
    assert expired == [(u, c) for u, c in expected if u.endswith("3")] and pages[0]["total"] == len(expired)

    # someone who may see only the second carrier walks its transports alone
    await h.grant("v", c2)
    assert (await walk(h, "v", 2))[0] == [x for x in expected if x[1] == c2]


async def test_a_cursor_that_is_not_one_is_refused(harness) -> None:
    h = await harness(start_relay=False)
    c1 = h.carriers[0]
    await seed(h, c1, h.carriers[1])
    await h.grant("u", c1)
    bad = ["not a cursor!", encode_cursor("2026-03-01", SEEN, "UIT"),  # wrong arity
           encode_cursor("yesterday", SEEN, "UIT", c1), encode_cursor("2026-03-01", "2026-03-10T08:00:00", "U", c1),
           encode_cursor(None, SEEN, 7, c1), encode_cursor(None, 12, "U", c1)]
    for cursor in bad:
        r = await h.api.get("/api/etransport/transports", params={"cursor": cursor}, headers=h.headers("u"))
        assert r.status_code == 422, (cursor, r.text)
        body = r.json()
        assert body["error"]["code"] == "invalid_cursor" and "items" not in body, body
    # a well-formed cursor of an undated transport continues among the undated ones
    r = await h.api.get("/api/etransport/transports", headers=h.headers("u"),
                        params={"cursor": encode_cursor(None, SEEN + timedelta(minutes=1), "UIT0000", c1)})
    assert r.status_code == 200 and all(x["transport_date"] is None for x in r.json()["items"])
