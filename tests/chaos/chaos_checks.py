"""What the chaos run asserts once the faults stop: convergence (archive, submissions, transports, every outbox and
delivery queue) and then no loss and no duplicate, observed at the emulator, in MinIO, on Kafka, in the SMTP
capture, at the webhook receiver, and in each service's own database (generic duplicate queries only)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from chaos_run import ChaosSystem

FINAL = ("accepted", "rejected")
# (service database, what, query returning duplicate groups): a missing table or column is reported, not failed
DUPLICATE_QUERIES = [
    ("efactura", "ledger rows per (cif, message)", "SELECT cif, message_id FROM messages GROUP BY 1, 2 "
                                                   "HAVING count(*) > 1"),
    ("efactura", "invoice rows per (cif, message)", "SELECT cif, message_id FROM invoices GROUP BY 1, 2 "
                                                    "HAVING count(*) > 1"),
    ("efactura", "submissions per (cif, key)", "SELECT cif, idempotency_key FROM submissions GROUP BY 1, 2 "
                                               "HAVING count(*) > 1"),
    ("etransport", "transports per UIT", "SELECT uit FROM transports GROUP BY 1 HAVING count(*) > 1"),
    ("invitations", "invitations per (firm, client, e-mail)",
     "SELECT firm_cif, client_cif, email FROM invitations GROUP BY 1, 2, 3 HAVING count(*) > 1"),
    ("portfolio", "collaborations per (firm, client)",
     "SELECT firm_cif, client_cif FROM collaborations GROUP BY 1, 2 HAVING count(*) > 1"),
    ("notifier", "notifications per (event, user)",
     "SELECT source_event_id, user_id FROM notifications GROUP BY 1, 2 HAVING count(*) > 1"),
    ("notifier", "e-mails per (event, recipient)",
     "SELECT source_event_id, recipient FROM email_outbox GROUP BY 1, 2 HAVING count(*) > 1"),
    ("webhooks", "deliveries per (endpoint, event)",
     "SELECT endpoint_id, event_id FROM deliveries GROUP BY 1, 2 HAVING count(*) > 1"),
]


async def _query(sysm: ChaosSystem, service: str, sql: str) -> list[tuple[Any, ...]]:
    import asyncpg
    conn = await asyncpg.connect(host="127.0.0.1", port=sysm.infra.pg_port, user="postgres",
                                 database=sysm.database(service), timeout=10)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def query(sysm: ChaosSystem, service: str, sql: str) -> list[tuple[Any, ...]]:
    return asyncio.run(_query(sysm, service, sql))


def minio(sysm: ChaosSystem) -> Any:
    from minio import Minio
    return Minio(f"127.0.0.1:{sysm.infra.minio_port}", sysm.infra.minio_user, sysm.infra.minio_password,
                 secure=False)


def synced_cifs(sysm: ChaosSystem) -> list[str]:
    from chaos_run import FIRM
    return [FIRM, *sysm.client_cifs]


def expected_messages(sysm: ChaosSystem) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for cif in synced_cifs(sysm):
        for m in sysm.admin("GET", "messages", params={"cif": cif}).json():
            out[(cif, str(m["id"]))] = m
    return out


def archived_keys(sysm: ChaosSystem) -> Counter[tuple[str, str]]:
    """(cif, message id) of every signed ZIP version in the archive bucket."""
    got: Counter[tuple[str, str]] = Counter()
    for o in minio(sysm).list_objects(f"e2e-{sysm.run_id}", prefix="efactura/", recursive=True,
                                      include_version=True):
        parts = o.object_name.split("/")
        if len(parts) == 4 and parts[3] == f"{parts[2]}.zip":
            got[(parts[1], parts[2])] += 1
    return got


def pending(sysm: ChaosSystem) -> dict[str, int]:
    from system import SERVICES
    out = {}
    for s in SERVICES:
        out[f"{s} outbox"] = int(query(sysm, s, "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0])
    out["notifier e-mails"] = int(query(sysm, "notifier", "SELECT count(*) FROM email_outbox "
                                                         "WHERE status IN ('pending', 'sending')")[0][0])
    out["webhook deliveries"] = int(query(sysm, "webhooks", "SELECT count(*) FROM deliveries "
                                                           "WHERE status = 'pending'")[0][0])
    return out


def expected_transports(sysm: ChaosSystem) -> set[str]:
    from chaos_run import CARRIER
    return {t["uit"] for t in sysm.admin("GET", "transports", params={"carrier": CARRIER}).json()
            if t["active"] and not t["deleted"]}


def tracked_transports(sysm: ChaosSystem) -> set[str]:
    items = sysm.call("GET", "/api/etransport/transports", sysm.carrier_token, params={"page_size": 500},
                      timeout=30).json()["items"]
    return {t["uit"] for t in items}


def submission_states(sysm: ChaosSystem) -> dict[str, dict[str, Any]]:
    return {key: sysm.call("GET", f"/api/efactura/submissions/{sid}", sysm.firm_token, timeout=30).json()
            for key, sid in getattr(sysm, "submissions", {}).items()}


def converge(sysm: ChaosSystem) -> dict[str, Any]:
    """Polls until everything in flight has landed (twice in a row), or the plan's timeout."""
    t0 = time.monotonic()
    deadline = t0 + sysm.plan.converge_timeout
    calm = 0
    last_print = t0
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            expected = set(expected_messages(sysm))
            archived = set(archived_keys(sysm))
            subs = submission_states(sysm)
            status = {
                "archive missing": len(expected - archived), "archive extra": len(archived - expected),
                "submissions not final": sum(1 for s in subs.values() if s["state"] not in FINAL),
                "transports missing": len(expected_transports(sysm) - tracked_transports(sysm)),
                **{k: v for k, v in pending(sysm).items() if v},
            }
        except Exception as exc:  # noqa: BLE001 - a dependency still recovering: poll again
            status = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        done = all(v == 0 for v in status.values() if isinstance(v, int)) and "error" not in status
        calm = calm + 1 if done else 0
        if calm >= 2:
            return {"converged": f"{time.monotonic() - t0:.0f}s after the last fault", "failures": []}
        if time.monotonic() - last_print > 20:
            last_print = time.monotonic()
            print(f"[chaos] converging ({time.monotonic() - t0:.0f}s): {status}", flush=True)
        time.sleep(3)
    return {"converged": f"NOT within {sysm.plan.converge_timeout:.0f}s",
            "failures": [f"did not converge within {sysm.plan.converge_timeout:.0f}s: {status}"]}


def kafka_events(sysm: ChaosSystem, timeout: float = 300) -> list[dict[str, Any]]:
    """Every event on the run's topics, from the beginning to the end offsets read first."""
    from spvhub_devtools.testing import topic_records

    records = asyncio.run(asyncio.wait_for(topic_records(sysm.infra.kafka_bootstrap, sysm.prefix), timeout))
    out: list[dict[str, Any]] = []
    for topic, _key, value in records:
        try:
            out.append({"topic": topic[len(sysm.prefix):], **json.loads(value or b"")})
        except ValueError:
            out.append({"topic": topic[len(sysm.prefix):], "id": None, "undecodable": True})
    return out


def verify(sysm: ChaosSystem, counters: dict[str, Any], injected: dict[str, Any]) -> dict[str, Any]:
    from chaos_run import FIRM
    failures: list[str] = []
    fig: dict[str, Any] = {}
    f = sysm.figures
    anaf_calls = sum(counters.get("endpoints", {}).values())
    fig["ANAF calls under faults"] = anaf_calls
    # the emulator's own count of what it served (faults on from the chaos phase's start until convergence)
    total = injected["total"]
    fig["faults injected (5xx / timeouts)"] = f"{total['5xx']} / {total['timeout']}"
    fig["calls delayed (50-200 ms)"] = (f"{total['latency']} ({total['latency_ms'] / 1000:.0f}s in all, "
                                        f"{total['latency_ms'] / max(total['latency'], 1):.0f} ms on average)")
    fig["faults by ANAF family"] = ", ".join(
        f"{fam} {c['5xx']}/{c['timeout']}/{c['latency']}" for fam, c in sorted(injected["by_family"].items())
    ) + " (5xx/timeouts/delayed)"
    # a kind never drawn proves nothing about it; the call counts keep a chance miss below one in 20,000 runs
    unproven = [k for k, enough in (("latency", 1), ("5xx", 200), ("timeout", 1000))
                if anaf_calls >= enough and total[k] == 0]
    if unproven:
        failures.append(f"the emulator injected no {'/'.join(unproven)} fault in {anaf_calls} calls: {total}")
    fig["processes killed -9 and restarted"] = f"{len(f.kills)} ({', '.join(f.kills)})"
    fig["restarts (seconds until answering)"] = ", ".join(f"{w} {s:.1f}" for w, s in f.restarts)
    fig["client retries (by cause)"] = dict(f.client_retries)
    fig["chaos phase"] = f"{f.chaos_done - f.started:.0f}s"

    # readiness while the database was gone
    down, back = f.readiness.get("while_database_down", {}), f.readiness.get("after_restart", {})
    fig["readiness while PostgreSQL down"] = dict(Counter(down.values()))
    fig["readiness after its restart"] = f"{dict(Counter(back.values()))} in {f.readiness.get('seconds_to_ready')}s"
    live = f.readiness.get("liveness_while_database_down", {})
    fig["liveness while PostgreSQL down"] = dict(Counter(live.values()))
    if not live or any(c != 200 for c in live.values()):
        failures.append(f"liveness failed while only the database was gone: {live}")
    if not down or any(c != 503 for c in down.values()):
        failures.append(f"not every process reported not-ready (503) while PostgreSQL was down: {down}")
    if not back or any(c != 200 for c in back.values()):
        failures.append(f"not every process became ready again by itself after PostgreSQL came back: {back}")

    # 1. the archive equals the emulator's message set, ids and bytes
    sysm.admin("POST", "switches", json={"download_cap_per_message": 100000})
    expected = expected_messages(sysm)
    versions = archived_keys(sysm)
    fig["archive (emulator messages / ZIPs in MinIO)"] = f"{len(expected)} / {len(versions)}"
    missing, extra = set(expected) - set(versions), set(versions) - set(expected)
    if missing or extra:
        failures.append(f"archive differs from the emulator: {len(missing)} missing (e.g. {sorted(missing)[:5]}), "
                        f"{len(extra)} extra (e.g. {sorted(extra)[:5]})")
    rewritten = {k: n for k, n in versions.items() if n > 1}
    fig["ZIP keys written more than once (same key)"] = len(rewritten)
    token = sysm.admin("POST", "tokens", json={"certificate": "contabil"}).json()["access_token"]
    mc = minio(sysm)
    emu = httpx.Client(base_url=sysm.emulator, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                       limits=httpx.Limits(max_connections=8))

    def same_bytes(key: tuple[str, str]) -> str | None:
        cif, mid = key
        stored = mc.get_object(f"e2e-{sysm.run_id}", f"efactura/{cif}/{mid}/{mid}.zip")
        try:
            ours = stored.read()
        finally:
            stored.close()
            stored.release_conn()
        theirs = emu.get("/test/FCTEL/rest/descarcare", params={"id": mid}).content
        return None if hashlib.sha256(ours).digest() == hashlib.sha256(theirs).digest() else mid
    with emu, ThreadPoolExecutor(8) as pool:
        differ = [m for m in pool.map(same_bytes, sorted(set(expected) & set(versions))) if m]
    fig["archived ZIPs byte-identical to ANAF's"] = f"{len(set(expected) & set(versions)) - len(differ)}"
    if differ:
        failures.append(f"{len(differ)} archived ZIPs differ from the emulator's bytes: {differ[:5]}")
    ledger = {(str(c), str(m)) for c, m in query(sysm, "efactura", "SELECT cif, message_id FROM messages")}
    if ledger != set(expected):
        failures.append(f"efactura's ledger differs from the emulator: missing {len(set(expected) - ledger)}, "
                        f"extra {len(ledger - set(expected))}")

    # 2. duplicate rows in the services' own tables
    dup_report = {}
    for service, what, sql in DUPLICATE_QUERIES:
        try:
            rows = query(sysm, service, sql)
        except Exception as exc:  # noqa: BLE001 - a refactor renamed it: say so
            dup_report[f"{service}: {what}"] = f"not checked ({type(exc).__name__})"
            continue
        dup_report[f"{service}: {what}"] = len(rows)
        if rows:
            failures.append(f"duplicate rows in {service} ({what}): {rows[:5]}")
    fig["duplicate row groups"] = dup_report

    # 3. events: each downloaded message announced by exactly one event id (redeliveries of that id are fine)
    events = kafka_events(sysm)
    by_topic = Counter(e["topic"] for e in events)
    ids = Counter(e.get("id") for e in events)
    fig["events on Kafka (records / distinct ids)"] = f"{len(events)} / {len(ids)}"
    downloaded: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in events:
        if e["topic"] == "efactura.invoice-downloaded":
            downloaded[(str(e["data"].get("cif")), str(e["data"].get("message_id")))].add(e["id"])
    twice = {k: v for k, v in downloaded.items() if len(v) > 1}
    fig["invoice-downloaded events (messages / twice)"] = f"{len(downloaded)} / {len(twice)}"
    if twice:
        failures.append(f"{len(twice)} messages announced under two event ids (applied twice): "
                        f"{list(twice.items())[:3]}")
    if any(e.get("undecodable") for e in events):
        failures.append("undecodable records on the run's topics")
    fig["topics"] = dict(by_topic)

    # 4. submissions: final, and exactly one upload per key at the emulator
    subs = submission_states(sysm)
    states = Counter(s["state"] for s in subs.values())
    fig["submissions (keys / states)"] = f"{len(subs)} / {dict(states)}"
    if any(s["state"] not in FINAL for s in subs.values()):
        failures.append(f"submissions not final: {dict(states)}")
    firm_uploads = [m for m in sysm.admin("GET", "messages", params={"cif": FIRM, "all": "true"}).json()
                    if m["tip"] == "FACTURA TRIMISA"]
    per_index = Counter(str(m["id_solicitare"]) for m in firm_uploads)
    indexes = {str(s.get("anaf_index")) for s in subs.values()}
    fig["uploads filed at the emulator for the keys"] = len(per_index)
    if len(per_index) != len(subs) or set(per_index) != indexes:
        failures.append(f"{len(subs)} submission keys, {len(per_index)} uploads filed at the emulator "
                        f"(indexes {sorted(per_index)} vs the submissions' {sorted(indexes)})")

    # 5. e-mails: each outbox row delivered once by its Message-ID; each invited client mailed once
    mails = sysm.mails()
    by_id = Counter(m.get("message_id") for m in mails)
    sent_rows = {r[0] for r in query(sysm, "notifier", "SELECT id FROM email_outbox WHERE status = 'sent'")}
    delivered_ids = {str(mid).strip("<>").split("@")[0] for mid in by_id if mid}
    fig["e-mails (captured / distinct Message-IDs / resent same id)"] = (
        f"{len(mails)} / {len(by_id)} / {sum(n - 1 for n in by_id.values() if n > 1)}")
    if sent_rows - delivered_ids:
        failures.append(f"{len(sent_rows - delivered_ids)} e-mails marked sent never reached the SMTP server")
    for c in sysm.clients:
        invites = {m.get("message_id") for m in sysm.mails(c["email"])
                   if "invitation=" in (m.get("text", "") + m.get("html", ""))}
        if len(invites) != 1:
            failures.append(f"{c['email']} got {len(invites)} distinct invitation e-mails")

    # 6. webhooks: every delivery delivered and received; one webhook-id per message
    rows = query(sysm, "webhooks", "SELECT webhook_id, status FROM deliveries")
    received = sysm.webhooks.received
    got_ids = Counter(r["webhook_id"] for r in received)
    per_message: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in received:
        data = r["event"].get("data", {})
        per_message[(str(data.get("cif")), str(data.get("message_id")))].add(r["webhook_id"])
    fig["webhooks (deliveries / received / distinct ids / refused by us)"] = (
        f"{len(rows)} / {len(received)} / {len(got_ids)} / {sysm.webhooks.refused}")
    if any(st != "delivered" for _, st in rows):
        failures.append(f"webhook deliveries not delivered: {Counter(st for _, st in rows)}")
    if {w for w, _ in rows} - set(got_ids):
        failures.append(f"{len({w for w, _ in rows} - set(got_ids))} webhook deliveries never reached the receiver")
    if any(len(v) > 1 for v in per_message.values()):
        failures.append("a message reached the webhook receiver under two webhook-ids")

    # 7. outboxes drained, transports complete
    left = {k: v for k, v in pending(sysm).items() if v}
    fig["outboxes and queues left"] = left or "all drained"
    if left:
        failures.append(f"not drained: {left}")
    exp_t, got_t = expected_transports(sysm), tracked_transports(sysm)
    fig["transports (emulator / tracked)"] = f"{len(exp_t)} / {len(got_t)}"
    if exp_t - got_t:
        failures.append(f"{len(exp_t - got_t)} transports not tracked")
    return {"figures": fig, "failures": failures}
