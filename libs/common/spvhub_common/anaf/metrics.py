"""Prometheus metrics of ANAF calls (registered once, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from spvhub_common.telemetry import children

ANAF_CALLS = Counter("anaf_calls_total", "Calls made to ANAF, by logical endpoint and outcome", ["endpoint", "outcome"])
ANAF_LATENCY = Histogram(
    "anaf_call_duration_seconds",
    "Latency of calls to ANAF",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)


ANAF_CALLS_OF = children(ANAF_CALLS)  # (endpoint, outcome)
ANAF_LATENCY_OF = children(ANAF_LATENCY)  # (endpoint,)
