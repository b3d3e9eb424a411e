"""The candidates CSV has bounded work: a file the CSV reader cannot read, a cell too long or too many rows is a
422 with a stable code and saves nothing; the largest allowed list (20,000 CIFs) is stored in chunked INSERTs
(one INSERT of 20,000 rows would pass PostgreSQL's 32,767 parameters) and deduplicated in linear time."""
from __future__ import annotations

import time

from pfkit import FIRM_A, Env
from spvhub_common.ids import cif_control_digit
from spvhub_portfolio.domain import MAX_CSV_ROWS

FIRM = FIRM_A


def valid_cifs(n: int, start: int = 10_000_000) -> list[str]:
    out = []
    body = start
    while len(out) < n:
        b = str(body)[:9]
        out.append(b + str(cif_control_digit(b)))
        body += 1
    return [c for c in out if c != FIRM]


async def _post(env: Env, content: bytes | str) -> object:
    return await env.api.post(f"/api/portfolio/companies/{FIRM}/candidates", content=content,
                              headers={**env.headers("fa"), "content-type": "text/csv"})


async def _stored(env: Env) -> list[str]:
    r = await env.api.get(f"/api/portfolio/companies/{FIRM}/candidates", headers=env.headers("fa"))
    assert r.status_code == 200, r.text
    return r.json()["candidates"]  # type: ignore[no-any-return]


async def test_malformed_candidates_csv_is_422_and_saves_nothing(env: Env) -> None:
    await env.register("fa", FIRM)
    for bad in (b"cif\n18453276\x00\n", "cif\n\"" + "1" * 200_000 + "\n", "cif\n" + "9" * 2000 + "\n"):
        r = await _post(env, bad)
        assert r.status_code == 422, r.text  # type: ignore[attr-defined]
        assert r.json()["error"]["code"] == "malformed_csv", r.text  # type: ignore[attr-defined]
    assert await _stored(env) == []


async def test_too_many_rows_are_refused(env: Env) -> None:
    await env.register("fa", FIRM)
    r = await _post(env, "\n".join(["cif", *(["18453276"] * MAX_CSV_ROWS)]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_rows", r.text  # type: ignore[attr-defined]
    assert await _stored(env) == []


async def test_the_largest_allowed_list_is_stored_whole_and_deduplicated(env: Env) -> None:
    await env.register("fa", FIRM)
    cifs = valid_cifs(19_999)
    body = "\n".join(["cif", *cifs, cifs[0]])  # a duplicate at the end counts once
    t0 = time.perf_counter()
    r = await _post(env, body)
    took = time.perf_counter() - t0
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    assert r.json()["received"] == len(cifs) and r.json()["added"] == len(cifs)  # type: ignore[attr-defined]
    assert len(await _stored(env)) == len(cifs)
    assert took < 20, took
