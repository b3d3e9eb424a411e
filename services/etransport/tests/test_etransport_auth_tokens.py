"""The poll asks auth for tokens through the platform's one client (spvhub_common.tokens), and what auth's answers
become stays etransport's: the text of a company's `last_error`, which connections are paused or lost, and that a
connection auth does not report live is never used. The fake auth of conftest, the real PostgreSQL."""
from __future__ import annotations

from typing import Any

import pytest
from spvhub_etransport import handlers

C1 = "31000019"  # = Harness.carriers[0] (conftest)
NONE_USABLE = f"NoUsableConnection: no usable connection for CIF {C1}: "


@pytest.fixture
async def h(harness: Any) -> Any:
    hh = await harness(start_relay=False)
    assert hh.carriers[0] == C1
    return hh


async def _company(h: Any) -> dict[str, Any]:
    await h.grant("u1", C1)
    r = await h.api.get("/api/etransport/companies", headers=h.headers("u1"))
    [co] = r.json()["items"]
    return dict(co)


async def test_auth_failing_is_retried_and_keeps_the_connection(h: Any) -> None:
    cid = await h.track(C1)
    h.auth.failing.add(cid)
    [s] = await handlers.poll_due(h.deps)
    co = await _company(h)
    assert s.error and co["last_error"] == "NoUsableConnection: auth_error HTTP 503"
    assert co["status"] != "paused" and cid not in co["last_error"]
    h.auth.failing.discard(cid)
    h.advance(hours=1)
    [s] = await handlers.poll_due(h.deps)
    assert s.error is None and (await _company(h))["last_error"] is None


@pytest.mark.parametrize("how,status,last_error", [
    ("409", "paused", NONE_USABLE + "reauthorization_required reauthorization_required"),
    ("404", "lost", NONE_USABLE + "no_connection no_connection"),
    ("renewing", "paused", NONE_USABLE + "reauthorization_required status renewing"),
])
async def test_a_connection_auth_refuses_is_set_aside(h: Any, how: str, status: str, last_error: str) -> None:
    cid = await h.track(C1)
    if how == "409":
        h.auth.reauth.add(cid)
    elif how == "404":
        h.auth.certificates.pop(cid)
    else:  # auth hands out a token but does not report the connection live: not used
        h.auth.statuses[cid] = how
    [s] = await handlers.poll_due(h.deps)
    co = await _company(h)
    assert s.error and co["last_error"] == last_error
    assert co["status"] == status and co["last_success_at"] is None
    assert await h.outbox_rows() == []  # nothing polled, nothing announced
