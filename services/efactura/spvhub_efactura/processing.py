"""From a downloaded ZIP to what the archive records: safety checks, parse, signature check (CPU-bound; run it
in a worker thread). Never raises: every outcome is a `Processed` value."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from spvhub_efactura.archive import (
    HostileArchive,
    Limits,
    SignatureCheck,
    UnreadableArchive,
    parse_xml,
    unpack,
    verify_signature,
)
from spvhub_efactura.ubl import NS, BuyerMessage, Document, ErrorReport, NotUbl, read


@dataclass
class Processed:
    status: str  # ok | unparseable | hostile
    error: str | None = None
    content_name: str | None = None
    content: bytes | None = None
    parsed: Document | ErrorReport | BuyerMessage | None = None
    signature: SignatureCheck | None = None
    problems: list[str] = field(default_factory=list)  # fields present in the XML but unreadable (left empty)


def process_zip(data: bytes, limits: Limits, trusted_sha256: list[str] | None = None,
                verify: bool = True, keep_content: bool = True, at: datetime | None = None) -> Processed:
    """`keep_content=False`: leave the XML and the invoice lines out of the result (the sync archives the ZIP, it
    needs only the header fields; this keeps the work, and what crosses back from a worker process, small).
    `at`: the message's creation (`data_creare`), when the signer's certificate must have been valid."""
    try:
        unpacked = unpack(data, limits)
    except HostileArchive as e:
        return Processed("hostile", str(e)[:500])
    except UnreadableArchive as e:
        return Processed("unparseable", str(e)[:500])
    except Exception as e:  # noqa: BLE001 - a malformed archive must never crash the sync
        return Processed("unparseable", f"{type(e).__name__}: {str(e)[:400]}")
    out = Processed("ok", content_name=unpacked.content_name, content=unpacked.content if keep_content else None)
    root = None
    try:
        root = parse_xml(unpacked.content)
        out.parsed = read(root, lines=keep_content)
        if isinstance(out.parsed, Document):
            out.problems = unreadable_fields(root, out.parsed)
    except HostileArchive as e:
        out.status, out.error = "hostile", str(e)[:500]
    except (UnreadableArchive, NotUbl) as e:
        out.status, out.error = "unparseable", str(e)[:500]
    except Exception as e:  # noqa: BLE001
        out.status, out.error = "unparseable", f"{type(e).__name__}: {str(e)[:400]}"
    if verify:
        out.signature = verify_signature(unpacked.content, unpacked.signature, trusted_sha256, content_root=root,
                                         at=at)
    return out


# Header fields the sync stores in columns, where the reader keeps None for text it cannot read: text present
# there but unread is reported, so an empty column is never silent.
_DATES = (("issue_date", ("cbc:IssueDate",)), ("due_date", ("cbc:DueDate", "cac:PaymentMeans/cbc:PaymentDueDate")))
_AMOUNTS = (("line_extension", "cac:LegalMonetaryTotal/cbc:LineExtensionAmount"),
            ("tax_exclusive", "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount"),
            ("tax_inclusive", "cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount"),
            ("payable", "cac:LegalMonetaryTotal/cbc:PayableAmount"))


def unreadable_fields(root: Any, doc: Document) -> list[str]:
    """`field: 'text'` for each stored header field whose XML text is there but was not read as its type."""
    out: list[str] = []
    for name, paths in _DATES:
        if getattr(doc, name) is None:
            for path in paths:
                text = (root.findtext(path, namespaces=NS) or "").strip()
                if text:
                    out.append(f"{name}: {text[:40]!r} is not a date")
                    break
    for name, path in _AMOUNTS:
        text = (root.findtext(path, namespaces=NS) or "").strip()
        if getattr(doc, name) is None and text:
            out.append(f"{name}: {text[:40]!r} is not a number")
    if doc.vat_amount is None:
        for el in root.findall("cac:TaxTotal/cbc:TaxAmount", NS):
            text = (el.text or "").strip()
            try:
                Decimal(text.replace(" ", ""))
            except InvalidOperation:
                if text:
                    out.append(f"vat_amount: {text[:40]!r} is not a number")
                    break
    return out


def process_many(datas: list[bytes], limits: Limits, trusted_sha256: list[str] | None = None,
                 verify: bool = True, keep_content: bool = True,
                 ats: list[datetime | None] | None = None) -> list[Processed]:
    """`process_zip` for each ZIP, in order: one worker round trip for a batch (never raises either). `ats`: each
    message's creation, for the signer certificate's validity."""
    return [process_zip(d, limits, trusted_sha256, verify, keep_content, ats[i] if ats else None)
            for i, d in enumerate(datas)]
