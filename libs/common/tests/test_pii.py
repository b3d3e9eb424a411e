"""Person keys and sealed CNPs: what may travel on the platform instead of a natural person's CNP."""
from __future__ import annotations

import pytest
from spvhub_common.ids import InvalidTaxId, cnp_control_digit, valid_cif
from spvhub_common.pii import PersonIds, display_id, is_person_key, parse_company_id

SECRET = "test-only-pii-secret-of-32-bytes!"


def cnp(body: str) -> str:
    return body + str(cnp_control_digit(body))


CNP = cnp("198010112345")
OTHER = cnp("298010112345")


def test_a_person_key_is_stable_and_keyed_by_the_secret():
    ids = PersonIds(SECRET)
    key = ids.key_of(CNP)
    assert is_person_key(key) and len(key) <= 16 and key.startswith("PF")
    assert key == PersonIds(SECRET).key_of(CNP)  # any service with the same secret finds the same company
    assert key != ids.key_of(OTHER)
    assert key != PersonIds(SECRET + "x").key_of(CNP)  # not a plain hash: another installation, other keys
    assert CNP not in key and not key[2:].isdigit()


def test_a_sealed_cnp_opens_only_for_its_own_key():
    ids = PersonIds(SECRET)
    sealed = ids.seal(CNP)
    assert CNP not in sealed and sealed != ids.seal(CNP)  # a fresh nonce each time
    assert ids.unseal(sealed, ids.key_of(CNP)) == CNP
    with pytest.raises(ValueError):
        ids.unseal(sealed, ids.key_of(OTHER))  # swapped onto another company
    with pytest.raises(ValueError):
        PersonIds(SECRET + "x").unseal(sealed, ids.key_of(CNP))
    with pytest.raises(ValueError):
        ids.unseal(sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1], ids.key_of(CNP))


def test_what_a_person_types_becomes_the_company_key():
    ids = PersonIds(SECRET)
    cif = valid_cif(1234567)
    assert ids.company_key(f" RO{cif} ") == cif
    assert ids.company_key(CNP) == ids.key_of(CNP)
    assert ids.company_key(ids.key_of(CNP).lower()) == ids.key_of(CNP)
    with pytest.raises(InvalidTaxId) as bad:
        ids.company_key(CNP[:-1] + str((int(CNP[-1]) + 1) % 10))
    assert bad.value.code == "cif_bad_control_digit"


def test_an_address_never_carries_a_clear_cnp():
    ids = PersonIds(SECRET)
    assert parse_company_id(ids.key_of(CNP)) == ids.key_of(CNP)
    assert parse_company_id(f"RO{valid_cif(42)}") == valid_cif(42)
    with pytest.raises(InvalidTaxId) as refused:
        parse_company_id(CNP)
    assert refused.value.code == "cnp_in_url" and CNP not in str(refused.value.details)
    assert "CNP" in refused.value.messages["ro"]


def test_anaf_ids_are_read_never_refused():
    ids = PersonIds(SECRET)
    assert ids.key_of_anaf_id(CNP) == ids.key_of(CNP)
    assert ids.key_of_anaf_id(" 8000000000 ") == "8000000000"
    not_a_cnp = CNP[:-1] + str((int(CNP[-1]) + 1) % 10)
    assert ids.key_of_anaf_id(not_a_cnp) == not_a_cnp


def test_members_see_the_cnp_others_a_mask():
    ids = PersonIds(SECRET)
    key = ids.key_of(CNP)
    assert display_id(key, CNP, may_see=True) == CNP
    masked = display_id(key, CNP, may_see=False)
    assert masked != CNP and masked.endswith(CNP[-4:]) and CNP[1:7] not in masked
    assert display_id(valid_cif(42), None, may_see=False) == valid_cif(42)
    assert display_id(key, None, may_see=True) == key


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError):
        PersonIds("short")


def test_the_b2c_placeholder_is_no_person():
    ids = PersonIds(SECRET)
    assert ids.key_of_anaf_id("0" * 13) == "0" * 13
    with pytest.raises(InvalidTaxId):
        ids.company_key("0" * 13)
