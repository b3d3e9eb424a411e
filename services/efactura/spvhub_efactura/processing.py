"""From a downloaded ZIP to what the archive records: safety checks, parse, signature check (CPU-bound; run it
in a worker thread). Never raises: every outcome is a `Processed` value."""
from __future__ import annotations

from dataclasses import dataclass

from spvhub_efactura.archive import (
    HostileArchive,
    Limits,
    SignatureCheck,
    UnreadableArchive,
    parse_xml,
    unpack,
    verify_signature,
)
from spvhub_efactura.ubl import BuyerMessage, Document, ErrorReport, NotUbl, read


@dataclass
class Processed:
    status: str  # ok | unparseable | hostile
    error: str | None = None
    content_name: str | None = None
    content: bytes | None = None
    parsed: Document | ErrorReport | BuyerMessage | None = None
    signature: SignatureCheck | None = None


def process_zip(data: bytes, limits: Limits, trusted_sha256: list[str] | None = None,
                verify: bool = True, keep_content: bool = True) -> Processed:
    """`keep_content=False`: leave the XML and the invoice lines out of the result (the sync archives the ZIP, it
    needs only the header fields; this keeps the work, and what crosses back from a worker process, small)."""
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
    except HostileArchive as e:
        out.status, out.error = "hostile", str(e)[:500]
    except (UnreadableArchive, NotUbl) as e:
        out.status, out.error = "unparseable", str(e)[:500]
    except Exception as e:  # noqa: BLE001
        out.status, out.error = "unparseable", f"{type(e).__name__}: {str(e)[:400]}"
    if verify:
        out.signature = verify_signature(unpacked.content, unpacked.signature, trusted_sha256, content_root=root)
    return out


def process_many(datas: list[bytes], limits: Limits, trusted_sha256: list[str] | None = None,
                 verify: bool = True, keep_content: bool = True) -> list[Processed]:
    """`process_zip` for each ZIP, in order: one worker round trip for a batch (never raises either)."""
    return [process_zip(d, limits, trusted_sha256, verify, keep_content) for d in datas]
