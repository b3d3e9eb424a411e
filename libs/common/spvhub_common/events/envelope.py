"""CloudEvents 1.0 structured-mode JSON envelope for Kafka (content-type application/cloudevents+json)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from spvhub_common.events.base import Event, event_class_for

CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"


class UnknownEvent(ValueError):
    """The envelope names a type this catalogue does not know (poison for a typed consumer)."""


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime
    datacontenttype: str = "application/json"
    dataschema: str | None = None
    data: dict[str, Any]
    # extensions: distributed tracing and the Kafka partition key
    traceparent: str | None = None
    partitionkey: str | None = None


def to_envelope(event: Event, source: str, *, event_id: str | None = None,
                traceparent: str | None = None, time: datetime | None = None) -> CloudEvent:
    key = event.partition_key()
    return CloudEvent(
        id=event_id or str(uuid.uuid4()), source=f"/spvhub/{source}", type=event.event_type(),
        subject=key or None, time=time or datetime.now(UTC),
        dataschema=f"urn:spvhub:events:{event.topic}:v{event.version}",
        data=event.model_dump(mode="json"), traceparent=traceparent, partitionkey=key or None)


def encode(envelope: CloudEvent) -> bytes:
    return envelope.model_dump_json(exclude_none=True).encode()


def decode(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, Event]:
    """Parse an envelope and its typed payload; raises ValueError (poison) when either is invalid."""
    env = CloudEvent.model_validate(raw) if isinstance(raw, dict) else CloudEvent.model_validate_json(raw)
    cls = event_class_for(env.type)
    if cls is None:
        raise UnknownEvent(f"unknown event type {env.type}")
    return env, cls.model_validate(env.data)
