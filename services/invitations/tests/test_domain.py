"""Invitation rules without I/O: input normalisation, the derived token, effective status."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from spvhub_common.ids import InvalidTaxId, normalize_cif
from spvhub_invitations import domain
from spvhub_invitations.domain import InvalidInput, InvitationView, Status


@pytest.mark.parametrize(("raw", "e164"), [
    ("0722 123 456", "+40722123456"), ("0722-123-456", "+40722123456"), ("+40 722 123 456", "+40722123456"),
    ("0040722123456", "+40722123456"), ("021 312 34 56", "+40213123456"), ("(0264) 123.456", "+40264123456"),
    ("+49 30 1234567", "+49301234567")])
def test_phone_numbers_are_normalised_to_e164(raw, e164):
    assert domain.normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["12345", "0822123456", "+40 722 123", "+4072212345678", "telefon", ""])
def test_bad_phone_numbers_are_refused(raw):
    with pytest.raises(InvalidInput) as e:
        domain.normalize_phone(raw)
    assert e.value.code == "invalid_phone"


def test_cif_email_name():
    assert normalize_cif(" ro 123453 ") == "123453"
    with pytest.raises(InvalidTaxId):
        normalize_cif("RO12AB")
    assert domain.normalize_email(" Ana.Popescu@FirmaX.ro ") == "Ana.Popescu@firmax.ro"
    with pytest.raises(InvalidInput):
        domain.normalize_email("ana@")
    with pytest.raises(InvalidInput):
        domain.normalize_name(" a ")


def test_token_is_derived_never_stored_and_a_new_nonce_kills_it():
    key = b"k" * 32
    n1, n2 = domain.new_nonce(), domain.new_nonce()
    t1 = domain.derive_token(key, "inv-1", n1)
    assert t1 == domain.derive_token(key, "inv-1", n1) and len(t1) == 43 and domain.plausible_token(t1)
    assert t1 != domain.derive_token(key, "inv-1", n2) != domain.derive_token(b"x" * 32, "inv-1", n2)
    assert domain.token_hash(t1) != t1 and len(domain.token_hash(t1)) == 64


def test_effective_status_expires_pending_only():
    sent = datetime(2025, 3, 1, tzinfo=UTC)
    exp = domain.expires_at(sent)
    assert exp - sent == timedelta(days=15)
    assert domain.effective_status(InvitationView("pending", exp), exp - timedelta(seconds=1)) == Status.PENDING
    assert domain.effective_status(InvitationView("pending", exp), exp) == Status.EXPIRED
    assert domain.effective_status(InvitationView("claimed", exp), exp + timedelta(days=1)) == Status.CLAIMED
