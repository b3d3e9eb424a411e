"""Events published by the notifier service."""
from __future__ import annotations

from spvhub_common.events.base import Event, register


@register
class NotificationSent(Event):
    """One notification delivered on one channel. `user_id` is empty for an e-mail to a person without an
    account yet (the invitation's representative)."""

    topic = "notifier.notification-sent"
    key_field = "user_id"
    notification_id: str
    user_id: str
    kind: str
    channel: str  # inbox | email
    cif: str | None = None
    source_event_id: str | None = None
