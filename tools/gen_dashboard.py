"""Generates deploy/observability/grafana-dashboard.json (the panels are data here, so the queries stay
reviewable and the test can check every metric they use against docs/observability.md).

    python tools/gen_dashboard.py [--check]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "deploy" / "observability" / "grafana-dashboard.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
SVC = 'service=~"$service"'

# (row title, [(panel title, type, unit, [(expr, legend)], description)])
ROWS: list[tuple[str, list[tuple[str, str, str, list[tuple[str, str]], str]]]] = [
    ("HTTP", [
        ("Requests per second", "timeseries", "reqps",
         [(f"sum by (service) (rate(http_requests_total{{{SVC}}}[5m]))", "{{service}}")],
         "All HTTP requests per service (spvhub_common.http)."),
        ("Latency p95", "timeseries", "s",
         [(f"histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket{{{SVC}}}[5m])))",
           "{{service}}")], "95th percentile of request duration per service."),
        ("Server errors (5xx ratio)", "timeseries", "percentunit",
         [(f'sum by (service) (rate(http_requests_total{{{SVC},status=~"5.."}}[5m])) / '
           f"sum by (service) (rate(http_requests_total{{{SVC}}}[5m]))", "{{service}}")],
         "Share of responses with a 5xx status."),
        ("Client errors by route (4xx)", "timeseries", "reqps",
         [(f'topk(10, sum by (service, route, status) (rate(http_requests_total{{{SVC},status=~"4.."}}[5m])))',
           "{{service}} {{route}} {{status}}")], "Top 10 routes answering 4xx."),
    ]),
    ("Events", [
        ("Consumer lag", "timeseries", "short",
         [("sum by (consumer, topic) (consumer_lag)", "{{consumer}} {{topic}}")],
         "Messages behind the end of each partition, summed per consumer group and topic."),
        ("Outbox backlog", "timeseries", "short",
         [(f"max by (service) (outbox_backlog{{{SVC}}})", "{{service}}")],
         "Outbox rows written but not yet published to Kafka."),
        ("Events published", "timeseries", "ops",
         [(f"sum by (service, topic) (rate(outbox_published_total{{{SVC}}}[5m]))", "{{topic}}")],
         "Events per second leaving each outbox."),
        ("Consumer outcomes", "timeseries", "ops",
         [("sum by (consumer, outcome) (rate(consumer_messages_total[5m]))", "{{consumer}} {{outcome}}")],
         "processed / duplicate / ignored / dead_lettered per consumer group."),
        ("Dead letters (last hour)", "stat", "short",
         [("sum by (consumer, topic) (increase(consumer_dead_letters_total[1h]))", "{{consumer}} {{topic}}")],
         "Records sent to <topic>.dlt; each one needs a look (see docs/events.md)."),
    ]),
    ("ANAF", [
        ("ANAF calls by endpoint and outcome", "timeseries", "ops",
         [("sum by (endpoint, outcome) (rate(anaf_calls_total[5m]))", "{{endpoint}} {{outcome}}")],
         "Every call through spvhub_common.anaf, by logical endpoint and outcome."),
        ("ANAF latency p95", "timeseries", "s",
         [("histogram_quantile(0.95, sum by (endpoint, le) (rate(anaf_call_duration_seconds_bucket[5m])))",
           "{{endpoint}}")], "95th percentile of ANAF call duration per endpoint."),
        ("ANAF budget left", "bargauge", "short",
         [("min by (kind) (anaf_budget_remaining)", "{{kind}}")],
         "Calls left in the current window (api: 1000/minute) or day (per-key daily caps)."),
        ("Calls refused by the budget (last hour)", "stat", "short",
         [("sum by (kind) (increase(anaf_budget_exhausted_total[1h]))", "{{kind}}")],
         "Calls the shared budget refused before they reached ANAF."),
    ]),
    ("Companies and authorizations", [
        ("e-Factura sync age per company", "table", "s",
         [("sort_desc(time() - max by (cif) (efactura_sync_last_success_timestamp))", "{{cif}}")],
         "Seconds since each company's last successful e-Factura sync (oldest first)."),
        ("e-Transport sync age per company", "table", "s",
         [("sort_desc(time() - max by (cif) (etransport_sync_last_success_timestamp))", "{{cif}}")],
         "Seconds since each company's last successful e-Transport poll (oldest first)."),
        ("Days until a person must re-authorize", "table", "d",
         [("sort(min by (connection, cif) (auth_connection_must_act_days))", "{{cif}} {{connection}}")],
         "Per ANAF connection: days left before its holder must authorize again (soonest first)."),
    ]),
]


def panel(pid: int, title: str, kind: str, unit: str, targets: list[tuple[str, str]], desc: str,
          x: int, y: int) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": pid, "type": kind, "title": title, "description": desc, "datasource": DS,
        "gridPos": {"h": 8, "w": 12 if kind != "stat" else 6, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": e, "legendFormat": lf,
                     **({"instant": True, "format": "table"} if kind in ("table", "bargauge", "stat") else {})}
                    for i, (e, lf) in enumerate(targets)],
    }
    if kind == "table":
        p["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]
    return p


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row_title, row_panels in ROWS:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y, x = pid + 1, y + 1, 0
        for title, kind, unit, targets, desc in row_panels:
            p = panel(pid, title, kind, unit, targets, desc, x, y)
            panels.append(p)
            pid += 1
            x += p["gridPos"]["w"]
            if x >= 24:
                x, y = 0, y + 8
        if x:
            y += 8
    return {
        "uid": "spvhub-overview",
        "title": "spvhub overview",
        "description": "HTTP, events, ANAF calls and budget, sync freshness and re-authorization deadlines. "
                       "Generated by tools/gen_dashboard.py; metric names: docs/observability.md.",
        "tags": ["spvhub"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus",
             "current": {}, "hide": 0},
            {"name": "service", "type": "query", "datasource": DS, "label": "service",
             "query": {"query": "label_values(http_requests_total, service)", "refId": "service"},
             "definition": "label_values(http_requests_total, service)",
             "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "refresh": 2, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    text = render()
    if a.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python tools/gen_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
