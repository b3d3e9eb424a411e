"""Events published by the notifier service."""
from __future__ import annotations

from spvhub_common.events.base import Event, register


@register
class NotificationSent(Event):
    topic = "notifier.notification-sent"
    key_field = "user_id"
    notification_id: str
    user_id: str
    kind: str
    channel: str  # inbox | email
