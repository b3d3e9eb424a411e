"""Unit tests of the merge, state and expiry rules (no I/O)."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from spvhub_etransport import domain as d

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)  # 10:00 in Bucharest
LEAD = timedelta(hours=24)


def info(uit: str = "4MXKT7Q2HNVC3A81", **kw):
    item = {"id": 1, "uit": uit, "cod_decl": 1000017, "den_decl": "ALFA SRL", "data_transp": "2026-03-10T00:00:00",
            "data_exp_uit": "2026-03-15T00:00:00", "ref_decl": "R1", "tr_cod": "3000030", "tr_den": "GAMMA SRL",
            "nr_veh": "CJ10ABC", "nr_rem1": "", "nr_rem2": "",
            "loc_start": {"tip_loc": "ADR", "adresa_completa": "Str. A 1, Cluj", "judet": "CJ", "alte_info": "-"},
            "loc_final": {"tip_loc": "PTF", "adresa_completa": "PTF Nadlac, Jud. Arad"}, "documente": "F1"}
    item.update(kw)
    return item


def lista(uit: str = "4MXKT7Q2HNVC3A81", **kw):
    item = {"tip": "NOT", "stare": "OK", "uit": uit, "cod_decl": "1000017", "sursa": "A", "id_incarcare": "0000000001",
            "data_creare": "20260310090000", "tip_op": "30", "data_transp": "20260310000000", "pc_tara": "RO",
            "pc_cod": "RO2000023", "pc_den": "BETA SRL", "tr_tara": "RO", "tr_cod": 3000030, "tr_den": "GAMMA SRL",
            "nr_veh": "CJ10ABC", "nr_linii": 2, "gr_tot_neta": "100.50", "ref_decl": "R1"}
    item.update(kw)
    return item


def obs_info(**kw):
    o = d.observation_from_info(info(**kw), "3000030")
    assert o is not None
    return o


def created(**kw):
    return d.new_transport(obs_info(**kw), T0)


# ---------------------------------------------------------------------------------------------- parsing

def test_numbers_or_strings_are_accepted_either_way():
    a = d.observation_from_info(info(cod_decl=1000017, tr_cod=3000030, id=5), "3000030")
    b = d.observation_from_info(info(cod_decl="1000017", tr_cod="RO3000030", id="5"), "3000030")
    assert a.declarant_cif == b.declarant_cif == "1000017"
    assert a.carrier_cif == b.carrier_cif == "3000030" and a.anaf_id == b.anaf_id == "5"
    lo = d.observation_from_lista(lista(nr_linii="2", gr_tot_neta=100.5), "3000030")
    assert lo.goods == {"nr_linii": "2", "gr_tot_neta": "100.5"}
    assert lo.partner_code == "2000023"


def test_anaf_date_formats():
    assert d.parse_day("2024-06-29T00:00:00") == date(2024, 6, 29)
    assert d.parse_day("20221010000000") == date(2022, 10, 10)
    assert d.parse_day(20221010000000) == date(2022, 10, 10)
    assert d.parse_instant("20221010144008") == datetime(2022, 10, 10, 11, 40, 8, tzinfo=UTC)
    assert d.parse_instant("2026-03-10T10:00:00+02:00") == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def test_records_of_another_carrier_and_erroneous_lista_items_are_ignored():
    assert d.observation_from_info(info(tr_cod="9999999"), "3000030") is None
    assert d.observation_from_lista(lista(tr_cod="1000017"), "3000030") is None
    err = {"cod_decl": "3000030", "stare": "ERR", "mesaje": [{"tip": "ERR", "mesaj": "x"}]}
    assert d.observation_from_lista(err, "3000030") is None
    assert d.vehicle_change_from_lista({**lista(), "tip": "MVH", "stare": "ERR"}) is None


# ---------------------------------------------------------------------------------------------- expiry

def test_expiry_rule_5_or_15_days_and_anaf_date_wins():
    assert d.rule_expiry(date(2026, 3, 10), "30") == date(2026, 3, 15)
    assert d.rule_expiry(date(2026, 3, 10), "10") == date(2026, 3, 25)
    assert d.rule_expiry(date(2026, 3, 10), None) == date(2026, 3, 15)
    t = d.new_transport(d.observation_from_lista(lista(tip_op="10"), "3000030"), T0).transport
    assert (t.expires_on, t.expiry_source) == (date(2026, 3, 25), "rule")
    res = d.merge(t, obs_info(data_exp_uit="2026-03-24T00:00:00"), T0)
    assert (t.expires_on, t.expiry_source) == (date(2026, 3, 24), "anaf")
    assert not res.events and res.history[0].kind == "enriched"  # taking ANAF's date is not a correction
    # a later lista (rule) never overrides ANAF's date
    d.merge(t, d.observation_from_lista(lista(tip_op="10"), "3000030"), T0)
    assert t.expires_on == date(2026, 3, 24)


def test_expires_at_is_local_midnight_of_the_expiry_day():
    t = created().transport
    assert t.expires_at == datetime(2026, 3, 14, 22, 0, tzinfo=UTC)


def test_expiring_alert_once_within_lead_then_expired_without_event():
    t = created().transport
    assert d.tick(t, datetime(2026, 3, 13, 21, 0, tzinfo=UTC), LEAD).events == []  # 25 h before
    r = d.tick(t, datetime(2026, 3, 13, 23, 0, tzinfo=UTC), LEAD)
    assert [(e.kind, e.version) for e in r.events] == [("expiring", 1)]
    assert d.tick(t, datetime(2026, 3, 14, 10, 0, tzinfo=UTC), LEAD).events == []
    r = d.tick(t, datetime(2026, 3, 14, 22, 0, tzinfo=UTC), LEAD)
    assert t.state == d.EXPIRED and r.events == [] and r.history[0].kind == "expired"
    assert d.tick(t, datetime(2026, 3, 20, tzinfo=UTC), LEAD).history == []


def test_transport_discovered_after_expiry_is_stored_silently():
    late = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
    r = d.new_transport(d.observation_from_lista(lista(), "3000030"), late)
    assert r.transport.state == d.EXPIRED and r.events == []
    assert [h.kind for h in r.history] == ["created", "expired"]


# ---------------------------------------------------------------------------------------------- merge

def test_new_uit_is_assigned_once_and_merge_is_idempotent():
    r = created()
    assert [(e.kind, e.version) for e in r.events] == [("assigned", 1)]
    assert r.transport.route_start_text == "Str. A 1, Cluj" and r.transport.route_end_text == "PTF Nadlac, Jud. Arad"
    again = d.merge(r.transport, obs_info(), T0 + timedelta(minutes=10))
    assert again.events == [] and again.history == []
    v = r.transport.version
    d.merge(r.transport, obs_info(cod_decl="1000017"), T0 + timedelta(minutes=20))
    assert r.transport.version == v


def test_lista_enriches_partner_and_goods_without_events():
    t = created().transport
    r = d.merge(t, d.observation_from_lista(lista(), "3000030"), T0)
    assert r.events == [] and t.partner_code == "2000023" and t.goods["nr_linii"] == "2"
    assert t.operation_type == "30" and set(t.sources) == {"info", "lista"}


def test_vehicle_changes_each_emitted_once_with_increasing_versions():
    t = created().transport
    ch1 = {"data_modif_veh": "2026-03-11T08:00:00+02:00", "nr_veh": "B01XYZ", "nr_rem1": "B02REM", "cod_decl": 3000030,
           "data_decl": "20260311080500"}
    ch2 = {"data_modif_veh": "2026-03-12T08:00:00+02:00", "nr_veh": "B03QQQ", "cod_decl": "1000017"}
    # the emulator (and, it seems, ANAF) shows the post-change plate in nr_veh: not a correction
    r = d.merge(t, obs_info(nr_veh="B01XYZ", nr_rem1="B02REM", modif_veh=[ch1]), T0)
    assert [(e.kind, e.version) for e in r.events] == [("vehicle_changed", 1)]
    assert t.vehicle == "B01XYZ" and t.declared_vehicle == "CJ10ABC" and t.correction_count == 0
    r = d.merge(t, obs_info(nr_veh="B03QQQ", modif_veh=[ch1, ch2]), T0)
    assert [(e.kind, e.version) for e in r.events] == [("vehicle_changed", 2)]
    assert t.plates == ["CJ10ABC", "B01XYZ", "B02REM", "B03QQQ"]
    # the same change reported by lista as an MVH item is not new
    mvh = d.vehicle_change_from_lista({"tip": "MVH", "stare": "OK", "uit": t.uit, "nr_veh": "B03QQQ",
                                       "data_modif_veh": "2026-03-12T08:00:00+02:00", "data_creare": "20260312080000"})
    assert d.add_vehicle_change(t, mvh[1], T0, "lista").events == []


def test_confirmation_and_correction_events():
    t = created().transport
    r = d.merge(t, d.observation_from_lista(lista(confirmare={"tip_conf": "20", "data_decl": "20260311100000"}),
                                            "3000030"), T0)
    assert [(e.kind, e.version, e.data["confirmation"]) for e in r.events] == [("confirmed", 1, "partially_confirmed")]
    r = d.merge(t, d.observation_from_lista(lista(confirmare={"tip_conf": "10", "data_decl": "20260311120000"}),
                                            "3000030"), T0)
    assert [(e.kind, e.version) for e in r.events] == [("confirmed", 2)]
    r = d.merge(t, obs_info(data_transp="2026-03-11T00:00:00", data_exp_uit="2026-03-16T00:00:00"), T0)
    assert [(e.kind, e.version) for e in r.events] == [("corrected", 1)]
    assert set(r.history[-1].changes) >= {"transport_date", "expires_on"} and t.expires_on == date(2026, 3, 16)


def test_vanished_before_expiry_is_deleted_and_may_come_back():
    t = created().transport
    assert d.needs_probe(t, set(), T0)
    r = d.vanished(t, T0 + timedelta(days=1))
    assert t.state == d.DELETED and [(e.kind, e.version) for e in r.events] == [("deleted", 1)]
    assert d.vanished(t, T0 + timedelta(days=1)).events == []  # once
    assert not d.needs_probe(t, set(), T0)
    assert d.tick(t, T0 + timedelta(days=4, hours=14), LEAD).events == []  # no expiry alert for a deleted UIT
    r = d.merge(t, obs_info(), T0 + timedelta(days=2))
    assert t.state == d.ACTIVE and [(e.kind, e.version) for e in r.events] == [("reinstated", 1)]


def test_vanished_on_expiry_day_is_expired_not_deleted():
    t = created().transport
    on_expiry_day = datetime(2026, 3, 15, 6, 0, tzinfo=UTC)
    assert not d.needs_probe(t, set(), on_expiry_day)
    r = d.vanished(t, on_expiry_day)
    assert t.state == d.EXPIRED and r.events == []


def test_lista_only_transport_is_never_probed():
    t = d.new_transport(d.observation_from_lista(lista(), "3000030"), T0).transport
    assert t.last_seen_in_info_at is None and not d.needs_probe(t, set(), T0)


def test_partner_correction_seen_only_in_lista_is_recorded_without_a_second_event():
    t = created().transport
    d.merge(t, d.observation_from_lista(lista(), "3000030"), T0)
    r = d.merge(t, obs_info(loc_final={"tip_loc": "ADR", "adresa_completa": "Bd. Nou 2, Iasi"}), T0)
    assert [(e.kind, e.version) for e in r.events] == [("corrected", 1)]
    r = d.merge(t, d.observation_from_lista(lista(pc_cod="14399840"), "3000030"), T0)
    assert r.events == [] and r.history[0].kind == "corrected" and t.partner_code == "14399840"
    # a transport known only from lista announces its corrections
    only = d.new_transport(d.observation_from_lista(lista(uit="X2"), "3000030"), T0).transport
    r = d.merge(only, d.observation_from_lista(lista(uit="X2", pc_cod="14399840"), "3000030"), T0)
    assert [(e.kind, e.version) for e in r.events] == [("corrected", 1)]
