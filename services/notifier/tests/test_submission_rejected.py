"""`efactura.invoice-rejected` tells the person who submitted the invoice (in-app and e-mail, in their
language), with each error explained; once, even when redelivered."""
from __future__ import annotations

from ntfkit import Stack
from spvhub_common.events.auth import UserRegistered
from spvhub_common.events.efactura import InvoiceRejected
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered

CIF = "22222220"
ERRORS = [{"code": "BR-RO-110", "field": "BT-39", "message": "E: validari globale SCHEMATRON eroare: [BR-RO-110]-...",
           "explanation_ro": "Județul vânzătorului trebuie scris cu codul ISO 3166-2:RO.",
           "explanation_en": "The seller's county must use the ISO 3166-2:RO code."},
          {"code": "X-UNKNOWN", "field": None, "message": "E: ceva nou", "explanation_ro": "Mesaj ANAF: ceva nou",
           "explanation_en": "ANAF's message (not in our catalogue, in Romanian): ceva nou"}]


async def test_rejection_reaches_the_sender_once_in_their_language(stack: Stack) -> None:
    st = stack
    for ev in (CompanyRegistered(cif=CIF, name="Firma X SRL"),
               UserRegistered(user_id="ana", email="ana@firmax.ro", name="Ana Popescu"),
               UserRegistered(user_id="dan", email="dan@firmax.ro", name="Dan Ionescu", locale="en")):
        await st.feed(ev, consumer="notifier.read-models")
    for user in ("ana", "dan"):
        await st.feed(AccessChanged(cif=CIF, user_id=user, role="owner", granted=True),
                      consumer="notifier.access-read-model")
    env = await st.feed(InvoiceRejected(cif=CIF, submission_id="s1", stage="processing", upload_index="5001",
                                        number="FX-7", error_codes=["BR-RO-110", "X-UNKNOWN"], errors=ERRORS,
                                        submitted_by="ana"))
    await st.feed(env)  # redelivery
    await st.feed(env, skip_inbox=True)  # replay past the inbox claim
    await st.feed(InvoiceRejected(cif=CIF, submission_id="s2", stage="validation", number="FX-8",
                                  errors=ERRORS[:1], submitted_by="dan"))
    await st.send_all()

    ana = await st.inbox_rows("ana")
    assert [(r["kind"], r["params"]["submission_id"]) for r in ana] == [("invoice_rejected", "s1")]
    dan = await st.inbox_rows("dan")
    assert [(r["kind"], r["params"]["submission_id"]) for r in dan] == [("invoice_rejected", "s2")]
    (ro,) = st.mails("ana@firmax.ro")
    assert "FX-7" in ro["subject"] and "respinsă" in ro["subject"]
    assert "[BR-RO-110] BT-39: Județul vânzătorului" in ro["text"] and "Mesaj ANAF: ceva nou" in ro["text"]
    assert "/companies/22222220/submissions/s1" in ro["text"]
    (en,) = st.mails("dan@firmax.ro")
    assert "rejected" in en["subject"] and "[BR-RO-110] BT-39: The seller's county" in en["text"]
    assert "validation before filing" in en["text"]
