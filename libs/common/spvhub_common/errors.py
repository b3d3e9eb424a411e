"""Application errors with stable machine-readable codes, and their HTTP rendering.

Body shape everywhere: {"error": {"code": "...", "message": "...", "details": {...}}}.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

LANGUAGES = ("ro", "en")


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


class ErrorBody(BaseModel):
    """What went wrong: `code` is stable (program against it), `message` is for a person, in the caller's
    language, and `details` carries the values the code refers to (fields, limits, identifiers)."""

    code: str = Field(description="Stable machine-readable reason, e.g. not_found, validation_error.")
    message: str = Field(description="Human explanation in the caller's language (Romanian unless English is "
                                     "asked for by Accept-Language or the user's locale).")
    details: dict[str, Any] = Field(default_factory=dict, description="Values specific to the code.")


class ErrorResponse(BaseModel):
    """The one body of every refusal and failure of every service (the OpenAPI declares it for each operation)."""

    error: ErrorBody


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _accept_language(request: Request) -> str | None:
    for part in request.headers.get("accept-language", "").split(","):
        lang = part.split(";")[0].strip().lower()[:2]
        if lang in LANGUAGES:
            return lang
    return None


def _principal_locale(request: Request) -> str | None:
    # The security dependency keeps the verified caller on the request's state; reading it here avoids verifying
    # the token a second time. Absent for anonymous calls and when the refusal came before authentication.
    principal = getattr(request.state, "principal", None)
    locale = str(getattr(principal, "locale", "") or "").lower()[:2]
    return locale if locale in LANGUAGES else None


def preferred_language(request: Request, default: str = "ro") -> str:
    """`ro` or `en`: Accept-Language when it names one of the two (the first it names), else the signed-in
    caller's one locale setting (the token's `locale` claim), else `default` (Romanian)."""
    return _accept_language(request) or _principal_locale(request) or default


def localized_message(exc: AppError, request: Request) -> str:
    if not exc.messages:
        return exc.message
    lang = preferred_language(request)
    return exc.messages.get(lang, exc.message) if lang != "en" else exc.message


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    # FastAPI prefixes where the value came from (body, query, path, header): the client knows the field by name
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_message(fields: list[str], lang: str) -> str:
    """A short sentence naming the fields a request got wrong; the details list says what is wrong with each."""
    names = list(dict.fromkeys(fields))  # once each, in the order reported
    if lang == "en":
        listed = ", ".join(f"'{n}'" for n in names)
        return f"The request is not valid: check the field{'s' if len(names) > 1 else ''} {listed}."
    listed = ", ".join(f"„{n}”" for n in names)
    return f"Cererea nu este validă: verificați {'câmpurile' if len(names) > 1 else 'câmpul'} {listed}."


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
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # `problem` stays pydantic's English text, precise for a developer; the message names the fields for a
        # person. `field` keeps its long-standing form (the location prefix of a query/path value included).
        errors = exc.errors()
        fields = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg", "")}
                  for e in errors]
        message = validation_message([_field_name(e.get("loc", ())) for e in errors], preferred_language(request))
        return JSONResponse(error_body("validation_error", message, {"fields": fields}), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413 and isinstance(getattr(exc, "limit", None), int):
            return JSONResponse(body_too_large_body(exc.limit), status_code=413,  # type: ignore[attr-defined]
                                headers={"Connection": "close"})
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
