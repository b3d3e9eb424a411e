"""One cursor pagination for every list: `Page[T]` (items, opaque `next_cursor`, optional `total`) and the cursor
codec. A cursor is the sort key of the last item returned, as URL-safe base64 of a JSON array without padding, so it
needs no URL-encoding and a client treats it as an opaque string."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel

from spvhub_common.errors import AppError

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` is None on the last page, `total` only where counting is cheap."""

    items: list[T]
    next_cursor: str | None
    total: int | None = None


def _plain(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def encode_cursor(*values: object) -> str:
    """The opaque cursor of a sort key: JSON scalars; datetimes, dates and UUIDs travel as their ISO/str text."""
    raw = json.dumps([_plain(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def invalid_cursor() -> AppError:
    return AppError("The cursor is not valid; start again without it.", code="invalid_cursor", status=422,
                    messages={"ro": "Cursorul nu este valid; reluați fără el."})


def decode_cursor(raw: str, arity: int) -> tuple[Any, ...]:
    """The `arity` values `encode_cursor` was given (datetimes come back as ISO text: the caller parses them);
    anything else raises `AppError(code="invalid_cursor", status=422)`."""
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        values = json.loads(text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid_cursor() from exc
    if not isinstance(values, list) or len(values) != arity:
        raise invalid_cursor()
    if any(isinstance(v, (list, dict)) for v in values):
        raise invalid_cursor()
    return tuple(values)


def time_key(at: object, id_: object) -> tuple[datetime, str]:
    """A (created_at, id) sort key from a cursor's values: an ISO instant with its zone and a text id, else
    `invalid_cursor` (a naive instant would compare at the database server's zone against timestamptz)."""
    try:
        when = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError as exc:
        raise invalid_cursor() from exc
    if when is None or when.tzinfo is None or not isinstance(id_, str):
        raise invalid_cursor()
    return when, id_


def decode_time_cursor(raw: str) -> tuple[datetime, str]:
    """The (created_at, id) position of the many lists ordered newest first by creation time then id."""
    return time_key(*decode_cursor(raw, 2))
