"""The event catalogue: versioned pydantic models, one module per producing service, in CloudEvents 1.0.

Rules (see docs/events.md): the topic is `<service>.<event-name>`; the CloudEvents `type` is
`ro.spvhub.<topic>.v<N>`; adding an optional field is compatible and keeps N; anything else is a new
class with N+1, published beside the old one until every consumer has moved.
"""
from spvhub_common.events import auth, efactura, etransport, invitations, notifier, portfolio, webhooks  # noqa: F401,E402
from spvhub_common.events.base import CATALOGUE, Event, catalogue, event_class_for, register, topics
from spvhub_common.events.envelope import CloudEvent, decode, encode, to_envelope

__all__ = ["CATALOGUE", "CloudEvent", "Event", "catalogue", "decode", "encode", "event_class_for", "register",
           "to_envelope", "topics"]
