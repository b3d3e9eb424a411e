"""Response helpers: JSON/XML bodies, Spring error shapes, e-Factura XML headers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from starlette.responses import Response

from .clock import fmt_dmy, fmt_iso_spring

XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(obj), status_code=status, media_type="application/json", headers=headers)


def raw_json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def xml_response(body: str) -> Response:
    return Response(body.encode("utf-8"), media_type="application/xml")


def spring_400(message: str, now: datetime) -> Response:
    """Spring CustomErrorMessage for a missing mandatory parameter (HTTP 400)."""
    body = {"timestamp": fmt_dmy(now), "status": 400, "error": "Bad Request", "message": message}
    return json_response(body, status=400)


def spring_404(path: str, now: datetime) -> Response:
    body = {"timestamp": fmt_iso_spring(now), "status": 404, "error": "Not Found", "path": path}
    return json_response(body, status=404)


def xml_header(ns: str, attrs: dict[str, str], errors: list[str] | None = None) -> str:
    attr_text = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
    if not errors:
        return f'{XML_DECL}<header xmlns="{ns}"{attr_text}/>'
    inner = "".join(f"<Errors errorMessage={quoteattr(e)}/>" for e in errors)
    return f'{XML_DECL}<header xmlns="{ns}"{attr_text}>{inner}</header>'
