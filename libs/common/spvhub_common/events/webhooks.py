"""Events published by the webhooks service."""
from __future__ import annotations

from datetime import datetime

from spvhub_common.events.base import Event, register


@register
class EndpointDisabled(Event):
    """A webhook endpoint failed every delivery for the configured window (24 hours by default) and was switched
    off; `notify_user_ids` are the tenant company's verified owners and administrators, who can fix and re-enable
    it (the failed deliveries can then be replayed)."""

    topic = "webhooks.endpoint-disabled"
    key_field = "tenant_cif"
    endpoint_id: str
    tenant_cif: str
    url: str
    failing_since: datetime
    last_error: str = ""
    notify_user_ids: list[str] = []
