"""The XML of a submission: what is checked before anything is stored (size, well-formedness without DTDs or
entities, a UBL 2.1 Invoice or CreditNote root) and what is read from it; the buyer message (RASP) document.
Parsing only, no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException
from lxml import etree

from spvhub_efactura.archive import HostileArchive, UnreadableArchive, parse_xml
from spvhub_efactura.submissions import errors
from spvhub_efactura.submissions.routing import Buyer
from spvhub_efactura.ubl import NS_CREDIT, NS_INVOICE, NS_RASP, Document, read

MAX_XML_BYTES = 10 * 1024 * 1024  # ANAF's upload limit


@dataclass(frozen=True)
class Inspected:
    standard: str  # UBL | CN
    document_type: str  # invoice | credit_note
    number: str | None
    issue_date: date | None
    seller_cif: str | None
    buyer_cif: str | None
    buyer: Buyer  # what the route (upload / uploadb2c, extern) is decided from


def inspect_invoice_xml(data: bytes, max_bytes: int = MAX_XML_BYTES) -> Inspected:
    """Size, well-formedness (no DTD, no entities), UBL 2.1 Invoice/CreditNote root; raises a 4xx AppError."""
    if len(data) > max_bytes:
        raise errors.xml_too_large(len(data), max_bytes)
    if not data.strip():
        raise errors.xml_missing()
    try:
        DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        root = parse_xml(data)
    except (DefusedXmlException, HostileArchive) as e:
        raise errors.xml_declares_dtd(str(e)) from e
    except (ParseError, UnreadableArchive, ValueError) as e:
        raise errors.xml_not_well_formed(str(e)) from e
    q = etree.QName(root)
    if (q.namespace, q.localname) not in ((NS_INVOICE, "Invoice"), (NS_CREDIT, "CreditNote")):
        raise errors.not_ubl_invoice(q.namespace, q.localname, NS_INVOICE, NS_CREDIT)
    doc = read(root)
    assert isinstance(doc, Document)
    return Inspected(standard="CN" if doc.document_type == "credit_note" else "UBL",
                     document_type=doc.document_type, number=doc.number, issue_date=doc.issue_date,
                     seller_cif=doc.seller.cif, buyer_cif=doc.buyer.cif,
                     buyer=Buyer(tuple(i for i in (doc.buyer.vat_id, doc.buyer.cif, doc.buyer.registration) if i),
                                 doc.buyer.country))


def rasp_xml(upload_index: str, message: str) -> bytes:
    """The buyer message document (standard RASP)."""
    root = etree.Element(f"{{{NS_RASP}}}header", nsmap={None: NS_RASP})
    root.set("index_incarcare", upload_index)
    root.set("message", message)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
