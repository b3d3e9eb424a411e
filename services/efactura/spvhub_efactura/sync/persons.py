"""Natural persons identified by CNP in the inbox sync.

A CNP-identified company is known here by its person key (`spvhub_common.pii`): its ledger rows, invoice rows,
blobs, events and logs carry the key. The clear CNP is needed only where ANAF needs it (`cif=` of the lists), so
it is unsealed from the company's sync state right before the call and goes nowhere else. What ANAF sends back
names the person by CNP (a list item's `cif`, `detalii`, the document's parties, an error's text): everything read
from ANAF passes through here, turning a CNP into its key, before the sync records, publishes or logs it."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, TypeVar

from spvhub_common.anaf.errors import AnafError
from spvhub_common.pii import PersonIds

from spvhub_efactura import ubl

# 13 digits not inside a longer number: what a CNP looks like in ANAF's texts (`cif_emitent=...`, `CIF=...`)
_THIRTEEN = re.compile(r"(?<!\d)\d{13}(?!\d)")
ErrorT = TypeVar("ErrorT", bound=AnafError)
DocT = TypeVar("DocT")


def keyed_id(ids: PersonIds, value: str | None) -> str | None:
    """An id read from ANAF: a valid CNP becomes its person key, anything else stays (the B2C placeholder of 13
    zeros included: it names nobody)."""
    if not value:
        return value
    text = "".join(value.split())
    if not text.strip("0"):
        return value
    keyed = ids.key_of_anaf_id(text)
    return keyed if keyed != text else value


def keyed_text(ids: PersonIds, text: str | None) -> str | None:
    """A text from ANAF with every valid CNP in it replaced by its person key."""
    if not text or not _THIRTEEN.search(text):
        return text
    return _THIRTEEN.sub(lambda m: keyed_id(ids, m.group()) or m.group(), text)


def keyed_item(ids: PersonIds, item: dict[str, Any]) -> dict[str, Any]:
    """A list item as the ledger records it: its `cif` and `detalii` name the person by key."""
    if not any(_THIRTEEN.search(str(v)) for v in item.values() if isinstance(v, str)):
        return item
    out = dict(item)
    if isinstance(out.get("cif"), str):
        out["cif"] = keyed_id(ids, out["cif"])
    for name in ("detalii",):
        if isinstance(out.get(name), str):
            out[name] = keyed_text(ids, out[name])
    return out


def _party(ids: PersonIds, p: ubl.PartyInfo) -> ubl.PartyInfo:
    return dataclasses.replace(p, cif=keyed_id(ids, p.cif), vat_id=keyed_id(ids, p.vat_id),
                               registration=keyed_text(ids, p.registration))


def keyed_document(ids: PersonIds, doc: DocT) -> DocT:
    """A parsed document whose party ids (and an error report's texts) name persons by key: its invoice row and
    its event never carry a CNP. The archived ZIP keeps the document as ANAF signed it."""
    if isinstance(doc, ubl.Document):
        return dataclasses.replace(doc, seller=_party(ids, doc.seller), buyer=_party(ids, doc.buyer),
                                   notes=[keyed_text(ids, n) or "" for n in doc.notes])
    if isinstance(doc, ubl.ErrorReport):
        return dataclasses.replace(doc, issuer_cif=keyed_id(ids, doc.issuer_cif),
                                   errors=[keyed_text(ids, e) or "" for e in doc.errors])
    return doc


def keyed_error(ids: PersonIds, err: ErrorT) -> ErrorT:
    """ANAF's error with the CNP it may quote (`Nu aveti drept in SPV pentru CIF=...`, a limit's scope) replaced by
    the key, in place: the same exception goes on (its type decides quota, retry or pause) into `last_error`, the
    quota ledger, events and logs."""
    err.text = keyed_text(ids, err.text) or ""
    err.args = tuple(keyed_text(ids, a) if isinstance(a, str) else a for a in err.args)
    for name in ("cif", "scope", "key", "limit_scope"):
        value = getattr(err, name, None)
        if isinstance(value, str):
            try:
                setattr(err, name, keyed_text(ids, value))
            except AttributeError:  # a read-only property: nothing stored to change
                pass
    return err
