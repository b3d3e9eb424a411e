"""Portfolio rules: roles, collaboration states, effective access, the reading of ANAF's rights inventory, the
diff of discovered rights and the firm's candidate CSV. No I/O here; CIFs are checked by `spvhub_common.ids`."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from spvhub_common.errors import AppError
from spvhub_common.ids import InvalidTaxId, normalize_cif
from spvhub_common.pii import is_person_key


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    ACCOUNTANT = "accountant"  # a firm user reaching a client through an active collaboration


MEMBER_ROLES = (Role.OWNER, Role.ADMIN, Role.MEMBER)
MANAGERS = (Role.OWNER, Role.ADMIN)


class CollaborationStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    ENDED = "ended"


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    REAUTHORIZATION_REQUIRED = "reauthorization_required"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Grant:
    """What one user may see on one CIF (the payload of `portfolio.access-changed`)."""

    role: str
    via_firm_cif: str | None = None
    verified: bool = True
    can_file: bool = False


@dataclass(frozen=True)
class Membership:
    role: str
    verified: bool


@dataclass(frozen=True)
class FirmLink:
    """A firm the user is a verified member of, in an active collaboration with the client."""

    firm_cif: str
    may_file: bool = False


def effective_grant(direct: Membership | None, firms: list[FirmLink]) -> Grant | None:
    """A direct membership wins (verified or not: an unverified member sees the registry data and can work towards
    verification); otherwise an active collaboration through a firm the user is a verified member of."""
    if direct is not None:
        return Grant(direct.role, None, direct.verified, direct.verified and direct.role in MANAGERS)
    if firms:
        best = sorted(firms, key=lambda f: (not f.may_file, f.firm_cif))[0]
        return Grant(Role.ACCOUNTANT.value, best.firm_cif, True, best.may_file)
    return None


@dataclass(frozen=True)
class ConnectionFacts:
    """What portfolio knows of one ANAF connection when deciding whom it may act for."""

    connection_id: str
    holder_cif: str
    active: bool
    services: tuple[str, ...]
    rights: frozenset[str]
    authorized_at: str = ""  # ISO text: only for a stable order


@dataclass(frozen=True)
class Entitlement:
    connection_id: str
    holder_cif: str
    services: tuple[str, ...]
    may_file: bool


def entitled_connections(cif: str, connections: list[ConnectionFacts],
                         clients_of: dict[str, dict[str, bool]]) -> list[Entitlement]:
    """The connections that may act for `cif`, best first.

    A connection acts for its holder company and for the clients in an active collaboration with the holder, and
    only where its certificate has SPV rights (the holder itself counts as covered: auth checked the rights on it
    when the connection was authorized, and e-Transport connections are never probed). `clients_of[firm][client]`
    is the collaboration's filing permission. Own connections come first, then the oldest authorization, so the
    choice is the same on every replica and every run.
    """
    out: list[tuple[tuple[int, str, str], Entitlement]] = []
    for c in connections:
        if not c.active:
            continue
        own = c.holder_cif == cif
        if not own and (cif not in c.rights or cif not in clients_of.get(c.holder_cif, {})):
            continue
        may_file = own or clients_of[c.holder_cif][cif]
        out.append(((0 if own else 1, c.authorized_at, c.connection_id),
                    Entitlement(c.connection_id, c.holder_cif, c.services, may_file)))
    return [e for _, e in sorted(out, key=lambda t: t[0])]


def can_assign(actor_role: str, target_role: str, current_role: str | None = None) -> bool:
    """Owners assign any role; admins manage admins and members but never touch owners."""
    if actor_role == Role.OWNER:
        return True
    if actor_role == Role.ADMIN:
        return target_role != Role.OWNER and current_role != Role.OWNER
    return False


def services_of(raw: list[str]) -> list[str]:
    """Auth's service names (`E-Factura`, `efactura`, ...) -> `efactura` / `etransport`."""
    out: list[str] = []
    for s in raw:
        k = s.lower().replace("-", "").replace("_", "").replace(" ", "")
        name = {"efactura": "efactura", "etransport": "etransport"}.get(k, k)
        if name not in out:
            out.append(name)
    return out


def cif_order(cif: str) -> tuple[int, int, str]:
    """Sort key of company ids: CIFs by number, then person keys (natural persons) by their text."""
    return (0, int(cif), "") if cif.isdigit() else (1, 0, cif)


def inventory_from_cui_field(queried_cif: str, cui_field: object,
                             key_of: Callable[[str], str] | None = None) -> list[str] | None:
    """The rights inventory carried by an e-Factura list response's `cui` field, or None when the field only
    echoes the queried CIF (switch `list_cui_field=echo`, or ANAF's swagger reading) and probing is needed.

    A single CUI equal to the queried one is ambiguous (inventory of one, or an echo): treat it as an echo, so
    the caller probes the candidates; that costs calls but never misses a right.

    `key_of` (PersonIds.key_of_anaf_id) turns a natural person's CNP in the inventory (the certificate holder's
    own, or a person who gave them rights) into its person key; without it, CNPs are left out.
    """
    if cui_field is None:
        return None
    parts = [p.strip() for p in str(cui_field).split(",") if p.strip()]
    cifs: list[str] = []
    for p in parts:
        key = key_of(p) if key_of is not None else p
        if is_person_key(key):
            c = key
        else:
            try:
                c = normalize_cif(key)
            except InvalidTaxId:
                continue  # not a CIF, nor a valid CNP: nothing the platform can act for
        if c not in cifs:
            cifs.append(c)
    if not cifs or cifs == [queried_cif]:
        return None
    return sorted(cifs, key=cif_order)


@dataclass
class RightsDiff:
    cifs: list[str]
    gained: list[str]
    lost: list[str]


def diff_rights(previous: set[str], found: set[str], unknown: set[str] | None = None) -> RightsDiff:
    """Rights now held vs before. CIFs in `unknown` (probe skipped: budget spent, ANAF down) keep their
    previous state, so an incomplete check never reports a right as lost."""
    unknown = unknown or set()
    now = set(found) | (previous & unknown)
    return RightsDiff(cifs=sorted(now, key=cif_order), gained=sorted(now - previous, key=cif_order),
                      lost=sorted(previous - now, key=cif_order))


@dataclass
class CsvCandidates:
    cifs: list[str] = field(default_factory=list)
    errors: list[dict[str, object]] = field(default_factory=list)


HEADER_NAMES = {"cif", "cui", "cod fiscal", "codfiscal", "cod_fiscal", "vat", "cod", "tax id"}
MAX_CSV_ROWS = 20_001  # the most CIFs a firm may hold (20,000) plus a header row
MAX_CSV_FIELD = 1024  # a CIF is short: a longer cell is not a client list


class CandidatesRefused(AppError):
    status = 422
    code = "malformed_csv"


def parse_candidates_csv(text: str) -> CsvCandidates:
    """A firm's client list: one CIF per row, in a column named cif/cui (or the first column).

    Separators `,` `;` or tab; an optional header row; blank rows skipped. Every bad row is reported.
    """
    out = CsvCandidates()
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    rows: list[list[str]] = []
    if "\x00" in text:
        raise CandidatesRefused("The CSV holds NUL bytes: it is not a text file.",
                                messages={"ro": "Fișierul CSV conține octeți NUL: nu este un fișier text."})
    try:
        for row in csv.reader(io.StringIO(text), dialect):
            if len(rows) >= MAX_CSV_ROWS:
                raise CandidatesRefused(
                    f"The CSV has more than {MAX_CSV_ROWS} rows.", code="too_many_rows", details={
                        "max_rows": MAX_CSV_ROWS},
                    messages={"ro": f"Fișierul CSV are mai mult de {MAX_CSV_ROWS} rânduri."})
            if any(len(cell) > MAX_CSV_FIELD for cell in row):
                raise CandidatesRefused(
                    f"Row {len(rows) + 1} has a cell longer than {MAX_CSV_FIELD} characters.",
                    details={"line": len(rows) + 1},
                    messages={"ro": f"Rândul {len(rows) + 1} are o celulă mai lungă de {MAX_CSV_FIELD} caractere."})
            rows.append(row)
    except csv.Error as e:  # NUL bytes, an unclosed quote, a cell past the csv module's own limit
        raise CandidatesRefused(f"The CSV cannot be read: {e}.", details={"problem": str(e)[:200]},
                                messages={"ro": f"Fișierul CSV nu poate fi citit: {e}."}) from e
    seen: set[str] = set()  # the duplicate check is linear in the rows, not quadratic
    col = 0
    start = 0
    if rows:
        header = [c.strip().lower() for c in rows[0]]
        named = [i for i, h in enumerate(header) if h in HEADER_NAMES]
        if named:
            col, start = named[0], 1
        elif header and not any(ch.isdigit() for ch in "".join(header)):
            start = 1  # a header without a recognised name: CIFs are in the first column
    for lineno, row in enumerate(rows[start:], start=start + 1):
        if not row or not "".join(row).strip():
            continue
        value = row[col].strip() if col < len(row) else ""
        if not value:
            continue
        try:
            cif = normalize_cif(value)
        except InvalidTaxId as e:
            out.errors.append({"line": lineno, "value": value, "code": e.code, "problem": e.message})
            continue
        if cif not in seen:
            seen.add(cif)
            out.cifs.append(cif)
    return out
