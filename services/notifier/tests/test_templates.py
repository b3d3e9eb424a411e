"""Templates render every kind in both languages; Romanian counting; HTML escapes data."""
from __future__ import annotations

import pytest
from spvhub_notifier.adapters.templates import Renderer, ro_count
from spvhub_notifier.domain import KINDS, action_url, inbox_actions, retry_delay

PARAMS = {"cif": "22222220", "company_name": "Firma <X> SRL", "firm_cif": "1", "client_cif": "22222220",
          "firm_name": "Contabil Expert SRL", "client_name": "Firma <X> SRL", "invitation_id": "i1",
          "days_left": 7, "must_act_by": "2025-04-01T10:00:00+00:00", "reason": "horizon_reached", "message": "",
          "refresh_expires_at": "2027-01-01T00:00:00+00:00", "count": 2, "received": 1, "sent": 1, "items": [],
          "more": 0, "message_id": "3001", "upload_index": "5001", "errors": ["E1"], "purge_at": "2025-05-01",
          "uit": "UIT1", "declarant_cif": "3", "uit_expires_at": "2025-04-02T00:00:00+00:00",
          "expires_at": "2025-03-16T09:00:00+00:00", "name": "Ana", "link": "https://x/join?invitation=t",
          "may_file": True, "requester_name": "Ion <Ionescu>", "requester_email": "ion@x.ro", "via": "invitation",
          "role": "owner"}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("locale", ["ro", "en"])
def test_every_kind_renders(kind, locale):
    r = Renderer().render(kind, locale, PARAMS, url="https://x/y")
    assert r.subject and r.title and r.summary and r.text and r.action_label
    assert "\n" not in r.subject
    assert "Firma <X> SRL" not in r.html and "Firma &lt;X&gt; SRL" in r.html or "Firma" not in r.text


def test_romanian_counting():
    assert [ro_count(n, "zi", "zile") for n in (1, 7, 14, 19, 20, 30, 101, 120)] == [
        "1 zi", "7 zile", "14 zile", "19 zile", "20 de zile", "30 de zile", "101 zile", "120 de zile"]


def test_links_and_actions():
    assert action_url("https://a", "invoice_digest", {"cif": "9"}) == "https://a/companies/9/invoices"
    assert action_url("https://a", "invitation", {"link": "L"}) == "L"
    assert [a["href"] for a in inbox_actions("invitation_received", {"invitation_id": "i"}, None)] == [
        "/api/invitations/i/accept", "/api/invitations/i/decline"]
    assert inbox_actions("invitation_received", {"invitation_id": "i"}, "accepted") == []
    assert retry_delay(1, 2, 60) <= 2 and retry_delay(20, 2, 60) <= 60


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("locale", ["ro", "en"])
def test_a_natural_person_is_never_called_by_a_cif(kind, locale):
    """A natural person's company is known by a person key (PF...): no notice calls it a CIF or shows the key as if
    it were one; unnamed, it is "persoană fizică" / "natural person"."""
    key = "PFABCDEFGHIJKL"
    params = {**PARAMS, "cif": key, "client_cif": key, "company_name": None, "client_name": None,
              "client_kind": "cnp", "client_tax_id": "1********4561"}
    r = Renderer().render(kind, locale, params, url="https://x/y")
    shown = " ".join((r.subject, r.title, r.summary, r.text))
    assert "CIF PF" not in shown
    if kind == "company_verified":
        assert ("persoană fizică" if locale == "ro" else "natural person") in shown


def test_an_invited_natural_person_is_told_to_authorize_not_the_registry():
    params = {**PARAMS, "client_cif": "PFABCDEFGHIJKL", "client_kind": "cnp", "client_tax_id": "1********4561"}
    ro = Renderer().render("invitation", "ro", params, url="https://x/y").text
    en = Renderer().render("invitation", "en", params, url="https://x/y").text
    assert "registrul ANAF" not in ro and "certificatul" in ro and "1********4561" in ro
    assert "ANAF registry" not in en and "certificate" in en
    company = Renderer().render("invitation", "ro", PARAMS, url="https://x/y").text
    assert "registrul ANAF" in company
