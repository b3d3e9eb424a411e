"""In-memory state of the emulator: identities, e-Factura uploads and messages, transports, mailbox."""

from __future__ import annotations

import bisect
import io
import json
import random
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .cif import random_cif
from .clock import RO_TZ, Clock, fmt_minute, local_midnight, parse_instant
from .faults import Faults
from .limits import Counters, DailyCaps, MinuteRate
from .scenario import Application, Certificate, Company, Scenario, load_scenario
from .signing import sign_document
from .switches import Switches
from .ubl import InvoiceSpec, Line, Party, ReadDocument, error_file, random_lines, render, render_rasp

DAY = 86400.0
TIP_SENT = "FACTURA TRIMISA"
TIP_RECEIVED = "FACTURA PRIMITA"
TIP_ERRORS = "ERORI FACTURA"
TIP_BUYER_MESSAGE = "MESAJ CUMPARATOR PRIMIT / MESAJ CUMPARATOR TRANSMIS"
FILTER_TIP = {"T": TIP_SENT, "P": TIP_RECEIVED, "E": TIP_ERRORS, "R": TIP_BUYER_MESSAGE}


@dataclass
class Upload:
    index: int
    cif: str
    standard: str
    uploaded_at: float
    processed_at: float
    outcome: str  # ok | nok | rejected
    errors: list[str] = field(default_factory=list)
    extern: bool = False
    autofactura: bool = False
    executare: bool = False
    b2c: bool = False
    seller: str | None = None
    buyer: str | None = None
    xml: bytes | None = None
    spec: InvoiceSpec | None = None
    rasp_ref: int | None = None
    message_ids: list[int] = field(default_factory=list)
    serial: str | None = None

    def content(self) -> bytes:
        if self.xml is None:
            assert self.spec is not None
            self.xml = render(self.spec)
        return self.xml

    def member(self) -> bytes:
        """The `<index>.xml` ZIP member: the document for ok, the error file for nok."""
        if self.outcome == "ok":
            return self.content()
        return error_file(self.index, self.seller or self.cif, self.errors)


@dataclass
class Message:
    id: int
    cif: str
    tip: str
    upload_index: int
    detalii: str
    created_at: float
    item_json: bytes = b""

    def build_item(self) -> None:
        item = {
            "data_creare": fmt_minute(datetime.fromtimestamp(self.created_at, RO_TZ)),
            "cif": self.cif,
            "id_solicitare": str(self.upload_index),
            "detalii": self.detalii,
            "tip": self.tip,
            "id": str(self.id),
        }
        self.item_json = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Notification:
    """A valid e-Transport notification (UIT) and its later changes."""

    id: int
    uit: str
    index: int
    cod_decl: str
    den_decl: str
    ref_decl: str
    tip_op: str
    data_transp: date
    tr_tara: str
    tr_cod: str
    tr_den: str
    pc_tara: str
    pc_cod: str
    pc_den: str
    nr_veh: str
    nr_rem1: str = ""
    nr_rem2: str = ""
    loc_start: dict[str, str] = field(default_factory=dict)
    loc_final: dict[str, str] = field(default_factory=dict)
    documente: str = ""
    nr_linii: int = 1
    gr_tot_neta: str = "0"
    gr_tot_bruta: str = "0"
    val_tot: str = "0"
    created_at: float = 0.0
    modified_at: float = 0.0
    processed_at: float = 0.0
    deleted: bool = False
    confirmare: dict[str, Any] | None = None
    modif_veh: list[dict[str, Any]] = field(default_factory=list)
    post_avarie: str = "N"

    def expiry(self) -> date:
        long_ops = {"10", "12", "14", "22", "24", "60"}
        return self.data_transp + timedelta(days=15 if self.tip_op in long_ops else 5)


@dataclass
class EtUpload:
    index: int
    cif: str
    kind: str  # NOT | COR | DEL | CON | MVH
    uploaded_at: float
    processed_at: float
    ok: bool
    errors: list[str] = field(default_factory=list)
    uit: str | None = None
    notification_id: int | None = None
    ref_decl: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class MailboxMessage:
    id: int
    cif: str
    tip: str
    detalii: str
    created_at: float
    id_solicitare: str | None = None


UIT_ALPHABET = "0123456789ACDEFHJKLMNPQRTUVWXY"


def uit_checksum(body: str) -> str:
    return f"{sum(ord(c) for c in body) % 100:02d}"


def make_uit(rng: random.Random) -> str:
    body = "".join(rng.choice(UIT_ALPHABET) for _ in range(14))
    return body + uit_checksum(body)


class EmulatorState:
    """Everything the emulator knows; rebuilt from the scenario by `reset()`."""

    def __init__(self, scenario_source: Any, overrides: dict[str, Any] | None = None,
                 clock_start: str | None = None) -> None:
        self.scenario_source = scenario_source
        self.overrides = dict(overrides or {})
        self.clock_start = clock_start
        self.lock = threading.RLock()
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            sc: Scenario = load_scenario(self.scenario_source)
            self.scenario = sc
            start = self.clock_start or sc.clock.get("start")
            if start == "now":
                start = None
            self.clock = Clock(parse_instant(start) if start else None, frozen=bool(sc.clock.get("frozen", False)))
            self.switches = Switches()
            self.switches.update(sc.switches)
            self.switches.update(self.overrides)
            self.faults = Faults(sc.seed)
            self.counters = Counters()
            self.daily = DailyCaps(self.clock)
            self.minute = MinuteRate(self.clock)
            self.rng = random.Random(sc.seed)
            self.apps: dict[str, Application] = {a.client_id: a for a in sc.applications}
            self.certs: dict[str, Certificate] = {c.id: c for c in sc.certificates}
            self.companies: dict[str, Company] = {c.cui: c for c in sc.companies}
            self.codes: dict[str, dict[str, Any]] = {}
            self.revoked_jtis: set[str] = set()
            self.revoked_access: set[str] = set()
            self.token_cache: dict[str, dict[str, Any] | None] = {}
            self.uploads: dict[int, Upload] = {}
            self.messages: dict[int, Message] = {}
            self.by_cif: dict[str, list[Message]] = {}
            self.zip_cache: dict[tuple[int, str], bytes] = {}  # (upload index, signature shape)
            self.next_index = 5_001_000_000
            self.next_message_id = 3_001_000_000
            self.et_uploads: dict[int, EtUpload] = {}
            self.et_by_cif: dict[str, list[EtUpload]] = {}
            self.notifications: dict[int, Notification] = {}
            self.by_uit: dict[str, Notification] = {}
            self.next_et_index = 4_000_100
            self.next_notification_id = 900_001
            self.mailbox: dict[int, MailboxMessage] = {}
            self.next_mailbox_id = 100_000_000
            self.next_solicitare = 700_000_000
            self.generate_calls = 0
            self.external: list[Company] = []
            self._load_mailbox(sc.mailbox)
            self._run_generators(sc.generators)
            for spec in sc.invoices:
                self.admin_invoice(spec)
            for spec in sc.transports:
                self.admin_transport(spec)

    # -- identities ------------------------------------------------------------------------------

    def cert_by_serial(self, serial: str) -> tuple[Certificate | None, bool]:
        """(certificate, is_current_serial) for a serial seen in a token."""
        for cert in self.certs.values():
            if cert.serial == serial:
                return cert, True
            if serial in cert.old_serials:
                return cert, False
        return None, False

    def known_cif(self, cif: str) -> bool:
        return cif in self.companies

    def company_name(self, cif: str) -> str:
        company = self.companies.get(cif)
        return company.name if company else f"CONTRIBUABIL {cif} SRL"

    def party(self, cif: str) -> Party:
        c = self.companies.get(cif)
        if c is None:
            return Party(cif, self.company_name(cif))
        city = "SECTOR1" if c.county == "B" else c.city
        return Party(c.cui, c.name, c.vat, f"{c.street} nr. {c.number}", city, c.county, c.postal_code, c.nr_reg_com)

    # -- e-Factura -------------------------------------------------------------------------------

    def _new_index(self) -> int:
        self.next_index += 1
        return self.next_index

    def add_message(self, cif: str, tip: str, upload: Upload, detalii: str, created_at: float) -> Message:
        self.next_message_id += 1
        msg = Message(self.next_message_id, cif, tip, upload.index, detalii, created_at)
        msg.build_item()
        self.messages[msg.id] = msg
        bisect.insort(self.by_cif.setdefault(cif, []), msg, key=lambda m: m.created_at)
        upload.message_ids.append(msg.id)
        return msg

    def record_upload(
        self,
        *,
        cif: str,
        standard: str,
        uploaded_at: float,
        outcome: str,
        doc: ReadDocument | None,
        xml: bytes | None = None,
        spec: InvoiceSpec | None = None,
        errors: list[str] | None = None,
        extern: bool = False,
        autofactura: bool = False,
        executare: bool = False,
        b2c: bool = False,
        serial: str | None = None,
        delay: float | None = None,
        lag: float | None = None,
    ) -> Upload:
        """Store an upload and create its messages (they surface once the clock reaches them)."""
        delay = self.switches.processing_delay_seconds if delay is None else delay
        lag = self.switches.indexing_lag_seconds if lag is None else lag
        upload = Upload(
            index=self._new_index(),
            cif=cif,
            standard=standard,
            uploaded_at=uploaded_at,
            processed_at=uploaded_at + delay,
            outcome=outcome,
            errors=list(errors or []),
            extern=extern,
            autofactura=autofactura,
            executare=executare,
            b2c=b2c,
            seller=doc.seller_cif if doc else None,
            buyer=doc.buyer_cif if doc else None,
            xml=xml,
            spec=spec,
            serial=serial,
        )
        if doc is not None and doc.kind == "rasp" and doc.rasp_index and doc.rasp_index.isdigit():
            upload.rasp_ref = int(doc.rasp_index)
        self.uploads[upload.index] = upload
        created = upload.processed_at + lag
        idx = upload.index
        if outcome == "ok" and standard == "RASP":
            ref = self.uploads.get(upload.rasp_ref or -1)
            other = None
            if ref is not None:
                other = ref.seller if ref.seller != cif else ref.buyer
            detalii = (
                f"Mesaj cumparator cu id_incarcare={idx} pentru factura cu id_incarcare={upload.rasp_ref} "
                f"transmis de cif={cif}"
            )
            self.add_message(cif, TIP_BUYER_MESSAGE, upload, detalii, created)
            if other and other != cif:
                self.add_message(other, TIP_BUYER_MESSAGE, upload, detalii, created)
        elif outcome == "ok":
            seller = upload.seller or cif
            buyer = upload.buyer
            if autofactura:
                detalii = f"Factura cu id_incarcare={idx} transmisa de cif={cif}  ca autofactura in numele cif={seller}"
                uploader_sent = self.switches.self_billing_uploader_tip == "sent"
                self.add_message(cif, TIP_SENT if uploader_sent else TIP_RECEIVED, upload, detalii, created)
                self.add_message(seller, TIP_RECEIVED if uploader_sent else TIP_SENT, upload, detalii, created)
            else:
                detalii = f"Factura cu id_incarcare={idx} emisa de cif_emitent={seller} pentru cif_beneficiar={buyer}"
                self.add_message(seller, TIP_SENT, upload, detalii, created)
                if buyer and buyer.isdigit() and not extern and not b2c:
                    self.add_message(buyer, TIP_RECEIVED, upload, detalii, created)
        elif outcome == "nok":
            detalii = f"Erori de validare identificate la factura primita cu id_incarcare={idx}"
            if autofactura:
                detalii += ", tip declarat=AUTOFACTURA"
            self.add_message(cif, TIP_ERRORS, upload, detalii, created)
        return upload

    def zip_for(self, upload: Upload) -> bytes:
        shape = self.switches.signature_shape
        cached = self.zip_cache.get((upload.index, shape))
        if cached is None:
            member = upload.member()
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(f"{upload.index}.xml", member)
                zf.writestr(f"semnatura_{upload.index}.xml", sign_document(member, shape))
            cached = buf.getvalue()
            self.zip_cache[(upload.index, shape)] = cached
        return cached

    def visible_messages(self, cif: str, start: float, end: float) -> list[Message]:
        """Messages of `cif` whose data_creare lies in [start, end] (already capped at now by callers)."""
        msgs = self.by_cif.get(cif)
        if not msgs:
            return []
        lo = bisect.bisect_left(msgs, start, key=lambda m: m.created_at)
        hi = bisect.bisect_right(msgs, end, key=lambda m: m.created_at)
        return msgs[lo:hi]

    # -- generators ------------------------------------------------------------------------------

    def _external_partner(self, rng: random.Random) -> Company:
        cui = random_cif(rng, rng.choice([7, 8, 8, 8]))
        while cui in self.companies:
            cui = random_cif(rng, 8)
        names = ["Alfa", "Carpatica", "Dunarea", "Mioritic", "Transilvan", "Delta", "Olt", "Bucovina", "Moldova"]
        kinds = ["Distributie", "Comert", "Servicii", "Constructii", "Logistic", "Agro"]
        county = rng.choice(["B", "CJ", "IS", "TM", "CT", "BV", "PH", "DJ", "SB", "AG"])
        company = Company(
            cui=cui,
            name=f"{rng.choice(names)} {rng.choice(kinds)} SRL",
            street=rng.choice(["Str. Libertatii", "Bd. Unirii", "Str. Mihai Viteazu", "Calea Victoriei"]),
            number=str(rng.randint(1, 120)),
            city={"B": "Bucuresti", "CJ": "Cluj-Napoca", "IS": "Iasi", "TM": "Timisoara", "CT": "Constanta",
                  "BV": "Brasov", "PH": "Ploiesti", "DJ": "Craiova", "SB": "Sibiu", "AG": "Pitesti"}[county],
            county=county,
            postal_code=f"{rng.randint(100000, 999999)}",
            nr_reg_com=f"J{rng.randint(1, 52):02d}/{rng.randint(100, 9999)}/{rng.randint(1995, 2024)}",
            vat=rng.random() < 0.85,
            efactura_registered=rng.random() < 0.3,
        )
        self.companies[cui] = company
        self.external.append(company)
        return company

    def _run_generators(self, gens: dict[str, Any]) -> None:
        inv = gens.get("invoices")
        if inv:
            now = self.clock.now()
            days = int(inv.get("days", 30))
            self.generate_invoices(
                inv.get("cuis") or [c.cui for c in self.scenario.companies],
                (now - timedelta(days=days)).date(),
                now.date(),
                float(inv.get("per_company_per_day", 2)),
                rng=random.Random(self.scenario.seed),
                external_partners=int(inv.get("external_partners", 12)),
            )
        for tr in gens.get("transports", []):
            self.generate_transports(tr, random.Random(self.scenario.seed + 7))

    def generate_invoices(
        self,
        cuis: list[str],
        first: date,
        last: date,
        per_company_per_day: float,
        rng: random.Random,
        external_partners: int = 12,
    ) -> tuple[int, int]:
        """Deterministic invoices for each CUI and day in [first, last]; returns (uploads, messages)."""
        pool = [self._external_partner(rng) for _ in range(external_partners)]
        insiders = [c for c in cuis if c in self.companies]
        now_ts = self.clock.timestamp()
        plans: list[tuple[float, str, str, str, random.Random]] = []
        day = first
        while day <= last:
            for cui in cuis:
                count = int(per_company_per_day)
                if rng.random() < per_company_per_day - count:
                    count += 1
                for _ in range(count):
                    at = local_midnight(day).timestamp() + rng.randint(8 * 3600, 19 * 3600)
                    if at > now_ts - 180:
                        continue
                    kind = rng.choices(
                        ["sent", "received", "credit_note", "self_billing", "error", "buyer_message"],
                        weights=[44, 30, 7, 5, 7, 7],
                    )[0]
                    others = [c for c in insiders if c != cui]
                    partner = rng.choice(others) if others and rng.random() < 0.4 else rng.choice(pool).cui
                    plans.append((at, kind, cui, partner, random.Random(rng.getrandbits(64))))
            day += timedelta(days=1)
        plans.sort(key=lambda p: p[0])
        before = len(self.messages)
        n = 0
        for at, kind, cui, partner, prng in plans:
            n += self._generated_document(at, kind, cui, partner, prng)
        return n, len(self.messages) - before

    def _generated_document(self, at: float, kind: str, cui: str, partner: str, rng: random.Random) -> int:
        delay = rng.randint(5, 90)
        number = f"{rng.choice(['FCT', 'EMI', 'INV', 'AB'])}-{rng.randint(1000, 99999)}"
        currency = "EUR" if rng.random() < 0.15 else "RON"
        rate = Decimal("4.9770") if currency == "EUR" else Decimal(1)
        issue = datetime.fromtimestamp(at, RO_TZ).date()
        if kind == "buyer_message":
            received = [m for m in self.by_cif.get(cui, []) if m.tip == TIP_RECEIVED and m.created_at < at]
            if not received:
                kind = "received"
            else:
                ref = rng.choice(received).upload_index
                xml = render_rasp(ref, rng.choice(["Factura a fost receptionata.", "Cantitatea livrata difera.",
                                                   "Va rugam emiteti factura storno."]))
                doc = ReadDocument(kind="rasp", rasp_index=str(ref))
                self.record_upload(cif=cui, standard="RASP", uploaded_at=at, outcome="ok", doc=doc, xml=xml,
                                   delay=delay, lag=0)
                return 1
        seller, buyer = (partner, cui) if kind == "received" else (cui, partner)
        spec = InvoiceSpec(number, issue, self.party(seller), self.party(buyer), random_lines(rng), currency,
                           rate=rate)
        standard = "UBL"
        autofactura = False
        errors: list[str] = []
        outcome = "ok"
        if kind == "credit_note":
            spec.credit_note = True
            spec.type_code = "381"
            spec.preceding = f"FCT-{rng.randint(1000, 9999)}"
            standard = "CN"
        elif kind == "self_billing":
            # the buyer (this company's partner side swapped) issues on the supplier's behalf
            seller, buyer = partner, cui
            spec.seller, spec.buyer = self.party(seller), self.party(buyer)
            spec.type_code = "389"
            autofactura = True
        elif kind == "error":
            outcome = "nok"
            spec.lines.append(Line("Rand cu total gresit", Decimal(1), "H87", Decimal(10), "S", Decimal(21)))
            errors = [
                ("E: validari globale  SCHEMATRON   eroare: [BR-CO-10]-Sum of Invoice line net amount (BT-106) = "
                "Σ Invoice line net amount (BT-131).")
            ]
        doc = ReadDocument(kind="credit_note" if spec.credit_note else "invoice", seller_cif=seller, buyer_cif=buyer)
        uploader = buyer if autofactura else seller
        self.record_upload(cif=uploader, standard=standard, uploaded_at=at, outcome=outcome, doc=doc, spec=spec,
                           errors=errors, autofactura=autofactura, delay=delay, lag=0)
        return 1

    def admin_invoice(self, body: dict[str, Any]) -> Upload:
        """Create one processed invoice (or credit note, self-billing, error, buyer message) at `at`."""
        seller = str(body["seller"])
        buyer = str(body.get("buyer", ""))
        kind = body.get("kind", "invoice")
        if body.get("at"):
            at = parse_instant(body["at"]).timestamp()
        elif body.get("days_ago") is not None:
            # relative to the clock's start: a scenario on the real clock keeps its invoices inside the 60 days
            at = self.clock.timestamp() - float(body["days_ago"]) * DAY
        else:
            at = self.clock.timestamp()
        rng = random.Random(f"{self.scenario.seed}:{len(self.uploads)}")
        currency = body.get("currency", "RON")
        issue = datetime.fromtimestamp(at, RO_TZ).date()
        lines = random_lines(rng)[: int(body["lines"])] if body.get("lines") else random_lines(rng)
        while body.get("lines") and len(lines) < int(body["lines"]):
            lines += random_lines(rng)
            lines = lines[: int(body["lines"])]
        spec = InvoiceSpec(body.get("number") or f"EMU-{len(self.uploads) + 1}", issue, self.party(seller),
                           self.party(buyer), lines, currency,
                           rate=Decimal(str(body.get("rate", "4.9770"))) if currency != "RON" else Decimal(1))
        doc = ReadDocument(kind="invoice", seller_cif=seller, buyer_cif=buyer)
        delay = float(body.get("delay", 0))
        lag = float(body.get("lag", 0))
        if body.get("xml"):
            # The document exactly as given, accepted without any check: ANAF has accepted documents whose
            # values no database column holds (`1E+30`, thirty digits); clients must survive downloading them.
            xml = str(body["xml"]).encode("utf-8")
            standard = "CN" if kind == "credit_note" else "UBL"
            return self.record_upload(cif=seller, standard=standard, uploaded_at=at, outcome="ok", doc=doc, xml=xml,
                                      extern=bool(body.get("extern")), delay=delay, lag=lag)
        if kind == "buyer_message":
            ref = int(body["ref"]) if body.get("ref") else self._last_invoice_between(seller, buyer)
            xml = render_rasp(ref, body.get("message", "Mesaj de la cumparator"))
            doc = ReadDocument(kind="rasp", rasp_index=str(ref))
            return self.record_upload(cif=buyer, standard="RASP", uploaded_at=at, outcome="ok", doc=doc, xml=xml,
                                      delay=delay, lag=lag)
        if kind == "credit_note":
            spec.credit_note = True
            spec.preceding = body.get("preceding", "EMU-0")
            doc.kind = "credit_note"
            return self.record_upload(cif=seller, standard="CN", uploaded_at=at, outcome="ok", doc=doc, spec=spec,
                                      delay=delay, lag=lag)
        if kind == "self_billing":
            spec.type_code = "389"
            return self.record_upload(cif=buyer, standard="UBL", uploaded_at=at, outcome="ok", doc=doc, spec=spec,
                                      autofactura=True, delay=delay, lag=lag)
        if kind == "error":
            errors = body.get("errors") or [
                ("E: validari globale  SCHEMATRON   eroare: [BR-CO-15]-Invoice total amount with VAT (BT-112) = "
                "Invoice total amount without VAT (BT-109) + Invoice total VAT amount (BT-110).")
            ]
            return self.record_upload(cif=seller, standard="UBL", uploaded_at=at, outcome="nok", doc=doc, spec=spec,
                                      errors=errors, delay=delay, lag=lag)
        return self.record_upload(cif=seller, standard="UBL", uploaded_at=at, outcome="ok", doc=doc, spec=spec,
                                  extern=bool(body.get("extern")), delay=delay, lag=lag)

    def _last_invoice_between(self, seller: str, buyer: str) -> int:
        for up in reversed(list(self.uploads.values())):
            if up.seller == seller and up.buyer == buyer and up.outcome == "ok":
                return up.index
        return 0

    # -- e-Transport -----------------------------------------------------------------------------

    def new_et_index(self) -> int:
        self.next_et_index += 1
        return self.next_et_index

    def add_et_upload(self, up: EtUpload) -> EtUpload:
        self.et_uploads[up.index] = up
        self.et_by_cif.setdefault(up.cif, []).append(up)
        return up

    def add_notification(self, n: Notification) -> Notification:
        self.notifications[n.id] = n
        self.by_uit[n.uit] = n
        return n

    def admin_transport(self, body: dict[str, Any], rng: random.Random | None = None) -> Notification:
        rng = rng or random.Random(f"{self.scenario.seed}:t:{len(self.notifications)}")
        declarant = str(body["declarant"])
        carrier = str(body.get("carrier", declarant))
        at = parse_instant(body["at"]).timestamp() if body.get("at") else self.clock.timestamp()
        data_transp = (
            date.fromisoformat(body["data_transp"]) if body.get("data_transp")
            else datetime.fromtimestamp(at, RO_TZ).date()
        )
        index = self.new_et_index()
        uit = body.get("uit") or make_uit(rng)
        self.next_notification_id += 1
        counties = [("CJ", "Cluj-Napoca"), ("B", "Bucuresti"), ("TM", "Timisoara"), ("IS", "Iasi"), ("BV", "Brasov")]
        (j1, l1), (j2, l2) = rng.sample(counties, 2)
        partner = str(body.get("partner", random_cif(rng)))
        notif = Notification(
            id=self.next_notification_id,
            uit=uit,
            index=index,
            cod_decl=declarant,
            den_decl=self.company_name(declarant),
            ref_decl=str(body.get("ref_decl", f"REF-{index}")),
            tip_op=str(body.get("tip_op", "30")),
            data_transp=data_transp,
            tr_tara="RO",
            tr_cod=carrier,
            tr_den=self.company_name(carrier),
            pc_tara="RO",
            pc_cod=partner,
            pc_den=self.company_name(partner),
            nr_veh=str(body.get("nr_veh", f"B{rng.randint(10, 999)}{''.join(rng.choice('ABCDEFHKMNPRTX') for _ in range(3))}")),
            nr_rem1=str(body.get("nr_rem1", "")),
            loc_start={"tip_loc": "ADR", "adresa_completa": f"Str. Depozitului nr. {rng.randint(1, 90)}, {l1}",
                       "judet": j1, "localitate": l1, "strada": "Str. Depozitului",
                       "numar": str(rng.randint(1, 90)), "alte_info": "-"},
            loc_final={"tip_loc": "ADR", "adresa_completa": f"Bd. Industriei nr. {rng.randint(1, 90)}, {l2}",
                       "judet": j2, "localitate": l2, "strada": "Bd. Industriei",
                       "numar": str(rng.randint(1, 90)), "alte_info": "-"},
            documente=f"Factura FCT-{rng.randint(1000, 9999)} / {data_transp.isoformat()}",
            nr_linii=rng.randint(1, 6),
            gr_tot_neta=str(rng.randint(100, 20000)),
            gr_tot_bruta=str(rng.randint(20001, 24000)),
            val_tot=str(rng.randint(1000, 250000)),
            created_at=at,
            modified_at=at,
            processed_at=at + float(body.get("delay", 0)),
        )
        self.add_notification(notif)
        self.add_et_upload(EtUpload(index, declarant, "NOT", at, notif.processed_at, True, uit=uit,
                                    notification_id=notif.id, ref_decl=notif.ref_decl))
        return notif

    def generate_transports(self, spec: dict[str, Any], rng: random.Random) -> int:
        carrier = str(spec["carrier"])
        declarants = [str(d) for d in spec.get("declarants", [])]
        days = int(spec.get("days", 7))
        per_day = int(spec.get("per_day", 3))
        today = self.clock.today()
        now_ts = self.clock.timestamp()
        n = 0
        for offset in range(-days, int(spec.get("ahead_days", 2)) + 1):
            day = today + timedelta(days=offset)
            for _ in range(per_day):
                declarant = rng.choice(declarants) if declarants else self._external_partner(rng).cui
                decl_day = day - timedelta(days=rng.randint(0, 2))
                at = local_midnight(decl_day).timestamp() + rng.randint(6 * 3600, 20 * 3600)
                if at > now_ts - 60:
                    at = now_ts - rng.randint(60, 3600)
                tip_op = rng.choice(["30", "30", "30", "30", "10", "40", "50"])
                self.admin_transport(
                    {"declarant": declarant, "carrier": carrier, "data_transp": day.isoformat(), "tip_op": tip_op,
                     "at": datetime.fromtimestamp(at, RO_TZ).isoformat()},
                    rng=rng,
                )
                n += 1
        return n

    # -- SPV mailbox -----------------------------------------------------------------------------

    def add_mailbox(self, cif: str, tip: str, detalii: str, at: float, id_solicitare: str | None = None) -> MailboxMessage:
        self.next_mailbox_id += 1
        msg = MailboxMessage(self.next_mailbox_id, cif, tip, detalii, at, id_solicitare)
        self.mailbox[msg.id] = msg
        return msg

    def _load_mailbox(self, items: list[dict[str, Any]]) -> None:
        now = self.clock.timestamp()
        for item in items:
            at = parse_instant(item["at"]).timestamp() if item.get("at") else now - float(item.get("days_ago", 1)) * DAY
            self.add_mailbox(str(item["cif"]), item.get("tip", "RECIPISA"), item.get("detalii", ""), at,
                             item.get("id_solicitare"))
