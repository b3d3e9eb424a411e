"""e-Transport checklist (§10): upload v2 with UIT, stareMesaj, lista, the carrier's info and its effects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import A, B, C

from anaf_emulator.state import uit_checksum

ET = "/test/ETRANSPORT/ws/v1"
NS = "mfp:anaf:dgti:eTransport:declaratie:v2"


def notificare(day: str, carrier: str = C, tip_op: str = "30", corectie: str | None = None, ref: str = "R-1") -> bytes:
    corr = f'<corectie uit="{corectie}"/>' if corectie else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<eTransport xmlns="{NS}" codDeclarant="{A}" refDeclarant="{ref}">
 <notificare codTipOperatiune="{tip_op}">{corr}
  <bunuriTransportate codScopOperatiune="101" codTarifar="84713000" denumireMarfa="Laptop" cantitate="10"
    codUnitateMasura="H87" greutateNeta="25" greutateBruta="30" valoareLeiFaraTva="40000"/>
  <partenerComercial codTara="RO" cod="{B}" denumire="BETA CUMPARARI SRL"/>
  <dateTransport nrVehicul="CJ10ABC" codTaraOrgTransport="RO" codOrgTransport="{carrier}"
    denumireOrgTransport="GAMMA TRANSPORT SRL" dataTransport="{day}"/>
  <locStartTraseuRutier><locatie codJudet="12" denumireLocalitate="Cluj-Napoca" denumireStrada="Str. Fabricii" numar="3"/></locStartTraseuRutier>
  <locFinalTraseuRutier><locatie codJudet="40" denumireLocalitate="Bucuresti" denumireStrada="Calea Victoriei" numar="10"/></locFinalTraseuRutier>
  <documenteTransport tipDocument="30" numarDocument="AV-1" dataDocument="{day}"/>
 </notificare>
</eTransport>""".encode()


def action(element: str, cif: str = A) -> bytes:
    return f'<?xml version="1.0"?>\n<eTransport xmlns="{NS}" codDeclarant="{cif}">{element}</eTransport>'.encode()


async def up(emu, body: bytes, cif: str = A, cert: str = "acc", version: str = "2"):
    r = await emu.client.post(f"{ET}/upload/ETRANSP/{cif}/{version}", content=body,
                              headers={**await emu.bearer(cert), "Content-Type": "application/xml"})
    assert r.status_code == 200, r.text
    return r.json()


async def info(emu, **params):
    r = await emu.client.get(f"{ET}/info", params={"cui_op": C, **params}, headers=await emu.bearer("carrier"))
    return r


def today(emu) -> str:
    return emu.state.clock.today().isoformat()


async def test_upload_v2_uit_and_state_machine(emu):
    body = await up(emu, notificare(today(emu)))
    assert body["ExecutionStatus"] == 0 and isinstance(body["index_incarcare"], int)
    uit = body["UIT"]
    assert len(uit) == 16 and uit[14:] == uit_checksum(uit[:14])
    assert set(uit[:14]) <= set("0123456789ACDEFHJKLMNPQRTUVWXY")
    assert body["atentie"].startswith("Verificati starea XML-ului transmis.")
    assert set(body) == {"dateResponse", "ExecutionStatus", "index_incarcare", "UIT", "trace_id", "ref_declarant",
                         "atentie"}
    h = await emu.bearer()
    r = (await emu.client.get(f"{ET}/stareMesaj/{body['index_incarcare']}", headers=h)).json()
    assert r["stare"] == "in prelucrare"
    emu.advance(2)
    r = (await emu.client.get(f"{ET}/stareMesaj/{body['index_incarcare']}", headers=h)).json()
    assert r["stare"] == "ok" and r["ExecutionStatus"] == 0 and "trace_id" in r
    v1 = await up(emu, notificare(today(emu)).replace(b":v2", b":v1"), version="1")
    assert "atentie" not in v1


def test_uit_checksum_worked_example():
    assert uit_checksum("4MXKT7Q2HNVC3A") == "81"


@pytest.mark.parametrize(
    ("path", "cert", "body", "error"),
    [
        (f"upload/ETRANSPORT/{A}/2", "acc", None, "Valoarea acceptata pentru parametrul standard este ETRANSP"),
        ("upload/ETRANSP/123a/2", "acc", None, "CIF introdus= 123a nu este un numar"),
        (f"upload/ETRANSP/{A}/2", "nobody", None, "Nu exista niciun CIF petru care sa aveti drept in SPV"),
        (f"upload/ETRANSP/{C}/2", "acc", None, f"Nu aveti drept in SPV pentru CIF={C}"),
        (f"upload/ETRANSP/{A}/2", "acc", b"<" * (5 * 1024 * 1024 + 1), "Marime fisier transmis mai mare de 5 MB"),
    ],
)
async def test_upload_errors(emu, path, cert, body, error):
    r = await emu.client.post(f"{ET}/{path}", content=body or notificare(today(emu)), headers=await emu.bearer(cert))
    j = r.json()
    assert r.status_code == 200 and j["ExecutionStatus"] == 1 and j["Errors"] == [{"errorMessage": error}]


async def test_upload_bad_xml_and_missing_segment(emu):
    r = await emu.client.post(f"{ET}/upload/ETRANSP/{A}/2", content=b"<a>", headers=await emu.bearer())
    assert r.json()["Errors"][0]["errorMessage"].startswith(
        "Fisierul transmis nu este valid. org.xml.sax.SAXParseException; ")
    r = await emu.client.post(f"{ET}/upload/", content=b"<a/>", headers=await emu.bearer())
    assert r.status_code == 404
    assert r.json()["path"] == "/test/ETRANSPORT/ws/v1/upload/" and r.json()["error"] == "Not Found"


async def test_stare_errors(emu):
    h = await emu.bearer()
    body = await up(emu, notificare(today(emu)))
    idx = body["index_incarcare"]
    cases = [
        ("a", "acc", "Id_incarcare introdus= a nu este un numar intreg"),
        ("1", "acc", "Nu exista declaratia de transport cu id_incarcare= 1"),
        (str(idx), "carrier", f"Nu aveti dreptul de inteorgare pentru id_incarcare= {idx}"),
        (str(idx), "nobody", "Nu exista niciun CIF petru care sa aveti drept"),
    ]
    for value, cert, error in cases:
        r = (await emu.client.get(f"{ET}/stareMesaj/{value}", headers=await emu.bearer(cert))).json()
        assert "stare" not in r and r["Errors"] == [{"errorMessage": error}] and r["ExecutionStatus"] == 1
    emu.state.switches.update({"stare_cap_per_index": 1})
    await emu.client.get(f"{ET}/stareMesaj/{idx}", headers=h)
    r = (await emu.client.get(f"{ET}/stareMesaj/{idx}", headers=h)).json()
    assert r["Errors"] == [{"errorMessage": "S-au facut deja 1 de verificari, pentru id-incarcare solicitat, "
                                            "in cursul zilei"}]


async def test_info_active_only_with_expiry_rules(emu):
    day = emu.state.clock.today()
    short = (await up(emu, notificare(day.isoformat(), ref="SHORT")))["UIT"]
    long = (await up(emu, notificare(day.isoformat(), tip_op="10", ref="LONG")))["UIT"]
    emu.advance(2)
    items = {i["uit"]: i for i in (await info(emu)).json()}
    assert {short, long} <= set(items)
    assert items[short]["data_exp_uit"] == f"{(day + timedelta(days=5)).isoformat()}T00:00:00"
    assert items[long]["data_exp_uit"] == f"{(day + timedelta(days=15)).isoformat()}T00:00:00"
    assert items[short]["data_transp"] == f"{day.isoformat()}T00:00:00"
    assert items[short]["cod_decl"] == int(A) and items[short]["tr_cod"] == C
    assert items[short]["loc_start"]["tip_loc"] == "ADR"
    # filters
    only = (await info(emu, uit=short)).json()
    assert [i["uit"] for i in only] == [short]
    assert [i["uit"] for i in (await info(emu, ref_decl="LONG")).json()] == [long]
    # the UIT counts as expired from data_exp_uit on
    emu.advance(4 * 86400)
    assert short in {i["uit"] for i in (await info(emu)).json()}
    emu.advance(86400)
    uits = {i["uit"] for i in (await info(emu)).json()}
    assert short not in uits and long in uits


async def test_info_errors(emu):
    h = await emu.bearer("carrier")
    r = await emu.client.get(f"{ET}/info", headers=h)
    assert r.status_code == 400
    assert r.json()["message"] == "Parametrul cui_op este obligatoriu" and r.json()["error"] == "Bad Request"
    cases = [
        ({"cui_op": "abc"}, "carrier", "cui_op introdus= abc nu este un numar"),
        ({"cui_op": C, "cui_decl": "abc"}, "carrier", "cui_decl introdus= abc nu este un numar"),
        ({"cui_op": A}, "carrier", f"Nu aveti drept in SPV pentru CIF={A}"),
        ({"cui_op": C}, "nobody", "Nu exista niciun CIF petru care sa aveti drept in SPV"),
        ({"cui_op": C, "uit": "XXXX"}, "carrier", "Nu exista informatii pentru aceasta solicitare"),
    ]
    for params, cert, error in cases:
        body = (await emu.client.get(f"{ET}/info", params=params, headers=await emu.bearer(cert))).json()
        assert set(body) == {"trace_id", "dateResponse", "error"} and body["error"] == error


async def test_deletion_confirmation_vehicle_change_correction(emu):
    day = today(emu)
    uit = (await up(emu, notificare(day)))["UIT"]
    emu.advance(2)
    # vehicle change by the carrier
    r = await up(emu, action(f'<modifVehicul uit="{uit}" nrVehicul="PH99XYZ" dataModificare="{day}T12:00:00"/>', C),
                 cif=C, cert="carrier")
    assert r["UIT"] == uit
    # confirmation
    await up(emu, action(f'<confirmare uit="{uit}" tipConfirmare="10"/>'))
    # correction keeps the UIT and updates the data
    r = await up(emu, notificare(day, corectie=uit, ref="R-CORR"))
    assert r["UIT"] == uit
    emu.advance(2)
    item = next(i for i in (await info(emu)).json() if i["uit"] == uit)
    assert item["ref_decl"] == "R-CORR"
    assert item["modif_veh"][0]["nr_veh"] == "PH99XYZ" and item["modif_veh"][0]["cod_decl"] == C
    lista = (await emu.client.get(f"{ET}/lista/5/{A}", headers=await emu.bearer())).json()
    notif = next(m for m in lista["mesaje"] if m.get("uit") == uit and m.get("tip") == "NOT")
    assert notif["confirmare"]["tip_conf"] == "10" and notif["modif_veh"][0]["nr_veh"] == "PH99XYZ"
    # deletion removes the UIT from info
    await up(emu, action(f'<stergere uit="{uit}"/>'))
    emu.advance(2)
    assert uit not in {i["uit"] for i in (await info(emu)).json()}
    # an action on an unknown UIT is nok and shows as an error record in lista
    bad = await up(emu, action('<stergere uit="AAAAAAAAAAAAAA00"/>'))
    emu.advance(2)
    st = (await emu.client.get(f"{ET}/stareMesaj/{bad['index_incarcare']}", headers=await emu.bearer())).json()
    assert st["stare"] == "nok" and st["Errors"] == [{"errorMessage": "UIT-ul nu poate fi identificat."}]
    lista = (await emu.client.get(f"{ET}/lista/5/{A}", headers=await emu.bearer())).json()
    err = next(m for m in lista["mesaje"] if m["id_incarcare"] == str(bad["index_incarcare"]).zfill(10))
    assert err["stare"] == "ERR" and err["mesaje"] == [
        {"tip": "ERR", "mesaj": "Nu a fost identificat UIT-ul printre notificarile valide anterioare."}]


async def test_lista_shape_and_errors(emu):
    await up(emu, notificare(today(emu)))
    emu.advance(2)
    h = await emu.bearer()
    body = (await emu.client.get(f"{ET}/lista/60/{A}", headers=h)).json()
    assert {"mesaje", "serial", "cui", "titlu", "dateResponse", "ExecutionStatus", "trace_id"} <= set(body)
    assert body["titlu"] == "Lista Mesaje disponibile din ultimele 60 zile" and body["ExecutionStatus"] == 0
    item = next(m for m in body["mesaje"] if m.get("tip") == "NOT")
    for key in ("uit", "cod_decl", "sursa", "id_incarcare", "data_creare", "tip_op", "data_transp", "pc_tara",
                "pc_cod", "pc_den", "tr_tara", "tr_cod", "tr_den", "nr_veh"):
        assert key in item
    assert len(item["data_creare"]) == 14 and item["data_transp"].endswith("000000")
    cases = [
        ("60a", A, "acc", "Numarul de zile introdus= 60a nu este un numar intreg"),
        ("61", A, "acc", "Numarul de zile trebuie sa fie intre 1 si 60"),
        ("5", "123a", "acc", "CIF introdus= 123a nu este un numar"),
        ("5", A, "nobody", "Nu exista niciun CIF petru care sa aveti drept in SPV"),
        ("5", B, "acc", "Nu exista mesaje in ultimele 5 zile"),
    ]
    for zile, cif, cert, error in cases:
        r = (await emu.client.get(f"{ET}/lista/{zile}/{cif}", headers=await emu.bearer(cert))).json()
        assert r["Errors"] == [{"errorMessage": error}] and r["ExecutionStatus"] == 1
    emu.state.switches.update({"et_list_cap": 1})
    h = await emu.bearer()
    await emu.client.get(f"{ET}/lista/5/{A}", headers=h)
    r = (await emu.client.get(f"{ET}/lista/5/{A}", headers=h)).json()
    assert r["Errors"] == [{"errorMessage": "S-au facut deja 1 interogari de lista mesaje de catre utilizator "
                                            "in cursul zilei"}]


async def test_carrier_not_in_declarant_list_unless_switched(emu):
    h = await emu.bearer("carrier")
    r = (await emu.client.get(f"{ET}/lista/10/{C}", headers=h)).json()
    assert r["Errors"] == [{"errorMessage": "Nu exista mesaje in ultimele 10 zile"}]
    emu.state.switches.update({"et_lista_includes_carrier": True})
    r = (await emu.client.get(f"{ET}/lista/10/{C}", headers=h)).json()
    assert all(m["tr_cod"] == C for m in r["mesaje"])
