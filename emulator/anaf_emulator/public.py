"""Public no-auth registries of webservicesp.anaf.ro: taxpayer/VAT v9 (and v8) and the RO e-Factura register."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from .oauth import st
from .responses import json_response
from .scenario import Company
from .state import EmulatorState

router = APIRouter()

COUNTY_NAMES = {
    "B": ("MUNICIPIUL BUCUREŞTI", "40"), "CJ": ("CLUJ", "12"), "IS": ("IAŞI", "22"), "TM": ("TIMIŞ", "35"),
    "CT": ("CONSTANŢA", "13"), "BV": ("BRAŞOV", "8"), "PH": ("PRAHOVA", "29"), "DJ": ("DOLJ", "16"),
    "SB": ("SIBIU", "32"), "AG": ("ARGEŞ", "3"), "IF": ("ILFOV", "23"), "BH": ("BIHOR", "5"),
}


def _throttled(state: EmulatorState, request: Request) -> Response | None:
    if state.switches.public_rate_limit != "enforce":
        return None
    client = request.client.host if request.client else "unknown"
    allowed, retry = state.minute.take(f"ip:{client}:{request.url.path}", 1, window_seconds=1)
    if allowed:
        return None
    state.counters.rejected["429"] += 1
    return json_response({"cod": 429, "message": "Too Many Requests"}, status=429, headers={"Retry-After": str(retry)})


async def _parse_batch(request: Request, cap: int) -> list[dict[str, Any]] | Response:
    try:
        data = json.loads(await request.body())
    except ValueError:
        return json_response({"cod": 400, "message": "Request invalid: corpul trebuie sa fie un vector JSON"}, 400)
    if not isinstance(data, list) or not all(isinstance(x, dict) and "cui" in x for x in data):
        return json_response({"cod": 400, "message": "Request invalid: corpul trebuie sa fie un vector JSON"}, 400)
    if len(data) > cap:
        return json_response({"cod": 400, "message": f"Numarul maxim de CUI-uri dintr-o cerere este {cap}"}, 400)
    return data


def _cui_key(value: Any) -> str:
    return str(value).strip().upper().removeprefix("RO")


def _number(value: Any) -> Any:
    text = _cui_key(value)
    return int(text) if text.isdigit() else value


def taxpayer_record(c: Company, as_of: str) -> dict[str, Any]:
    county_name, county_code = COUNTY_NAMES.get(c.county, (c.county, ""))
    addr = {
        "denumire_Strada": c.street.upper(), "numar_Strada": c.number, "denumire_Localitate": c.city.upper(),
        "cod_Localitate": "", "denumire_Judet": county_name, "cod_Judet": county_code, "cod_JudetAuto": c.county,
        "tara": "", "detalii_Adresa": "", "cod_Postal": c.postal_code,
    }
    return {
        "date_generale": {
            "cui": int(c.cui), "data": as_of, "denumire": c.name.upper(), "adresa": c.address,
            "nrRegCom": c.nr_reg_com, "telefon": c.phone, "fax": "", "codPostal": c.postal_code, "act": "",
            "stare_inregistrare": f"INREGISTRAT din data {'.'.join(reversed(c.registered_since.split('-')))}",
            "data_inregistrare": c.registered_since, "cod_CAEN": c.caen, "iban": "",
            "statusRO_e_Factura": c.efactura_registered,
            "data_inreg_Reg_RO_e_Factura": "2022-03-01" if c.efactura_registered else "",
            "organFiscalCompetent": f"Administraţia Judeţeană a Finanţelor Publice {county_name.title()}",
            "forma_de_proprietate": "PROPR.PRIVATA-CAPITAL PRIVAT AUTOHTON",
            "forma_organizare": "PERSOANA JURIDICA",
            "forma_juridica": "SOCIETATE COMERCIALĂ CU RĂSPUNDERE LIMITATĂ",
        },
        "inregistrare_scop_Tva": {
            "scpTVA": c.vat,
            "perioade_TVA": [{"data_inceput_ScpTVA": c.registered_since, "data_sfarsit_ScpTVA": "",
                              "data_anul_imp_ScpTVA": "", "mesaj_ScpTVA": ""}] if c.vat else [],
        },
        "inregistrare_RTVAI": {"dataInceputTvaInc": "", "dataSfarsitTvaInc": "", "dataActualizareTvaInc": "",
                               "dataPublicareTvaInc": "", "tipActTvaInc": "", "statusTvaIncasare": c.vat_on_receipt},
        "stare_inactiv": {"dataInactivare": "", "dataReactivare": "", "dataPublicare": "", "dataRadiere": "",
                          "statusInactivi": c.inactive},
        "inregistrare_SplitTVA": {"dataInceputSplitTVA": "", "dataAnulareSplitTVA": "", "statusSplitTVA": c.split_vat},
        "adresa_sediu_social": {"s" + k: v for k, v in addr.items()},
        "adresa_domiciliu_fiscal": {"d" + k: v for k, v in addr.items()},
    }


async def _tva(request: Request, wrapper: bool) -> Response:
    state = st(request)
    if (limited := _throttled(state, request)) is not None:
        return limited
    batch = await _parse_batch(request, 100 if not wrapper else 500)
    if isinstance(batch, Response):
        return batch
    found, not_found = [], []
    today = state.clock.today().isoformat()
    for item in batch:
        company = state.companies.get(_cui_key(item["cui"]))
        if company is None:
            not_found.append(_number(item["cui"]))
        else:
            found.append(taxpayer_record(company, str(item.get("data") or today)))
    body: dict[str, Any] = {"found": found, "notFound": not_found}
    if wrapper or state.switches.public_cod_wrapper:
        body = {"cod": 200, "message": "SUCCESS", **body}
    return json_response(body)


@router.post("/api/PlatitorTvaRest/v9/tva")
@router.post("/PlatitorTvaRest/api/v9/tva")
async def tva_v9(request: Request) -> Response:
    return await _tva(request, wrapper=False)


@router.post("/PlatitorTvaRest/api/v8/ws/tva")
async def tva_v8(request: Request) -> Response:
    return await _tva(request, wrapper=True)


@router.post("/api/registruroefactura/v1/interogare")
async def efactura_register(request: Request) -> Response:
    state = st(request)
    if (limited := _throttled(state, request)) is not None:
        return limited
    batch = await _parse_batch(request, 100)
    if isinstance(batch, Response):
        return batch
    found, not_found = [], []
    for item in batch:
        company = state.companies.get(_cui_key(item["cui"]))
        if company is None or not company.efactura_registered:
            not_found.append(_number(item["cui"]))
            continue
        found.append({
            "cui": int(company.cui), "denumire": company.name.upper(), "adresa": company.address,
            "registru": "RO e-Factura", "categorie": "Contribuabil", "dataInscriere": "2022-03-01",
            "dataRenuntare": "", "dataRadiere": "", "dataOptiuneB2G": "", "stare": "INREGISTRAT",
        })
    # live quirk: 404 (with a regular body) when no CUI in the list has data
    return json_response({"found": found, "notFound": not_found}, status=200 if found else 404)
