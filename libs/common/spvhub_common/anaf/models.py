"""Typed results of ANAF calls: tokens, e-Factura messages and pages, e-Transport records, registry entries.

Parsers accept fields ANAF sends as number or string, and keep the raw dict where shapes are open.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from spvhub_common.clock import BUCHAREST
from spvhub_common.ids import strip_ro


def as_str(value: Any) -> str | None:
    """ANAF sends some ids as numbers and some as strings: normalise to str (None stays None)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(str(value).strip())


def parse_local(value: str | None, fmt: str) -> datetime | None:
    """Parse an ANAF wall-clock timestamp (Romania time) into an aware datetime in Europe/Bucharest."""
    if not value:
        return None
    try:
        return datetime.strptime(str(value).strip(), fmt).replace(tzinfo=BUCHAREST)
    except ValueError:
        return None



# --- OAuth ---------------------------------------------------------------------------------------


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded WITHOUT verifying the signature (ANAF publishes no JWKS)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _epoch(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class TokenSet:
    """Tokens from ANAF's token endpoint; tokens are SecretStr and never appear in repr/str."""

    access_token: SecretStr
    refresh_token: SecretStr
    token_type: str
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    issued_at: datetime | None
    serial: str | None
    client_app_id: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    expires_in: int | None = None

    @classmethod
    def from_response(cls, body: dict[str, Any], previous_refresh: str | None = None) -> TokenSet:
        access = str(body.get("access_token") or "")
        refresh = str(body.get("refresh_token") or previous_refresh or "")
        claims = jwt_claims(access)
        serial = claims.get("serial")
        if serial is None:
            for item in claims.get("scope_data") or []:
                if isinstance(item, dict) and item.get("id") == "serial":
                    serial = item.get("value")
        role = str(claims.get("role") or "")
        expires_in = body.get("expires_in")
        access_exp = _epoch(claims.get("exp"))
        issued = _epoch(claims.get("iat"))
        if access_exp is None and expires_in is not None:
            access_exp = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=int(expires_in))
        return cls(
            access_token=SecretStr(access),
            refresh_token=SecretStr(refresh),
            token_type=str(body.get("token_type") or "Bearer"),
            access_expires_at=access_exp,
            refresh_expires_at=_epoch(jwt_claims(refresh).get("exp")),
            issued_at=issued,
            serial=as_str(serial),
            client_app_id=as_str(claims.get("clientappid")),
            roles=frozenset(r.strip() for r in role.split(",") if r.strip()),
            expires_in=as_int(expires_in) if expires_in is not None else None,
        )


@dataclass(frozen=True)
class AuthorizeCallback:
    """A successful authorize redirect: the code (single use, ≤ 60 s) and the echoed state."""

    code: str
    state: str | None


# --- e-Factura -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One item of `mesaje[]` from listaMesajeFactura / listaMesajePaginatieFactura."""

    id: str
    id_solicitare: str | None
    tip: str
    data_creare: datetime | None
    detalii: str
    cif: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> Message:
        return cls(
            id=as_str(item.get("id")) or "",
            id_solicitare=as_str(item.get("id_solicitare")),
            tip=str(item.get("tip") or ""),
            data_creare=parse_local(as_str(item.get("data_creare")), "%Y%m%d%H%M"),
            detalii=str(item.get("detalii") or ""),
            cif=as_str(item.get("cif")),
            raw=item,
        )


def _inventory(value: Any) -> frozenset[str] | None:
    if value is None or value == "":
        return None
    return frozenset(strip_ro(p) for p in str(value).split(",") if p.strip())


@dataclass(frozen=True)
class MessageList:
    """listaMesajeFactura result. `cui` is the comma-joined rights inventory split into a set, if sent."""

    messages: list[Message]
    serial: str | None
    cui: frozenset[str] | None
    titlu: str | None
    cui_field: str | None = field(default=None, compare=False)  # the `cui` field as sent (its order kept)

    @classmethod
    def parse(cls, body: dict[str, Any]) -> MessageList:
        return cls(
            messages=[Message.parse(m) for m in body.get("mesaje") or [] if isinstance(m, dict)],
            serial=as_str(body.get("serial")),
            cui=_inventory(body.get("cui")),
            titlu=as_str(body.get("titlu")),
            cui_field=as_str(body.get("cui")),
        )


@dataclass(frozen=True)
class MessagePage(MessageList):
    """One page of listaMesajePaginatieFactura (page size 500, `pagina` 1-based)."""

    numar_inregistrari_in_pagina: int = 0
    numar_total_inregistrari_per_pagina: int = 500
    numar_total_inregistrari: int = 0
    numar_total_pagini: int = 0
    index_pagina_curenta: int = 1

    @property
    def has_next(self) -> bool:
        return self.index_pagina_curenta < self.numar_total_pagini

    @classmethod
    def parse(cls, body: dict[str, Any]) -> MessagePage:
        base = MessageList.parse(body)
        return cls(
            messages=base.messages,
            serial=base.serial,
            cui=base.cui,
            titlu=base.titlu,
            numar_inregistrari_in_pagina=as_int(body.get("numar_inregistrari_in_pagina"), len(base.messages)),
            numar_total_inregistrari_per_pagina=as_int(body.get("numar_total_inregistrari_per_pagina"), 500),
            numar_total_inregistrari=as_int(body.get("numar_total_inregistrari")),
            numar_total_pagini=as_int(body.get("numar_total_pagini")),
            index_pagina_curenta=as_int(body.get("index_pagina_curenta"), 1),
        )

    @classmethod
    def empty(cls, page: int) -> MessagePage:
        return cls(messages=[], serial=None, cui=None, titlu=None, index_pagina_curenta=page)


@dataclass(frozen=True)
class UploadResult:
    """Accepted upload: `index_incarcare` to follow with stareMesaj."""

    index_incarcare: str
    date_response: datetime | None


STATE_OK = "ok"
STATE_NOK = "nok"
STATE_PROCESSING = "in prelucrare"
STATE_REJECTED = "XML cu erori nepreluat de sistem"


@dataclass(frozen=True)
class MessageState:
    """stareMesaj: `stare` is one of ok / nok / in prelucrare / XML cu erori nepreluat de sistem."""

    stare: str
    id_descarcare: str | None

    @property
    def final(self) -> bool:
        return self.stare != STATE_PROCESSING


@dataclass(frozen=True)
class UploadAnswer:
    """ANAF's answer to an accepted upload / uploadb2c: the index to follow with stareMesaj and the answer itself
    (`raw`, the XML `header` as received, worth archiving with the submission)."""

    index: str
    date_response: str | None
    execution_status: str | None
    attributes: dict[str, str] = field(default_factory=dict, compare=False)
    raw: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True)
class ValidationResult:
    """validare: `ok` plus ANAF's messages when `nok`."""

    ok: bool
    messages: list[str]
    trace_id: str | None


# --- e-Transport ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransportInfo:
    """One active notification from `info?cui_op=` (the carrier's view)."""

    uit: str
    cod_decl: str | None
    den_decl: str | None
    ref_decl: str | None
    data_transp: date | None
    data_exp_uit: date | None
    tr_cod: str | None
    tr_den: str | None
    nr_veh: str | None
    nr_rem1: str | None
    nr_rem2: str | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> TransportInfo:
        def d(key: str) -> date | None:
            v = parse_local(as_str(item.get(key)), "%Y-%m-%dT%H:%M:%S")
            return v.date() if v else None

        return cls(
            uit=as_str(item.get("uit")) or "",
            cod_decl=as_str(item.get("cod_decl")),
            den_decl=as_str(item.get("den_decl")),
            ref_decl=as_str(item.get("ref_decl")),
            data_transp=d("data_transp"),
            data_exp_uit=d("data_exp_uit"),
            tr_cod=as_str(item.get("tr_cod")),
            tr_den=as_str(item.get("tr_den")),
            nr_veh=as_str(item.get("nr_veh")),
            nr_rem1=as_str(item.get("nr_rem1")),
            nr_rem2=as_str(item.get("nr_rem2")),
            raw=item,
        )


@dataclass(frozen=True)
class TransportListItem:
    """One record of `lista/{zile}/{cif}`; errors carry `mesaje` with `tip` ERR."""

    uit: str | None
    cod_decl: str | None
    id_incarcare: str | None
    data_creare: datetime | None
    tip_op: str | None
    data_transp: date | None
    tr_cod: str | None
    stare: str | None
    mesaje: list[dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> TransportListItem:
        transp = parse_local(as_str(item.get("data_transp")), "%Y%m%d%H%M%S")
        return cls(
            uit=as_str(item.get("uit")),
            cod_decl=as_str(item.get("cod_decl")),
            id_incarcare=as_str(item.get("id_incarcare")),
            data_creare=parse_local(as_str(item.get("data_creare")), "%Y%m%d%H%M%S"),
            tip_op=as_str(item.get("tip_op")),
            data_transp=transp.date() if transp else None,
            tr_cod=as_str(item.get("tr_cod")),
            stare=as_str(item.get("stare")),
            mesaje=[m for m in item.get("mesaje") or [] if isinstance(m, dict)],
            raw=item,
        )


@dataclass(frozen=True)
class TransportList:
    items: list[TransportListItem]
    serial: str | None
    cui: frozenset[str] | None
    titlu: str | None


# --- public registries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryCompany:
    """One `found[]` entry of PlatitorTvaRest v9 (the fields a platform needs; `raw` keeps all)."""

    cui: str
    denumire: str
    adresa: str
    nr_reg_com: str
    telefon: str
    cod_postal: str
    stare_inregistrare: str
    scp_tva: bool
    tva_incasare: bool
    inactiv: bool
    split_tva: bool
    e_factura: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> RegistryCompany:
        g = item.get("date_generale") or {}

        def sub(section: str, key: str) -> bool:
            return bool((item.get(section) or {}).get(key) is True)

        return cls(
            cui=as_str(g.get("cui")) or "",
            denumire=str(g.get("denumire") or ""),
            adresa=str(g.get("adresa") or ""),
            nr_reg_com=str(g.get("nrRegCom") or ""),
            telefon=str(g.get("telefon") or ""),
            cod_postal=str(g.get("codPostal") or ""),
            stare_inregistrare=str(g.get("stare_inregistrare") or ""),
            scp_tva=sub("inregistrare_scop_Tva", "scpTVA"),
            tva_incasare=sub("inregistrare_RTVAI", "statusTvaIncasare"),
            inactiv=sub("stare_inactiv", "statusInactivi"),
            split_tva=sub("inregistrare_SplitTVA", "statusSplitTVA"),
            e_factura=g.get("statusRO_e_Factura") is True,
            raw=item,
        )


@dataclass(frozen=True)
class RegistryResult:
    found: list[RegistryCompany]
    not_found: list[str]


@dataclass(frozen=True)
class EfacturaRegisterEntry:
    """One `found[]` entry of the RO e-Factura register (registruroefactura)."""

    cui: str
    denumire: str
    registru: str
    categorie: str
    data_inscriere: str
    data_renuntare: str
    stare: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, item: dict[str, Any]) -> EfacturaRegisterEntry:
        return cls(
            cui=as_str(item.get("cui")) or "",
            denumire=str(item.get("denumire") or ""),
            registru=str(item.get("registru") or ""),
            categorie=str(item.get("categorie") or ""),
            data_inscriere=str(item.get("dataInscriere") or ""),
            data_renuntare=str(item.get("dataRenuntare") or ""),
            stare=str(item.get("stare") or ""),
            raw=item,
        )


@dataclass(frozen=True)
class EfacturaRegisterResult:
    found: list[EfacturaRegisterEntry]
    not_found: list[str]
