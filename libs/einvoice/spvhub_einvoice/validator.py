"""Offline validation of an RO e-Factura UBL document, in ANAF's order: well-formed XML, the UBL 2.1 schema, then the
official EN 16931 + CIUS-RO Schematron (run as its published XSLT 2.0 with SaxonC-HE), then the project's VAT-rate
checks. Answers in the shape of ANAF's `validare` (each finding: rule id, field, ANAF's text, RO/EN explanation)."""
from __future__ import annotations

import asyncio
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from spvhub_einvoice import vat
from spvhub_einvoice.catalogue import CATALOGUE

ARTEFACTS = Path(__file__).parent / "artefacts"
CIUS_RO_VERSION = "1.0.9"
SCHEMATRON_XSLT = ARTEFACTS / f"cius-ro-{CIUS_RO_VERSION}" / "EN16931-CIUS_RO-UBL-validation.xslt"
XSD = {
    "Invoice": ARTEFACTS / "ubl21" / "maindoc" / "UBL-Invoice-2.1.xsd",
    "CreditNote": ARTEFACTS / "ubl21" / "maindoc" / "UBL-CreditNote-2.1.xsd",
}
NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
ROOTS = {(NS_INVOICE, "Invoice"): "invoice", (NS_CREDIT, "CreditNote"): "credit_note"}
PREFIXES = {
    "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2": "cac",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2": "cbc",
    "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2": "ext",
}
SVRL = "http://purl.oclc.org/dsdl/svrl"
SCHEMA_CODE = "SCHEMA"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
_STEP = re.compile(r"\*:([A-Za-z0-9_]+)\[namespace-uri\(\)='([^']*)'\]\[(\d+)\]")
_BT = re.compile(r"\b(B[TG]-\d+)\b")
_ID_PREFIX = re.compile(r'^\[[A-Za-z0-9_.\-]+["\]]+\s*-\s*')
_CODE = re.compile(r"^\[([A-Za-z0-9_.\-]+)[\]\"]")  # one CIUS-RO text closes its bracket with a quote


@dataclass(frozen=True)
class Finding:
    """One broken rule. `message` is worded as ANAF's validare / error report would word it."""

    code: str  # the public rule id as ANAF reports it: BR-CO-10, BR-RO-110, SCHEMA, SPVHUB-VAT-01 ...
    field: str | None  # the XPath of the element the rule is about (or the line for schema errors)
    message: str
    explanation_ro: str
    explanation_en: str
    severity: str = "error"  # error | warning
    source: str = "en16931"  # schema | en16931 | cius-ro | spvhub
    business_term: str | None = None  # BT-xx / BG-xx named by the rule
    known: bool = True
    assert_id: str | None = None  # the Schematron assertion's own id when it differs (CIUS-RO: BR-RO-L1024 ...)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    document_type: str | None
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    cius_ro_version: str = CIUS_RO_VERSION

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def schema_failed(self) -> bool:
        return any(f.source == "schema" for f in self.findings)

    def codes(self) -> list[str]:
        return [f.code for f in self.errors]

    def validare(self) -> dict[str, Any]:
        """ANAF's `validare` answer (`stare`, `Messages`) plus the structured findings."""
        body: dict[str, Any] = {"stare": "ok" if self.ok else "nok"}
        if not self.ok:
            body["Messages"] = [{"message": f.message} for f in self.errors]
        body["findings"] = [f.as_dict() for f in self.findings]
        body["cius_ro_version"] = self.cius_ro_version
        return body


def short_path(location: str | None) -> str | None:
    """Saxon's `/*:Invoice[namespace-uri()='…'][1]/*:TaxTotal[…][1]` -> `/Invoice/cac:TaxTotal`."""
    if not location or not location.startswith("/"):
        return None  # the CEN rules on attributes (unit codes, currencies) report the value instead of a path

    def step(m: re.Match[str]) -> str:
        prefix = PREFIXES.get(m.group(2))
        name = f"{prefix}:{m.group(1)}" if prefix else m.group(1)
        return name if m.group(3) == "1" else f"{name}[{m.group(3)}]"

    return _STEP.sub(step, location)


def _schematron_finding(assert_id: str | None, flag: str, location: str | None, raw_text: str) -> Finding:
    text = " ".join(raw_text.split())
    # The public id is the bracketed one in the text (what ANAF reports); CIUS-RO's assertion ids are internal
    # variants of it (BR-RO-020_1, BR-RO-L1024 for [BR-RO-L100]) and once even name another rule.
    bracket = _CODE.match(text)
    code = bracket.group(1) if bracket else (assert_id or "SCHEMATRON")
    # CIUS-RO texts carry both languages: "Romanian text #English text"; ANAF reports the Romanian one.
    ro, _, en = text.partition("#")
    ro, en = ro.strip(), en.strip()
    severity = "warning" if flag.lower() == "warning" else "error"
    source = "cius-ro" if code.startswith("BR-RO") else "en16931"
    bt = _BT.search(ro)
    message = f"{'W' if severity == 'warning' else 'E'}: validari globale  SCHEMATRON   eroare: {ro}"
    entry = CATALOGUE.get(code)
    body_ro = _ID_PREFIX.sub("", ro)
    if entry is not None:
        exp_ro, exp_en = entry[1], entry[2]
    elif en:
        exp_ro, exp_en = body_ro, _ID_PREFIX.sub("", en)
    elif source == "en16931":
        exp_ro = f"Regula EN 16931 {code} nu este respectată (textul oficial, în engleză): {body_ro}"
        exp_en = body_ro
    else:
        exp_ro = body_ro
        exp_en = f"CIUS-RO rule {code} is broken (ANAF's text, in Romanian): {body_ro}"
    return Finding(code=code, field=short_path(location), message=message, explanation_ro=exp_ro,
                   explanation_en=exp_en, severity=severity, source=source,
                   business_term=(entry[0] if entry and entry[0] else (bt.group(1) if bt else None)),
                   known=entry is not None,
                   assert_id=assert_id if assert_id != code else None)


def _schema_finding(line: int | None, column: int | None, text: str, path: str | None = None) -> Finding:
    entry = CATALOGUE[SCHEMA_CODE]
    msg = (f"Fisierul transmis nu este valid. org.xml.sax.SAXParseException; lineNumber: {line or 0}; "
           f"columnNumber: {column or 0}; {text.strip()}")
    return Finding(code=SCHEMA_CODE, field=path, message=msg,
                   explanation_ro=f"{entry[1]} Detaliu: {text.strip()}",
                   explanation_en=f"{entry[2]} Detail: {text.strip()}", severity="error", source="schema")


class _Saxon:
    """The compiled Schematron. SaxonC runs on one dedicated thread: its processor is not shared across threads."""

    def __init__(self, xslt: Path) -> None:
        self.xslt = xslt
        self._pid = os.getpid()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="saxon")
        self._proc: Any = None
        self._exe: Any = None

    def _pool_here(self) -> ThreadPoolExecutor:
        # a forked child inherits neither the Saxon thread nor a usable processor: start both afresh there
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="saxon")
            self._proc = self._exe = None
        return self._pool

    def _ensure(self) -> None:
        if self._exe is None:
            from saxonche import PySaxonProcessor

            self._proc = PySaxonProcessor(license=False)
            self._exe = self._proc.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(self.xslt))

    def _run(self, text: str) -> str:
        self._ensure()
        node = self._proc.parse_xml(xml_text=text)
        out = self._exe.transform_to_string(xdm_node=node)
        if out is None:  # SaxonC reports failures through the executable, not exceptions
            raise RuntimeError(f"Schematron transform failed: {self._exe.error_message}")
        return str(out)

    def warm(self) -> None:
        self._pool_here().submit(self._ensure).result()

    def svrl(self, text: str) -> str:
        return self._pool_here().submit(self._run, text).result()


class Validator:
    """UBL 2.1 XSD + EN 16931/CIUS-RO Schematron + VAT rates. Thread-safe; compile once, reuse (about 1 s to load)."""

    def __init__(self, schematron: Path = SCHEMATRON_XSLT) -> None:
        self._saxon = _Saxon(schematron)
        self._schemas: dict[str, etree.XMLSchema] = {}
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Load the schemas and compile the Schematron now (else on first use)."""
        for name in XSD:
            self._schema(name)
        self._saxon.warm()

    def _schema(self, root_name: str) -> etree.XMLSchema:
        with self._lock:
            schema = self._schemas.get(root_name)
            if schema is None:
                schema = etree.XMLSchema(etree.parse(str(XSD[root_name])))
                self._schemas[root_name] = schema
            return schema

    def validate(self, xml: bytes, *, vat_rates: bool = True) -> Report:
        try:
            tree = etree.ElementTree(etree.fromstring(xml, parser=_PARSER))
        except etree.XMLSyntaxError as e:
            line, col = (e.position if e.position else (e.lineno, 0))
            return Report(None, (_schema_finding(line, col, e.msg or str(e)),))
        root = tree.getroot()
        q = etree.QName(root)
        doc_type = ROOTS.get((q.namespace or "", q.localname))
        if doc_type is None:
            return Report(None, (_schema_finding(
                root.sourceline, 0, f"cvc-elt.1.a: Cannot find the declaration of element '{q.localname}'."),))
        schema = self._schema(q.localname)
        if not schema.validate(tree):
            return Report(doc_type, tuple(_schema_finding(err.line, err.column, err.message, err.path)
                                          for err in list(schema.error_log)[:50]))
        svrl = etree.fromstring(self._saxon.svrl(etree.tostring(root, encoding="unicode")).encode("utf-8"),
                                parser=_PARSER)
        findings: list[Finding] = []
        for el in svrl.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
            text = el.findtext(f"{{{SVRL}}}text") or ""
            findings.append(_schematron_finding(el.get("id"), el.get("flag") or "fatal", el.get("location"), text))
        if vat_rates:
            findings.extend(vat.check(root))
        return Report(doc_type, tuple(findings))

    async def validate_async(self, xml: bytes, *, vat_rates: bool = True) -> Report:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.validate(xml, vat_rates=vat_rates))


_default: Validator | None = None
_default_lock = threading.Lock()


def default_validator() -> Validator:
    """One process-wide validator (the compiled Schematron is the expensive part)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Validator()
        return _default


def validate(xml: bytes) -> Report:
    """Validate with the process-wide validator."""
    return default_validator().validate(xml)
