"""The sync's Prometheus metrics."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from spvhub_common.telemetry import children

SYNC_LAST_SUCCESS = Gauge("efactura_sync_last_success_timestamp",
                          "Unix time (wall clock) of the company's last successful e-Factura sync", ["cif"])
SYNC_PENDING = Gauge("efactura_messages_pending", "Listed messages not yet archived, per company", ["cif"])
SYNCS = Counter("efactura_syncs_total", "Company syncs by outcome", ["outcome"])
SYNC_SECONDS = Histogram("efactura_sync_duration_seconds", "Duration of one company sync",
                         buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
MESSAGES = Counter("efactura_messages_total", "Message outcomes (archived, lost, failed, quota, flagged)",
                   ["outcome"])
MESSAGES_OF = children(MESSAGES)  # (outcome,)
