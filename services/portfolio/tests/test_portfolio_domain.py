"""Unit tests of the portfolio rules: CIF normalisation, the rights inventory, the rights diff, CSV candidates."""
from __future__ import annotations

import pytest
from spvhub_portfolio import domain
from spvhub_portfolio.domain import InvalidCif


@pytest.mark.parametrize("raw", ["RO 1000017", "ro1000017", " 1000017 ", "RO 10 000 17", "1000017"])
def test_normalize_accepts_ro_and_spaces(raw: str) -> None:
    assert domain.normalize_cif(raw) == "1000017"


@pytest.mark.parametrize("raw,code", [("", "cif_empty"), ("RO", "cif_empty"), ("12a4", "cif_not_numeric"),
                                      ("1", "cif_bad_length"), ("12345678901", "cif_bad_length"),
                                      ("1000018", "cif_bad_control_digit"), ("RO14399841", "cif_bad_control_digit")])
def test_normalize_rejects_with_stable_codes(raw: str, code: str) -> None:
    with pytest.raises(InvalidCif) as e:
        domain.normalize_cif(raw)
    assert e.value.code == code and e.value.status == 422


def test_known_real_cif() -> None:
    assert domain.normalize_cif("RO14399840") == "14399840"  # a published CIF (Dante International)


def test_inventory_reading() -> None:
    assert domain.inventory_from_cui_field("1000017", "1000017,2000023") == ["1000017", "2000023"]
    assert domain.inventory_from_cui_field("1000017", "1000017") is None  # echo or inventory of one: probe
    assert domain.inventory_from_cui_field("1000017", None) is None
    assert domain.inventory_from_cui_field("1000017", "2000023") == ["2000023"]
    # a CNP in the inventory is not a company
    assert domain.inventory_from_cui_field("1000017", "1000017,1800101123456,2000023") == ["1000017", "2000023"]


def test_diff_keeps_unknown_state() -> None:
    d = domain.diff_rights({"1000017", "2000023", "4000046"}, {"1000017", "3000030"}, unknown={"4000046"})
    assert d.cifs == ["1000017", "3000030", "4000046"]
    assert d.gained == ["3000030"] and d.lost == ["2000023"]


def test_effective_grant_direct_wins() -> None:
    assert domain.effective_grant("member", ["1000017"]) == domain.Grant("member")
    assert domain.effective_grant(None, ["2000023", "1000017"]) == domain.Grant("accountant", "1000017")
    assert domain.effective_grant(None, []) is None


def test_csv_with_header_and_separators() -> None:
    text = "Denumire;CUI\nAlfa;RO 1000017\nBeta;2000023\n\nAlfa again;1000017\n"
    parsed = domain.parse_candidates_csv(text)
    assert parsed.cifs == ["1000017", "2000023"] and not parsed.errors


def test_csv_without_header_reports_bad_rows() -> None:
    parsed = domain.parse_candidates_csv("1000017\n1000018\nabc\n")
    assert parsed.cifs == ["1000017"]
    assert [(e["line"], e["code"]) for e in parsed.errors] == [(2, "cif_bad_control_digit"), (3, "cif_not_numeric")]


def test_admins_never_touch_owners() -> None:
    assert domain.can_assign("owner", "owner")
    assert not domain.can_assign("admin", "owner")
    assert not domain.can_assign("admin", "member", current_role="owner")
    assert domain.can_assign("admin", "admin", current_role="member")
    assert not domain.can_assign("member", "member")
