"""Base class and registry of catalogue events."""
from __future__ import annotations

from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

CATALOGUE: dict[str, type[Event]] = {}


class Event(BaseModel):
    """A fact one service tells the others. Subclasses set `topic`, `version` and `key_field`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: ClassVar[str]
    version: ClassVar[int] = 1
    key_field: ClassVar[str] = ""
    """The field whose value is the Kafka key (ordering is per key, e.g. the company CIF)."""

    @classmethod
    def event_type(cls) -> str:
        return f"ro.spvhub.{cls.topic}.v{cls.version}"

    def partition_key(self) -> str:
        return str(getattr(self, self.key_field)) if self.key_field else ""


EventClass = TypeVar("EventClass", bound=type[Event])


def register(cls: EventClass) -> EventClass:
    t = cls.event_type()
    if t in CATALOGUE and CATALOGUE[t] is not cls:
        raise ValueError(f"event type {t} registered twice")
    CATALOGUE[t] = cls
    return cls


def event_class_for(event_type: str) -> type[Event] | None:
    return CATALOGUE.get(event_type)


def catalogue() -> dict[str, type[Event]]:
    """The published catalogue: events defined in `spvhub_common.events.*`, never classes a test registered."""
    return {t: c for t, c in CATALOGUE.items() if c.__module__.startswith("spvhub_common.events.")}


def topics() -> list[str]:
    return sorted({c.topic for c in catalogue().values()})
