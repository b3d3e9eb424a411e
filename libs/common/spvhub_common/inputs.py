"""Input hygiene at the edge of every service: what no column can hold is refused with a 4xx before a handler
runs (control characters in the path, query and JSON bodies; JSON numbers that are not finite or do not fit a
64-bit integer; query numbers that are not finite), and a value the database still refuses as data (class 22:
too long for its column, out of its numeric range) is a 422, never a 500."""
from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spvhub_common.errors import error_body

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# C0 controls and DEL: no identifier, CIF, name or search term has them; NUL cannot even be stored in a text column
PARAM_BAD = re.compile(r"[\x00-\x1f\x7f]")
# in JSON text (an address, a note) tab and line breaks are ordinary; the other controls and lone surrogates
# (which no UTF-8 column can store) are not
BODY_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# a numeric literal whose value overflows a double (1e400): no column holds it. The words inf/nan are left to the
# endpoint's own types (a search for a partner named "Nan" is text), which refuse them where a number is meant
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class InputRefused(Exception):
    def __init__(self, code: str, where: str, message_ro: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code, self.where, self.message_ro, self.message_en = code, where, message_ro, message_en

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.code, f"{self.message_ro} / {self.message_en}", {"where": self.where}),
                            status_code=422)


def _bad_characters(where: str) -> InputRefused:
    return InputRefused("invalid_characters", where,
                        f"{where} conține caractere de control (de exemplu NUL), care nu sunt acceptate.",
                        f"{where} contains control characters (such as NUL), which are not accepted.")


def _bad_number(where: str) -> InputRefused:
    return InputRefused("number_out_of_range", where,
                        f"{where} conține un număr infinit, NaN sau în afara intervalului acceptat.",
                        f"{where} holds a number that is infinite, NaN or outside the accepted range.")


def check_param(name: str, value: str, where: str) -> None:
    if PARAM_BAD.search(name) or PARAM_BAD.search(value):
        raise _bad_characters(where)
    if NUMBER.fullmatch(value.strip()):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return
        if not math.isfinite(number):
            raise _bad_number(where)


def _parse_int(text: str) -> int:
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _bad_number("body")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _bad_number("body")
    return value


def _refuse_constant(_: str) -> Any:
    raise _bad_number("body")


def check_json(value: Any) -> None:
    """Walks a decoded JSON document; raises InputRefused on a string with forbidden characters."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if BODY_BAD.search(v):
                raise _bad_characters("body")
        elif isinstance(v, dict):
            for k, item in v.items():
                if BODY_BAD.search(k):
                    raise _bad_characters("body")
                stack.append(item)
        elif isinstance(v, list):
            stack.extend(v)


def check_json_bytes(body: bytes) -> None:
    try:
        doc = json.loads(body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return  # not JSON at all: the endpoint's own parsing answers 422 for it
    check_json(doc)


class InputHygieneMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if PARAM_BAD.search(scope.get("path", "")):
                raise _bad_characters("path")
            query = scope.get("query_string", b"").decode("latin-1")
            for name, value in parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace"):
                check_param(name, value, "query")
            for name, raw in scope.get("headers", []):
                if name == b"idempotency-key" and PARAM_BAD.search(raw.decode("latin-1")):
                    raise _bad_characters("Idempotency-Key")
            ctype = next((v for k, v in scope.get("headers", []) if k == b"content-type"), b"").decode("latin-1")
            if scope["method"] in ("POST", "PUT", "PATCH", "DELETE") and "json" in ctype.lower():
                body = await _read_body(receive)
                check_json_bytes(body)
                receive = _replay(body, receive)
        except InputRefused as refused:
            await refused.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


def is_data_error(exc: BaseException) -> bool:
    """A value the database refused as data (SQLSTATE class 22, or asyncpg's own refusal to encode an argument:
    an int beyond int64, a string with NUL): the client's input, not a fault of the service."""
    from asyncpg.exceptions import DataError as ServerDataError
    from asyncpg.exceptions._base import DataError as ClientDataError

    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, (ServerDataError, ClientDataError)):
            return True
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str) and state.startswith("22"):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def data_error_response() -> JSONResponse:
    return JSONResponse(error_body(
        "invalid_value", "O valoare din cerere nu încape în câmpul ei (prea lungă sau în afara intervalului). / "
                         "A value in the request does not fit its field (too long or out of range)."),
        status_code=422)
