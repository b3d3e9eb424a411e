"""Local PDF rendering of a stored invoice XML with reportlab (no call to ANAF's transformare service).

What an accountant checks is printed as the XML has it and reconciled: every amount in the currency its
`currencyID` names (the RON VAT of a EUR invoice as RON, beside the EUR VAT), document and line allowances and
charges, unit prices with the XML's precision and base quantity, every preceding invoice; numbers and dates in
Romanian format, times in Europe/Bucharest, unit codes and VAT categories in words. Text wraps on spaces only: a
token too wide for its column is shrunk, and past a minimum size ellipsized with a visible note.

Diacritics through DejaVu Sans when the system has it, else reportlab's bundled Vera with comma-below letters
mapped to their cedilla forms (which Vera carries).
"""
from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from spvhub_common.clock import BUCHAREST

from spvhub_efactura.pdfmodel import AllowanceCharge, Line, Num, Party, PdfDocument, TaxTotal, read_document

_DEJAVU = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf",
           "/usr/share/fonts/dejavu/DejaVuSans.ttf"]
_CEDILLA = str.maketrans({"ș": "ş", "Ș": "Ş", "ț": "ţ", "Ț": "Ţ"})

TYPE_LABELS = {"380": "Factură", "381": "Factură de stornare (notă de credit)", "384": "Factură corectată",
               "389": "Autofactură", "751": "Factură - informații contabile"}

# UN/ECE Recommendation 20 (and 21) codes seen on Romanian invoices; anything else is printed as the code.
UNITS = {
    "H87": "buc", "C62": "buc", "EA": "buc", "XPP": "buc", "NAR": "buc", "NMP": "pachete", "SET": "set",
    "PR": "pereche", "XPR": "pereche", "KGM": "kg", "GRM": "g", "TNE": "t", "MGM": "mg", "LTR": "l", "MLT": "ml",
    "MTQ": "m³", "MTK": "m²", "MTR": "m", "KMT": "km", "CMT": "cm", "MMT": "mm", "HUR": "oră", "MIN": "min",
    "SEC": "s", "DAY": "zi", "WEE": "săptămână", "MON": "lună", "ANN": "an", "KWH": "kWh", "MWH": "MWh",
    "KWT": "kW", "LS": "forfetar", "E48": "serviciu", "ACT": "activitate", "XBX": "cutie", "XPK": "pachet",
    "XPA": "pachet", "XPX": "palet", "XBO": "sticlă", "XRO": "rolă", "XSA": "sac", "XCT": "carton",
    "XBG": "pungă", "XCA": "cutie", "XCN": "container", "KMK": "km²", "TKM": "t·km", "GLL": "galon",
}
VAT_CATEGORIES = {"S": "cota standard", "AE": "taxare inversă", "E": "scutit", "Z": "cota zero",
                  "O": "neimpozabil", "K": "livrare intracomunitară", "G": "export", "L": "IGIC (Canare)",
                  "M": "IPSI (Ceuta și Melilla)", "B": "regim special"}
PAYMENT_MEANS = {"1": "nespecificat", "10": "numerar", "20": "cec", "30": "transfer bancar",
                 "31": "transfer bancar", "42": "plată în cont bancar", "48": "card bancar", "49": "debit direct",
                 "57": "acord de plată", "58": "transfer SEPA", "59": "debit direct SEPA", "68": "plată online",
                 "97": "compensare", "ZZZ": "alt mijloc de plată"}
COUNTIES = {"AB": "Alba", "AR": "Arad", "AG": "Argeș", "BC": "Bacău", "BH": "Bihor", "BN": "Bistrița-Năsăud",
            "BT": "Botoșani", "BV": "Brașov", "BR": "Brăila", "BZ": "Buzău", "CS": "Caraș-Severin",
            "CL": "Călărași", "CJ": "Cluj", "CT": "Constanța", "CV": "Covasna", "DB": "Dâmbovița", "DJ": "Dolj",
            "GL": "Galați", "GR": "Giurgiu", "GJ": "Gorj", "HR": "Harghita", "HD": "Hunedoara", "IL": "Ialomița",
            "IS": "Iași", "IF": "Ilfov", "MM": "Maramureș", "MH": "Mehedinți", "MS": "Mureș", "NT": "Neamț",
            "OT": "Olt", "PH": "Prahova", "SM": "Satu Mare", "SJ": "Sălaj", "SB": "Sibiu", "SV": "Suceava",
            "TR": "Teleorman", "TM": "Timiș", "TL": "Tulcea", "VS": "Vaslui", "VL": "Vâlcea", "VN": "Vrancea",
            "B": "București"}
COUNTRIES = {"RO": "România", "DE": "Germania", "FR": "Franța", "IT": "Italia", "ES": "Spania", "AT": "Austria",
             "HU": "Ungaria", "BG": "Bulgaria", "MD": "Republica Moldova", "NL": "Țările de Jos", "BE": "Belgia",
             "PL": "Polonia", "CZ": "Cehia", "SK": "Slovacia", "SE": "Suedia", "DK": "Danemarca",
             "FI": "Finlanda", "GB": "Regatul Unit", "US": "Statele Unite", "CH": "Elveția", "GR": "Grecia",
             "IE": "Irlanda", "PT": "Portugalia", "LU": "Luxemburg", "NO": "Norvegia", "TR": "Turcia"}

_PAGE_W = 182 * mm  # A4 less 14 mm margins
# The lines shown stop at pdfmodel.MAX_LINES or when their text passes this many characters (about 40 dense
# pages), whichever comes first: the rendering time follows the text drawn.
LINES_TEXT_BUDGET = 80_000
_CELL_PAD = 12       # reportlab's default 6 pt left + 6 pt right in a table cell
_MIN_SIZE = 5.5
_SWAP = str.maketrans(",.", ".,")
_CENT = Decimal("0.01")
_BREAKS = re.compile(r"[ \t\r\n]+").split  # where a Paragraph may break a line (not at a no-break space)


# ------------------------------------------------------------------ Romanian formats

def ro_decimal(value: Decimal, min_dp: int = 0) -> str:
    """1234567.891 -> 1.234.567,891: decimal comma, thousands dot, at least `min_dp` decimals, never fewer
    than the value carries."""
    exp = value.as_tuple().exponent
    dp = max(min_dp, -exp if isinstance(exp, int) and exp < 0 else 0)
    return f"{value:,.{dp}f}".translate(_SWAP)


def fmt_amount(n: Num | None, currency: str | None = None, *, sign: int = 1, column: str | None = None) -> str:
    """The amount with its own currencyID (else `currency`); in a column headed with `column`, the currency is
    printed only when it differs from it."""
    if n is None or (n.value is None and not n.raw):
        return "-"
    cur = n.currency or currency
    text = n.raw if n.value is None else ro_decimal(n.value * sign, 2)
    return f"{text}\u00a0{cur}" if cur and cur != column else text  # no-break space: never "RON" alone


def fmt_price(n: Num | None) -> str:
    """A unit price with every decimal the XML gives (7,6453), at least two."""
    if n is None:
        return "-"
    return n.raw if n.value is None else ro_decimal(n.value, 2)


def fmt_quantity(n: Num | None) -> str:
    if n is None:
        return "-"
    return n.raw if n.value is None else ro_decimal(_plain(n.value))


def fmt_percent(n: Num | None) -> str:
    if n is None:
        return ""
    return f"{n.raw if n.value is None else ro_decimal(_plain(n.value))}%"


def _plain(v: Decimal) -> Decimal:
    """Without trailing zeros (10.000 -> 10, 2.50 -> 2.5)."""
    return v.normalize() if v else Decimal(0)


def fmt_date(text: str | None) -> str:
    if not text:
        return "-"
    try:
        return date.fromisoformat(text[:10]).strftime("%d.%m.%Y")
    except ValueError:
        return text


def fmt_time(moment: datetime | str | None) -> str | None:
    """Romania's wall clock; a naive datetime is taken as UTC (what the database returns)."""
    if moment is None or isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BUCHAREST).strftime("%d.%m.%Y %H:%M")


def unit_words(code: str | None) -> str:
    if not code:
        return ""
    return UNITS.get(code.upper(), code)


def vat_words(category: str | None, percent: Num | None = None) -> str:
    """"21% cota standard", "0% taxare inversă"; an unknown category as its code."""
    words = VAT_CATEGORIES.get(category.upper(), category) if category else None
    return " ".join(x for x in (fmt_percent(percent), words) if x)


# ------------------------------------------------------------------ fonts and fitted paragraphs

@lru_cache(maxsize=1)
def _fonts() -> tuple[str, str, bool]:
    """(regular, bold, full_romanian)."""
    for path in _DEJAVU:
        bold = path.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
        if os.path.exists(path):
            pdfmetrics.registerFont(TTFont("SpvSans", path))
            pdfmetrics.registerFont(TTFont("SpvSans-Bold", bold if os.path.exists(bold) else path))
            break
    else:
        import reportlab
        base = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
        pdfmetrics.registerFont(TTFont("SpvSans", os.path.join(base, "Vera.ttf")))
        pdfmetrics.registerFont(TTFont("SpvSans-Bold", os.path.join(base, "VeraBd.ttf")))
        path = ""
    pdfmetrics.registerFontFamily("SpvSans", normal="SpvSans", bold="SpvSans-Bold", italic="SpvSans",
                                  boldItalic="SpvSans-Bold")
    return "SpvSans", "SpvSans-Bold", bool(path)


def _clean(text: str) -> str:
    return text if _fonts()[2] else text.translate(_CEDILLA)


@lru_cache(maxsize=64)
def _style(kind: str, size: float) -> ParagraphStyle:
    regular, bold, _ = _fonts()
    font = bold if kind in ("b", "rb", "h", "th", "thr") else regular
    color = colors.HexColor("#555555") if kind == "s" else colors.black
    # splitLongWords=0: a number or code is never broken across lines; _fit makes it fit instead
    return ParagraphStyle(f"{kind}{size}", fontName=font, fontSize=size, leading=round(size * 1.25, 2),
                          alignment=TA_RIGHT if kind in ("r", "rb", "thr") else 0, textColor=color, splitLongWords=0)


_SIZES = {"n": 8.5, "b": 8.5, "r": 8.5, "rb": 8.5, "s": 7.0, "h": 15.0, "th": 7.5, "thr": 7.5}


@dataclass
class _Ctx:
    ellipsized: bool = False
    notes: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    shown_lines: int = 0


class _OneLine(Flowable):
    """Text that fits on one line, drawn directly: a Paragraph's markup parsing is most of the time of a long
    lines table, and most cells (numbers, units, codes) need no wrapping."""

    def __init__(self, text: str, style: ParagraphStyle) -> None:
        super().__init__()
        self.text, self.style = text, style

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        self.width = avail_width
        return avail_width, self.style.leading

    def draw(self) -> None:
        st = self.style
        c = self.canv
        c.setFont(st.fontName, st.fontSize)
        c.setFillColor(st.textColor)
        y = st.leading - st.fontSize  # where a Paragraph puts its first baseline
        if st.alignment == TA_RIGHT:
            c.drawRightString(self.width, y, self.text)
        else:
            c.drawString(0, y, self.text)


def _fit(ctx: _Ctx, text: str, kind: str = "n", width: float = _PAGE_W, pad: float = _CELL_PAD) -> Flowable:
    """A paragraph wrapping on spaces only; the font shrinks until the widest token fits `width`, and below the
    minimum size the token is cut with an ellipsis."""
    size = _SIZES[kind]
    style = _style(kind, size)
    text = _clean(text)
    avail = width - pad
    if len(text) < 120 and pdfmetrics.stringWidth(text, style.fontName, size) <= avail:
        return _OneLine(text, style)
    tokens = _BREAKS(text)
    widest = max((pdfmetrics.stringWidth(t, style.fontName, size) for t in tokens), default=0.0)
    if widest > avail:
        size = max(_MIN_SIZE, math.floor(size * avail / widest * 4) / 4)
        style = _style(kind, size)
        if widest * size / _SIZES[kind] > avail:
            tokens = [_ellipsize(t, style.fontName, size, avail) for t in tokens]
            text = " ".join(tokens)
            ctx.ellipsized = True
    return Paragraph(escape(text), style)


def _ellipsize(token: str, font: str, size: float, avail: float) -> str:
    if pdfmetrics.stringWidth(token, font, size) <= avail:
        return token
    lo, hi = 0, len(token)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if pdfmetrics.stringWidth(token[:mid] + "…", font, size) <= avail:
            lo = mid
        else:
            hi = mid - 1
    return token[:lo] + "…"


# ------------------------------------------------------------------ reconciliation

def _v(n: Num | None) -> Decimal | None:
    return n.value if n is not None else None


def _sum_ac(acs: list[AllowanceCharge], charge: bool) -> Decimal | None:
    total = Decimal(0)
    for ac in acs:
        if ac.charge == charge:
            if ac.amount.value is None:
                return None
            total += ac.amount.value
    return total


def reconcile(d: PdfDocument) -> list[str]:
    """The EN 16931 sums (BR-CO-10..16) that tie the lines to the amount payable; each mismatch as a sentence."""
    out: list[str] = []
    cur = d.currency or ""

    def a(v: Decimal) -> str:
        return f"{ro_decimal(v, 2)} {cur}".strip()

    main = d.vat_document
    if main is not None and main.amount is not None and main.amount.currency not in (None, d.currency):
        out.append(f"TVA este exprimată doar în {main.amount.currency}, nu în moneda facturii ({cur}).")
        main = None  # sums across two currencies would be meaningless
    named = [("Total valoare linii", d.line_extension, True), ("Total fără TVA", d.tax_exclusive, True),
             ("Total TVA", main.amount if main is not None else None, False),
             ("Total cu TVA", d.tax_inclusive, True), ("Total de plată", d.payable, True),
             ("Reduceri", d.allowance_total, False), ("Taxe suplimentare", d.charge_total, False),
             ("Plătit în avans", d.prepaid, False), ("Rotunjire", d.rounding, False)]
    missing = [label for label, n, required in named if required and n is None]
    if missing:
        out.append("Lipsesc din XML: " + ", ".join(missing) + ".")
    for label, n, _ in named:
        if n is not None and n.value is None:
            out.append(f"{label}: „{n.raw}” nu este o sumă care poate fi verificată.")
    if d.lines_total is None and d.line_count:
        out.append("Valoarea unor linii nu este un număr: suma liniilor nu poate fi verificată.")
    line_ext = _v(d.line_extension)
    if d.lines_total is not None and line_ext is not None and d.lines_total != line_ext:
        out.append(f"Suma valorilor liniilor ({a(d.lines_total)}) diferă de totalul liniilor din factură "
                   f"({a(line_ext)}).")
    allow = _v(d.allowance_total) or Decimal(0)
    charge = _v(d.charge_total) or Decimal(0)
    for is_charge, declared, label in ((False, allow, "reducerilor"), (True, charge, "taxelor suplimentare")):
        s = _sum_ac(d.allowances_charges, is_charge)
        if s is not None and s != declared:
            out.append(f"Suma {label} la nivel de document ({a(s)}) diferă de totalul declarat ({a(declared)}).")
    excl = _v(d.tax_exclusive)
    if line_ext is not None and excl is not None and line_ext - allow + charge != excl:
        out.append(f"Totalul liniilor {a(line_ext)} - reduceri {a(allow)} + taxe {a(charge)} = "
                   f"{a(line_ext - allow + charge)}, diferit de totalul fără TVA {a(excl)}.")
    vat = _v(main.amount) if main is not None else None
    incl = _v(d.tax_inclusive)
    if excl is not None and vat is not None and incl is not None and excl + vat != incl:
        out.append(f"Total fără TVA {a(excl)} + TVA {a(vat)} = {a(excl + vat)}, diferit de totalul cu TVA "
                   f"{a(incl)}.")
    if main is not None and main.subtotals and vat is not None:
        parts = [_v(s.amount) for s in main.subtotals]
        by_rate = sum((p for p in parts if p is not None), Decimal(0))
        if None not in parts and by_rate != vat:
            out.append(f"Suma TVA pe cote ({a(by_rate)}) diferă de totalul TVA ({a(vat)}).")
    payable = _v(d.payable)
    if incl is not None and payable is not None:
        expected = incl - (_v(d.prepaid) or 0) + (_v(d.rounding) or 0)
        if expected != payable:
            out.append(f"Total cu TVA - avans + rotunjire = {a(expected)}, diferit de totalul de plată "
                       f"{a(payable)}.")
    return out


def _line_check(ln: Line) -> tuple[str | None, bool]:
    """How quantity x price (per base quantity) and the line's allowances/charges make the line amount; the
    text is shown when there is something to explain, and flagged when it does not tie."""
    qty, price, net = _v(ln.quantity), _v(ln.price), _v(ln.net)
    base = _v(ln.base_quantity) or Decimal(1)
    if qty is None or price is None or net is None or base == 0:
        return None, False
    unit = unit_words(ln.unit)
    gross = (qty * price / base).quantize(_CENT, rounding=ROUND_HALF_UP)
    text = f"{fmt_quantity(ln.quantity)} {unit} × {fmt_price(ln.price)}".replace("  ", " ")
    if base != 1:
        text += f" / {fmt_quantity(ln.base_quantity)} {unit_words(ln.base_unit or ln.unit)}"
    text += f" = {ro_decimal(gross, 2)}"
    result = gross
    for ac in ln.allowances_charges:
        if ac.amount.value is None:
            return None, False
        word = "taxă" if ac.charge else "reducere"
        pct = f" {fmt_percent(ac.percent)}" if ac.percent is not None else ""
        why = " ".join(x for x in (_short(ac.reason), f"cod {_short(ac.reason_code)}" if ac.reason_code
                                   else None) if x)
        why = f" ({why})" if why else ""
        text += f" {'+' if ac.charge else '-'} {word}{pct}{why} {ro_decimal(ac.amount.value, 2)}"
        result += ac.amount.value if ac.charge else -ac.amount.value
    ties = abs(result - net) <= _CENT
    if ln.allowances_charges:
        text += f" = {ro_decimal(result, 2)}"
    if not ties:
        text += f"; Atenție: diferit de valoarea liniei {ro_decimal(net, 2)}"
    explain = bool(ln.allowances_charges) or base != 1 or not ties
    return (text if explain else None), not ties


# ------------------------------------------------------------------ blocks

def _party_lines(p: Party) -> list[str]:
    lines: list[str] = []
    if p.trade_name:
        lines.append(p.trade_name)
    foreign = bool(p.country) and (p.country or "").upper() != "RO"
    if p.vat_id:
        lines.append(f"{'Cod TVA' if foreign else 'CIF'}: {p.vat_id}")
    if p.tax_id and p.tax_id != p.vat_id:
        lines.append(f"{'Identificator fiscal' if p.vat_id else 'CIF'}: {p.tax_id}")
    if not p.vat_id and not p.tax_id and p.legal_id:
        lines.append(f"CIF: {p.legal_id}")
    if p.registration:
        lines.append(f"{'Nr. înregistrare' if foreign else 'Nr. Reg. Com.'}: {p.registration}")
    if p.other_id and p.other_id not in (p.vat_id, p.tax_id, p.legal_id, p.registration):
        lines.append(f"Identificator: {p.other_id}")
    street = ", ".join(x for x in (p.street, p.street2) if x)
    city = p.city or ""
    if city.upper().startswith("SECTOR") and city[6:].strip().isdigit():
        city = f"Sector {city[6:].strip()}"
    county = p.county or ""
    if county.upper().startswith("RO-") and county[3:].upper() in COUNTIES:
        county = COUNTIES[county[3:].upper()]
        county = county if county == "București" else f"jud. {county}"
    country = COUNTRIES.get((p.country or "").upper(), p.country or "")
    addr = ", ".join(x for x in (street, city, county, p.postal_zone, country) if x)
    if addr:
        lines.append(f"Adresă: {addr}")
    contact = ", ".join(x for x in (p.contact, p.phone, p.email) if x)
    if contact:
        lines.append(f"Contact: {contact}")
    return lines


def _party_cell(ctx: _Ctx, title: str, p: Party, width: float) -> list[Any]:
    out: list[Any] = [_fit(ctx, title, "s", width), _fit(ctx, p.name or "-", "b", width)]
    out += [_fit(ctx, ln, "n", width) for ln in _party_lines(p)]
    return out


def _grid(rows: list[list[Any]], widths: list[float], header: bool = True, repeat: bool = True) -> Table:
    t = Table(rows, colWidths=widths, repeatRows=1 if header and repeat else 0)
    style = [("GRID", (0, 0), (-1, -1), 0.25, colors.lightgrey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke))
    t.setStyle(TableStyle(style))
    return t


def _lines_table(ctx: _Ctx, d: PdfDocument) -> Table:
    w = [9 * mm, 66 * mm, 14 * mm, 18 * mm, 26 * mm, 23 * mm, 26 * mm]
    cur = d.currency
    suffix = f" ({cur})" if cur else ""
    head = ["Nr.", "Denumire", "U.M.", "Cantitate", f"Preț unitar{suffix}", "Cota TVA", f"Valoare{suffix}"]
    rows: list[list[Any]] = [[_fit(ctx, h, "th" if i < 3 else "thr", w[i]) for i, h in enumerate(head)]]
    budget = LINES_TEXT_BUDGET
    for ln in d.lines:
        desc: list[Any] = [_fit(ctx, ln.name or "-", "n", w[1])]
        extra = []
        if ln.seller_item_id:
            extra.append(f"Cod: {ln.seller_item_id}")
        if ln.description:
            extra.append(ln.description)
        if ln.note:
            extra.append(f"Notă: {ln.note}")
        if ln.period:
            extra.append(f"Perioada: {fmt_date(ln.period[0])} - {fmt_date(ln.period[1])}")
        if ln.gross_price is not None or ln.price_discount is not None:
            extra.append(f"Preț brut {fmt_price(ln.gross_price)} - reducere preț {fmt_price(ln.price_discount)} "
                         f"= preț net {fmt_price(ln.price)}")
        check, bad = _line_check(ln)
        if check:
            extra.append(check)
        else:  # amounts that cannot be computed with: each allowance/charge as written
            extra += [_ac_sentence(ac, cur) for ac in ln.allowances_charges]
        budget -= len(ln.name or "") + sum(len(x) for x in extra)
        if budget < 0 and ctx.shown_lines:
            break
        ctx.shown_lines += 1
        desc += [_fit(ctx, x, "s", w[1]) for x in extra]
        if bad:
            ctx.bad_lines.append(ln.id or "?")
        price = fmt_price(ln.price)
        if ln.base_quantity is not None and ln.base_quantity.value != 1:
            price_cell: Any = [_fit(ctx, price, "r", w[4]),
                               _fit(ctx, f"per {fmt_quantity(ln.base_quantity)} "
                                         f"{unit_words(ln.base_unit or ln.unit)}", "s", w[4])]
        else:
            price_cell = _fit(ctx, price, "r", w[4])
        vat_cell = [_fit(ctx, fmt_percent(ln.vat_percent) or "-", "r", w[5])]
        if ln.vat_category:
            vat_cell.append(_fit(ctx, VAT_CATEGORIES.get(ln.vat_category.upper(), ln.vat_category), "s", w[5]))
        rows.append([_fit(ctx, ln.id or "", "n", w[0]), desc, _fit(ctx, unit_words(ln.unit), "n", w[2]),
                     _fit(ctx, fmt_quantity(ln.quantity), "r", w[3]), price_cell, vat_cell,
                     _fit(ctx, fmt_amount(ln.net, cur, column=cur), "r", w[6])])
    return _grid(rows, w)


def _short(text: str | None, cap: int = 60) -> str | None:
    """Reasons inside a line's cell stay short: a row must always fit on one page."""
    return text if text is None or len(text) <= cap else text[: cap - 1] + "…"


def _ac_sentence(ac: AllowanceCharge, cur: str | None) -> str:
    word = "Taxă suplimentară" if ac.charge else "Reducere"
    parts = [word]
    if ac.reason or ac.reason_code:
        parts.append(": " + " ".join(x for x in (_short(ac.reason), f"(cod {_short(ac.reason_code)})"
                                                 if ac.reason_code else None) if x))
    if ac.percent is not None and ac.base is not None:
        parts.append(f", {fmt_percent(ac.percent)} din {fmt_amount(ac.base)}")
    elif ac.base is not None:
        parts.append(f", bază {fmt_amount(ac.base)}")
    parts.append(f": {'+' if ac.charge else '-'}{fmt_amount(ac.amount, cur)}")
    return "".join(parts)


def _allowances_table(ctx: _Ctx, d: PdfDocument) -> Table:
    w = [28 * mm, 62 * mm, 26 * mm, 16 * mm, 22 * mm, 28 * mm]
    cur = d.currency
    suffix = f" ({cur})" if cur else ""
    head = ["Tip", "Motiv", f"Bază{suffix}", "Procent", "Cota TVA", f"Valoare{suffix}"]
    rows: list[list[Any]] = [[_fit(ctx, h, "th" if i < 2 else "thr", w[i]) for i, h in enumerate(head)]]
    for ac in d.allowances_charges:
        reason = " ".join(x for x in (ac.reason, f"(cod {ac.reason_code})" if ac.reason_code else None) if x)
        rows.append([_fit(ctx, "Taxă suplimentară" if ac.charge else "Reducere", "n", w[0]),
                     _fit(ctx, reason or "-", "n", w[1]),
                     _fit(ctx, fmt_amount(ac.base, cur, column=cur) if ac.base else "", "r", w[2]),
                     _fit(ctx, fmt_percent(ac.percent), "r", w[3]),
                     _fit(ctx, vat_words(ac.vat_category, ac.vat_percent), "r", w[4]),
                     _fit(ctx, fmt_amount(ac.amount, cur, sign=1 if ac.charge else -1, column=cur), "r", w[5])])
    return _grid(rows, w)


def _vat_table(ctx: _Ctx, d: PdfDocument, main: TaxTotal | None, width: float) -> Table:
    w = [width * 0.34, width * 0.14, width * 0.26, width * 0.26]
    cur = d.currency
    suffix = f" ({cur})" if cur else ""
    head = ["Categorie TVA", "Cota", f"Bază impozabilă{suffix}", f"Valoare TVA{suffix}"]
    rows: list[list[Any]] = [[_fit(ctx, h, "th" if i == 0 else "thr", w[i]) for i, h in enumerate(head)]]
    for s in (main.subtotals if main else []):
        cat = s.category or "-"
        words = VAT_CATEGORIES.get(cat.upper())
        cell: list[Any] = [_fit(ctx, f"{cat} - {words}" if words else cat, "n", w[0])]
        why = " ".join(x for x in (s.exemption_reason, s.exemption_code) if x)
        if why:
            cell.append(_fit(ctx, f"Motiv: {why}", "s", w[0]))
        rows.append([cell, _fit(ctx, fmt_percent(s.percent) or "-", "r", w[1]),
                     _fit(ctx, fmt_amount(s.taxable, cur, column=cur), "r", w[2]),
                     _fit(ctx, fmt_amount(s.amount, cur, column=cur), "r", w[3])])
    return _grid(rows, w, repeat=False)


def _totals_table(ctx: _Ctx, d: PdfDocument, main: TaxTotal | None, width: float) -> Table:
    cur = d.currency
    rows: list[tuple[str, str, bool]] = []
    has_allow = bool(d.allowance_total and d.allowance_total.value) or any(
        not ac.charge for ac in d.allowances_charges)
    has_charge = bool(d.charge_total and d.charge_total.value) or any(ac.charge for ac in d.allowances_charges)
    if has_allow or has_charge or d.line_extension != d.tax_exclusive:
        rows.append(("Total valoare linii", fmt_amount(d.line_extension, cur), False))
    if has_allow:
        rows.append(("Reduceri la nivel de document", fmt_amount(d.allowance_total, cur, sign=-1), False))
    if has_charge:
        rows.append(("Taxe la nivel de document", fmt_amount(d.charge_total, cur), False))
    rows.append(("Total fără TVA", fmt_amount(d.tax_exclusive or d.line_extension, cur), True))
    if main is not None:
        rows.append(("Total TVA", fmt_amount(main.amount, cur), True))
    for tt in d.vat_other:
        # the label names the currency the amount is written in: never the RON label on another currency
        own = (tt.amount.currency if tt.amount is not None else None) or cur
        label = "Total TVA" if own == cur else f"Total TVA ({own})"
        rows.append((label, fmt_amount(tt.amount, own), True))
    rows.append(("Total cu TVA", fmt_amount(d.tax_inclusive, cur), True))
    if d.prepaid is not None and d.prepaid.value != 0:
        rows.append(("Plătit în avans", fmt_amount(d.prepaid, cur, sign=-1), False))
    if d.rounding is not None and d.rounding.value != 0:
        rows.append(("Rotunjire", fmt_amount(d.rounding, cur), False))
    rows.append(("Total de plată", fmt_amount(d.payable, cur), True))
    lw, vw = width * 0.52, width * 0.48
    t = Table([[_fit(ctx, k, "n", lw), _fit(ctx, v, "rb" if bold else "r", vw)] for k, v, bold in rows],
              colWidths=[lw, vw])
    t.setStyle(TableStyle([("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
                           ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                           ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return t


def _boxed(ctx: _Ctx, texts: list[str], color: Any) -> Table:
    t = Table([[[_fit(ctx, x, "n", _PAGE_W) for x in texts]]], colWidths=[_PAGE_W])
    t.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 0.8, color), ("BACKGROUND", (0, 0), (-1, -1),
                                                                    colors.HexColor("#fff8e1"))]))
    return t


# ------------------------------------------------------------------ the document

def render_pdf(xml: bytes, *, message_id: str | None = None, listed_at: datetime | str | None = None) -> bytes:
    """A readable A4 PDF of an Invoice or CreditNote: parties, lines, allowances/charges, VAT, reconciled
    totals. `listed_at` (a datetime) is printed in Romania's time."""
    return render_document(read_document(xml), message_id=message_id, listed_at=listed_at)


def render_document(d: PdfDocument, *, message_id: str | None = None,
                    listed_at: datetime | str | None = None) -> bytes:
    ctx = _Ctx()
    cur = d.currency or ""
    buf = io.BytesIO()
    pdf = SimpleDocTemplate(buf, pagesize=A4, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=14 * mm,
                            bottomMargin=16 * mm, title=_clean(d.number or ""), author="spvhub")
    title = TYPE_LABELS.get(d.type_code or "", "Notă de credit" if d.credit else "Factură")
    story: list[Any] = [_fit(ctx, f"{title} nr. {d.number or '-'} din {fmt_date(d.issue_date)}", "h", _PAGE_W, 0),
                        Spacer(1, 2 * mm)]
    meta = [f"Data emiterii: {fmt_date(d.issue_date)}"]
    if d.due_date:
        meta.append(f"Data scadenței: {fmt_date(d.due_date)}")
    if d.tax_point_date:
        meta.append(f"Data exigibilității TVA: {fmt_date(d.tax_point_date)}")
    meta.append(f"Moneda: {cur or '-'}")
    if d.tax_currency and d.tax_currency != d.currency:
        meta.append(f"Moneda de contabilizare a TVA: {d.tax_currency}")
    if d.period:
        meta.append(f"Perioada facturată: {fmt_date(d.period[0])} - {fmt_date(d.period[1])}")
    if d.order_reference:
        meta.append(f"Comanda: {d.order_reference}")
    if d.contract_reference:
        meta.append(f"Contract: {d.contract_reference}")
    if d.buyer_reference:
        meta.append(f"Referința cumpărătorului: {d.buyer_reference}")
    if d.type_code == "389":
        meta.append("Autofacturare")
    story.append(_fit(ctx, " · ".join(meta), "n", _PAGE_W, 0))
    if d.preceding:
        refs = [f"{r.number or '-'}" + (f" din {fmt_date(r.issue_date)}" if r.issue_date else "")
                for r in d.preceding]
        label = "Facturi de referință" if len(refs) > 1 else "Factura de referință"
        story.append(_fit(ctx, f"{label}: " + "; ".join(refs), "n", _PAGE_W, 0))
    warn_at = len(story)
    story.append(Spacer(1, 4 * mm))
    half = _PAGE_W / 2
    parties = Table([[_party_cell(ctx, "Furnizor", d.seller, half), _party_cell(ctx, "Cumpărător", d.buyer, half)]],
                    colWidths=[half, half])
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOX", (0, 0), (0, 0), 0.5, colors.grey),
                                 ("BOX", (1, 0), (1, 0), 0.5, colors.grey)]))
    story += [parties, Spacer(1, 5 * mm), _lines_table(ctx, d)]
    if ctx.bad_lines:  # one note, whatever the number of lines
        ids = ", ".join(ctx.bad_lines[:12]) + (f" și încă {len(ctx.bad_lines) - 12}" if len(ctx.bad_lines) > 12
                                               else "")
        ctx.notes.append(f"{'Liniile' if len(ctx.bad_lines) > 1 else 'Linia'} {ids}: cantitate × preț nu "
                         "corespunde valorii liniei.")
    if d.line_count > ctx.shown_lines:
        ctx.notes.append(f"Factura are {ro_decimal(Decimal(d.line_count))} linii; sunt afișate primele "
                         f"{ro_decimal(Decimal(ctx.shown_lines))}. Totalurile sunt cele din XML.")
    if d.allowances_charges:
        story += [Spacer(1, 4 * mm), _fit(ctx, "Reduceri și taxe suplimentare la nivelul documentului", "b"),
                  Spacer(1, 1 * mm), _allowances_table(ctx, d)]
    story.append(Spacer(1, 5 * mm))
    main = d.vat_document
    left, right = 104 * mm, 78 * mm
    story.append(KeepTogether(Table(
        [[_vat_table(ctx, d, main, left - 4 * mm), _totals_table(ctx, d, main, right)]], colWidths=[left, right],
        style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                          ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))))
    problems = reconcile(d)
    story.append(Spacer(1, 3 * mm))
    if problems:
        story.append(_boxed(ctx, ["Atenție: totalurile din XML nu se verifică între ele:"] + problems,
                            colors.HexColor("#c62828")))
    else:
        story.append(_fit(ctx, "Totaluri verificate: suma liniilor, reducerile și taxele, TVA și totalul de plată "
                               "corespund.", "s"))
    for pm in d.payments:
        bits = [PAYMENT_MEANS.get(pm.code or "", pm.code or "")]
        if pm.iban:
            bits.append(f"IBAN {pm.iban}")
        if pm.bank:
            bits.append(f"banca {pm.bank}")
        if pm.account_name:
            bits.append(f"titular {pm.account_name}")
        if pm.reference:
            bits.append(f"referință {pm.reference}")
        story.append(_fit(ctx, "Plată: " + ", ".join(b for b in bits if b), "n"))
    if d.payment_terms:
        story.append(_fit(ctx, f"Termeni de plată: {d.payment_terms}", "n"))
    for note in d.notes:
        story.append(_fit(ctx, f"Notă: {note}", "n"))
    foot = "Document generat local din XML-ul descărcat din SPV (RO e-Factura); nu înlocuiește XML-ul semnat"
    if message_id:
        foot += f"; id descărcare {message_id}"
    when = fmt_time(listed_at)
    if when:
        foot += f"; data încărcării în SPV {when} (ora României)"
    story += [Spacer(1, 6 * mm), _fit(ctx, foot + ".", "s")]
    if d.shortened or ctx.ellipsized:
        what = ", ".join(d.shortened) or "valori prea lungi"
        ctx.notes.append(f"Unele câmpuri au fost scurtate la afișare ({what}); XML-ul arhivat este complet.")
    if ctx.notes:
        story.insert(warn_at, Spacer(1, 2 * mm))
        story.insert(warn_at + 1, _boxed(ctx, ctx.notes, colors.HexColor("#ef6c00")))
    label = _clean(f"{title} {d.number or ''}")[:80]

    def page(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(_fonts()[0], 7)
        canvas.setFillColor(colors.grey)
        canvas.drawString(14 * mm, 9 * mm, label)
        canvas.drawRightString(A4[0] - 14 * mm, 9 * mm, f"Pagina {doc.page}")
        canvas.restoreState()

    pdf.build(story, onFirstPage=page, onLaterPages=page)
    return buf.getvalue()
