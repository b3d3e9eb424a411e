"""What a client is told when a submission is refused: each refusal with its stable `code`, its HTTP status and the
message (Romanian too where a person reads it). Nothing here is stored or sent."""
from __future__ import annotations

from datetime import datetime

from spvhub_common.errors import AppError, Conflict, NotFound
from spvhub_einvoice import Report


class QuotaExhaustedError(AppError):
    status, code = 429, "quota_exhausted"


def _mb(size: int) -> int:
    return size // (1024 * 1024)


# -- the document --------------------------------------------------------------------------------------

def xml_too_large(size: int, limit: int) -> AppError:
    return AppError(f"The XML is {size} bytes; ANAF accepts at most {_mb(limit)} MB.",
                    code="xml_too_large", status=413, details={"size": size, "max": limit})


def body_too_large(limit: int) -> AppError:
    return AppError(f"The XML is larger than {_mb(limit)} MB.", code="xml_too_large", status=413)


def xml_missing() -> AppError:
    return AppError("The request has no XML document.", code="xml_malformed", status=400)


def xml_declares_dtd(reason: str) -> AppError:
    return AppError("The XML declares a DTD or entities; ANAF documents never do, so it is refused.",
                    code="xml_malformed", status=400, details={"reason": reason[:300]})


def xml_not_well_formed(reason: str) -> AppError:
    return AppError(f"The XML is not well formed: {reason[:300]}", code="xml_malformed", status=400)


def multipart_without_file() -> AppError:
    return AppError("The multipart body needs the XML in a part named 'file'.", code="xml_malformed", status=400)


def unsupported_media_type(ctype: str) -> AppError:
    return AppError(f"Send the XML as application/xml (or multipart/form-data), not {ctype}.",
                    code="unsupported_media_type", status=415)


def not_ubl_invoice(namespace: str | None, localname: str, ns_invoice: str, ns_credit: str) -> AppError:
    return AppError(f"The root element is {{{namespace}}}{localname}; e-Factura takes a UBL 2.1 Invoice "
                    f"({ns_invoice}) or CreditNote ({ns_credit}).", code="xml_not_ubl_invoice", status=422)


def standard_mismatch(standard: str, document_type: str, actual: str) -> AppError:
    return AppError(f"standard={standard} does not match the document ({document_type}: {actual}).",
                    code="standard_mismatch", status=422)


def seller_mismatch(who: str, xml_cif: str | None, cif: str) -> AppError:
    return AppError(f"The {who} CIF in the XML ({xml_cif or 'missing'}) is not {cif}, the company filing it.",
                    code="seller_mismatch", status=422, details={"xml_cif": xml_cif, "cif": cif})


def invalid_document(report: Report) -> AppError:
    """422 `invoice_invalid`: the rule ids, each finding in ANAF's validare shape, nothing stored, nothing sent."""
    codes = list(dict.fromkeys(report.codes()))
    shown = ", ".join(codes[:10]) + (" …" if len(codes) > 10 else "")
    return AppError(
        f"The document fails the e-Factura rules (UBL 2.1, EN 16931, CIUS-RO {report.cius_ro_version}) checked "
        f"before filing: {shown}. Nothing was sent to ANAF.",
        messages={"ro": f"Documentul nu respectă regulile RO e-Factura (UBL 2.1, EN 16931, CIUS-RO "
                        f"{report.cius_ro_version}) verificate înainte de trimitere: {shown}. Nu s-a trimis nimic "
                        "la ANAF."},
        code="invoice_invalid", status=422,
        details={"stare": "nok", "rules": codes, "errors": [f.as_dict() for f in report.errors[:100]],
                 "warnings": [f.as_dict() for f in report.warnings[:100]],
                 "cius_ro_version": report.cius_ro_version})


# -- the route (upload / uploadb2c, extern) ---------------------------------------------------------------

_REASON_EN = {
    "buyer_cnp": "the buyer is identified by a CNP (a natural person)",
    "buyer_placeholder": "the buyer is identified by 0000000000000 (a natural person whose CNP is not given)",
    "buyer_without_tax_id": "the buyer is in Romania and has no tax id (a natural person)",
    "buyer_tax_id": "the buyer has a Romanian tax id (a business)",
    "buyer_abroad": "the buyer is outside Romania and has no Romanian tax id",
    "buyer_abroad_ro_vat": "the buyer is outside Romania but registered for VAT in Romania (RO VAT id)",
    "self_billing": "the document is self-billed by the buyer (autofactura), a business",
}
_REASON_RO = {
    "buyer_cnp": "cumpărătorul este identificat prin CNP (persoană fizică)",
    "buyer_placeholder": "cumpărătorul este identificat prin 0000000000000 (persoană fizică fără CNP comunicat)",
    "buyer_without_tax_id": "cumpărătorul este în România și nu are cod fiscal (persoană fizică)",
    "buyer_tax_id": "cumpărătorul are cod fiscal românesc (persoană juridică)",
    "buyer_abroad": "cumpărătorul este în afara României și nu are cod fiscal românesc",
    "buyer_abroad_ro_vat": "cumpărătorul este în afara României, dar înregistrat în scopuri de TVA în România (cod RO)",
    "self_billing": "documentul este autofacturat de cumpărător (autofactura), o persoană juridică",
}


def b2c_mismatch(said: bool, reason: str) -> AppError:
    """422: the caller's b2c flag contradicts the document (nothing stored, nothing sent)."""
    route, other = ("uploadb2c", "upload") if said else ("upload", "uploadb2c")
    return AppError(
        f"b2c={'true' if said else 'false'} asks for {route}, but {_REASON_EN[reason]}: the document is filed "
        f"through {other}. Correct the buyer in the XML or leave b2c out. Nothing was stored or sent to ANAF.",
        messages={"ro": f"b2c={'true' if said else 'false'} cere {route}, dar {_REASON_RO[reason]}: documentul se "
                        f"transmite prin {other}. Corectați cumpărătorul în XML sau nu mai trimiteți b2c. Nu s-a "
                        "salvat și nu s-a trimis nimic la ANAF."},
        code="b2c_mismatch", status=422, details={"b2c": said, "route": other, "reason": reason})


def extern_mismatch(said: bool, reason: str) -> AppError:
    """422: the caller's extern flag contradicts the document (nothing stored, nothing sent)."""
    derived = "DA" if not said else "absent"
    return AppError(
        f"extern={'true' if said else 'false'} contradicts the document: {_REASON_EN[reason]}, so extern is "
        f"{derived}. Correct the buyer in the XML or leave extern out. Nothing was stored or sent to ANAF.",
        messages={"ro": f"extern={'true' if said else 'false'} contrazice documentul: {_REASON_RO[reason]}, deci "
                        f"extern este {'DA' if not said else 'absent'}. Corectați cumpărătorul în XML sau nu mai "
                        "trimiteți extern. Nu s-a salvat și nu s-a trimis nimic la ANAF."},
        code="extern_mismatch", status=422, details={"extern": said, "derived_extern": not said, "reason": reason})


def seller_not_this_person(key: str) -> AppError:
    """The document's seller CNP is not the person filing it (the CNP itself is never echoed)."""
    return AppError(f"The seller in the XML is not the natural person {key} filing it.",
                    messages={"ro": f"Vânzătorul din XML nu este persoana fizică {key} care transmite documentul."},
                    code="seller_mismatch", status=422, details={"cif": key})


# -- idempotency ---------------------------------------------------------------------------------------

def invalid_idempotency_key() -> AppError:
    return AppError("Idempotency-Key must be 1-200 printable ASCII characters without spaces.",
                    code="invalid_idempotency_key", status=422)


def idempotency_key_required() -> AppError:
    return AppError("No Idempotency-Key header, and the XML lacks the seller CIF, number (cbc:ID) or issue date "
                    "to derive one from.", code="idempotency_key_required", status=422)


def idempotency_key_reused(key: str, submission_id: str, state: str) -> Conflict:
    return Conflict(
        f"Idempotency key {key!r} was already used for a different document (submission {submission_id}, "
        f"state {state}). Resend the same XML to get that submission, or use a new key for a new document.",
        code="idempotency_key_reused",
        details={"submission_id": submission_id, "idempotency_key": key, "state": state})


# -- who may file --------------------------------------------------------------------------------------

def no_filing_connection(cif: str) -> AppError:
    return AppError(
        f"No ANAF authorization may file in the name of CIF {cif}: authorize ANAF access for the company, "
        "or, for an accounting firm's authorization, ask the client to allow filing on the collaboration.",
        code="no_filing_connection", status=409, details={"cif": cif},
        messages={"ro": f"Nicio autorizare ANAF nu poate transmite documente în numele CIF {cif}: autorizați "
                        "accesul ANAF pentru companie sau, pentru autorizarea unei firme de contabilitate, "
                        "cereți clientului să permită transmiterea în colaborare."})


# -- buyer messages ------------------------------------------------------------------------------------

def not_a_received_invoice() -> AppError:
    return AppError("Buyer messages can only be sent about a received invoice.", code="not_a_received_invoice",
                    status=409)


def no_upload_index() -> AppError:
    return AppError("The invoice has no ANAF upload index to refer to.", code="no_upload_index", status=409)


def empty_message() -> AppError:
    return AppError("The message is empty.", code="validation_error", status=422)


def rasp_quota_exhausted(cif: str, reset: datetime, now: datetime) -> QuotaExhaustedError:
    return QuotaExhaustedError(
        f"ANAF allows 1000 buyer messages (RASP) per day for CUI {cif}; today's are spent. Try again after "
        f"{reset.isoformat()}.", details={"cif": cif, "resets_at": reset.isoformat(),
                                           "retry_after_seconds": max(1, int((reset - now).total_seconds()))})


# -- reading -------------------------------------------------------------------------------------------

def submission_not_found(submission_id: str) -> NotFound:
    return NotFound(f"No submission {submission_id}.", code="submission_not_found")


def invoice_not_found(invoice_id: int) -> NotFound:
    return NotFound(f"No invoice {invoice_id}.", code="invoice_not_found")


def no_anaf_response() -> NotFound:
    return NotFound("ANAF has not answered this upload (yet).", code="no_anaf_response")


def no_error_report() -> NotFound:
    return NotFound("This submission has no error report.", code="no_error_report")
