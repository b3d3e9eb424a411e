"""RO e-Transport (`/{prod,test}/ETRANSPORT/ws/v1`): upload v1/v2, stareMesaj, lista, the carrier's info."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from lxml import etree
from starlette.responses import Response

from .clock import RO_TZ, fmt_minute, fmt_second
from .efactura import sax_error
from .oauth import Principal, authenticate, st
from .responses import json_response, spring_400, spring_404
from .state import DAY, EmulatorState, EtUpload, Notification, make_uit

router = APIRouter()

NS_V2 = "mfp:anaf:dgti:eTransport:declaratie:v2"
NS_V1 = "mfp:anaf:dgti:eTransport:declaratie:v1"
ATENTIE = (
    "Verificati starea XML-ului transmis. Codul UIT este valabil din momentul in care apare ca valid dupa "
    "apelul de stare"
)
NO_RIGHTS = "Nu exista niciun CIF petru care sa aveti drept in SPV"
UIT_NOT_FOUND = "Nu a fost identificat UIT-ul printre notificarile valide anterioare."


def _base(state: EmulatorState) -> dict[str, Any]:
    return {"dateResponse": fmt_minute(state.clock.now())}


def _errors(state: EmulatorState, messages: list[str]) -> Response:
    body = _base(state)
    body.update({"ExecutionStatus": 1, "Errors": [{"errorMessage": m} for m in messages],
                 "trace_id": str(uuid.uuid4())})
    return json_response(body)


def _rights(principal: Principal, cif: str) -> str | None:
    if not principal.rights:
        return NO_RIGHTS
    if cif not in principal.rights:
        return f"Nu aveti drept in SPV pentru CIF={cif}"
    return None


# -- upload ----------------------------------------------------------------------------------------


@router.post("/{env}/ETRANSPORT/ws/v1/upload/{standard}/{cif}")
async def upload_v1(env: str, standard: str, cif: str, request: Request) -> Response:
    return await _upload(env, standard, cif, None, request)


@router.post("/{env}/ETRANSPORT/ws/v1/upload/{standard}/{cif}/{versiune}")
async def upload_versioned(env: str, standard: str, cif: str, versiune: str, request: Request) -> Response:
    return await _upload(env, standard, cif, versiune, request)


async def _upload(env: str, standard: str, cif: str, versiune: str | None, request: Request) -> Response:
    state = st(request)
    if env not in ("prod", "test") or versiune not in (None, "1", "2"):
        return spring_404(request.url.path, state.clock.now())
    principal = authenticate(request, "etransport")
    if isinstance(principal, Response):
        return principal
    if standard != "ETRANSP":
        return _errors(state, ["Valoarea acceptata pentru parametrul standard este ETRANSP"])
    if not cif.isdigit() or len(cif) > 13:
        return _errors(state, [f"CIF introdus= {cif} nu este un numar"])
    if (err := _rights(principal, cif)) is not None:
        return _errors(state, [err])
    body = await request.body()
    if not body:
        return spring_400("Trebuie sa aveti atasat in request un fisier de tip xml", state.clock.now())
    if len(body) > 5 * 1024 * 1024:
        return _errors(state, ["Marime fisier transmis mai mare de 5 MB"])
    expected_ns = NS_V2 if versiune == "2" else NS_V1
    root, sax = sax_error(body, "ETRANSP", expected=(expected_ns, "eTransport"))
    if sax is not None:
        return _errors(state, [sax])
    with state.lock:
        up = _process(state, cif, root)
    out = _base(state)
    out.update({"ExecutionStatus": 0, "index_incarcare": up.index, "UIT": up.uit or "",
                "trace_id": str(uuid.uuid4()), "ref_declarant": up.ref_decl})
    if versiune == "2":
        out["atentie"] = ATENTIE
    return json_response(out)


def _child(root: Any, name: str) -> Any:
    for el in root:
        if isinstance(el.tag, str) and etree.QName(el).localname == name:
            return el
    return None


def _children(root: Any, name: str) -> list[Any]:
    return [el for el in root if isinstance(el.tag, str) and etree.QName(el).localname == name]


def _location(el: Any) -> dict[str, str]:
    if el is None:
        return {}
    if el.get("codPtf"):
        return {"tip_loc": "PTF", "adresa_completa": f"PTF cod {el.get('codPtf')}"}
    if el.get("codBirouVamal"):
        return {"tip_loc": "BV", "adresa_completa": f"Birou vamal {el.get('codBirouVamal')}"}
    loc = _child(el, "locatie")
    if loc is None:
        return {}
    parts = [loc.get("denumireStrada", ""), loc.get("numar", ""), loc.get("denumireLocalitate", "")]
    return {"tip_loc": "ADR", "adresa_completa": ", ".join(p for p in parts if p),
            "judet": loc.get("codJudet", ""), "localitate": loc.get("denumireLocalitate", ""),
            "strada": loc.get("denumireStrada", ""), "numar": loc.get("numar", ""),
            "alte_info": loc.get("alteInfo", "-") or "-"}


def _process(state: EmulatorState, cif: str, root: Any) -> EtUpload:
    """Apply a declaration at once; it becomes visible after the processing delay."""
    now = state.clock.timestamp()
    done = now + state.switches.processing_delay_seconds
    ref = root.get("refDeclarant", "") or ""
    index = state.new_et_index()
    rng = random.Random(f"{state.scenario.seed}:uit:{index}")
    notif_el = _child(root, "notificare")
    if notif_el is not None:
        corr = _child(notif_el, "corectie")
        target = state.by_uit.get(corr.get("uit", "")) if corr is not None else None
        if corr is not None and (target is None or target.deleted or target.cod_decl != cif):
            return state.add_et_upload(EtUpload(index, cif, "COR", now, done, False, [UIT_NOT_FOUND],
                                                uit=corr.get("uit"), ref_decl=ref))
        dt = _child(notif_el, "dateTransport")
        partner = _child(notif_el, "partenerComercial")
        goods = _children(notif_el, "bunuriTransportate")
        docs = _children(notif_el, "documenteTransport")
        try:
            data_transp = date.fromisoformat((dt.get("dataTransport") if dt is not None else "")[:10])
        except ValueError:
            data_transp = state.clock.today()
        if (data_transp - datetime.fromtimestamp(now, RO_TZ).date()).days > 3:
            return state.add_et_upload(EtUpload(index, cif, "NOT", now, done, False, [
                "Data transportului nu poate fi mai mare cu mai mult de 3 zile fata de data declararii."
            ], ref_decl=ref))
        fields: dict[str, Any] = {
            "tip_op": notif_el.get("codTipOperatiune", "30"),
            "data_transp": data_transp,
            "tr_tara": dt.get("codTaraOrgTransport", "RO") if dt is not None else "RO",
            "tr_cod": (dt.get("codOrgTransport") or "") if dt is not None else "",
            "tr_den": dt.get("denumireOrgTransport", "") if dt is not None else "",
            "nr_veh": dt.get("nrVehicul", "") if dt is not None else "",
            "nr_rem1": dt.get("nrRemorca1", "") if dt is not None else "",
            "nr_rem2": dt.get("nrRemorca2", "") if dt is not None else "",
            "pc_tara": partner.get("codTara", "") if partner is not None else "",
            "pc_cod": partner.get("cod", "") if partner is not None else "",
            "pc_den": partner.get("denumire", "") if partner is not None else "",
            "loc_start": _location(_child(notif_el, "locStartTraseuRutier")),
            "loc_final": _location(_child(notif_el, "locFinalTraseuRutier")),
            "documente": "; ".join(f"{d.get('numarDocument', '')} / {d.get('dataDocument', '')}" for d in docs),
            "nr_linii": len(goods),
            "gr_tot_neta": str(sum(float(g.get("greutateNeta", 0) or 0) for g in goods)),
            "gr_tot_bruta": str(sum(float(g.get("greutateBruta", 0) or 0) for g in goods)),
            "val_tot": str(sum(float(g.get("valoareLeiFaraTva", 0) or 0) for g in goods)),
            "ref_decl": ref,
        }
        if target is not None:
            for key, value in fields.items():
                setattr(target, key, value)
            target.modified_at = now
            return state.add_et_upload(EtUpload(index, cif, "COR", now, done, True, uit=target.uit,
                                                notification_id=target.id, ref_decl=ref))
        state.next_notification_id += 1
        notif = Notification(id=state.next_notification_id, uit=make_uit(rng), index=index, cod_decl=cif,
                             den_decl=state.company_name(cif), created_at=now, modified_at=now,
                             processed_at=done, **fields)
        state.add_notification(notif)
        return state.add_et_upload(EtUpload(index, cif, "NOT", now, done, True, uit=notif.uit,
                                            notification_id=notif.id, ref_decl=ref))
    for kind, name in (("DEL", "stergere"), ("CON", "confirmare"), ("MVH", "modifVehicul")):
        el = _child(root, name)
        if el is None:
            continue
        uit = el.get("uit", "")
        target = state.by_uit.get(uit)
        allowed = target is not None and not target.deleted and target.processed_at <= now
        if allowed and kind == "DEL":
            allowed = target.cod_decl == cif
        if allowed and kind == "MVH":
            allowed = cif in (target.cod_decl, target.tr_cod) and state.clock.today() < target.expiry()
        if not allowed:
            return state.add_et_upload(EtUpload(index, cif, kind, now, done, False, [UIT_NOT_FOUND], uit=uit,
                                                ref_decl=ref))
        assert target is not None
        decl_time = datetime.fromtimestamp(now, RO_TZ)
        if kind == "DEL":
            target.deleted = True
        elif kind == "CON":
            target.confirmare = {"tip_conf": el.get("tipConfirmare", "10"), "obs": el.get("observatii", ""),
                                 "post_avarie": "N", "sursa": "A", "data_decl": fmt_second(decl_time),
                                 "id_incarcare": str(index)}
        else:
            change = {"data_modif_veh": el.get("dataModificare", decl_time.isoformat(timespec="seconds")),
                      "nr_veh": el.get("nrVehicul", ""), "nr_rem1": el.get("nrRemorca1", ""),
                      "nr_rem2": el.get("nrRemorca2", ""), "obs": el.get("observatii", ""), "cod_decl": cif,
                      "ref_decl": ref, "post_avarie": "N", "sursa": "A", "data_decl": fmt_second(decl_time),
                      "id_incarcare": str(index)}
            target.modif_veh.append(change)
            target.nr_veh = change["nr_veh"] or target.nr_veh
            target.nr_rem1 = change["nr_rem1"]
            target.nr_rem2 = change["nr_rem2"]
        target.modified_at = now
        return state.add_et_upload(EtUpload(index, cif, kind, now, done, True, uit=uit, notification_id=target.id,
                                            ref_decl=ref, detail={"element": name}))
    return state.add_et_upload(EtUpload(index, cif, "NOT", now, done, False, ["Declaratie fara continut."],
                                        ref_decl=ref))


# -- stareMesaj ------------------------------------------------------------------------------------


@router.get("/{env}/ETRANSPORT/ws/v1/stareMesaj/{id_incarcare}")
async def stare(env: str, id_incarcare: str, request: Request) -> Response:
    state = st(request)
    if env not in ("prod", "test"):
        return spring_404(request.url.path, state.clock.now())
    principal = authenticate(request, "etransport")
    if isinstance(principal, Response):
        return principal
    if not id_incarcare.isdigit():
        return _errors(state, [f"Id_incarcare introdus= {id_incarcare} nu este un numar intreg"])
    if not principal.rights:
        return _errors(state, ["Nu exista niciun CIF petru care sa aveti drept"])
    up = state.et_uploads.get(int(id_incarcare))
    if up is None:
        return _errors(state, [f"Nu exista declaratia de transport cu id_incarcare= {id_incarcare}"])
    if up.cif not in principal.rights:
        return _errors(state, [f"Nu aveti dreptul de inteorgare pentru id_incarcare= {id_incarcare}"])
    if not state.daily.take("et_stare", id_incarcare, state.switches.stare_cap_per_index):
        return _errors(state, [
            (f"S-au facut deja {state.switches.stare_cap_per_index} de verificari, pentru id-incarcare solicitat, "
            "in cursul zilei")
        ])
    state.counters.uploads[id_incarcare]["stareMesaj"] += 1
    out: dict[str, Any] = {}
    if state.clock.timestamp() < up.processed_at:
        out = {"stare": "in prelucrare", **_base(state), "ExecutionStatus": 0}
    elif up.ok:
        out = {"stare": "ok", **_base(state), "ExecutionStatus": 0}
    else:
        out = {"stare": "nok", **_base(state), "ExecutionStatus": 1,
               "Errors": [{"errorMessage": "UIT-ul nu poate fi identificat."} if e == UIT_NOT_FOUND
                          else {"errorMessage": e} for e in up.errors]}
    out["trace_id"] = str(uuid.uuid4())
    return json_response(out)


# -- lista -----------------------------------------------------------------------------------------


def _d14(day: date) -> str:
    return day.strftime("%Y%m%d") + "000000"


def notification_item(state: EmulatorState, n: Notification) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tip": "NOT", "stare": "OK", "uit": n.uit, "cod_decl": n.cod_decl, "ref_decl": n.ref_decl,
        "post_avarie": n.post_avarie, "sursa": "A", "id_incarcare": str(n.index).zfill(10),
        "data_creare": fmt_second(datetime.fromtimestamp(n.created_at, RO_TZ)),
        "data_modif": fmt_second(datetime.fromtimestamp(n.modified_at, RO_TZ)),
        "tip_op": n.tip_op, "data_transp": _d14(n.data_transp),
        "pc_tara": n.pc_tara, "pc_cod": n.pc_cod, "pc_den": n.pc_den,
        "tr_tara": n.tr_tara, "tr_cod": n.tr_cod, "tr_den": n.tr_den,
        "nr_veh": n.nr_veh, "nr_rem1": n.nr_rem1, "nr_rem2": n.nr_rem2,
        "nr_linii": str(n.nr_linii), "gr_tot_neta": n.gr_tot_neta, "gr_tot_bruta": n.gr_tot_bruta,
        "val_tot": n.val_tot,
    }
    if n.modif_veh:
        item["modif_veh"] = list(n.modif_veh)
    if n.confirmare:
        item["confirmare"] = dict(n.confirmare)
    return item


_NUMERIC_LISTA_FIELDS = ("cod_decl", "id_incarcare", "nr_linii", "tip_op")


def _numbers(item: dict[str, Any]) -> dict[str, Any]:
    """The item with the fields e-factura-go decodes as numbers sent as numbers (anaf-api.md §11.14); a value that
    is not all digits (a foreign `cod_decl`) stays a string."""
    out = dict(item)
    for name in _NUMERIC_LISTA_FIELDS:
        value = out.get(name)
        if isinstance(value, str) and value.isdigit():
            out[name] = int(value)
    return out


@router.get("/{env}/ETRANSPORT/ws/v1/lista/{zile}/{cif}")
async def lista(env: str, zile: str, cif: str, request: Request) -> Response:
    state = st(request)
    if env not in ("prod", "test"):
        return spring_404(request.url.path, state.clock.now())
    principal = authenticate(request, "etransport")
    if isinstance(principal, Response):
        return principal
    if not zile.isdigit():
        return _errors(state, [f"Numarul de zile introdus= {zile} nu este un numar intreg"])
    n_days = int(zile)
    if not 1 <= n_days <= 60:
        return _errors(state, ["Numarul de zile trebuie sa fie intre 1 si 60"])
    if not cif.isdigit():
        return _errors(state, [f"CIF introdus= {cif} nu este un numar"])
    if (err := _rights(principal, cif)) is not None:
        return _errors(state, [err])
    cap = state.switches.et_list_cap
    if not state.daily.take("et_lista", principal.cert.id, cap):
        return _errors(state, [f"S-au facut deja {cap} interogari de lista mesaje de catre utilizator in cursul zilei"])
    state.counters.cui[cif]["etransport.lista"] += 1
    now = state.clock.timestamp()
    since = now - n_days * DAY
    items: list[tuple[int, dict[str, Any]]] = []
    seen: set[int] = set()
    for up in state.et_by_cif.get(cif, []):
        if up.uploaded_at < since or up.processed_at > now:
            continue
        if not up.ok:
            items.append((up.index, {
                "tip": up.kind, "stare": "ERR", "cod_decl": cif, "ref_decl": up.ref_decl, "sursa": "A",
                "id_incarcare": str(up.index).zfill(10),
                "data_creare": fmt_second(datetime.fromtimestamp(up.uploaded_at, RO_TZ)),
                **({"uit": up.uit} if up.uit else {}),
                "mesaje": [{"tip": "ERR", "mesaj": e} for e in up.errors],
            }))
        elif up.kind == "NOT" and up.notification_id is not None:
            seen.add(up.notification_id)
            items.append((up.index, notification_item(state, state.notifications[up.notification_id])))
        elif up.kind == "MVH" and up.notification_id is not None:
            n = state.notifications[up.notification_id]
            change = next((c for c in n.modif_veh if c["id_incarcare"] == str(up.index)), {})
            items.append((up.index, {
                "tip": "MVH", "stare": "OK", "uit": n.uit, "cod_decl": cif, "ref_decl": up.ref_decl, "sursa": "A",
                "id_incarcare": str(up.index).zfill(10),
                "data_creare": fmt_second(datetime.fromtimestamp(up.uploaded_at, RO_TZ)),
                "nr_veh": change.get("nr_veh", ""), "nr_rem1": change.get("nr_rem1", ""),
                "nr_rem2": change.get("nr_rem2", ""), "data_modif_veh": change.get("data_modif_veh", ""),
            }))
    if state.switches.et_lista_includes_carrier:
        for n in state.notifications.values():
            if n.tr_cod == cif and n.id not in seen and since <= n.created_at and n.processed_at <= now:
                items.append((n.index, notification_item(state, n)))
    if not items:
        return _errors(state, [f"Nu exista mesaje in ultimele {n_days} zile"])
    items.sort(key=lambda pair: (pair[0] * 7919) % 1_000_003)  # ANAF does not sort this list
    mesaje = [item for _, item in items]
    if state.switches.et_lista_numbers:
        mesaje = [_numbers(item) for item in mesaje]
    body = {"mesaje": mesaje, "serial": principal.serial_plain, "cui": cif,
            "titlu": f"Lista Mesaje disponibile din ultimele {n_days} zile", **_base(state),
            "ExecutionStatus": 0, "trace_id": str(uuid.uuid4())}
    return json_response(body)


# -- info (carrier view) ---------------------------------------------------------------------------


def _info_error(state: EmulatorState, text: str) -> Response:
    return json_response({"trace_id": str(uuid.uuid4()), "dateResponse": fmt_minute(state.clock.now()), "error": text})


def info_item(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id, "uit": n.uit, "cod_decl": int(n.cod_decl) if n.cod_decl.isdigit() else n.cod_decl,
        "den_decl": n.den_decl, "data_transp": f"{n.data_transp.isoformat()}T00:00:00",
        "data_exp_uit": f"{n.expiry().isoformat()}T00:00:00", "ref_decl": n.ref_decl,
        "tr_cod": n.tr_cod, "tr_den": n.tr_den, "nr_veh": n.nr_veh, "nr_rem1": n.nr_rem1, "nr_rem2": n.nr_rem2,
        "modif_veh": [{k: c[k] for k in ("data_modif_veh", "nr_veh", "nr_rem1", "nr_rem2", "obs", "cod_decl",
                                         "ref_decl", "data_decl")} for c in n.modif_veh],
        "loc_start": n.loc_start, "loc_final": n.loc_final, "documente": n.documente,
    }


@router.get("/{env}/ETRANSPORT/ws/v1/info")
async def info(env: str, request: Request) -> Response:
    state = st(request)
    if env not in ("prod", "test"):
        return spring_404(request.url.path, state.clock.now())
    principal = authenticate(request, "etransport")
    if isinstance(principal, Response):
        return principal
    q = request.query_params
    cui_op = q.get("cui_op")
    if cui_op is None:
        return spring_400("Parametrul cui_op este obligatoriu", state.clock.now())
    if not cui_op.isdigit():
        return _info_error(state, f"cui_op introdus= {cui_op} nu este un numar")
    cui_decl = q.get("cui_decl")
    if cui_decl is not None and not cui_decl.isdigit():
        return _info_error(state, f"cui_decl introdus= {cui_decl} nu este un numar")
    if not principal.rights:
        return _info_error(state, NO_RIGHTS)
    if cui_op not in principal.rights:
        return _info_error(state, f"Nu aveti drept in SPV pentru CIF={cui_op}")
    state.counters.cui[cui_op]["etransport.info"] += 1
    now = state.clock.timestamp()
    today = state.clock.today()
    uit, ref = q.get("uit"), q.get("ref_decl")
    out = [
        info_item(n)
        for n in state.notifications.values()
        if n.tr_cod == cui_op and not n.deleted and n.processed_at <= now and today < n.expiry()
        and (cui_decl is None or n.cod_decl == cui_decl) and (uit is None or n.uit == uit)
        and (ref is None or n.ref_decl == ref)
    ]
    if not out:
        return _info_error(state, "Nu exista informatii pentru aceasta solicitare")
    return json_response(out)
