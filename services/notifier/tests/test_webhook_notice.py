"""A webhook endpoint disabled after failing: the owners the webhooks service names hear of it (RO/EN), nobody
else."""
from __future__ import annotations

from datetime import UTC, datetime

from ntfkit import Stack
from spvhub_common.events.webhooks import EndpointDisabled
from test_notifications import CIF, people


async def test_endpoint_disabled_tells_the_named_owners(stack: Stack) -> None:
    await people(stack)
    await stack.feed(EndpointDisabled(endpoint_id="ep-1", tenant_cif=CIF, url="https://erp.example.ro/hooks",
                                      failing_since=datetime(2025, 4, 1, 10, 0, tzinfo=UTC), last_error="HTTP 503",
                                      notify_user_ids=["ana"]))
    await stack.send_all()
    assert [r["kind"] for r in await stack.inbox_rows("ana")] == ["webhook_disabled"]
    assert await stack.inbox_rows("dan") == []
    [mail] = stack.mails("ana@firmax.ro")
    assert mail["subject"] == "Webhook dezactivat pentru Firma X SRL"
    assert "https://erp.example.ro/hooks" in mail["text"] and "HTTP 503" in mail["text"]
