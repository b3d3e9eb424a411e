"""Application errors with stable machine-readable codes, and their HTTP rendering.

Body shape everywhere: {"error": {"code": "...", "message": "...", "details": {...}}}.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class AppError(Exception):
    """A failure a client can act on: stable `code`, human `message`, HTTP `status`."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None, messages: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Translations of `message` by language ("ro"); `message` itself is the English text.
        self.messages = messages or {}
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details or {}


class NotFound(AppError):
    status, code = 404, "not_found"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Conflict(AppError):
    status, code = 409, "conflict"


class TooManyRequests(AppError):
    status, code = 429, "rate_limited"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def preferred_language(request: Request, default: str = "ro") -> str:
    """`ro` or `en` from Accept-Language (the first of the two it names); Romanian when it names neither."""
    for part in request.headers.get("accept-language", "").split(","):
        lang = part.split(";")[0].strip().lower()[:2]
        if lang in ("ro", "en"):
            return lang
    return default


def localized_message(exc: AppError, request: Request) -> str:
    if not exc.messages:
        return exc.message
    lang = preferred_language(request)
    return exc.messages.get(lang, exc.message) if lang != "en" else exc.message


def body_too_large_body(limit: int) -> dict[str, Any]:
    mib = limit / (1024 * 1024)
    size = f"{mib:.0f} MiB" if mib >= 1 else f"{limit // 1024} KiB"
    return error_body("body_too_large", f"Corpul cererii depășește {size}, cât acceptă această operație. / "
                                        f"The request body is larger than the {size} this endpoint accepts.",
                      {"max_bytes": limit})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        headers: dict[str, str] | None = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        retry_after = exc.details.get("retry_after_seconds")
        if exc.status in (423, 429, 503) and retry_after is not None:
            headers = {"Retry-After": str(max(int(float(retry_after)), 1))}
        return JSONResponse(error_body(exc.code, localized_message(exc, request), exc.details), status_code=exc.status,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg", "")}
                  for e in exc.errors()]
        return JSONResponse(error_body("validation_error", "The request is not valid: " +
                                       "; ".join(f"{f['field']}: {f['problem']}" for f in fields),
                                       {"fields": fields}), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413 and isinstance(getattr(exc, "limit", None), int):
            return JSONResponse(body_too_large_body(exc.limit), status_code=413,  # type: ignore[attr-defined]
                                headers={"Connection": "close"})
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
