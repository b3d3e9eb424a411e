"""A natural person as an accounting firm's client: invited by CNP (typed in the body, turned into the person key at
once), by the person key, or refused; the invitation row, the outbox, the notifier's link and the pages hold and show
the CNP only masked, and an invitation never tells anyone a CNP."""
from __future__ import annotations

from typing import Any

import pytest
from invkit import CLIENT_A, FIRM, Env
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered, RightsDiscovered
from spvhub_common.ids import cnp_control_digit, mask_cnp
from spvhub_common.pii import DEV_PII_SECRET, PersonIds
from spvhub_invitations.adapters.orm import companies, invitations, outbox
from sqlalchemy import select
from test_invitations import SVC, item, send, token_of

IDS = PersonIds(DEV_PII_SECRET)
CNP = "185031512456" + str(cnp_control_digit("185031512456"))
LATE_CNP = "285031512456" + str(cnp_control_digit("285031512456"))  # discovered, its CNP not announced here
STRANGER_CNP = "196120412345" + str(cnp_control_digit("196120412345"))  # not on the firm's certificate
KEY, LATE_KEY = IDS.key_of(CNP), IDS.key_of(LATE_CNP)
SECRETS = (CNP, LATE_CNP, STRANGER_CNP)


async def _setup(env: Env) -> None:
    await env.feed(CompanyRegistered(cif=FIRM, name="Contabil Expert SRL", provides_accounting_services=True))
    await env.feed(CompanyRegistered(cif=CLIENT_A, name="Firma X SRL"))
    # what portfolio announces of a person its certificate's inventory named: the key and the CNP sealed
    await env.feed(CompanyRegistered(cif=KEY, name="Persoană fizică", cnp_sealed=IDS.seal(CNP)))
    await env.feed(AccessChanged(cif=FIRM, user_id="firm-user", role="owner", granted=True))
    await env.feed(RightsDiscovered(connection_id="conn-1", holder_cif=FIRM, cifs=[FIRM, CLIENT_A, KEY, LATE_KEY],
                                    services=["efactura"], names={LATE_KEY: "Persoană fizică"}))


async def _stored(env: Env) -> tuple[list[dict[str, Any]], list[bytes]]:
    async with env.runtime.sessions() as s:
        rows = [dict(r) for r in (await s.execute(select(invitations))).mappings()]
        payloads = [bytes(p) for p in (await s.execute(select(outbox.c.payload))).scalars()]
    return rows, payloads


def _no_cnp(*texts: str | bytes) -> None:
    for t in texts:
        b = t if isinstance(t, bytes) else t.encode()
        for c in SECRETS:
            assert c.encode() not in b and c[1:7].encode() not in b, "a clear CNP (or its birth date) leaked"


async def test_inviting_by_cnp_keeps_only_the_key_and_the_mask(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    await _setup(env)
    r = await send(env, item(CNP[:7] + " " + CNP[7:], name="Stoica Radu",
                             email="radu@example.ro"))
    assert r.status_code == 201, r.text
    _no_cnp(r.text)
    [res] = r.json()["results"]
    inv = res["invitation"]
    assert res["client_cif"] == KEY and inv["client_cif"] == KEY and inv["client_kind"] == "cnp"
    assert inv["client_tax_id"] == mask_cnp(CNP) and inv["client_name"] == "Persoană fizică"
    rows, payloads = await _stored(env)
    assert [r["client_cif"] for r in rows] == [KEY] and rows[0]["client_tax_id"] == mask_cnp(CNP)
    _no_cnp(str(rows), *payloads)
    [(topic, sent)] = await env.outbox()
    assert topic == "invitations.invitation-sent" and sent["client_cif"] == KEY

    # the notifier's link (what the e-mail shows) and the sign-up page: masked
    link = await env.client.get(f"/internal/invitations/{inv['id']}/link", headers=SVC)
    assert link.status_code == 200 and link.json()["client_tax_id"] == mask_cnp(CNP)
    assert link.json()["client_kind"] == "cnp" and link.json()["client_cif"] == KEY
    token = await token_of(env, inv["id"])
    p = await env.client.get("/api/invitations/preview", params={"token": token})
    assert p.status_code == 200 and p.json()["client_company"]["tax_id"] == mask_cnp(CNP)
    assert p.json()["client_company"]["kind"] == "cnp" and p.json()["client_company"]["cif"] == KEY
    _no_cnp(link.text, p.text)

    # the firm's lists: the key for links, the mask to show
    lst = await env.client.get("/api/invitations", params={"firm_cif": FIRM}, headers=env.h("firm-user"))
    assert [(i["client_cif"], i["client_tax_id"]) for i in lst.json()["items"]] == [(KEY, mask_cnp(CNP))]
    cand = await env.client.get("/api/invitations/candidates", params={"firm_cif": FIRM}, headers=env.h("firm-user"))
    by = {c["client_cif"]: c for c in cand.json()["clients"]}
    assert by[KEY]["client_kind"] == "cnp" and by[KEY]["client_tax_id"] == mask_cnp(CNP)
    assert by[KEY]["invitation"]["id"] == inv["id"] and by[LATE_KEY]["client_tax_id"] == LATE_KEY
    assert by[CLIENT_A]["client_kind"] == "cif" and by[CLIENT_A]["client_tax_id"] == CLIENT_A
    _no_cnp(lst.text, cand.text)

    # the invited person claims and answers as the person's verified owner: still the mask (the clear CNP is
    # portfolio's to show to the person's verified members)
    c = await env.client.post("/api/invitations/claim", json={"token": token}, headers=env.h("radu"))
    assert c.status_code == 200 and c.json()["client_tax_id"] == mask_cnp(CNP)
    await env.feed(AccessChanged(cif=KEY, user_id="radu", role="owner", granted=True))
    a = await env.client.post(f"/api/invitations/{inv['id']}/accept", headers=env.h("radu"))
    assert a.status_code == 200 and a.json()["status"] == "accepted"
    mine = await env.client.get("/api/invitations/received", headers=env.h("radu"))
    assert [i["client_tax_id"] for i in mine.json()] == [mask_cnp(CNP)]
    accepted = [d for t, d in await env.outbox() if t == "invitations.invitation-accepted"]
    assert accepted[0]["client_cif"] == KEY and accepted[0]["user_id"] == "radu"
    rows, payloads = await _stored(env)
    out = capsys.readouterr()
    _no_cnp(str(rows), *payloads, mine.text, a.text, out.out, out.err)


async def test_inviting_by_key_works_like_a_cif(env: Env) -> None:
    await _setup(env)
    r = await send(env, item(KEY.lower()), item(LATE_KEY, email="late@example.ro"))
    assert r.status_code == 201, r.text
    a, b = (x["invitation"] for x in r.json()["results"])
    assert a["client_cif"] == KEY and a["client_tax_id"] == mask_cnp(CNP)
    # a person whose CNP this service was never told: the key is all there is to show
    assert b["client_cif"] == LATE_KEY and b["client_tax_id"] == LATE_KEY and b["client_kind"] == "cnp"
    # portfolio announces the CNP later: a re-send shows the mask from then on
    await env.feed(CompanyRegistered(cif=LATE_KEY, name="Persoană fizică", cnp_sealed=IDS.seal(LATE_CNP)))
    async with env.runtime.sessions() as s:
        masked = (await s.execute(select(companies.c.cnp_masked).where(companies.c.cif == LATE_KEY))).scalar()
    assert masked == mask_cnp(LATE_CNP)
    rs = await env.client.post(f"/api/invitations/{b['id']}/resend", headers=env.h("firm-user"))
    assert rs.status_code == 200 and rs.json()["client_tax_id"] == mask_cnp(LATE_CNP)
    # the same person by CNP and by key is one client: an open invitation refuses both
    again = await send(env, item(CNP), item(KEY))
    assert [(x["ok"], x["error"]["code"]) for x in again.json()["results"]] == \
        [(False, "already_invited"), (False, "duplicate_in_request")]
    rows, payloads = await _stored(env)
    assert len(rows) == 2
    _no_cnp(str(rows), *payloads, again.text, rs.text)


async def test_refusals_write_nothing_and_never_echo_a_cnp(env: Env) -> None:
    await _setup(env)
    bad = CNP[:-1] + str((int(CNP[-1]) + 1) % 10)
    stranger_key = IDS.key_of(STRANGER_CNP)
    r = await send(env, item(bad), item(STRANGER_CNP), item(stranger_key), item(CNP, email="x"))
    assert r.status_code == 207, r.text
    got = [(x["ok"], x["client_cif"], x["error"]["code"]) for x in r.json()["results"]]
    assert got == [(False, mask_cnp(bad), "cif_bad_control_digit"),
                   (False, mask_cnp(STRANGER_CNP), "client_not_discovered"),
                   (False, stranger_key, "client_not_discovered"),  # never "duplicate": no CNP-to-key oracle
                   (False, mask_cnp(CNP), "invalid_email")]
    # a CNP the firm's certificate does not list is not mapped to its key for the caller
    assert stranger_key not in r.json()["results"][1]["error"]["message"]
    _no_cnp(r.text.replace(bad, ""))
    assert bad not in r.text
    # a CNP is never a firm's id: refused as it would be in an address, whether in the body or the query
    r2 = await env.client.post("/api/invitations", json={"firm_cif": CNP, "invitations": [item(CLIENT_A)]},
                               headers=env.h("firm-user"))
    assert r2.status_code == 422 and r2.json()["error"]["code"] == "cnp_in_url", r2.text
    for path in ("/api/invitations", "/api/invitations/candidates"):
        q = await env.client.get(path, params={"firm_cif": CNP}, headers=env.h("firm-user"))
        assert q.status_code == 422 and q.json()["error"]["code"] == "cnp_in_url", q.text
        _no_cnp(q.text)
    # a person key is read like a CIF: this one is no company the caller may act for
    r3 = await send(env, item(CLIENT_A), firm=KEY)
    assert r3.status_code == 403 and r3.json()["error"]["code"] == "no_access_to_company"
    rows, payloads = await _stored(env)
    assert rows == [] and payloads == []


async def test_an_invitation_tells_a_stranger_nothing(env: Env) -> None:
    await _setup(env)
    inv = (await send(env, item(CNP))).json()["results"][0]["invitation"]
    token = await token_of(env, inv["id"])
    for method, path, body in (("GET", f"/api/invitations/{inv['id']}", None),
                               ("POST", f"/api/invitations/{inv['id']}/accept", None),
                               ("POST", f"/api/invitations/{inv['id']}/resend", {}),
                               ("POST", f"/api/invitations/{inv['id']}/revoke", None)):
        r = await env.client.request(method, path, json=body, headers=env.h("stranger"))
        assert r.status_code in (403, 404), (path, r.text)
        assert mask_cnp(CNP) not in r.text
        _no_cnp(r.text)
    assert (await env.client.get("/api/invitations/received", headers=env.h("stranger"))).json() == []
    r = await env.client.get("/api/invitations/candidates", params={"firm_cif": FIRM}, headers=env.h("stranger"))
    assert r.status_code == 403 and KEY not in r.text
    r = await env.client.get("/api/invitations/preview", params={"token": token[:-2] + "xx"})
    assert r.status_code == 404 and KEY not in r.text
    rows, payloads = await _stored(env)
    assert len(rows) == 1 and rows[0]["status"] == "pending" and len(payloads) == 1
    _ = token
