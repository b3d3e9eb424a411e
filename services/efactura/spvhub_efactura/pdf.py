"""Local PDF rendering of a stored invoice XML with reportlab (no call to ANAF's transformare service).

Romanian labels; diacritics through DejaVu Sans when the system has it, else reportlab's bundled Vera with
comma-below letters mapped to their cedilla forms (which Vera carries).
"""
from __future__ import annotations

import io
import os
from decimal import Decimal
from functools import lru_cache
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from spvhub_efactura.archive import parse_xml
from spvhub_efactura.ubl import Document, PartyInfo, read

_DEJAVU = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf",
           "/usr/share/fonts/dejavu/DejaVuSans.ttf"]
_CEDILLA = str.maketrans({"ș": "ş", "Ș": "Ş", "ț": "ţ", "Ț": "Ţ"})

TYPE_LABELS = {"380": "Factură", "381": "Factură de stornare (notă de credit)", "384": "Factură corectată",
               "389": "Autofactură", "751": "Factură - informații contabile"}


@lru_cache(maxsize=1)
def _fonts() -> tuple[str, str, bool]:
    """(regular, bold, full_romanian)."""
    for path in _DEJAVU:
        bold = path.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
        if os.path.exists(path):
            pdfmetrics.registerFont(TTFont("SpvSans", path))
            pdfmetrics.registerFont(TTFont("SpvSans-Bold", bold if os.path.exists(bold) else path))
            return "SpvSans", "SpvSans-Bold", True
    import reportlab
    base = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
    pdfmetrics.registerFont(TTFont("SpvSans", os.path.join(base, "Vera.ttf")))
    pdfmetrics.registerFont(TTFont("SpvSans-Bold", os.path.join(base, "VeraBd.ttf")))
    return "SpvSans", "SpvSans-Bold", False


def _txt(value: object) -> str:
    s = "" if value is None else str(value)
    if not _fonts()[2]:
        s = s.translate(_CEDILLA)
    return escape(s)


def _amount(v: Decimal | None, cur: str | None = None) -> str:
    if v is None:
        return "-"
    q = f"{v:,.2f}".replace(",", " ").replace(".", ",")
    return f"{q} {cur}" if cur else q


def _party_block(title: str, p: PartyInfo, st: dict[str, ParagraphStyle]) -> list[Paragraph]:
    lines = [f"<b>{_txt(title)}</b>", f"<b>{_txt(p.name or '-')}</b>"]
    if p.vat_id or p.cif:
        lines.append(_txt(f"CIF: {p.vat_id or p.cif}"))
    if p.registration:
        lines.append(_txt(f"Nr. Reg. Com.: {p.registration}"))
    addr = ", ".join(x for x in (p.street, p.city, p.county, p.postal_zone, p.country) if x)
    if addr:
        lines.append(_txt(f"Adresă: {addr}"))
    return [Paragraph("<br/>".join(lines), st["n"])]


def render_pdf(xml: bytes, *, message_id: str | None = None, listed_at: str | None = None) -> bytes:
    """A readable A4 PDF of an Invoice or CreditNote: parties, lines, VAT breakdown, totals."""
    doc = read(parse_xml(xml))
    if not isinstance(doc, Document):
        raise ValueError("only invoices and credit notes are rendered")
    regular, bold, _ = _fonts()
    st = {"n": ParagraphStyle("n", fontName=regular, fontSize=8.5, leading=11),
          "h": ParagraphStyle("h", fontName=bold, fontSize=15, leading=19),
          "r": ParagraphStyle("r", fontName=regular, fontSize=8.5, leading=11, alignment=TA_RIGHT),
          "s": ParagraphStyle("s", fontName=regular, fontSize=7, leading=9, textColor=colors.grey)}
    cur = doc.currency or ""
    buf = io.BytesIO()
    pdf = SimpleDocTemplate(buf, pagesize=A4, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=14 * mm,
                            bottomMargin=14 * mm, title=f"{doc.number or ''}", author="spvhub")
    title = TYPE_LABELS.get(doc.type_code or "", "Notă de credit" if doc.document_type == "credit_note"
                            else "Factură")
    story: list[object] = [Paragraph(_txt(f"{title} nr. {doc.number or '-'}"), st["h"]), Spacer(1, 3 * mm)]
    meta = [f"Data emiterii: {doc.issue_date or '-'}", f"Data scadenței: {doc.due_date or '-'}",
            f"Moneda: {cur or '-'}"]
    if doc.preceding_number:
        meta.append(f"Factura de referință: {doc.preceding_number}")
    if doc.self_billing:
        meta.append("Autofacturare")
    story.append(Paragraph(_txt(" · ".join(meta)), st["n"]))
    story.append(Spacer(1, 4 * mm))
    parties = Table([[_party_block("Furnizor", doc.seller, st), _party_block("Cumpărător", doc.buyer, st)]],
                    colWidths=[91 * mm, 91 * mm])
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                 ("BOX", (0, 0), (0, 0), 0.5, colors.grey), ("BOX", (1, 0), (1, 0), 0.5, colors.grey),
                                 ("LEFTPADDING", (0, 0), (-1, -1), 5), ("TOPPADDING", (0, 0), (-1, -1), 4)]))
    story += [parties, Spacer(1, 5 * mm)]
    head = ["Nr.", "Denumire", "U.M.", "Cantitate", "Preț unitar", "Cota TVA", "Valoare"]
    rows: list[list[object]] = [[Paragraph(f"<b>{_txt(h)}</b>", st["n"]) for h in head]]
    for ln in doc.lines:
        vat = f"{ln.vat_category or ''} {ln.vat_percent if ln.vat_percent is not None else ''}%".strip()
        rows.append([Paragraph(_txt(ln.id), st["n"]), Paragraph(_txt(ln.name), st["n"]),
                     Paragraph(_txt(ln.unit), st["n"]), Paragraph(_txt(ln.quantity), st["r"]),
                     Paragraph(_amount(ln.price), st["r"]), Paragraph(_txt(vat), st["r"]),
                     Paragraph(_amount(ln.net), st["r"])])
    lines = Table(rows, colWidths=[10 * mm, 70 * mm, 13 * mm, 20 * mm, 25 * mm, 18 * mm, 26 * mm], repeatRows=1)
    lines.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [lines, Spacer(1, 5 * mm)]
    vat_rows: list[list[object]] = [[Paragraph(f"<b>{_txt(h)}</b>", st["n"]) for h in
                                     ("Categorie TVA", "Cota", "Bază impozabilă", "Valoare TVA")]]
    for v in doc.vat_breakdown:
        vat_rows.append([Paragraph(_txt(v.category), st["n"]), Paragraph(_txt(f"{v.percent}%"), st["r"]),
                         Paragraph(_amount(v.taxable), st["r"]), Paragraph(_amount(v.amount), st["r"])])
    vat_table = Table(vat_rows, colWidths=[30 * mm, 18 * mm, 32 * mm, 30 * mm])
    vat_table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                                   ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]))
    totals = [("Total fără TVA", doc.tax_exclusive if doc.tax_exclusive is not None else doc.line_extension),
              ("Total TVA", doc.vat_amount)]
    if doc.vat_amount_accounting is not None and doc.tax_currency:
        totals.append((f"Total TVA ({doc.tax_currency})", doc.vat_amount_accounting))
    totals += [("Total cu TVA", doc.tax_inclusive)]
    if doc.prepaid:
        totals.append(("Sumă plătită în avans", doc.prepaid))
    totals.append(("Total de plată", doc.payable))
    tot_rows = [[Paragraph(_txt(k), st["n"]), Paragraph(f"<b>{_amount(v, cur)}</b>", st["r"])] for k, v in totals]
    tot_table = Table(tot_rows, colWidths=[38 * mm, 34 * mm])
    tot_table.setStyle(TableStyle([("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black)]))
    story.append(Table([[vat_table, tot_table]], colWidths=[112 * mm, 72 * mm],
                       style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")])))
    if doc.payment_iban:
        story += [Spacer(1, 3 * mm), Paragraph(_txt(f"Cont plată (IBAN): {doc.payment_iban}"), st["n"])]
    for note in doc.notes[:5]:
        story.append(Paragraph(_txt(f"Notă: {note}"), st["n"]))
    foot = "Document generat local din XML-ul semnat descărcat din SPV (RO e-Factura)"
    if message_id:
        foot += f", id descărcare {message_id}"
    if listed_at:
        foot += f", data încărcării {listed_at}"
    story += [Spacer(1, 6 * mm), Paragraph(_txt(foot + "."), st["s"])]
    pdf.build(story)
    return buf.getvalue()
