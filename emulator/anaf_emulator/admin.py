"""Admin API under /__admin (clock, switches, faults, counters, data, certificates) and /__emulator keys."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from .clock import RO_TZ, parse_instant
from .efactura import upload_summary
from .etransport import info_item
from .oauth import issue_tokens, st
from .responses import json_response
from .signing import jwks, jwt_public_pem, signing_cert_pem
from .state import EmulatorState

router = APIRouter(prefix="/__admin")
keys_router = APIRouter(prefix="/__emulator")


def _bad(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = await request.json()
    return data if isinstance(data, dict) else {}


def _clock_view(state: EmulatorState) -> dict[str, Any]:
    now = state.clock.now()
    return {"now": now.isoformat(), "epoch_ms": int(now.timestamp() * 1000), "frozen": state.clock.frozen}


@keys_router.get("/jwks.json")
async def get_jwks() -> Response:
    return json_response(jwks())


@keys_router.get("/jwt-public-key.pem")
async def get_jwt_pem() -> Response:
    return Response(jwt_public_pem(), media_type="application/x-pem-file")


@keys_router.get("/signing-cert.pem")
async def get_signing_cert() -> Response:
    return Response(signing_cert_pem(), media_type="application/x-pem-file")


@router.get("/health")
async def health() -> Response:
    return json_response({"ok": True})


@router.get("/clock")
async def get_clock(request: Request) -> Response:
    return json_response(_clock_view(st(request)))


@router.post("/clock")
async def set_clock(request: Request) -> Response:
    state = st(request)
    body = await _body(request)
    try:
        if "now" in body:
            state.clock.set(parse_instant(str(body["now"])))
        if "advance_seconds" in body:
            state.clock.advance(float(body["advance_seconds"]))
        if "advance_days" in body:
            state.clock.advance(float(body["advance_days"]) * 86400)
        if "frozen" in body:
            state.clock.freeze(bool(body["frozen"]))
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    return json_response(_clock_view(state))


@router.get("/switches")
async def get_switches(request: Request) -> Response:
    return json_response(st(request).switches.as_dict())


@router.post("/switches")
async def set_switches(request: Request) -> Response:
    state = st(request)
    try:
        state.switches.update(await _body(request))
    except ValueError as exc:
        return _bad(str(exc))
    return json_response(state.switches.as_dict())


@router.get("/faults")
async def get_faults(request: Request) -> Response:
    faults = st(request).faults
    data = faults.as_dict()
    if request.query_params.get("reset") in ("1", "true"):
        faults.reset_counts()
    return json_response(data)


@router.post("/faults")
async def set_faults(request: Request) -> Response:
    state = st(request)
    body = await _body(request)
    family = str(body.pop("family", "*"))
    try:
        state.faults.set(family, body)
    except ValueError as exc:
        return _bad(str(exc))
    return json_response(state.faults.as_dict())


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    st(request).faults.clear()
    return json_response({})


@router.get("/counters")
async def get_counters(request: Request) -> Response:
    state = st(request)
    data = state.counters.as_dict()
    if request.query_params.get("reset") in ("1", "true"):
        state.counters.reset()
    return json_response(data)


@router.delete("/counters")
async def reset_counters(request: Request) -> Response:
    st(request).counters.reset()
    return json_response({})


@router.get("/scenario")
async def scenario(request: Request) -> Response:
    state = st(request)
    return json_response({
        "applications": [
            {"name": a.name, "client_id": a.client_id, "client_secret": a.client_secret,
             "redirect_uris": a.redirect_uris, "services": sorted(a.services)}
            for a in state.apps.values()
        ],
        "certificates": [
            {"id": c.id, "name": c.name, "cnp": c.cnp, "serial": c.serial, "old_serials": c.old_serials,
             "rights": c.rights, "revoked": c.revoked, "pin": c.pin}
            for c in state.certs.values()
        ],
        "companies": [
            {"cui": c.cui, "name": c.name, "vat": c.vat, "efactura_registered": c.efactura_registered,
             "county": c.county, "nr_reg_com": c.nr_reg_com}
            for c in state.scenario.companies
        ],
    })


@router.get("/messages")
async def messages(request: Request) -> Response:
    state = st(request)
    q = request.query_params
    cif, tip, show_all = q.get("cif"), q.get("tip"), q.get("all") in ("1", "true")
    now = state.clock.timestamp()
    band = state.switches.download_band_hours * 3600
    source = state.by_cif.get(cif, []) if cif else sorted(state.messages.values(), key=lambda m: m.created_at)
    out = []
    for m in source:
        visible = m.created_at <= now and now - m.created_at <= 60 * 86400
        if not show_all and not visible:
            continue
        if tip and not m.tip.startswith(tip):
            continue
        out.append({
            "id": str(m.id), "cif": m.cif, "tip": m.tip, "id_solicitare": str(m.upload_index),
            "detalii": m.detalii, "data_creare": json.loads(m.item_json)["data_creare"],
            "created_at": datetime.fromtimestamp(m.created_at, RO_TZ).isoformat(), "visible": visible,
            "downloadable": m.created_at <= now <= m.created_at + 60 * 86400 - band,
        })
    return json_response(out)


@router.get("/uploads/{index}")
async def get_upload(index: int, request: Request) -> Response:
    state = st(request)
    up = state.uploads.get(index)
    if up is None:
        return _bad("unknown upload", 404)
    return json_response(upload_summary(state, up))


@router.post("/invoices")
async def add_invoice(request: Request) -> Response:
    state = st(request)
    body = await _body(request)
    if "seller" not in body:
        return _bad("seller is required")
    with state.lock:
        up = state.admin_invoice(body)
    return json_response({
        "index_incarcare": str(up.index),
        "messages": [{"id": str(m), "cif": state.messages[m].cif, "tip": state.messages[m].tip} for m in up.message_ids],
    })


@router.post("/invoices/generate")
async def generate_invoices(request: Request) -> Response:
    state = st(request)
    body = await _body(request)
    today = state.clock.today()
    if "from" in body:
        first = date.fromisoformat(body["from"])
        last = date.fromisoformat(body.get("to", today.isoformat()))
    else:
        first, last = today - timedelta(days=int(body.get("days", 1))), today
    cuis = [str(c) for c in body.get("cuis") or [c.cui for c in state.scenario.companies]]
    with state.lock:
        state.generate_calls += 1
        uploads, msgs = state.generate_invoices(
            cuis, first, last, float(body.get("per_company_per_day", 3)),
            rng=random.Random(f"{state.scenario.seed}:gen:{state.generate_calls}"),
            external_partners=int(body.get("external_partners", 4)),
        )
    if body.get("presign"):
        # Build (zip + sign) every generated upload now, as ANAF has its ZIPs ready before anyone downloads:
        # benchmarks then measure the client, not the emulator's signing. Outside the lock: signing is slow.
        for up in list(state.uploads.values()):
            if up.message_ids and (up.index, state.switches.signature_shape) not in state.zip_cache:
                state.zip_for(up)
    return json_response({"uploads": uploads, "messages": msgs})


@router.post("/transports")
async def add_transport(request: Request) -> Response:
    state = st(request)
    body = await _body(request)
    if "declarant" not in body:
        return _bad("declarant is required")
    with state.lock:
        n = state.admin_transport(body)
    return json_response({"uit": n.uit, "index_incarcare": n.index, "id": n.id,
                          "data_exp_uit": n.expiry().isoformat()})


@router.get("/transports")
async def list_transports(request: Request) -> Response:
    state = st(request)
    q = request.query_params
    out = []
    for n in state.notifications.values():
        if q.get("carrier") and n.tr_cod != q["carrier"]:
            continue
        if q.get("declarant") and n.cod_decl != q["declarant"]:
            continue
        out.append({**info_item(n), "tip_op": n.tip_op, "deleted": n.deleted, "confirmare": n.confirmare,
                    "active": not n.deleted and state.clock.today() < n.expiry()})
    return json_response(out)


def _cert(state: EmulatorState, cert_id: str) -> Any:
    return state.certs.get(cert_id) or next((c for c in state.certs.values() if c.serial == cert_id), None)


@router.post("/certificates/{cert_id}/renew")
async def renew(cert_id: str, request: Request) -> Response:
    state = st(request)
    cert = _cert(state, cert_id)
    if cert is None:
        return _bad("unknown certificate", 404)
    with state.lock:
        old = cert.serial
        cert.old_serials.append(old)
        rng = random.Random(f"{old}:{len(cert.old_serials)}")
        cert.serial = ":".join(f"{rng.randrange(256):02x}" for _ in range(16))
    return json_response({"id": cert.id, "old_serial": old, "serial": cert.serial})


@router.post("/certificates/{cert_id}/revoke")
async def revoke(cert_id: str, request: Request) -> Response:
    state = st(request)
    cert = _cert(state, cert_id)
    if cert is None:
        return _bad("unknown certificate", 404)
    cert.revoked = True
    return json_response({"id": cert.id, "revoked": True})


@router.post("/certificates/{cert_id}/rights")
async def rights(cert_id: str, request: Request) -> Response:
    state = st(request)
    cert = _cert(state, cert_id)
    if cert is None:
        return _bad("unknown certificate", 404)
    body = await _body(request)
    with state.lock:
        for cui in body.get("grant", []):
            if str(cui) not in cert.rights:
                cert.rights.append(str(cui))
        removed = {str(c) for c in body.get("remove", [])}
        cert.rights[:] = [c for c in cert.rights if c not in removed]
    return json_response({"id": cert.id, "rights": cert.rights})


@router.post("/tokens")
async def tokens(request: Request) -> Response:
    state = st(request)
    body = await _body(request)
    app = state.apps.get(str(body.get("client_id", ""))) or (
        next(iter(state.apps.values())) if not body.get("client_id") and state.apps else None)
    cert = _cert(state, str(body.get("certificate", "")))
    if app is None or cert is None:
        return _bad("client_id and certificate must name a scenario application and certificate")
    state.counters.oauth["admin_tokens"] += 1
    return json_response(issue_tokens(state, app, cert.serial, int(state.clock.timestamp())))


@router.post("/mailbox")
async def mailbox(request: Request) -> Response:
    state = st(request)
    body = await _body(request)
    at = parse_instant(body["at"]).timestamp() if body.get("at") else state.clock.timestamp()
    msg = state.add_mailbox(str(body["cif"]), body.get("tip", "RECIPISA"), body.get("detalii", ""), at,
                            body.get("id_solicitare"))
    return json_response({"id": str(msg.id), "cif": msg.cif, "tip": msg.tip})


@router.post("/reset")
async def reset(request: Request) -> Response:
    state = st(request)
    state.reset()
    return json_response({"ok": True, **_clock_view(state)})
