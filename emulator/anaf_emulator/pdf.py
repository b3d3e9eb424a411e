"""A real PDF rendering of a UBL invoice (what `transformare` returns), made with reportlab."""

from __future__ import annotations

import io

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from .ubl import ReadDocument


def render_pdf(doc: ReadDocument, title: str = "Factura") -> bytes:
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4, invariant=1)
    pdf.setTitle(f"{title} {doc.number or ''}".strip())
    _width, height = A4
    y = height - 60
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(50, y, f"{'Nota de credit' if doc.kind == 'credit_note' else title} nr. {doc.number or '-'}")
    pdf.setFont("Helvetica", 10)
    y -= 22
    pdf.drawString(50, y, f"Data emiterii: {doc.issue_date or '-'}    Moneda: {doc.currency or '-'}")
    y -= 26
    pdf.drawString(50, y, f"Furnizor: {doc.seller_name or '-'}  CIF {doc.seller_cif or '-'}")
    y -= 14
    pdf.drawString(50, y, f"Client: {doc.buyer_name or '-'}  CIF {doc.buyer_cif or '-'}")
    y -= 26
    pdf.setFont("Helvetica-Bold", 10)
    for x, label in ((50, "Denumire"), (300, "Cant."), (360, "Pret"), (430, "Valoare"), (500, "TVA")):
        pdf.drawString(x, y, label)
    pdf.setFont("Helvetica", 9)
    for line in doc.lines:
        y -= 14
        if y < 80:
            pdf.showPage()
            y = height - 60
        pdf.drawString(50, y, line["name"][:45])
        pdf.drawString(300, y, line["quantity"])
        pdf.drawString(360, y, line["price"])
        pdf.drawString(430, y, line["amount"])
        pdf.drawString(500, y, line["vat"])
    y -= 26
    pdf.setFont("Helvetica-Bold", 10)
    pdf.drawString(300, y, f"Total fara TVA: {doc.tax_exclusive}")
    y -= 14
    pdf.drawString(300, y, f"TVA: {doc.tax_amount}")
    y -= 14
    pdf.drawString(300, y, f"Total de plata: {doc.payable}")
    pdf.showPage()
    pdf.save()
    return buf.getvalue()
