"""SPV mailbox web service (webserviced.anaf.ro/SPVWS2/rest) behind an emulated F5 APM cookie session."""

from __future__ import annotations

import io
import secrets
from datetime import datetime

from fastapi import APIRouter, Request
from reportlab.pdfgen import canvas
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .clock import RO_TZ, fmt_spv
from .oauth import _LOGOUT_PAGE, st
from .responses import json_response
from .scenario import Certificate
from .state import DAY, EmulatorState

router = APIRouter()
SESSION_COOKIE = "MRHSession"


def _sessions(state: EmulatorState) -> dict[str, str]:
    if not hasattr(state, "spv_sessions"):
        state.spv_sessions = {}  # type: ignore[attr-defined]
    return state.spv_sessions  # type: ignore[attr-defined,no-any-return]


def _presented_certificate(state: EmulatorState, request: Request) -> Certificate | None:
    """The certificate the 'browser' presents: header X-Emulator-Certificate, ?certificate=, or auto-select."""
    chosen = (
        request.headers.get("x-emulator-certificate")
        or request.query_params.get("certificate")
        or state.switches.auto_select_certificate
    )
    if not chosen:
        return None
    cert = state.certs.get(chosen)
    if cert is None:
        cert = next((c for c in state.certs.values() if c.serial == chosen), None)
    return None if cert is None or cert.revoked else cert


def _session_cert(state: EmulatorState, request: Request) -> Certificate | None:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid and sid in _sessions(state):
        return state.certs.get(_sessions(state)[sid])
    if request.headers.get("x-emulator-certificate"):
        return _presented_certificate(state, request)
    return None


@router.get("/my.policy")
async def my_policy(request: Request) -> Response:
    state = st(request)
    cert = _presented_certificate(state, request)
    if cert is None:
        return HTMLResponse(_LOGOUT_PAGE)
    sid = secrets.token_hex(16)
    _sessions(state)[sid] = cert.id
    target = request.cookies.get("emu_return") or "/SPVWS2/rest/listaMesaje?zile=1"
    response = RedirectResponse(target, status_code=302)
    response.set_cookie(SESSION_COOKIE, sid, httponly=True)
    return response


def _login_wall(request: Request) -> Response:
    response = RedirectResponse("/my.policy", status_code=302)
    response.set_cookie("emu_return", str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
    return response


@router.get("/SPVWS2/rest/listaMesaje")
async def lista_mesaje(request: Request) -> Response:
    state = st(request)
    cert = _session_cert(state, request)
    if cert is None:
        return _login_wall(request)
    zile_raw = request.query_params.get("zile", "")
    if not zile_raw.isdigit():
        return json_response({"titlu": "Lista Mesaje", "eroare": f"Numarul de zile introdus= {zile_raw} nu este un numar intreg"})
    zile = int(zile_raw)
    cif = request.query_params.get("cif")
    now = state.clock.timestamp()
    allowed = set(cert.rights)
    if cif is not None:
        allowed &= {cif}
    msgs = sorted(
        (m for m in state.mailbox.values() if m.cif in allowed and now - zile * DAY <= m.created_at <= now),
        key=lambda m: m.created_at,
        reverse=True,
    )
    if not msgs:
        return json_response({"titlu": "Lista Mesaje", "eroare": f"Nu exista mesaje in ultimele {zile} zile"})
    return json_response({
        "titlu": f"Lista Mesaje disponibile din ultimele {zile} zile",
        "mesaje": [
            {"id": str(m.id), "detalii": m.detalii, "cif": m.cif,
             "data_creare": fmt_spv(datetime.fromtimestamp(m.created_at, RO_TZ)),
             "id_solicitare": m.id_solicitare, "tip": m.tip}
            for m in msgs
        ],
        "cnp": cert.cnp,
        "cui": ",".join(cert.rights),
        "serial": cert.serial.replace(":", "").lower(),
    })


@router.get("/SPVWS2/rest/descarcare")
async def descarcare(request: Request) -> Response:
    state = st(request)
    cert = _session_cert(state, request)
    if cert is None:
        return _login_wall(request)
    raw = request.query_params.get("id", "")
    msg = state.mailbox.get(int(raw)) if raw.isdigit() else None
    if msg is None or msg.cif not in cert.rights or msg.created_at > state.clock.timestamp():
        return json_response({"titlu": f"Descarcare mesaj {raw}", "eroare": "Nu aveti dreptul sa descarcati acest mesaj"})
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, invariant=1)
    pdf.drawString(60, 780, f"{msg.tip} - CIF {msg.cif}")
    pdf.drawString(60, 760, msg.detalii[:100])
    pdf.showPage()
    pdf.save()
    return Response(buf.getvalue(), media_type="application/pdf")


@router.get("/SPVWS2/rest/cerere")
async def cerere(request: Request) -> Response:
    state = st(request)
    cert = _session_cert(state, request)
    if cert is None:
        return _login_wall(request)
    q = request.query_params
    tip, cui = q.get("tip", ""), q.get("cui", "")
    if cui not in cert.rights:
        return json_response({"titlu": "Cerere", "eroare": f"Nu veti drept sa solictati informatii despre CIF={cui}"})
    state.next_solicitare += 1
    sid = str(state.next_solicitare)
    state.add_mailbox(cui, "RASPUNS SOLICITARE", f"raspuns la solicitarea {tip} pentru CIF {cui}",
                      state.clock.timestamp() + 60, id_solicitare=sid)
    params = "&".join(f"{k}={v}" for k, v in q.items())
    return json_response({"id_solicitare": sid, "parametri": params, "serial": cert.serial.replace(":", "").lower(),
                          "cnp": cert.cnp, "titlu": f"Cerere {tip}"})
