"""A natural person authorizes ANAF access under their person key: the CNP typed once is kept sealed, named to ANAF
only for the rights check, and never appears in auth's logs, tables (except sealed) or events."""
from __future__ import annotations

import logging
from typing import Any

import pytest
import structlog
from spvhub_auth.adapters.orm import anaf_connections, metadata, oauth_states, person_ids
from spvhub_common.ids import cnp_control_digit
from spvhub_common.logging import configure_logging
from sqlalchemy import func, select, text

CNP = "185031512456" + str(cnp_control_digit("185031512456"))
OTHER_CNP = "285031512456" + str(cnp_control_digit("285031512456"))


@pytest.fixture
async def ph(harness):  # type: ignore[no-untyped-def]
    """The harness, with the certificate `nobody` given SPV rights on a natural person's CNP (and one CIF)."""
    r = await harness.emu.post("/__admin/certificates/nobody/rights", json={"grant": [CNP, "1000017"]})
    assert r.status_code == 200, r.text
    return harness


async def _count(h: Any, table: Any) -> int:
    async with h.runtime.uow() as uow:
        return int((await uow.session.execute(select(func.count()).select_from(table))).scalar() or 0)


async def _every_row_as_text(h: Any) -> str:
    async with h.runtime.uow() as uow:
        out = []
        for table in metadata.sorted_tables:
            rows = await uow.session.execute(text(f'SELECT row_to_json(t)::text FROM "{table.name}" t'))
            out.extend(r[0] for r in rows)
    return "\n".join(out)


async def test_a_person_authorizes_by_cnp_and_the_cnp_stays_sealed(ph: Any, capsys: Any, caplog: Any) -> None:
    h = ph
    key = h.deps.pii.key_of(CNP)
    configure_logging("auth", "DEBUG")
    structlog.configure(cache_logger_on_first_use=False)
    caplog.set_level(logging.DEBUG)
    try:
        user = await h.signup(name="Stoica Radu")
        await h.grant(user["user"]["id"], key)  # portfolio registered the person (access-changed by key)
        started = await h.start(user["headers"], CNP)  # typed in the form (a body, never a URL)
        assert started["company_cif"] == key
        r = await h.follow_to_callback(await h.browse_authorize(started["authorize_url"], "nobody"))
        assert r.status_code == 200, r.text
        c = r.json()
        assert c["company_cif"] == key and c["rights_checked"] is True and CNP not in r.text
        # ANAF was asked by the CNP, the only id it knows the person by
        assert h.emu_state.counters.cui[CNP]["listaMesajeFactura"] == 1
        (_, ev), = await h.events("auth.connection-authorized")
        assert ev.company_cif == key and ev.rights_confirmed is True
        # a later authorization may start with the key alone: the CNP typed once is found sealed
        again = await h.start(user["headers"], key.lower())
        assert again["company_cif"] == key
        listed = await h.client.get("/api/auth/anaf/connections", params={"company_cif": key}, headers=user["headers"])
        assert listed.status_code == 200 and [x["id"] for x in listed.json()["items"]] == [c["id"]]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    out = capsys.readouterr()
    logs = out.out + out.err + caplog.text
    assert "anaf connection authorized" in logs  # the logs were captured
    assert CNP not in logs and CNP[1:7] not in logs
    rows = await _every_row_as_text(h)
    assert key in rows and CNP not in rows  # the key everywhere, the CNP nowhere in clear
    async with h.runtime.uow() as uow:
        sealed = (await uow.session.execute(select(person_ids.c.cnp_sealed))).scalars().all()
    assert len(sealed) == 1 and h.deps.pii.unseal(sealed[0], key) == CNP
    assert not any(CNP.encode() in p for p in await h.outbox_payloads())


async def test_a_certificate_without_rights_on_the_cnp_is_refused_and_nothing_is_stored(ph: Any) -> None:
    h = ph
    key = h.deps.pii.key_of(CNP)
    user = await h.signup()
    await h.grant(user["user"]["id"], key)
    started = await h.start(user["headers"], CNP)
    r = await h.follow_to_callback(await h.browse_authorize(started["authorize_url"], "acc"))  # rights on CIFs only
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_spv_rights", r.text
    assert CNP not in r.text
    assert await _count(h, anaf_connections) == 0 and await h.events("auth.connection-authorized") == []
    async with h.runtime.uow() as uow:
        outcome = (await uow.session.execute(select(oauth_states.c.outcome_message))).scalars().all()
    assert outcome and not any(CNP in (m or "") for m in outcome)


async def test_the_rights_inventory_is_read_by_person_key(ph: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """ANAF answered the list call, but its inventory (`cui`) does not name the person: refused. The holder's CNP in
    an inventory maps to the key, so the same answer listing it is accepted."""
    h = ph
    key = h.deps.pii.key_of(CNP)
    user = await h.signup()
    await h.grant(user["user"]["id"], key)
    inventories = [frozenset({"1000017", OTHER_CNP}), frozenset({"1000017", f" {CNP} "})]
    asked: list[str] = []

    async def listed(access_token: str, cif: str) -> frozenset[str]:
        asked.append(cif)
        return inventories.pop(0)
    monkeypatch.setattr(h.deps.anaf, "check_rights", listed)
    first = await h.authorize(user["headers"], CNP, certificate="nobody")
    assert first.status_code == 403 and first.json()["error"]["code"] == "no_spv_rights"
    assert await _count(h, anaf_connections) == 0
    second = await h.authorize(user["headers"], key, certificate="nobody")
    assert second.status_code == 200 and second.json()["company_cif"] == key
    assert asked == [CNP, CNP]


async def test_refusals_for_person_keys_write_nothing(ph: Any) -> None:
    h = ph
    user = await h.signup()
    stray = h.deps.pii.key_of(OTHER_CNP)
    await h.grant(user["user"]["id"], stray)
    events_before = await h.outbox_payloads()  # the sign-up's
    # a key whose CNP was never typed here: ANAF could not be asked about it
    r = await h.client.post("/api/auth/anaf/authorizations", json={"company_cif": stray}, headers=user["headers"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "cnp_required"
    # a CNP in an address (a query) is refused, whatever the caller's rights
    for path in ("/api/auth/anaf/connections", "/api/auth/anaf/delegations", "/api/auth/api-keys"):
        r = await h.client.get(path, params={"company_cif": CNP}, headers=user["headers"])
        assert r.status_code == 422 and r.json()["error"]["code"] == "cnp_in_url", (path, r.text)
    # a CNP with a wrong control digit is refused as a bad id
    bad = CNP[:-1] + str((int(CNP[-1]) + 1) % 10)
    r = await h.client.post("/api/auth/anaf/authorizations", json={"company_cif": bad}, headers=user["headers"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "cif_bad_control_digit"
    # the person's CNP typed by someone without access to the person's key: 403, and nothing kept
    r = await h.client.post("/api/auth/anaf/authorizations", json={"company_cif": CNP}, headers=user["headers"])
    assert r.status_code == 403
    assert await _count(h, oauth_states) == 0 and await _count(h, person_ids) == 0
    assert await h.outbox_payloads() == events_before


async def test_a_person_registered_in_portfolio_authorizes_by_key_alone(ph: Any) -> None:
    """portfolio's company-registered carries the CNP sealed: auth keeps it, so the web's link (the key) suffices;
    a sealed value that does not open for its key is not kept."""
    from spvhub_auth.handlers import EVENT_HANDLERS
    from spvhub_common.events import to_envelope
    from spvhub_common.events.portfolio import CompanyRegistered
    h = ph
    key, other = h.deps.pii.key_of(CNP), h.deps.pii.key_of(OTHER_CNP)
    for ev in (CompanyRegistered(cif=key, name="Persoană fizică", cnp_sealed=h.deps.pii.seal(CNP)),
               CompanyRegistered(cif=other, name="Persoană fizică", cnp_sealed=h.deps.pii.seal(CNP))):  # swapped
        async with h.runtime.uow() as uow:
            await EVENT_HANDLERS[CompanyRegistered](ev, to_envelope(ev, "test"), uow, h.deps)
            await uow.commit()
    async with h.runtime.uow() as uow:
        kept = (await uow.session.execute(select(person_ids.c.person_key))).scalars().all()
    assert kept == [key]
    user = await h.signup()
    await h.grant(user["user"]["id"], key)
    await h.grant(user["user"]["id"], other)
    r = await h.authorize(user["headers"], key, certificate="nobody")
    assert r.status_code == 200 and r.json()["company_cif"] == key, r.text
    r = await h.client.post("/api/auth/anaf/authorizations", json={"company_cif": other}, headers=user["headers"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "cnp_required"
