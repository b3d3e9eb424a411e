"""RO e-Factura REST (`/{prod,test}/FCTEL/rest`): upload, stareMesaj, lists, descarcare, validare, PDF."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from lxml import etree
from starlette.responses import Response

from .cif import is_valid_cnp
from .clock import RO_TZ, fmt_dmy, fmt_minute
from .oauth import Principal, authenticate, st
from .pdf import render_pdf
from .responses import dumps, json_response, raw_json, spring_400, spring_404, xml_header, xml_response
from .signing import verify_signature
from .state import DAY, FILTER_TIP, EmulatorState, Upload
from .ubl import (
    NS_CII,
    NS_CREDIT,
    NS_INVOICE,
    NS_RASP,
    business_errors,
    offline_report,
    read_document,
    schema_error,
)

router = APIRouter()

NS_UPLOAD = "mfp:anaf:dgti:spv:respUploadFisier:v1"
NS_STARE = "mfp:anaf:dgti:efactura:stareMesajFactura:v1"
ENVS = ("prod", "test")
EXPECTED_ROOT = {
    "UBL": (NS_INVOICE, "Invoice"),
    "CN": (NS_CREDIT, "CreditNote"),
    "CII": (NS_CII, "CrossIndustryInvoice"),
    "RASP": (NS_RASP, "header"),
    "FACT1": (NS_INVOICE, "Invoice"),
    "FCN": (NS_CREDIT, "CreditNote"),
}
NO_RIGHTS_AT_ALL = "Nu exista niciun CIF pentru care sa aveti drept in SPV"
EXPIRED_DOWNLOAD = "Fisierul nu mai poate fi descarcat pentru ca a trecut perioada de 60 de zile in care este disponibil"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


# -- XML checks shared with validare ---------------------------------------------------------------


def _java_message(msg: str) -> str:
    if "Start tag expected" in msg or "Document is empty" in msg:
        return "Content is not allowed in prolog."
    m = re.search(r"Opening and ending tag mismatch: (\S+)", msg)
    if m:
        return f'The element type "{m.group(1)}" must be terminated by the matching end-tag "</{m.group(1)}>".'
    if "Premature end of data" in msg or "EndTag" in msg or "Extra content" in msg:
        return "XML document structures must start and end within the same entity."
    return msg.strip()


def sax_error(xml: bytes, standard: str, expected: tuple[str, str] | None = None) -> tuple[Any, str | None]:
    """(root, None) for a well-formed document with the expected root, else (None, ANAF's SAX text).

    The expected root is `(namespace, local name)`, by default the one of the upload `standard`.
    """
    try:
        root = etree.fromstring(xml, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (1, 1)
        return None, (
            f"Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber: {line}; "
            f"columnNumber: {col}; {_java_message(exc.msg)} "
        )
    expected = expected or EXPECTED_ROOT.get(standard)
    qname = etree.QName(root)
    if expected and (qname.namespace, qname.localname) != expected:
        written = root.prefix + ":" + qname.localname if root.prefix else qname.localname
        line = root.sourceline or 1
        text_lines = xml.decode("utf-8", "replace").splitlines()
        col = 1
        if 0 < line <= len(text_lines):
            src = text_lines[line - 1]
            start = src.find("<" + written)
            end = src.find(">", max(start, 0))
            col = end + 2 if end >= 0 else len(src) + 1
        return None, (
            f"Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber: {line}; "
            f"columnNumber: {col}; cvc-elt.1.a: Cannot find the declaration of element '{written}'. "
        )
    return root, None


# -- helpers ---------------------------------------------------------------------------------------


def _now(state: EmulatorState) -> datetime:
    return state.clock.now()


# Seen on the test environment for about half of one integrator's uploads (anaf-api.md §11.17)
TECHNICAL_1814 = "A aparut o eroare tehnica. Cod: 1814"


def _upload_xml(state: EmulatorState, attrs: dict[str, str] | None = None, error: str | None = None) -> Response:
    base = {"dateResponse": fmt_minute(_now(state))}
    if error is not None:
        base["ExecutionStatus"] = "1"
        return xml_response(xml_header(NS_UPLOAD, base, [error]))
    base["ExecutionStatus"] = "0"
    base.update(attrs or {})
    return xml_response(xml_header(NS_UPLOAD, base))


def _rights_error(principal: Principal, cif: str) -> str | None:
    """The rights check of every `cif=` parameter. A natural person's CNP is a taxpayer id like a CIF: rights on it
    are rights on their own filings; a 13-digit value that is not a valid CNP (its control digit) is never one a
    certificate has rights on, so it gets ANAF's rights text (the caller checked it is a number)."""
    if not principal.rights:
        return NO_RIGHTS_AT_ALL
    if len(cif) == 13 and not is_valid_cnp(cif):
        return f"Nu aveti drept in SPV pentru CIF={cif}"
    if cif not in principal.rights:
        return f"Nu aveti drept in SPV pentru CIF={cif}"
    return None


def _count_cui(state: EmulatorState, cif: str, name: str) -> None:
    state.counters.cui[cif][name] += 1


def _env_ok(env: str) -> bool:
    return env in ENVS


def _authorized(env: str, request: Request) -> Principal | Response:
    """What every e-Factura call checks first, in ANAF's order: a known environment (else Spring's 404),
    then a valid Bearer token for e-Factura (else the token refusal)."""
    if not _env_ok(env):
        return spring_404(request.url.path, _now(st(request)))
    return authenticate(request, "efactura")


# -- upload ----------------------------------------------------------------------------------------


@router.post("/{env}/FCTEL/rest/upload")
async def upload(env: str, request: Request) -> Response:
    return await _upload(env, request, b2c=False)


@router.post("/{env}/FCTEL/rest/uploadb2c")
async def upload_b2c(env: str, request: Request) -> Response:
    """Same parameters, checks and answer as `upload` (anaf-api.md §2.1), the upload recorded as B2C. ANAF does not
    document refusing a document whose buyer is a business on this route (nor a B2C one on `upload`), so the
    emulator accepts it too rather than invent a refusal; the platform decides the route from the buyer itself."""
    return await _upload(env, request, b2c=True)


async def _upload(env: str, request: Request, b2c: bool) -> Response:
    state = st(request)
    principal = _authorized(env, request)
    if isinstance(principal, Response):
        return principal
    q = request.query_params
    standard, cif = q.get("standard"), q.get("cif")
    if standard is None or cif is None:
        return spring_400("Parametrii standard si cif sunt obligatorii", _now(state))
    body = await request.body()
    if not body:
        return spring_400("Trebuie sa aveti atasat in request un fisier de tip xml", _now(state))
    if standard not in ("UBL", "CN", "CII", "RASP"):
        return _upload_xml(state, error="Valorile acceptate pentru parametrul standard sunt UBL, CN, CII sau RASP")
    if not cif.isdigit():
        return _upload_xml(state, error=f"CIF introdus= {cif} nu este un numar")
    if (err := _rights_error(principal, cif)) is not None:
        return _upload_xml(state, error=err)
    flags = {}
    for name, label in (("extern", "extern"), ("autofactura", "autofacturare"), ("executare", "executare")):
        value = q.get(name)
        if value is not None and value != "DA":
            return _upload_xml(state, error=f"Daca parametrul {label} trebuie completat, valoarea acceptata este DA")
        flags[name] = value == "DA"
    if flags["executare"]:
        company = state.companies.get(cif)
        if company is None or not company.executare_silita:
            return _upload_xml(
                state, error=f"CIF introdus= {cif} nu este inregistrat in Registrul RO e-Factura executari silite"
            )
    if len(body) > 10 * 1024 * 1024:
        return _upload_xml(state, error="Marime fisier transmis mai mare de 10 MB.")
    root, sax = sax_error(body, standard)
    if sax is not None:
        return _upload_xml(state, error=sax)
    doc = read_document(root)
    # off the event loop: the Schematron takes tens of milliseconds on a large invoice
    report = await asyncio.to_thread(offline_report, doc, body)
    if (xsd := schema_error(report)) is not None:
        return _upload_xml(state, error=xsd)
    _count_cui(state, cif, "upload")
    with state.lock:
        if standard == "RASP" and not state.daily.take("rasp", cif, state.switches.rasp_cap_per_cui):
            return _upload_xml(
                state,
                error=f"S-au incarcat deja {state.switches.rasp_cap_per_cui} de mesaje de tip RASP pentru cui={cif} "
                "in cursul zilei",
            )
        fail_1814 = state.switches.upload_error_1814 > 0
        if fail_1814:
            state.switches.upload_error_1814 -= 1
            if not state.switches.upload_error_1814_files:
                return _upload_xml(state, error=TECHNICAL_1814)
        forced = state.switches.forced_outcome
        if forced:
            outcome = forced
            errors = ["E: validari globale  eroare: rezultat fortat de emulator"] if forced == "nok" else []
        elif standard == "RASP":
            ref = state.uploads.get(int(doc.rasp_index)) if (doc.rasp_index or "").isdigit() else None
            errors = [] if ref is not None else [
                f"E: validari globale  eroare: Nu exista factura cu id_incarcare={doc.rasp_index}"
            ]
            outcome = "nok" if errors else "ok"
        else:
            errors = business_errors(doc, state.known_cif, report)
            outcome = "nok" if errors else "ok"
        up = state.record_upload(
            cif=cif,
            standard=standard,
            uploaded_at=state.clock.timestamp(),
            outcome=outcome,
            doc=doc,
            xml=body,
            errors=errors,
            b2c=b2c,
            serial=principal.serial,
            **flags,
        )
    if fail_1814:
        return _upload_xml(state, error=TECHNICAL_1814)
    return _upload_xml(state, {"index_incarcare": str(up.index)})


# -- stareMesaj ------------------------------------------------------------------------------------


@router.get("/{env}/FCTEL/rest/stareMesaj")
async def stare_mesaj(env: str, request: Request) -> Response:
    state = st(request)
    principal = _authorized(env, request)
    if isinstance(principal, Response):
        return principal
    raw = request.query_params.get("id_incarcare")
    if raw is None:
        return spring_400("Parametrul id_incarcare este obligatoriu", _now(state))

    def err(text: str) -> Response:
        return xml_response(xml_header(NS_STARE, {}, [text]))

    if not raw.isdigit():
        return err(f"Id_incarcare introdus= {raw} nu este un numar intreg")
    if not principal.rights:
        return err("Nu exista niciun CIF petru care sa aveti drept")
    up = state.uploads.get(int(raw))
    if up is None:
        return err(f"Nu exista factura cu id_incarcare= {raw}")
    if up.cif not in principal.rights:
        return err(f"Nu aveti dreptul de inteorgare pentru id_incarcare= {raw}")
    cap = state.switches.stare_cap_per_index
    if not state.daily.take("stare", raw, cap):
        return err(f"S-au facut deja {cap} descarcari de mesaj in cursul zilei")
    state.counters.uploads[raw]["stareMesaj"] += 1
    now = state.clock.timestamp()
    if up.outcome == "rejected":
        return xml_response(xml_header(NS_STARE, {"stare": "XML cu erori nepreluat de sistem"}))
    if now < up.processed_at:
        return xml_response(xml_header(NS_STARE, {"stare": "in prelucrare"}))
    own = next((m for m in up.message_ids if state.messages[m].cif == up.cif), up.message_ids[0] if up.message_ids else None)
    attrs = {"stare": up.outcome}
    if own is not None:
        attrs["id_descarcare"] = str(own)
    return xml_response(xml_header(NS_STARE, attrs))


# -- lists -----------------------------------------------------------------------------------------


def _list_error(text: str) -> Response:
    return json_response({"eroare": text, "titlu": "Lista Mesaje"})


def _cui_field(state: EmulatorState, principal: Principal, cif: str) -> str:
    if state.switches.list_cui_field == "echo":
        return cif
    return ",".join(principal.rights)


def _limit_text(cap: int) -> str:
    return f"S-au facut deja {cap} interogari de lista mesaje de catre utilizator in cursul zilei"


def _filtered(state: EmulatorState, cif: str, start: float, end: float, filtru: str | None) -> list[Any]:
    msgs = state.visible_messages(cif, start, end)
    if filtru:
        tip = FILTER_TIP[filtru]
        msgs = [m for m in msgs if m.tip == tip]
    return msgs


@router.get("/{env}/FCTEL/rest/listaMesajeFactura")
async def lista_mesaje(env: str, request: Request) -> Response:
    state = st(request)
    principal = _authorized(env, request)
    if isinstance(principal, Response):
        return principal
    q = request.query_params
    zile, cif, filtru = q.get("zile"), q.get("cif"), q.get("filtru")
    if zile is None or cif is None:
        return spring_400("Parametrii zile si cif sunt obligatorii", _now(state))
    if not cif.isdigit():
        return _list_error(f"CIF introdus= {cif} nu este un numar")
    if not zile.lstrip("-").isdigit():
        return _list_error(f"Numarul de zile introdus= {zile} nu este un numar intreg")
    n = int(zile)
    if not 1 <= n <= 60:
        return _list_error("Numarul de zile trebuie sa fie intre 1 si 60")
    if filtru is not None and filtru not in FILTER_TIP:
        return _list_error("Valorile acceptate pentru parametrul filtru sunt E, T, P sau R")
    if (err := _rights_error(principal, cif)) is not None:
        return _list_error(err)
    cap = state.switches.list_cap_per_cui
    if not state.daily.take("lista", cif, cap):
        return _list_error(_limit_text(cap))
    _count_cui(state, cif, "listaMesajeFactura")
    now = state.clock.timestamp()
    msgs = _filtered(state, cif, now - n * DAY, now, filtru)
    if not msgs:
        return _list_error(f"Nu exista mesaje in ultimele {n} zile")
    if len(msgs) > 500:
        return _list_error(
            "Lista de mesaje este mai mare decat numarul de 500 elemente permise in pagina. "
            "Folositi endpoint-ul cu paginatie."
        )
    tail = {"serial": principal.serial_plain, "cui": _cui_field(state, principal, cif),
            "titlu": f"Lista Mesaje disponibile din ultimele {n} zile"}
    body = b'{"mesaje":[' + b",".join(m.item_json for m in msgs) + b"]," + dumps(tail)[1:]
    return raw_json(body)


@router.get("/{env}/FCTEL/rest/listaMesajePaginatieFactura")
async def lista_paginata(env: str, request: Request) -> Response:
    state = st(request)
    principal = _authorized(env, request)
    if isinstance(principal, Response):
        return principal
    q = request.query_params
    start_raw, end_raw, cif, pagina_raw = q.get("startTime"), q.get("endTime"), q.get("cif"), q.get("pagina")
    filtru = q.get("filtru")
    if None in (start_raw, end_raw, cif, pagina_raw):
        return spring_400("Parametrii startTime, endTime, cif si pagina sunt obligatorii", _now(state))
    assert start_raw is not None and end_raw is not None and cif is not None and pagina_raw is not None
    for name, value in (("startTime", start_raw), ("endTime", end_raw)):
        if not value.isdigit():
            return _list_error(f"{name} = {value} nu este un numar sau nu are o valoare acceptata de sistem")
    if not cif.isdigit():
        return _list_error(f"CIF introdus= {cif} nu este un numar sau nu are o valoare acceptata de sistem")
    if not pagina_raw.isdigit() or int(pagina_raw) < 1:
        return _list_error(f"pagina = {pagina_raw} nu este un numar sau nu are o valoare acceptata de sistem")
    if filtru is not None and filtru not in FILTER_TIP:
        return _list_error("Valorile acceptate pentru parametrul filtru sunt E, T, P sau R")
    if (err := _rights_error(principal, cif)) is not None:
        return _list_error(err)
    now_dt = _now(state)
    now = now_dt.timestamp()
    start, end = int(start_raw) / 1000, int(end_raw) / 1000
    start_dt, end_dt = datetime.fromtimestamp(start, RO_TZ), datetime.fromtimestamp(end, RO_TZ)
    if start < now - 60 * DAY:
        return _list_error(
            f"startTime = {fmt_dmy(start_dt)} nu poate fi mai vechi de 60 de zile fata de momentul requestului"
        )
    if end > now:
        text = f"endTime = {fmt_dmy(end_dt)} nu poate in viitor fata de momentul requestului"
        if state.switches.end_time_quotes_clock:
            text += f" = {fmt_dmy(now_dt)}"
        return _list_error(text)
    if end <= start:
        return _list_error(f"endTime = {fmt_dmy(end_dt)} nu poate fi <= startTime = {fmt_dmy(start_dt)}")
    cap = state.switches.paged_list_cap_per_cui
    if not state.daily.take("lista_paginata", cif, cap):
        return _list_error(_limit_text(cap))
    _count_cui(state, cif, "listaMesajePaginatieFactura")
    msgs = _filtered(state, cif, start, end, filtru)
    if not msgs:
        return _list_error("Nu exista mesaje in intervalul selectat")
    total = len(msgs)
    pages = (total + 499) // 500
    pagina = int(pagina_raw)
    if pagina > pages:
        return _list_error(f"Pagina solicitata {pagina} este mai mare decat numarul toatal de pagini {pages}")
    chunk = msgs[(pagina - 1) * 500: pagina * 500]
    tail = {
        "numar_inregistrari_in_pagina": len(chunk),
        "numar_total_inregistrari_per_pagina": 500,
        "numar_total_inregistrari": total,
        "numar_total_pagini": pages,
        "index_pagina_curenta": pagina,
        "serial": principal.serial_plain,
        "cui": _cui_field(state, principal, cif),
        "titlu": f"Lista Mesaje disponibile din intervalul {fmt_dmy(start_dt)} - {fmt_dmy(end_dt)}",
    }
    body = b'{"mesaje":[' + b",".join(m.item_json for m in chunk) + b"]," + dumps(tail)[1:]
    return raw_json(body)


# -- descarcare ------------------------------------------------------------------------------------


@router.get("/{env}/FCTEL/rest/descarcare")
async def descarcare(env: str, request: Request) -> Response:
    state = st(request)
    principal = _authorized(env, request)
    if isinstance(principal, Response):
        return principal
    raw = request.query_params.get("id")
    if raw is None:
        return spring_400("Parametrul id este obligatoriu", _now(state))

    def err(text: str) -> Response:
        return json_response({"eroare": text, "titlu": "Descarcare mesaj"})

    if not raw.isdigit():
        return err(f"Id descarcare introdus= {raw} nu este un numar intreg")
    now = state.clock.timestamp()
    msg = state.messages.get(int(raw))
    if msg is None or msg.created_at > now:
        return err(f"Pentru id={raw} nu exista inregistrata nici o factura")
    if msg.cif not in principal.rights:
        return err("Nu aveti dreptul sa descarcati acesta factura")
    if now > msg.created_at + 60 * DAY - state.switches.download_band_hours * 3600:
        return err(EXPIRED_DOWNLOAD)
    cap = state.switches.download_cap_per_message
    if not state.daily.take("descarcare", raw, cap):
        return err(f"S-au facut deja {cap} descarcari de mesaj in cursul zilei")
    state.counters.messages[raw]["descarcare"] += 1
    _count_cui(state, msg.cif, "descarcare")
    data = state.zip_for(state.uploads[msg.upload_index])
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{raw}.zip"'})


# -- validare / transformare (prod only) -----------------------------------------------------------


def _optional_auth(request: Request) -> Response | None:
    """api.anaf.ro needs a Bearer token; webservicesp.anaf.ro none: check it only when one is sent."""
    if "authorization" in request.headers:
        principal = authenticate(request, "efactura")
        if isinstance(principal, Response):
            return principal
    return None


def _validate(state: EmulatorState, std: str, body: bytes) -> tuple[Any, list[str]]:
    if std not in ("FACT1", "FCN"):
        return None, ["Valorile acceptate pentru parametrul standard sunt FACT1 si FCN"]
    if len(body) > 5 * 1024 * 1024:
        return None, ["Marime fisier transmis mai mare de 5 MB."]
    root, sax = sax_error(body, std)
    if sax is not None:
        return None, [sax]
    doc = read_document(root)
    report = offline_report(doc, body)
    if (xsd := schema_error(report)) is not None:
        return doc, [xsd]
    return doc, business_errors(doc, state.known_cif, report)


def _nok(messages: list[str]) -> Response:
    return json_response({"stare": "nok", "Messages": [{"message": m} for m in messages], "trace_id": str(uuid.uuid4())})


@router.post("/{env}/FCTEL/rest/validare/{std}")
async def validare(env: str, std: str, request: Request) -> Response:
    state = st(request)
    if env != "prod":
        return spring_404(request.url.path, _now(state))
    if (refused := _optional_auth(request)) is not None:
        return refused
    _, errors = _validate(state, std, await request.body())
    if errors:
        return _nok(errors)
    return json_response({"stare": "ok", "trace_id": str(uuid.uuid4())})


@router.post("/{env}/FCTEL/rest/validare")
@router.post("/{env}/FCTEL/rest/validare/")
async def validare_missing(env: str, request: Request) -> Response:
    path = "/FCTEL/rest/validare/" if env == "prod" else request.url.path
    return spring_404(path, _now(st(request)))


@router.post("/{env}/FCTEL/rest/transformare/{std}")
async def transformare(env: str, std: str, request: Request) -> Response:
    return await _transformare(env, std, request, skip_validation=False)


@router.post("/{env}/FCTEL/rest/transformare/{std}/{novld}")
async def transformare_novld(env: str, std: str, novld: str, request: Request) -> Response:
    if novld != "DA":
        return spring_404(request.url.path, _now(st(request)))
    return await _transformare(env, std, request, skip_validation=True)


async def _transformare(env: str, std: str, request: Request, skip_validation: bool) -> Response:
    state = st(request)
    if env != "prod":
        return spring_404(request.url.path, _now(state))
    if (refused := _optional_auth(request)) is not None:
        return refused
    body = await request.body()
    doc, errors = _validate(state, std, body)
    if doc is None or (errors and not skip_validation):
        return _nok(errors)
    return Response(render_pdf(doc), media_type="application/pdf")


# -- signature check -------------------------------------------------------------------------------

SIG_VALID = (
    "Fișierele încărcate au fost validate cu succes, din perspectiva autenticității semnăturii aplicate și a "
    "apartenenței acesteia la XML-ul ce reprezintă factura electronică. Documentul factură de tip XML cu "
    "semnătura de validare atașată, poate fi considerat document original din perspectiva legislativă și este "
    "generat prin intermediul sistemului național privind factura electronică RO e-Factura."
)
SIG_INVALID = (
    "Fișierele încărcate NU au putut fi validate cu succes, din perspectiva autenticității semnăturii aplicate și "
    "a apartenenței acesteia la XML-ul ce reprezintă factura electronică. Documentul factură de tip XML cu "
    "semnătura de validare atașată, NU poate fi considerat document original din perspectiva legislativă și NU "
    "este generat prin intermediul sistemului național privind factura electronică RO e-Factura."
)


@router.post("/api/validate/signature")
async def validate_signature(request: Request) -> Response:
    if (refused := _optional_auth(request)) is not None:
        return refused
    try:
        form = await request.form()
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is a bad request
        return json_response({"msg": f"Eroare tehnică: request incorect. Cauza: {exc}"}, status=400)
    parts = {}
    for name in ("file", "signature"):
        item = form.get(name)
        if item is None or isinstance(item, str):
            return json_response(
                {"msg": f"Eroare tehnică: request incorect. Cauza: Required request part '{name}' is not present"},
                status=400,
            )
        parts[name] = await item.read()
    valid = verify_signature(parts["file"], parts["signature"])
    return json_response({"msg": SIG_VALID if valid else SIG_INVALID})


def upload_summary(state: EmulatorState, up: Upload) -> dict[str, Any]:
    now = state.clock.timestamp()
    stare = "XML cu erori nepreluat de sistem" if up.outcome == "rejected" else (
        "in prelucrare" if now < up.processed_at else up.outcome)
    return {
        "index_incarcare": up.index,
        "cif": up.cif,
        "standard": up.standard,
        "stare": stare,
        "outcome": up.outcome,
        "seller": up.seller,
        "buyer": up.buyer,
        "autofactura": up.autofactura,
        "extern": up.extern,
        "b2c": up.b2c,
        "errors": up.errors,
        "uploaded_at": datetime.fromtimestamp(up.uploaded_at, RO_TZ).isoformat(),
        "processed_at": datetime.fromtimestamp(up.processed_at, RO_TZ).isoformat(),
        "message_ids": [str(m) for m in up.message_ids],
    }
