"""Unit tests of the portfolio rules: CIF normalisation (by spvhub_common.ids, on the inputs portfolio sees), the
rights inventory, the rights diff, CSV candidates."""
from __future__ import annotations

from typing import Any

import pytest
from spvhub_common.ids import InvalidTaxId, normalize_cif
from spvhub_portfolio import domain


@pytest.mark.parametrize("raw", ["RO 1000017", "ro1000017", " 1000017 ", "RO 10 000 17", "1000017"])
def test_normalize_accepts_ro_and_spaces(raw: str) -> None:
    assert normalize_cif(raw) == "1000017"


@pytest.mark.parametrize("raw,code", [("", "cif_empty"), ("RO", "cif_empty"), ("12a4", "cif_not_numeric"),
                                      ("1", "cif_bad_length"), ("12345678901", "cif_bad_length"),
                                      ("1000018", "cif_bad_control_digit"), ("RO14399841", "cif_bad_control_digit")])
def test_normalize_rejects_with_stable_codes(raw: str, code: str) -> None:
    with pytest.raises(InvalidTaxId) as e:
        normalize_cif(raw)
    assert e.value.code == code and e.value.status == 422


def test_known_real_cif() -> None:
    assert normalize_cif("RO14399840") == "14399840"  # a published CIF (Dante International)


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
    links = [domain.FirmLink("1000017")]
    assert domain.effective_grant(domain.Membership("member", True), links) == domain.Grant("member", None, True, False)
    assert domain.effective_grant(domain.Membership("admin", True), links) == domain.Grant("admin", None, True, True)
    # an unverified member is still a member (registry data) but may not file, even as owner
    assert domain.effective_grant(domain.Membership("owner", False), links) == domain.Grant("owner", None, False, False)
    both = [domain.FirmLink("2000023"), domain.FirmLink("1000017")]
    assert domain.effective_grant(None, both) == domain.Grant("accountant", "1000017", True, False)
    filing = [domain.FirmLink("1000017"), domain.FirmLink("2000023", may_file=True)]
    assert domain.effective_grant(None, filing) == domain.Grant("accountant", "2000023", True, True)
    assert domain.effective_grant(None, []) is None


def _conn(cid: str, holder: str, rights: set[str], *, active: bool = True, at: str = "2026-01-01") -> Any:
    return domain.ConnectionFacts(cid, holder, active, ("efactura",), frozenset(rights), at)


def test_entitled_connections_serve_only_the_holder_and_its_active_clients() -> None:
    client, firm, stranger_firm = "2000023", "1000017", "3000015"
    own = _conn("own", client, {client}, at="2026-03-01")
    firm_conn = _conn("firm", firm, {firm, client}, at="2026-01-01")
    other = _conn("other", stranger_firm, {stranger_firm, client})  # rights on the client, no collaboration
    inactive = _conn("old", client, {client}, active=False)
    # no collaboration: only the client's own connection, never another tenant's that happens to have rights
    got = domain.entitled_connections(client, [other, firm_conn, inactive, own], {})
    assert [(e.connection_id, e.may_file) for e in got] == [("own", True)]
    # an active collaboration without filing permission: the firm's connection comes after the own one
    got = domain.entitled_connections(client, [firm_conn, other, own], {firm: {client: False}})
    assert [(e.connection_id, e.may_file) for e in got] == [("own", True), ("firm", False)]
    got = domain.entitled_connections(client, [firm_conn, other], {firm: {client: True}})
    assert [(e.connection_id, e.may_file) for e in got] == [("firm", True)]
    # a collaboration is no use without the certificate's rights on the client
    got = domain.entitled_connections(client, [_conn("firm", firm, {firm})], {firm: {client: True}})
    assert got == []


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
