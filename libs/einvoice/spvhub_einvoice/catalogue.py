"""Readable explanations (Romanian and English) of the validation rules people meet most often: CIUS-RO (BR-RO),
EN 16931 (BR, BR-CO, BR-S...), ANAF's own checks (R6.1, R_BT...) and the project's VAT-rate checks. Shared by the
offline validator and the explainer of ANAF's error reports."""
from __future__ import annotations

# code -> (field, Romanian, English)
CATALOGUE: dict[str, tuple[str | None, str, str]] = {
    # CIUS-RO
    "BR-RO-001": ("BT-24", "Identificatorul specificației (CustomizationID) trebuie să fie exact "
                  "urn:cen.eu:en16931:2017#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1.",
                  "The specification identifier (CustomizationID) must be exactly "
                  "urn:cen.eu:en16931:2017#compliant#urn:efactura.mfinante.ro:CIUS-RO:1.0.1."),
    "BR-RO-010": ("BT-1", "Numărul facturii trebuie să conțină cel puțin o cifră.",
                  "The invoice number must contain at least one digit."),
    "BR-RO-020": ("BT-3", "Tipul facturii nu este acceptat în RO e-Factura (coduri uzuale: 380 factură, 381 notă de "
                  "creditare, 384 factură corectată, 389 autofactură, 751 factură în scop contabil).",
                  "The invoice type code is not accepted by RO e-Factura (usual codes: 380 invoice, 381 credit "
                  "note, 384 corrected invoice, 389 self-billed invoice, 751 accounting information)."),
    "BR-RO-030": ("BT-6", "Dacă moneda facturii nu este RON, moneda de contabilizare a TVA trebuie să fie RON.",
                  "When the invoice currency is not RON, the VAT accounting currency must be RON."),
    "BR-RO-100": ("BT-37", "Pentru un vânzător din București, localitatea trebuie să fie SECTOR1 … SECTOR6.",
                  "For a seller in Bucharest the city must be SECTOR1 … SECTOR6."),
    "BR-RO-101": ("BT-52", "Pentru un cumpărător din București, localitatea trebuie să fie SECTOR1 … SECTOR6.",
                  "For a buyer in Bucharest the city must be SECTOR1 … SECTOR6."),
    "BR-RO-110": ("BT-39", "Județul vânzătorului trebuie scris cu codul ISO 3166-2:RO (de ex. RO-CJ, RO-B pentru "
                  "București) când țara este RO.",
                  "The seller's county must use the ISO 3166-2:RO code (e.g. RO-CJ, RO-B for Bucharest) when "
                  "the country is RO."),
    "BR-RO-111": ("BT-54", "Județul cumpărătorului trebuie scris cu codul ISO 3166-2:RO (de ex. RO-CJ, RO-B pentru "
                  "București) când țara este RO.",
                  "The buyer's county must use the ISO 3166-2:RO code (e.g. RO-CJ, RO-B for Bucharest) when "
                  "the country is RO."),
    # ANAF's own checks
    "R6.1": ("BT-31", "CIF-ul vânzătorului nu există în baza de date ANAF: verificați codul fiscal al emitentului.",
             "The seller's tax id (CIF) is not in ANAF's database: check the issuer's tax id."),
    "R_BT_32_cui": ("BT-32", "Codul fiscal (CUI) al vânzătorului este incorect (cifra de control nu se verifică).",
                    "The seller's tax id (CUI) is not valid (its check digit does not match)."),
    "R_BT_48_cui": ("BT-48", "Codul fiscal (CUI) al cumpărătorului este incorect (cifra de control nu se verifică).",
                    "The buyer's tax id (CUI) is not valid (its check digit does not match)."),
    # EN 16931 core
    "BR-01": ("BT-24", "Lipsește identificatorul specificației (CustomizationID).",
              "The specification identifier (CustomizationID) is missing."),
    "BR-02": ("BT-1", "Lipsește numărul facturii.", "The invoice number is missing."),
    "BR-03": ("BT-2", "Lipsește data emiterii facturii.", "The invoice issue date is missing."),
    "BR-04": ("BT-3", "Lipsește codul tipului facturii.", "The invoice type code is missing."),
    "BR-05": ("BT-5", "Lipsește moneda facturii.", "The invoice currency code is missing."),
    "BR-06": ("BT-27", "Lipsește denumirea vânzătorului.", "The seller's name is missing."),
    "BR-07": ("BT-44", "Lipsește denumirea cumpărătorului.", "The buyer's name is missing."),
    "BR-08": ("BG-5", "Lipsește adresa poștală a vânzătorului.", "The seller's postal address is missing."),
    "BR-09": ("BT-40", "Lipsește codul țării vânzătorului.", "The seller's country code is missing."),
    "BR-10": ("BG-8", "Lipsește adresa poștală a cumpărătorului.", "The buyer's postal address is missing."),
    "BR-11": ("BT-55", "Lipsește codul țării cumpărătorului.", "The buyer's country code is missing."),
    "BR-12": ("BT-106", "Lipsește suma valorilor nete ale liniilor.",
              "The sum of invoice line net amounts is missing."),
    "BR-13": ("BT-109", "Lipsește totalul fără TVA.", "The invoice total without VAT is missing."),
    "BR-14": ("BT-112", "Lipsește totalul cu TVA.", "The invoice total with VAT is missing."),
    "BR-15": ("BT-115", "Lipsește suma de plată.", "The amount due for payment is missing."),
    "BR-16": ("BG-25", "Factura trebuie să aibă cel puțin o linie.", "The invoice must have at least one line."),
    "BR-21": ("BT-126", "Fiecare linie trebuie să aibă un identificator.", "Every line needs an identifier."),
    "BR-22": ("BT-129", "Fiecare linie trebuie să aibă cantitatea facturată.",
              "Every line needs an invoiced quantity."),
    "BR-23": ("BT-130", "Fiecare linie trebuie să aibă unitatea de măsură.", "Every line needs a unit of measure."),
    "BR-24": ("BT-131", "Fiecare linie trebuie să aibă valoarea netă.", "Every line needs a net amount."),
    "BR-25": ("BT-153", "Fiecare linie trebuie să aibă denumirea articolului.", "Every line needs an item name."),
    "BR-26": ("BT-146", "Fiecare linie trebuie să aibă prețul net al articolului.",
              "Every line needs an item net price."),
    "BR-27": ("BT-146", "Prețul net al articolului nu poate fi negativ.", "The item net price must not be negative."),
    "BR-CO-09": ("BT-31", "Codul de TVA trebuie să înceapă cu prefixul țării (de ex. RO pentru România).",
                 "The VAT identifier must start with its country prefix (e.g. RO for Romania)."),
    "BR-CO-10": ("BT-106", "Suma valorilor nete ale liniilor nu este egală cu totalul valorilor nete ale liniilor "
                 "(LineExtensionAmount). Recalculați totalurile.",
                 "The sum of line net amounts does not equal the invoice's LineExtensionAmount. Recalculate "
                 "the totals."),
    "BR-CO-13": ("BT-109", "Totalul fără TVA trebuie să fie suma liniilor minus reduceri plus taxe suplimentare.",
                 "The total without VAT must be the sum of lines minus allowances plus charges."),
    "BR-CO-14": ("BT-110", "Totalul TVA trebuie să fie suma TVA pe categorii.",
                 "The total VAT must equal the sum of the VAT category amounts."),
    "BR-CO-15": ("BT-112", "Totalul cu TVA nu este egal cu totalul fără TVA plus TVA. Recalculați totalurile.",
                 "The total with VAT is not the total without VAT plus the VAT. Recalculate the totals."),
    "BR-CO-16": ("BT-115", "Suma de plată trebuie să fie totalul cu TVA minus sumele plătite plus rotunjirea.",
                 "The amount due must be the total with VAT minus prepaid amounts plus rounding."),
    "BR-CO-17": ("BT-117", "TVA pe categorie trebuie să fie baza impozabilă înmulțită cu cota, rotunjită la 2 "
                 "zecimale.", "A VAT category amount must be its taxable amount times the rate, rounded to 2 "
                 "decimals."),
    "BR-CO-25": ("BT-9", "O factură cu sumă de plată pozitivă trebuie să aibă data scadenței sau termenii de plată.",
                 "An invoice with a positive amount due needs a due date or payment terms."),
    "BR-S-08": ("BT-116", "Baza impozabilă pentru cota standard nu corespunde sumei liniilor cu acea cotă.",
                "The standard-rated taxable amount does not match the sum of the lines at that rate."),
    "BR-S-09": ("BT-117", "TVA pentru cota standard nu este baza înmulțită cu cota.",
                "The standard-rated VAT amount is not the taxable amount times the rate."),
    "BR-AE-10": ("BT-120", "Taxarea inversă cere motivul scutirii (textul sau codul).",
                 "Reverse charge needs an exemption reason (text or code)."),
    "BR-E-10": ("BT-120", "Scutirea de TVA cere motivul scutirii (textul sau codul).",
                "A VAT exemption needs an exemption reason (text or code)."),
    # XML schema (upload refusals)
    "SCHEMA": (None, "Fișierul nu respectă schema UBL 2.1: corectați structura XML (elementul indicat de ANAF).",
               "The file does not follow the UBL 2.1 schema: fix the XML structure (the element ANAF names)."),
}
