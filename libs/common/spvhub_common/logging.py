"""structlog JSON logging with trace ids and a last-line redaction of anything that looks like a secret."""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

SECRET_KEYS = re.compile(r"(token|secret|password|authorization|cookie|refresh|access_key|private)", re.I)
# JWT-shaped values (three base64url segments) and bearer strings are masked wherever they appear.
JWT_RE = re.compile(r"eyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")
BEARER_RE = re.compile(r"(?i)bearer\s+[\w.\-~+/]+=*")
# one-time codes, OAuth state and link tokens in logged URLs (`?code=...&state=...`)
QUERY_SECRET_RE = re.compile(r"(?i)([?&](?:code|state|token|refresh_token|access_token|invitation)=)[^&\s\"']+")


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        value = QUERY_SECRET_RE.sub(r"\1[redacted]", value)
        return JWT_RE.sub("[redacted-jwt]", BEARER_RE.sub("Bearer [redacted]", value))
    if isinstance(value, dict):
        return {k: ("[redacted]" if SECRET_KEYS.search(str(k)) else redact_value(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {k: ("[redacted]" if SECRET_KEYS.search(k) and k != "event" else redact_value(v))
            for k, v in event_dict.items()}


def _add_trace(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stdout; stdlib loggers (uvicorn, aiokafka) go through the same pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info,
                    structlog.processors.EventRenamer("msg"), _redact,
                    structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.EventRenamer("msg"), _redact, structlog.processors.JSONRenderer()]))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
