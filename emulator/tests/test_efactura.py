"""e-Factura checklist (§10): upload, async processing, stareMesaj, both lists, retention, descarcare, limits."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from datetime import date

import pytest
from conftest import A, B, C, D
from lxml import etree

from anaf_emulator.signing import verify_signature
from anaf_emulator.ubl import InvoiceSpec, Line, Party, render, render_rasp

EF = "/prod/FCTEL/rest"
DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
UP_NS = "mfp:anaf:dgti:spv:respUploadFisier:v1"
ST_NS = "mfp:anaf:dgti:efactura:stareMesajFactura:v1"


def invoice(seller: str = A, buyer: str = B, **kw) -> bytes:
    from decimal import Decimal

    spec = InvoiceSpec("T-1", date(2026, 3, 9), Party(seller, "ALFA VANZARI SRL"), Party(buyer, "BETA SRL", county="B"),
                       [Line("Servicii", Decimal(2), "H87", Decimal("100.00"), "S", Decimal(21))], **kw)
    return render(spec)


def header_attrs(text: str) -> dict:
    root = etree.fromstring(text.encode())
    return dict(root.attrib) | {"errors": [e.get("errorMessage") for e in root]}


async def upload(emu, body: bytes, headers=None, path="upload", **params):
    params = {"standard": "UBL", "cif": A, **params}
    headers = headers or await emu.bearer()
    return await emu.client.post(f"{EF}/{path}", params=params, content=body,
                                 headers={**headers, "Content-Type": "text/plain"})


async def test_upload_success_header_and_monotonic_index(emu):
    r1 = await upload(emu, invoice())
    r2 = await upload(emu, invoice())
    assert r1.status_code == 200 and r1.headers["content-type"].startswith("application/xml")
    assert r1.text.startswith(DECL)
    a1, a2 = header_attrs(r1.text), header_attrs(r2.text)
    assert a1["ExecutionStatus"] == "0" and re.fullmatch(r"\d{12}", a1["dateResponse"])
    assert int(a2["index_incarcare"]) > int(a1["index_incarcare"])
    assert f'<header xmlns="{UP_NS}" dateResponse=' in r1.text


@pytest.mark.parametrize(
    ("params", "cert", "body", "error"),
    [
        ({"standard": "XYZ"}, "acc", None, "Valorile acceptate pentru parametrul standard sunt UBL, CN, CII sau RASP"),
        ({"cif": "123a"}, "acc", None, "CIF introdus= 123a nu este un numar"),
        ({"cif": C}, "acc", None, f"Nu aveti drept in SPV pentru CIF={C}"),
        ({}, "nobody", None, "Nu exista niciun CIF pentru care sa aveti drept in SPV"),
        ({"extern": "NU"}, "acc", None, "Daca parametrul extern trebuie completat, valoarea acceptata este DA"),
        ({"autofactura": "x"}, "acc", None,
         "Daca parametrul autofacturare trebuie completat, valoarea acceptata este DA"),
        ({"executare": "1"}, "acc", None, "Daca parametrul executare trebuie completat, valoarea acceptata este DA"),
        ({"executare": "DA"}, "acc", None,
         f"CIF introdus= {A} nu este inregistrat in Registrul RO e-Factura executari silite"),
        ({}, "acc", b"<" + b"a" * (10 * 1024 * 1024 + 1), "Marime fisier transmis mai mare de 10 MB."),
        ({}, "acc", b'<?xml version="1.0"?>\n<Invoice1 xmlns="urn:x"><a/></Invoice1>',
         ("Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber: 2; columnNumber: 25; "
         "cvc-elt.1.a: Cannot find the declaration of element 'Invoice1'. ")),
        ({"standard": "CN"}, "acc", None,
         ("Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber: 2; columnNumber: 239; "
         "cvc-elt.1.a: Cannot find the declaration of element 'Invoice'. ")),
        ({}, "acc", b"not xml",
         ("Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber: 1; columnNumber: 1; "
         "Content is not allowed in prolog. ")),
    ],
)
async def test_upload_rejections(emu, params, cert, body, error):
    r = await upload(emu, body or invoice(), headers=await emu.bearer(cert), **params)
    assert r.status_code == 200
    attrs = header_attrs(r.text)
    assert attrs["ExecutionStatus"] == "1" and "index_incarcare" not in attrs
    assert attrs["errors"] == [error]


async def test_upload_400s(emu):
    h = await emu.bearer()
    r = await emu.client.post(f"{EF}/upload", params={"cif": A}, content=invoice(), headers=h)
    assert r.status_code == 400 and r.json()["message"] == "Parametrii standard si cif sunt obligatorii"
    assert set(r.json()) == {"timestamp", "status", "error", "message"}
    r = await emu.client.post(f"{EF}/upload", params={"standard": "UBL", "cif": A}, content=b"", headers=h)
    assert r.status_code == 400
    assert r.json()["message"] == "Trebuie sa aveti atasat in request un fisier de tip xml"


async def test_executare_for_registered_debtor(emu):
    r = await upload(emu, invoice(seller=D), cif=D, executare="DA")
    assert header_attrs(r.text)["ExecutionStatus"] == "0"


async def stare(emu, index, cert="acc"):
    r = await emu.client.get(f"{EF}/stareMesaj", params={"id_incarcare": index}, headers=await emu.bearer(cert))
    assert r.status_code == 200
    return header_attrs(r.text), r.text


async def list_msgs(emu, cif=A, zile=60, cert="acc", **extra):
    r = await emu.client.get(f"{EF}/listaMesajeFactura", params={"zile": zile, "cif": cif, **extra},
                             headers=await emu.bearer(cert))
    assert r.status_code == 200
    return r.json()


async def test_async_processing_creates_messages_for_both_parties(emu):
    index = header_attrs((await upload(emu, invoice())).text)["index_incarcare"]
    attrs, text = await stare(emu, index)
    assert attrs == {"stare": "in prelucrare", "errors": []} and f'xmlns="{ST_NS}"' in text
    assert all(m["id_solicitare"] != index for m in (await list_msgs(emu)).get("mesaje", []))
    emu.advance(2)
    attrs, _ = await stare(emu, index)
    assert attrs["stare"] == "ok"
    sent = [m for m in (await list_msgs(emu, A))["mesaje"] if m["id_solicitare"] == index]
    recv = [m for m in (await list_msgs(emu, B))["mesaje"] if m["id_solicitare"] == index]
    assert [m["tip"] for m in sent] == ["FACTURA TRIMISA"] and [m["tip"] for m in recv] == ["FACTURA PRIMITA"]
    assert attrs["id_descarcare"] == sent[0]["id"]
    detalii = f"Factura cu id_incarcare={index} emisa de cif_emitent={A} pentru cif_beneficiar={B}"
    assert sent[0]["detalii"] == recv[0]["detalii"] == detalii
    assert set(sent[0]) == {"data_creare", "cif", "id_solicitare", "detalii", "tip", "id"}


async def test_nok_creates_error_message_and_error_file(emu):
    bad = invoice().replace(b"RO-B<", b"RO-XX<")
    index = header_attrs((await upload(emu, bad)).text)["index_incarcare"]
    emu.advance(2)
    attrs, _ = await stare(emu, index)
    assert attrs["stare"] == "nok" and "id_descarcare" in attrs
    msgs = [m for m in (await list_msgs(emu, A, filtru="E"))["mesaje"] if m["id_solicitare"] == index]
    assert msgs[0]["tip"] == "ERORI FACTURA"
    assert msgs[0]["detalii"] == f"Erori de validare identificate la factura primita cu id_incarcare={index}"
    assert all(m["id_solicitare"] != index for m in (await list_msgs(emu, B)).get("mesaje", []))
    z = await emu.client.get(f"{EF}/descarcare", params={"id": attrs["id_descarcare"]}, headers=await emu.bearer())
    member = zipfile.ZipFile(io.BytesIO(z.content)).read(f"{index}.xml")
    root = etree.fromstring(member)
    assert root.tag == "{mfp:anaf:dgti:efactura:mesajEroriFactuta:v1}header"
    assert root.get("Index_incarcare") == index and root.get("Cif_emitent") == A
    # CIUS-RO 1.0.9's rule BR-RO-111 (buyer's county) carries the text "[BR-RO-110]-Daca Codul tarii Cumparatorului"
    assert any("Cumparatorului (BT-54)" in e.get("errorMessage") for e in root)


async def test_upload_failing_the_ubl_schema_is_refused_at_once(emu):
    bad = invoice().replace(b"<cbc:PayableAmount", b"<cbc:Note>x</cbc:Note><cbc:PayableAmount", 1)
    before = len(emu.state.uploads)
    attrs = header_attrs((await upload(emu, bad)).text)
    assert attrs["ExecutionStatus"] == "1" and "index_incarcare" not in attrs
    assert attrs["errors"][0].startswith("Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber:")
    assert "Note" in attrs["errors"][0] and len(emu.state.uploads) == before


async def test_business_rules_are_the_platforms_offline_rules(emu):
    """The emulator's `nok` is the shared validator's verdict: an EN 16931 calculation error is reported by id."""
    bad = invoice().replace(b'<cbc:TaxExclusiveAmount currencyID="RON">200.00<',
                            b'<cbc:TaxExclusiveAmount currencyID="RON">201.00<')
    index = header_attrs((await upload(emu, bad)).text)["index_incarcare"]
    emu.advance(2)
    assert (await stare(emu, index))[0]["stare"] == "nok"
    assert any("[BR-CO-13]" in e for e in emu.state.uploads[int(index)].errors)


async def test_unknown_seller_is_nok_r61(emu):
    index = header_attrs((await upload(emu, invoice(seller="8000000000"))).text)["index_incarcare"]
    emu.advance(2)
    assert (await stare(emu, index))[0]["stare"] == "nok"
    errors = emu.state.uploads[int(index)].errors
    assert errors == [("E: validari globale\n eroare regula: R6.1: CIF-ul vanzatorului nu figureaza in baza de date:"
                      "8000000000")]


async def test_self_billing_wording_and_duplicate_pair(emu):
    r = await upload(emu, invoice(seller=A, buyer=A, type_code="389"), autofactura="DA")
    index = header_attrs(r.text)["index_incarcare"]
    emu.advance(2)
    mine = [m for m in (await list_msgs(emu, A))["mesaje"] if m["id_solicitare"] == index]
    assert sorted(m["tip"] for m in mine) == ["FACTURA PRIMITA", "FACTURA TRIMISA"]
    assert mine[0]["detalii"] == f"Factura cu id_incarcare={index} transmisa de cif={A}  ca autofactura in numele cif={A}"


async def test_rasp_messages_for_both_parties_and_daily_cap(emu):
    index = header_attrs((await upload(emu, invoice())).text)["index_incarcare"]
    rasp = render_rasp(int(index), "mesaj de test, standard RASP")
    r = await upload(emu, rasp, standard="RASP", cif=B)
    rasp_index = header_attrs(r.text)["index_incarcare"]
    emu.advance(2)
    tip = "MESAJ CUMPARATOR PRIMIT / MESAJ CUMPARATOR TRANSMIS"
    for cif in (A, B):
        found = [m for m in (await list_msgs(emu, cif, filtru="R"))["mesaje"] if m["id_solicitare"] == rasp_index]
        assert [m["tip"] for m in found] == [tip]
    emu.state.switches.update({"rasp_cap_per_cui": 1})
    r = await upload(emu, rasp, standard="RASP", cif=B)
    assert header_attrs(r.text)["errors"] == [
        f"S-au incarcat deja 1 de mesaje de tip RASP pentru cui={B} in cursul zilei"]


async def test_forced_rejected_state_and_stare_errors(emu):
    emu.state.switches.update({"forced_outcome": "rejected"})
    index = header_attrs((await upload(emu, invoice())).text)["index_incarcare"]
    emu.advance(5)
    assert (await stare(emu, index))[0] == {"stare": "XML cu erori nepreluat de sistem", "errors": []}
    cases = [
        ("aaa", "acc", "Id_incarcare introdus= aaa nu este un numar intreg"),
        ("15000", "acc", "Nu exista factura cu id_incarcare= 15000"),
        (index, "carrier", f"Nu aveti dreptul de inteorgare pentru id_incarcare= {index}"),
        (index, "nobody", "Nu exista niciun CIF petru care sa aveti drept"),
    ]
    for value, cert, error in cases:
        attrs, _ = await stare(emu, value, cert)
        assert attrs == {"errors": [error]}, value
    r = await emu.client.get(f"{EF}/stareMesaj", headers=await emu.bearer())
    assert r.status_code == 400 and r.json()["message"] == "Parametrul id_incarcare este obligatoriu"
    emu.state.switches.update({"stare_cap_per_index": 3})
    for _ in range(2):
        await stare(emu, index)
    assert (await stare(emu, index))[0] == {"errors": ["S-au facut deja 3 descarcari de mesaj in cursul zilei"]}


@pytest.mark.parametrize(
    ("params", "cert", "eroare"),
    [
        ({"cif": "aaa"}, "acc", "CIF introdus= aaa nu este un numar"),
        ({"zile": "aaa"}, "acc", "Numarul de zile introdus= aaa nu este un numar intreg"),
        ({"zile": "61"}, "acc", "Numarul de zile trebuie sa fie intre 1 si 60"),
        ({"zile": "0"}, "acc", "Numarul de zile trebuie sa fie intre 1 si 60"),
        ({"filtru": "X"}, "acc", "Valorile acceptate pentru parametrul filtru sunt E, T, P sau R"),
        ({"cif": C}, "acc", f"Nu aveti drept in SPV pentru CIF={C}"),
        ({}, "nobody", "Nu exista niciun CIF pentru care sa aveti drept in SPV"),
        ({"cif": D, "zile": "15"}, "acc", "Nu exista mesaje in ultimele 15 zile"),
    ],
)
async def test_simple_list_errors(emu, params, cert, eroare):
    assert await list_msgs(emu, **{"cif": A, "zile": "5", **params, "cert": cert}) == {
        "eroare": eroare, "titlu": "Lista Mesaje"}


async def test_simple_list_shape_inventory_echo_and_400(emu):
    body = await list_msgs(emu, A, 5)
    assert list(body) == ["mesaje", "serial", "cui", "titlu"]
    assert body["titlu"] == "Lista Mesaje disponibile din ultimele 5 zile"
    assert body["cui"] == f"{A},{B},{D}"
    assert body["serial"] == emu.state.certs["acc"].serial.replace(":", "").upper()
    emu.state.switches.update({"list_cui_field": "echo"})
    assert (await list_msgs(emu, A, 5))["cui"] == A
    r = await emu.client.get(f"{EF}/listaMesajeFactura", params={"cif": A}, headers=await emu.bearer())
    assert r.status_code == 400 and r.json()["message"] == "Parametrii zile si cif sunt obligatorii"


async def test_simple_list_500_cap_and_paged_walk(emu):
    await emu.client.post("/__admin/invoices/generate", json={"cuis": [D], "per_company_per_day": 12, "days": 50,
                                                              "external_partners": 3})
    body = await list_msgs(emu, D, 60)
    assert body == {"eroare": "Lista de mesaje este mai mare decat numarul de 500 elemente permise in pagina. "
                              "Folositi endpoint-ul cu paginatie.", "titlu": "Lista Mesaje"}
    now_ms = int(emu.state.clock.timestamp() * 1000)
    start, end = now_ms - 59 * 86400_000, now_ms - 1000
    params = {"startTime": start, "endTime": end, "cif": D, "pagina": 1}
    h = await emu.bearer()
    page1 = (await emu.client.get(f"{EF}/listaMesajePaginatieFactura", params=params, headers=h)).json()
    total = page1["numar_total_inregistrari"]
    assert total > 500 and page1["numar_total_pagini"] == (total + 499) // 500
    assert page1["numar_inregistrari_in_pagina"] == 500 and page1["numar_total_inregistrari_per_pagina"] == 500
    assert page1["index_pagina_curenta"] == 1
    assert list(page1)[1:] == ["numar_inregistrari_in_pagina", "numar_total_inregistrari_per_pagina",
                               "numar_total_inregistrari", "numar_total_pagini", "index_pagina_curenta", "serial",
                               "cui", "titlu"]
    assert re.fullmatch(r"Lista Mesaje disponibile din intervalul \d\d-\d\d-\d{4} \d\d:\d\d:\d\d - "
                        r"\d\d-\d\d-\d{4} \d\d:\d\d:\d\d", page1["titlu"])
    ids = {m["id"] for m in page1["mesaje"]}
    for p in range(2, page1["numar_total_pagini"] + 1):
        page = (await emu.client.get(f"{EF}/listaMesajePaginatieFactura", params={**params, "pagina": p},
                                     headers=h)).json()
        assert page["index_pagina_curenta"] == p
        ids |= {m["id"] for m in page["mesaje"]}
    assert len(ids) == total
    over = page1["numar_total_pagini"] + 1
    r = await emu.client.get(f"{EF}/listaMesajePaginatieFactura", params={**params, "pagina": over}, headers=h)
    assert r.json() == {"eroare": f"Pagina solicitata {over} este mai mare decat numarul toatal de pagini "
                                  f"{page1['numar_total_pagini']}", "titlu": "Lista Mesaje"}


async def test_paged_list_validation(emu):
    from anaf_emulator.clock import fmt_dmy

    now = emu.state.clock.now()
    now_ms = int(now.timestamp() * 1000)
    h = await emu.bearer()
    base = {"startTime": now_ms - 86400_000, "endTime": now_ms - 1000, "cif": A, "pagina": 1}
    from datetime import datetime

    from anaf_emulator.clock import RO_TZ

    def dmy(ms: int) -> str:
        return fmt_dmy(datetime.fromtimestamp(ms / 1000, RO_TZ))

    old = now_ms - 61 * 86400_000
    future = now_ms + 5000
    cases = [
        ({"startTime": "aaa"}, "startTime = aaa nu este un numar sau nu are o valoare acceptata de sistem"),
        ({"endTime": "x1"}, "endTime = x1 nu este un numar sau nu are o valoare acceptata de sistem"),
        ({"cif": "aaa"}, "CIF introdus= aaa nu este un numar sau nu are o valoare acceptata de sistem"),
        ({"pagina": "p"}, "pagina = p nu este un numar sau nu are o valoare acceptata de sistem"),
        ({"startTime": old}, f"startTime = {dmy(old)} nu poate fi mai vechi de 60 de zile fata de momentul requestului"),
        ({"endTime": future}, (f"endTime = {dmy(future)} nu poate in viitor fata de momentul requestului = "
                              f"{fmt_dmy(now)}")),
        ({"endTime": now_ms - 2 * 86400_000},
         f"endTime = {dmy(now_ms - 2 * 86400_000)} nu poate fi <= startTime = {dmy(now_ms - 86400_000)}"),
        ({"cif": D}, "Nu exista mesaje in intervalul selectat"),
        ({"filtru": "Q"}, "Valorile acceptate pentru parametrul filtru sunt E, T, P sau R"),
        ({"cif": C}, f"Nu aveti drept in SPV pentru CIF={C}"),
    ]
    for change, eroare in cases:
        r = await emu.client.get(f"{EF}/listaMesajePaginatieFactura", params={**base, **change}, headers=h)
        assert r.json() == {"eroare": eroare, "titlu": "Lista Mesaje"}, change
    r = await emu.client.get(f"{EF}/listaMesajePaginatieFactura", params={"cif": A}, headers=h)
    assert r.status_code == 400
    assert r.json()["message"] == "Parametrii startTime, endTime, cif si pagina sunt obligatorii"


async def _download_members(emu, msg):
    r = await emu.client.get(f"{EF}/descarcare", params={"id": msg["id"]}, headers=await emu.bearer())
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip" and r.content[:2] == b"PK"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    index = msg["id_solicitare"]
    assert sorted(zf.namelist()) == sorted([f"{index}.xml", f"semnatura_{index}.xml"])
    return zf.read(f"{index}.xml"), zf.read(f"semnatura_{index}.xml")


async def test_download_zip_signature_and_signature_endpoint(emu):
    body = await list_msgs(emu, A, 60)
    msg = body["mesaje"][0]
    content, signature = await _download_members(emu, msg)
    # production shape (default): a lone detached Signature over the raw member bytes, RSA-SHA1, c14n 1.0
    sig_root = etree.fromstring(signature)
    assert sig_root.tag == "{http://www.w3.org/2000/09/xmldsig#}Signature" and sig_root.prefix is None
    assert b"xmldsig#rsa-sha1" in signature and b"REC-xml-c14n-20010315" in signature
    assert b"<Transforms" not in signature and b"X509Certificate" in signature and b"X509SubjectName" in signature
    digest = sig_root.findtext(".//{http://www.w3.org/2000/09/xmldsig#}DigestValue")
    assert base64.b64decode(digest) == hashlib.sha256(content).digest()
    assert verify_signature(content, signature)
    assert not verify_signature(content + b" ", signature)
    # test-environment shape behind the switch: the document with an enveloped Signature, pretty-printed after
    r = await emu.client.post("/__admin/switches", json={"signature_shape": "test"})
    assert r.status_code == 200 and r.json()["signature_shape"] == "test"
    content2, enveloped = await _download_members(emu, msg)
    assert content2 == content
    last = etree.fromstring(enveloped)[-1]
    assert last.tag == "{http://www.w3.org/2000/09/xmldsig#}Signature" and last.prefix is None
    assert b"rsa-sha256" in enveloped and b"xml-exc-c14n" in enveloped and b"enveloped-signature" in enveloped
    assert b"<SignedInfo>\n" in enveloped  # whitespace added between elements after signing
    assert verify_signature(content, enveloped)
    assert not verify_signature(content.replace(b"H87", b"C62", 1), enveloped)
    assert (await emu.client.post("/__admin/switches", json={"signature_shape": "other"})).status_code == 400
    await emu.client.post("/__admin/switches", json={"signature_shape": "production"})
    files = {"file": ("f.xml", content), "signature": ("s.xml", signature)}
    r = await emu.client.post("/api/validate/signature", files=files)
    assert r.status_code == 200 and "au fost validate cu succes" in r.json()["msg"]
    files = {"file": ("f.xml", content.replace(b"H87", b"C62", 1)), "signature": ("s.xml", signature)}
    r = await emu.client.post("/api/validate/signature", files=files)
    assert "NU au putut fi validate cu succes" in r.json()["msg"]
    r = await emu.client.post("/api/validate/signature", files={"file": ("f.xml", content)})
    assert r.status_code == 400 and r.json()["msg"].startswith("Eroare tehnică: request incorect. Cauza: ")


async def test_download_errors_and_daily_cap_reset_at_midnight(emu):
    h = await emu.bearer()
    msg = (await list_msgs(emu, A, 60))["mesaje"][0]

    async def dl(value, headers=h):
        return await emu.client.get(f"{EF}/descarcare", params={"id": value}, headers=headers)

    for value, error, cert in [
        ("123a", "Id descarcare introdus= 123a nu este un numar intreg", "acc"),
        ("21", "Pentru id=21 nu exista inregistrata nici o factura", "acc"),
        (msg["id"], "Nu aveti dreptul sa descarcati acesta factura", "carrier"),
    ]:
        r = await dl(value, await emu.bearer(cert))
        assert r.json() == {"eroare": error, "titlu": "Descarcare mesaj"}
    r = await emu.client.get(f"{EF}/descarcare", headers=h)
    assert r.status_code == 400 and r.json()["message"] == "Parametrul id este obligatoriu"
    for _ in range(10):
        assert (await dl(msg["id"])).headers["content-type"] == "application/zip"
    r = await dl(msg["id"])
    assert r.json() == {"eroare": "S-au facut deja 10 descarcari de mesaj in cursul zilei", "titlu": "Descarcare mesaj"}
    counters = (await emu.client.get("/__admin/counters")).json()
    assert counters["messages"][msg["id"]]["descarcare"] == 10
    # the cap resets at local midnight Europe/Bucharest on the emulator clock
    now = emu.state.clock.now()
    midnight = now.replace(hour=23, minute=59, second=59)
    await emu.client.post("/__admin/clock", json={"now": midnight.isoformat()})
    assert "eroare" in (await dl(msg["id"])).headers.get("content-type", "") or (await dl(msg["id"])).json()["eroare"]
    await emu.client.post("/__admin/clock", json={"advance_seconds": 2})
    h = await emu.bearer()
    assert (await dl(msg["id"], h)).headers["content-type"] == "application/zip"


async def test_retention_band_listed_but_not_downloadable(emu):
    r = await emu.client.post("/__admin/invoices", json={"seller": A, "buyer": B})
    mid = r.json()["messages"][0]["id"]
    emu.advance(59.5 * 86400)
    h = await emu.bearer()
    listed = [m["id"] for m in (await list_msgs(emu, A, 60))["mesaje"]]
    assert mid in listed
    r = await emu.client.get(f"{EF}/descarcare", params={"id": mid}, headers=h)
    assert r.json() == {"eroare": "Fisierul nu mai poate fi descarcat pentru ca a trecut perioada de 60 de zile in "
                                  "care este disponibil", "titlu": "Descarcare mesaj"}
    emu.advance(0.6 * 86400)
    assert mid not in [m["id"] for m in (await list_msgs(emu, A, 60)).get("mesaje", [])]


async def test_indexing_lag(emu):
    emu.state.switches.update({"indexing_lag_seconds": 600})
    index = header_attrs((await upload(emu, invoice())).text)["index_incarcare"]
    emu.advance(2)
    assert (await stare(emu, index))[0]["stare"] == "ok"
    assert index not in [m["id_solicitare"] for m in (await list_msgs(emu, A, 1)).get("mesaje", [])]
    emu.advance(600)
    assert index in [m["id_solicitare"] for m in (await list_msgs(emu, A, 1))["mesaje"]]


async def test_list_daily_caps_per_cui(emu):
    emu.state.switches.update({"list_cap_per_cui": 2})
    await list_msgs(emu, A, 5)
    await list_msgs(emu, A, 5, cert="acc")
    body = await list_msgs(emu, A, 5)
    assert body == {"eroare": "S-au facut deja 2 interogari de lista mesaje de catre utilizator in cursul zilei",
                    "titlu": "Lista Mesaje"}
    assert "mesaje" in await list_msgs(emu, B, 5) or "eroare" in await list_msgs(emu, B, 5)


async def test_rate_limit_1000_per_minute_per_token(emu):
    emu.state.switches.update({"rate_limit_per_minute": 5})
    h = await emu.bearer()
    for _ in range(5):
        r = await emu.client.get(f"{EF}/listaMesajeFactura", params={"zile": 1, "cif": A}, headers=h)
        assert r.status_code == 200
    r = await emu.client.get(f"{EF}/listaMesajeFactura", params={"zile": 1, "cif": A}, headers=h)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    other = await emu.bearer()
    other = await emu.bearer() if other == h else other
    emu.advance(60)
    r = await emu.client.get(f"{EF}/listaMesajeFactura", params={"zile": 1, "cif": A}, headers=h)
    assert r.status_code == 200


async def test_validare_and_transformare_prod_only(emu):
    ok = invoice()
    r = await emu.client.post(f"{EF}/validare/FACT1", content=ok, headers={"Content-Type": "text/plain"})
    assert r.json()["stare"] == "ok" and re.fullmatch(r"[0-9a-f-]{36}", r.json()["trace_id"])
    bad = ok.replace(b"RO-B<", b"B<")
    r = await emu.client.post(f"{EF}/validare/FACT1", content=bad, headers=await emu.bearer())
    assert r.json()["stare"] == "nok" and "Cumparatorului (BT-54)" in r.json()["Messages"][0]["message"]
    r = await emu.client.post(f"{EF}/validare/XYZ", content=ok)
    assert r.json()["Messages"] == [{"message": "Valorile acceptate pentru parametrul standard sunt FACT1 si FCN"}]
    r = await emu.client.post(f"{EF}/validare/FACT1", content=b"<" * (5 * 1024 * 1024 + 1))
    assert r.json()["Messages"] == [{"message": "Marime fisier transmis mai mare de 5 MB."}]
    r = await emu.client.post("/test/FCTEL/rest/validare/FACT1", content=ok)
    assert r.status_code == 404 and r.json()["path"] == "/test/FCTEL/rest/validare/FACT1"
    r = await emu.client.post(f"{EF}/validare", content=ok)
    assert r.status_code == 404 and r.json()["path"] == "/FCTEL/rest/validare/"
    r = await emu.client.post(f"{EF}/transformare/FACT1", content=ok)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content[:5] == b"%PDF-"
    r = await emu.client.post(f"{EF}/transformare/FACT1", content=bad)
    assert r.json()["stare"] == "nok"
    r = await emu.client.post(f"{EF}/transformare/FACT1/DA", content=bad)
    assert r.content[:5] == b"%PDF-"
    r = await emu.client.post("/test/FCTEL/rest/transformare/FACT1", content=ok)
    assert r.status_code == 404


async def test_test_env_serves_same_paths(emu):
    r = await emu.client.get("/test/FCTEL/rest/listaMesajeFactura", params={"zile": 60, "cif": A},
                             headers=await emu.bearer())
    assert "mesaje" in r.json()
    r = await emu.client.get("/dev/FCTEL/rest/listaMesajeFactura", params={"zile": 60, "cif": A})
    assert r.status_code == 404 and r.json()["error"] == "Not Found"


async def test_uploadb2c_and_cii(emu):
    r = await upload(emu, invoice(), path="uploadb2c")
    index = header_attrs(r.text)["index_incarcare"]
    emu.advance(2)
    assert (await stare(emu, index))[0]["stare"] == "ok"
    assert all(m["id_solicitare"] != index for m in (await list_msgs(emu, B)).get("mesaje", []))
    cii = (b'<?xml version="1.0"?>\n<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
           b'CrossIndustryInvoice:100"/>')
    r = await upload(emu, cii, standard="CII")
    assert header_attrs(r.text)["ExecutionStatus"] == "0"
    r = await upload(emu, cii, standard="UBL")
    assert header_attrs(r.text)["errors"][0].endswith(
        "cvc-elt.1.a: Cannot find the declaration of element 'rsm:CrossIndustryInvoice'. ")


async def test_toml_scenario(tmp_path):
    import httpx

    from anaf_emulator import create_app

    path = tmp_path / "s.toml"
    path.write_text(
        'seed = 3\n[clock]\nstart = "2026-05-01T09:00:00+03:00"\n'
        '[[applications]]\nname = "t"\nclient_id = "' + "a" * 48 + '"\nclient_secret = "' + "b" * 64 + '"\n'
        'redirect_uris = ["https://x.example/cb"]\nservices = ["E-Factura"]\n'
        '[[certificates]]\nid = "c"\nname = "X"\nserial = "01:02"\nrights = ["1000017"]\n'
        '[[companies]]\ncui = "1000017"\nname = "ALFA SRL"\n'
    )
    app = create_app(str(path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
        assert (await client.get("/__admin/clock")).json()["now"].startswith("2026-05-01T09:00")
        tok = (await client.post("/__admin/tokens", json={"certificate": "c"})).json()["access_token"]
        r = await client.get(f"{EF}/listaMesajeFactura", params={"zile": 1, "cif": "1000017"},
                             headers={"Authorization": f"Bearer {tok}"})
        assert r.json() == {"eroare": "Nu exista mesaje in ultimele 1 zile", "titlu": "Lista Mesaje"}
    bad = tmp_path / "bad.json"
    bad.write_text('{"companies": [{"cui": "1000018", "name": "X"}]}')
    with pytest.raises(ValueError, match="control digit"):
        create_app(str(bad))


def test_demo_scenario_content():
    from anaf_emulator import create_app
    from anaf_emulator.cif import is_valid_cif, is_valid_cnp

    state = create_app("demo.json").state.emulator
    firm = state.certs["contabil"]
    assert state.companies[firm.rights[0]].name == "CONTABIL EXPERT SRL" and len(firm.rights) == 9
    # companies by CIF; a natural person by their CNP (the certificate persoana-fizica)
    assert all(is_valid_cif(c) or is_valid_cnp(c) for c in state.companies)
    assert [c for c in state.companies if is_valid_cnp(c)] == [state.certs["persoana-fizica"].cnp]
    tips = {m.tip for m in state.messages.values()}
    assert tips == {"FACTURA TRIMISA", "FACTURA PRIMITA", "ERORI FACTURA",
                    "MESAJ CUMPARATOR PRIMIT / MESAJ CUMPARATOR TRANSMIS"}
    standards = {u.standard for u in state.uploads.values()}
    assert standards == {"UBL", "CN", "RASP"}
    assert any(u.autofactura for u in state.uploads.values())
    currencies = {u.spec.currency for u in state.uploads.values() if u.spec}
    assert currencies == {"RON", "EUR"}
    carrier = state.certs["transportator"].rights[0]
    assert any(n.tr_cod == carrier for n in state.notifications.values())
    # deterministic: a second build gives the same ids and contents
    again = create_app("demo.json").state.emulator
    first = next(iter(state.uploads.values()))
    assert again.uploads[first.index].content() == first.content()


async def test_concurrent_uploads_get_unique_increasing_indices(emu):
    import asyncio

    h = await emu.bearer()
    responses = await asyncio.gather(*(upload(emu, invoice(), headers=h) for _ in range(40)))
    indices = [int(header_attrs(r.text)["index_incarcare"]) for r in responses]
    assert len(set(indices)) == 40
    emu.advance(2)
    sent = [m for m in (await list_msgs(emu, A, 1))["mesaje"] if int(m["id_solicitare"]) in indices]
    assert len(sent) == 40


async def test_admin_seeds_a_document_exactly_as_given_even_one_no_database_holds(emu):
    """ANAF has accepted documents with values such as `1E+30`; the emulator serves them byte for byte."""
    xml = re.sub(rb"(<cbc:PayableAmount[^>]*>)[^<]+", rb"\g<1>1E+30", invoice(), count=1)
    r = await emu.client.post("/__admin/invoices", json={"seller": A, "buyer": B, "xml": xml.decode()})
    assert r.status_code == 200, r.text
    mid = next(m["id"] for m in r.json()["messages"] if m["cif"] == A)
    index = r.json()["index_incarcare"]
    content, signature = await _download_members(emu, {"id": mid, "id_solicitare": index})
    assert content == xml and b"1E+30" in content and verify_signature(content, signature)
