"""e-Transport carrier view: normalising ANAF records (info/lista), merging them into persistent transports,
UIT expiry and state rules. Pure: no I/O; every "now" is passed in.

Change kinds produced by the rules (each with a per-transport version, so (uit, kind, version) is unique):
assigned, vehicle_changed, confirmed, corrected, deleted, reinstated, expiring.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from spvhub_common.clock import BUCHAREST, local_date, local_midnight
from spvhub_common.ids import strip_ro

ACTIVE, EXPIRED, DELETED = "active", "expired", "deleted"
STATES = (ACTIVE, EXPIRED, DELETED)

# Operation types whose UIT is valid 15 days (AIC, LHI, SCI, LHE, SCE, DIN; anaf-api.md §3.7 and §11.12);
# everything else 5 days. ANAF's own `data_exp_uit` always wins when we have it.
LONG_VALIDITY_OPS = frozenset({"10", "12", "14", "22", "24", "60"})
CONFIRMATION_KINDS = {"10": "confirmed", "20": "partially_confirmed", "30": "rejected"}

# Fields whose change on an already known UIT means the declarant corrected the notification.
CORRECTABLE = ("declarant_ref", "operation_type", "transport_date", "partner_code", "declared_vehicle",
               "declared_trailer1", "declared_trailer2", "route_start", "route_end", "documents")
# Fields only the declarant's list carries. Once a UIT is followed through the carrier view, a change seen
# only here is recorded in the history but not announced: the list is read daily, so the same ANAF correction
# would otherwise be announced twice (once from info, once from lista a day later).
LISTA_ONLY = ("partner_code", "operation_type")
# Descriptive fields refreshed silently (names are formatted differently by the two endpoints).
DESCRIPTIVE = ("carrier_name", "carrier_country", "declarant_name", "partner_country", "partner_name",
               "anaf_id", "goods", "route_start_text", "route_end_text")


# --------------------------------------------------------------------------------------------------
# Lenient parsing: ANAF sends some fields as a number or a string (cod_decl, id_incarcare, ...).

def as_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def as_cif(v: Any) -> str | None:
    """A fiscal code as ANAF writes it, read without refusing: a Romanian one as digits (an `RO` prefix and leading
    zeros dropped); non-numeric codes (`PF`, foreign) are kept upper-case, as they are."""
    s = as_str(v)
    if s is None:
        return None
    digits = strip_ro(s)
    if digits.isdigit():
        return digits.lstrip("0") or "0"
    return s.upper().replace(" ", "")


def as_plate(v: Any) -> str | None:
    s = as_str(v)
    return re.sub(r"[\s-]", "", s).upper() if s else None


def as_number(v: Any) -> str | None:
    s = as_str(v)
    if s is None:
        return None
    try:
        d = Decimal(s.replace(",", "."))
    except InvalidOperation:
        return s
    return format(d.normalize(), "f") if d == d.to_integral_value() else format(d.normalize(), "f")


_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d", "%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d",
                 "%d.%m.%Y %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%d.%m.%Y", "%d-%m-%Y", "%Y-%m-%d %H:%M:%S")


def _parse_local(s: str) -> datetime | None:
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
        return d if d.tzinfo else d.replace(tzinfo=BUCHAREST)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(s, fmt).replace(tzinfo=BUCHAREST)
        except ValueError:
            continue
    return None


def parse_instant(v: Any) -> datetime | None:
    """An ANAF timestamp (Romania wall time unless it carries an offset; large integers = epoch ms) as UTC."""
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v > 10**11:
            return datetime.fromtimestamp(v / 1000, UTC)
        v = str(int(v))
    s = str(v).strip()
    if s.isdigit() and len(s) >= 12 and len(s) not in (12, 14):  # epoch ms sent as text
        return datetime.fromtimestamp(int(s) / 1000, UTC)
    d = _parse_local(s)
    return d.astimezone(UTC) if d else None


def parse_day(v: Any) -> date | None:
    """A calendar date from any of ANAF's date formats (`2024-06-29T00:00:00`, `20221010000000`, ...)."""
    if v is None or v == "":
        return None
    if isinstance(v, date) and not isinstance(v, datetime):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 10**11 and len(str(int(v))) not in (12, 14):
        return datetime.fromtimestamp(v / 1000, UTC).astimezone(BUCHAREST).date()
    d = _parse_local(str(v).strip())
    return d.astimezone(BUCHAREST).date() if d else None


def rule_expiry(transport_date: date, operation_type: str | None) -> date:
    """First day the UIT counts as expired: 5 calendar days after the declared start, 15 for long operations."""
    return transport_date + timedelta(days=15 if operation_type in LONG_VALIDITY_OPS else 5)


def _location(v: Any) -> dict[str, str] | None:
    if not isinstance(v, dict):
        return None
    out = {str(k): s for k, val in v.items() if (s := as_str(val)) is not None and s != "-"}
    return out or None


def location_text(loc: dict[str, str] | None) -> str | None:
    if not loc:
        return None
    if loc.get("adresa_completa"):
        return loc["adresa_completa"]
    parts = [loc.get(k) for k in ("strada", "numar", "localitate", "judet")]
    return ", ".join(p for p in parts if p) or None


# --------------------------------------------------------------------------------------------------
# Observations: one ANAF record, normalised.

@dataclass(frozen=True)
class VehicleChange:
    vehicle: str
    trailer1: str | None = None
    trailer2: str | None = None
    changed_at: datetime | None = None  # data_modif_veh: when the new vehicle started moving
    note: str | None = None
    declared_by: str | None = None
    declared_at: datetime | None = None

    def key(self) -> tuple[str, str, str, str]:
        return (self.changed_at.isoformat() if self.changed_at else "", self.vehicle, self.trailer1 or "",
                self.trailer2 or "")

    def to_json(self) -> dict[str, Any]:
        return {"vehicle": self.vehicle, "trailer1": self.trailer1, "trailer2": self.trailer2,
                "changed_at": self.changed_at.isoformat() if self.changed_at else None, "note": self.note,
                "declared_by": self.declared_by,
                "declared_at": self.declared_at.isoformat() if self.declared_at else None}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VehicleChange:
        return cls(vehicle=d["vehicle"], trailer1=d.get("trailer1"), trailer2=d.get("trailer2"),
                   changed_at=parse_instant(d.get("changed_at")), note=d.get("note"),
                   declared_by=d.get("declared_by"), declared_at=parse_instant(d.get("declared_at")))

    @classmethod
    def from_anaf(cls, d: dict[str, Any]) -> VehicleChange | None:
        veh = as_plate(d.get("nr_veh"))
        if not veh:
            return None
        return cls(vehicle=veh, trailer1=as_plate(d.get("nr_rem1")), trailer2=as_plate(d.get("nr_rem2")),
                   changed_at=parse_instant(d.get("data_modif_veh")), note=as_str(d.get("obs")),
                   declared_by=as_cif(d.get("cod_decl")), declared_at=parse_instant(d.get("data_decl")))


@dataclass(frozen=True)
class Confirmation:
    code: str  # tip_conf: 10 confirmed, 20 partially confirmed, 30 rejected
    note: str | None = None
    declared_at: datetime | None = None

    @property
    def kind(self) -> str:
        return CONFIRMATION_KINDS.get(self.code, self.code)

    def key(self) -> tuple[str, str]:
        return (self.code, self.declared_at.isoformat() if self.declared_at else "")

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "kind": self.kind, "note": self.note,
                "declared_at": self.declared_at.isoformat() if self.declared_at else None}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Confirmation | None:
        if not d:
            return None
        return cls(code=d["code"], note=d.get("note"), declared_at=parse_instant(d.get("declared_at")))

    @classmethod
    def from_anaf(cls, d: Any) -> Confirmation | None:
        if not isinstance(d, dict):
            return None
        code = as_str(d.get("tip_conf"))
        if not code:
            return None
        return cls(code=code, note=as_str(d.get("obs")), declared_at=parse_instant(d.get("data_decl")))


@dataclass(frozen=True)
class Observation:
    """What one ANAF record says about one UIT. None = the source does not say (never "erase")."""

    source: str  # info | lista | probe
    uit: str
    carrier_cif: str
    carrier_name: str | None = None
    carrier_country: str | None = None
    declarant_cif: str | None = None
    declarant_name: str | None = None
    declarant_ref: str | None = None
    operation_type: str | None = None
    transport_date: date | None = None
    anaf_expires_on: date | None = None
    partner_country: str | None = None
    partner_code: str | None = None
    partner_name: str | None = None
    declared_vehicle: str | None = None
    declared_trailer1: str | None = None
    declared_trailer2: str | None = None
    route_start: dict[str, str] | None = None
    route_end: dict[str, str] | None = None
    documents: str | None = None
    anaf_id: str | None = None
    goods: dict[str, str] | None = None
    vehicle_changes: tuple[VehicleChange, ...] | None = None
    confirmation: Confirmation | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def route_start_text(self) -> str | None:
        return location_text(self.route_start)

    @property
    def route_end_text(self) -> str | None:
        return location_text(self.route_end)


def _common(item: dict[str, Any], source: str, carrier: str) -> dict[str, Any]:
    changes = item.get("modif_veh")
    vc: tuple[VehicleChange, ...] | None = None
    if isinstance(changes, list):
        vc = tuple(c for c in (VehicleChange.from_anaf(x) for x in changes if isinstance(x, dict)) if c)
    return dict(
        source=source, uit=str(as_str(item.get("uit"))).upper(), carrier_cif=carrier,
        carrier_name=as_str(item.get("tr_den")), carrier_country=as_str(item.get("tr_tara")),
        declarant_cif=as_cif(item.get("cod_decl")), declarant_name=as_str(item.get("den_decl")),
        declarant_ref=as_str(item.get("ref_decl")), transport_date=parse_day(item.get("data_transp")),
        declared_vehicle=as_plate(item.get("nr_veh")), declared_trailer1=as_plate(item.get("nr_rem1")),
        declared_trailer2=as_plate(item.get("nr_rem2")), vehicle_changes=vc,
        confirmation=Confirmation.from_anaf(item.get("confirmare")), raw=item)


def observation_from_info(item: dict[str, Any], carrier_cif: str, source: str = "info") -> Observation | None:
    """One record of `GET /info?cui_op=` (the carrier's view). Records for another carrier are ignored."""
    if not isinstance(item, dict) or not as_str(item.get("uit")):
        return None
    carrier = as_cif(item.get("tr_cod")) or carrier_cif
    if carrier != carrier_cif:
        return None
    kw = _common(item, source, carrier)
    kw.update(anaf_expires_on=parse_day(item.get("data_exp_uit")), operation_type=as_str(item.get("tip_op")),
              route_start=_location(item.get("loc_start")), route_end=_location(item.get("loc_final")),
              documents=as_str(item.get("documente")), anaf_id=as_str(item.get("id")))
    return Observation(**kw)


def is_valid_lista_item(item: dict[str, Any]) -> bool:
    if (as_str(item.get("stare")) or "OK").upper() == "ERR":
        return False
    msgs = item.get("mesaje") or []
    if any(isinstance(m, dict) and (as_str(m.get("tip")) or "").upper() == "ERR" for m in msgs):
        return False
    return bool(as_str(item.get("uit")))


def observation_from_lista(item: dict[str, Any], carrier_cif: str) -> Observation | None:
    """A valid NOT item of `GET /lista/{zile}/{cif}` in which `carrier_cif` is the carrier (`tr_cod`)."""
    if not isinstance(item, dict) or not is_valid_lista_item(item):
        return None
    if (as_str(item.get("tip")) or "NOT").upper() != "NOT":
        return None
    if as_cif(item.get("tr_cod")) != carrier_cif:
        return None
    kw = _common(item, "lista", carrier_cif)
    goods = {k: s for k in ("nr_linii", "gr_tot_neta", "gr_tot_bruta", "val_tot")
             if (s := as_number(item.get(k))) is not None}
    kw.update(operation_type=as_str(item.get("tip_op")), partner_country=as_str(item.get("pc_tara")),
              partner_code=as_cif(item.get("pc_cod")), partner_name=as_str(item.get("pc_den")),
              goods=goods or None, anaf_id=None)
    return Observation(**kw)


def vehicle_change_from_lista(item: dict[str, Any]) -> tuple[str, VehicleChange] | None:
    """A valid MVH item of the declarant's list: (uit, change)."""
    if not isinstance(item, dict) or not is_valid_lista_item(item):
        return None
    if (as_str(item.get("tip")) or "").upper() != "MVH":
        return None
    vc = VehicleChange.from_anaf(item)
    if vc is None:
        return None
    if vc.declared_at is None:
        vc = replace(vc, declared_at=parse_instant(item.get("data_creare")))
    return str(as_str(item.get("uit"))).upper(), vc


# --------------------------------------------------------------------------------------------------
# The persistent transport and the merge rules.

@dataclass(frozen=True)
class ChangeEvent:
    """A fact to publish; (uit, kind, version) is unique for a carrier."""

    kind: str
    version: int
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryEntry:
    kind: str  # created | enriched | vehicle_changed | confirmed | corrected | deleted | reinstated | expired
    changes: dict[str, Any]
    source: str


@dataclass
class Transport:
    uit: str
    carrier_cif: str
    state: str = ACTIVE
    carrier_name: str | None = None
    carrier_country: str | None = None
    declarant_cif: str | None = None
    declarant_name: str | None = None
    declarant_ref: str | None = None
    operation_type: str | None = None
    transport_date: date | None = None
    expires_on: date | None = None
    expiry_source: str | None = None  # anaf | rule
    partner_country: str | None = None
    partner_code: str | None = None
    partner_name: str | None = None
    declared_vehicle: str | None = None
    declared_trailer1: str | None = None
    declared_trailer2: str | None = None
    route_start: dict[str, str] | None = None
    route_end: dict[str, str] | None = None
    route_start_text: str | None = None
    route_end_text: str | None = None
    documents: str | None = None
    anaf_id: str | None = None
    goods: dict[str, str] | None = None
    vehicle_changes: list[VehicleChange] = field(default_factory=list)
    confirmation: Confirmation | None = None
    confirmation_count: int = 0
    correction_count: int = 0
    deletion_count: int = 0
    reinstatement_count: int = 0
    version: int = 0
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    last_seen_in_info_at: datetime | None = None
    deleted_at: datetime | None = None
    expired_at: datetime | None = None
    expiring_notified_at: datetime | None = None
    sources: list[str] = field(default_factory=list)

    # derived ---------------------------------------------------------------------------------
    @property
    def current(self) -> tuple[str | None, str | None, str | None]:
        """(vehicle, trailer1, trailer2) in use now: the latest vehicle change, else the declared one."""
        if self.vehicle_changes:
            last = self.vehicle_changes[-1]
            return last.vehicle, last.trailer1, last.trailer2
        return self.declared_vehicle, self.declared_trailer1, self.declared_trailer2

    @property
    def vehicle(self) -> str | None:
        return self.current[0]

    @property
    def plates(self) -> list[str]:
        out: list[str] = []
        for p in [self.declared_vehicle, self.declared_trailer1, self.declared_trailer2,
                  *[x for c in self.vehicle_changes for x in (c.vehicle, c.trailer1, c.trailer2)]]:
            if p and p not in out:
                out.append(p)
        return out

    @property
    def expires_at(self) -> datetime | None:
        return local_midnight(self.expires_on) if self.expires_on else None

    def summary(self) -> dict[str, Any]:
        vehicle, t1, t2 = self.current
        return {"vehicle": vehicle, "trailer1": t1, "trailer2": t2, "declarant_cif": self.declarant_cif,
                "transport_date": self.transport_date, "uit_expires_at": self.expires_at,
                "route_start": self.route_start_text, "route_end": self.route_end_text, "state": self.state}


@dataclass
class MergeResult:
    transport: Transport
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[ChangeEvent] = field(default_factory=list)
    created: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.history) or self.created


def _j(v: Any) -> Any:
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, (VehicleChange, Confirmation)):
        return v.to_json()
    return v


def _apply_expiry(t: Transport, obs: Observation) -> dict[str, Any]:
    old = (t.expires_on, t.expiry_source)
    if obs.anaf_expires_on:
        t.expires_on, t.expiry_source = obs.anaf_expires_on, "anaf"
    elif t.expiry_source != "anaf" and t.transport_date:
        t.expires_on, t.expiry_source = rule_expiry(t.transport_date, t.operation_type), "rule"
    if (t.expires_on, t.expiry_source) != old and old[0] != t.expires_on:
        return {"expires_on": [_j(old[0]), _j(t.expires_on)]}
    return {}


def new_transport(obs: Observation, now: datetime) -> MergeResult:
    """A UIT seen for the first time. `assigned` is announced only while the UIT is still valid: transports
    discovered after their expiry (history backfill from `lista`) are recorded silently."""
    t = Transport(uit=obs.uit, carrier_cif=obs.carrier_cif, first_seen_at=now, last_seen_at=now)
    for name in CORRECTABLE + DESCRIPTIVE:
        val = getattr(obs, name)
        if val is not None:
            setattr(t, name, val)
    t.declarant_cif, t.declarant_name = obs.declarant_cif, obs.declarant_name
    t.vehicle_changes = sorted(obs.vehicle_changes or (), key=_vc_order)
    t.confirmation = obs.confirmation
    t.confirmation_count = 1 if obs.confirmation else 0
    _apply_expiry(t, obs)
    t.sources = [obs.source if obs.source != "probe" else "info"]
    if obs.source in ("info", "probe"):
        t.last_seen_in_info_at = now
    t.state = ACTIVE
    t.version = 1
    res = MergeResult(t, created=True)
    res.history.append(HistoryEntry("created", {"snapshot": snapshot(t)}, obs.source))
    if t.expires_on and local_date(now) >= t.expires_on:
        t.state, t.expired_at = EXPIRED, now
        res.history.append(HistoryEntry("expired", {"state": [ACTIVE, EXPIRED]}, obs.source))
    else:
        res.events.append(ChangeEvent("assigned", 1, t.summary()))
    return res


def _vc_order(c: VehicleChange) -> tuple[str, str]:
    return (c.changed_at.isoformat() if c.changed_at else "", c.declared_at.isoformat() if c.declared_at else "")


def merge(t: Transport, obs: Observation, now: datetime) -> MergeResult:
    """Fold one observation into a known transport: enrich unknown fields, detect corrections, vehicle changes,
    confirmations and reappearance; recompute the expiry. Idempotent: merging the same observation twice
    changes nothing the second time."""
    res = MergeResult(t)
    t.last_seen_at = now
    src = "info" if obs.source == "probe" else obs.source
    if src not in t.sources:
        t.sources = [*t.sources, src]
    known_plates = set(t.plates) | {p for c in (obs.vehicle_changes or ()) for p in (c.vehicle, c.trailer1, c.trailer2)
                                    if p}

    enriched: dict[str, Any] = {}
    corrected: dict[str, Any] = {}
    for name in DESCRIPTIVE + ("declarant_name",):
        new = getattr(obs, name)
        if new is not None and new != getattr(t, name):
            enriched[name] = [_j(getattr(t, name)), _j(new)]
            setattr(t, name, new)
    if obs.declarant_cif and not t.declarant_cif:
        enriched["declarant_cif"] = [None, obs.declarant_cif]
        t.declarant_cif = obs.declarant_cif
    for name in CORRECTABLE:
        new, old = getattr(obs, name), getattr(t, name)
        if new is None or new == old:
            continue
        if name.startswith("declared_") and new in known_plates:
            continue  # an endpoint showing the post-change plate is not a correction of the declaration
        if old is None:
            enriched[name] = [None, _j(new)]
        else:
            corrected[name] = [_j(old), _j(new)]
        setattr(t, name, new)
    old_source = t.expiry_source
    exp = _apply_expiry(t, obs)
    if exp:
        # A new expiry is a correction when the declared date changed or ANAF itself moved its date;
        # replacing our rule-of-thumb date by ANAF's is only enrichment.
        is_correction = "transport_date" in corrected or (old_source == "anaf" and t.expiry_source == "anaf"
                                                          and exp["expires_on"][0] is not None)
        (corrected if is_correction else enriched).update(exp)
    if enriched:
        res.history.append(HistoryEntry("enriched", enriched, obs.source))
    if corrected:
        silent = obs.source == "lista" and t.last_seen_in_info_at is not None and set(corrected) <= set(LISTA_ONLY)
        res.history.append(HistoryEntry("corrected", corrected, obs.source))
        if not silent:
            t.correction_count += 1
            res.events.append(ChangeEvent("corrected", t.correction_count,
                                          {**t.summary(), "fields": sorted(corrected)}))

    if obs.vehicle_changes:
        _add_vehicle_changes(t, list(obs.vehicle_changes), obs.source, res)

    if obs.confirmation and (t.confirmation is None or obs.confirmation.key() != t.confirmation.key()):
        old_c = t.confirmation
        t.confirmation = obs.confirmation
        t.confirmation_count += 1
        res.history.append(HistoryEntry("confirmed", {"confirmation": [_j(old_c), _j(obs.confirmation)]},
                                        obs.source))
        res.events.append(ChangeEvent("confirmed", t.confirmation_count,
                                      {**t.summary(), "confirmation": obs.confirmation.kind}))

    if obs.source in ("info", "probe"):
        t.last_seen_in_info_at = now
        if t.state == DELETED and (t.expires_on is None or local_date(now) < t.expires_on):
            t.state, t.deleted_at = ACTIVE, None
            t.reinstatement_count += 1
            res.history.append(HistoryEntry("reinstated", {"state": [DELETED, ACTIVE]}, obs.source))
            res.events.append(ChangeEvent("reinstated", t.reinstatement_count, t.summary()))
    if t.state == EXPIRED and t.expires_on and local_date(now) < t.expires_on:
        # a correction moved the expiry into the future
        t.state, t.expired_at = ACTIVE, None
        res.history.append(HistoryEntry("reactivated", {"state": [EXPIRED, ACTIVE]}, obs.source))
    res.history.extend(tick(t, now, timedelta(0), source=obs.source, alerts=False).history)
    return _done(res)


def add_vehicle_change(t: Transport, vc: VehicleChange, now: datetime, source: str) -> MergeResult:
    """A vehicle change reported on its own (a valid MVH item of `lista`)."""
    res = MergeResult(t)
    t.last_seen_at = now
    _add_vehicle_changes(t, [vc], source, res)
    return _done(res)


def _add_vehicle_changes(t: Transport, changes: list[VehicleChange], source: str, res: MergeResult) -> None:
    known = {c.key() for c in t.vehicle_changes}
    # The same change may be reported with and without a declaration time (info vs lista): match loosely.
    loose = {c.key()[:4] for c in t.vehicle_changes}
    fresh = [c for c in sorted(changes, key=_vc_order) if c.key() not in known and c.key()[:4] not in loose]
    for c in fresh:
        before = t.current
        t.vehicle_changes = sorted([*t.vehicle_changes, c], key=_vc_order)
        n = len(t.vehicle_changes)
        res.history.append(HistoryEntry("vehicle_changed", {"vehicle": [before[0], c.vehicle],
                                                            "trailers": [[before[1], before[2]],
                                                                         [c.trailer1, c.trailer2]],
                                                            "change": c.to_json()}, source))
        res.events.append(ChangeEvent("vehicle_changed", n, {**t.summary(), "vehicle": c.vehicle,
                                                             "trailer1": c.trailer1, "trailer2": c.trailer2,
                                                             "changed_at": c.changed_at}))


def vanished(t: Transport, now: datetime) -> MergeResult:
    """The UIT is no longer in the carrier's `info` (and a targeted probe confirmed it) while still valid:
    ANAF dropped it before expiry, so it was deleted (or the notification no longer names this carrier)."""
    res = MergeResult(t)
    if t.state != ACTIVE:
        return res
    if t.expires_on and local_date(now) >= t.expires_on:
        return tick(t, now, timedelta(0), source="expiry")
    t.state, t.deleted_at = DELETED, now
    t.deletion_count += 1
    res.history.append(HistoryEntry("deleted", {"state": [ACTIVE, DELETED]}, "probe"))
    res.events.append(ChangeEvent("deleted", t.deletion_count, t.summary()))
    return _done(res)


def _done(res: MergeResult) -> MergeResult:
    if res.history:
        res.transport.version += 1
    return res


def tick(t: Transport, now: datetime, lead: timedelta, *, source: str = "expiry", alerts: bool = True) -> MergeResult:
    """Time passing: an active UIT whose expiry day has begun becomes expired; one within `lead` of it gets
    its single `expiring` alert. With `alerts=False` (inside a merge) the caller bumps the version."""
    res = MergeResult(t)
    if t.state != ACTIVE or t.expires_on is None:
        return res
    if local_date(now) >= t.expires_on:
        t.state, t.expired_at = EXPIRED, now
        res.history.append(HistoryEntry("expired", {"state": [ACTIVE, EXPIRED]}, source))
        return _done(res) if alerts else res
    exp_at = t.expires_at
    if alerts and exp_at is not None and t.expiring_notified_at is None and exp_at - lead <= now < exp_at:
        t.expiring_notified_at = now
        res.events.append(ChangeEvent("expiring", 1, {**t.summary(), "uit_expires_at": exp_at}))
    return res


def needs_probe(t: Transport, seen_uits: set[str], now: datetime) -> bool:
    """An active UIT once seen in `info`, absent from the latest full answer, and not yet at its expiry."""
    return (t.state == ACTIVE and t.uit not in seen_uits and t.last_seen_in_info_at is not None
            and (t.expires_on is None or local_date(now) < t.expires_on))


def snapshot(t: Transport) -> dict[str, Any]:
    vehicle, t1, t2 = t.current
    return {k: _j(v) for k, v in {
        "uit": t.uit, "carrier_cif": t.carrier_cif, "declarant_cif": t.declarant_cif,
        "declarant_ref": t.declarant_ref, "operation_type": t.operation_type, "transport_date": t.transport_date,
        "expires_on": t.expires_on, "expiry_source": t.expiry_source, "partner_code": t.partner_code,
        "declared_vehicle": t.declared_vehicle, "vehicle": vehicle, "trailer1": t1, "trailer2": t2,
        "route_start": t.route_start_text, "route_end": t.route_end_text, "documents": t.documents,
        "state": t.state}.items()}
