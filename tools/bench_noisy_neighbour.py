"""Benchmark (prints figures; not a test): the latency other tenants see while one tenant sends the largest
inputs the API allows. A real system (every service, the emulator, the nginx gateway) is started as the e2e tests
start it; a quiet tenant reads its lists in a loop, first alone, then while a noisy tenant, in parallel, uploads
20,000-CIF candidate CSVs (the most allowed), 10 MB invoice XML submissions (refused by validation, read whole),
asks for its invoices' PDFs and sends JSON bodies at the default body cap.

    .venv/bin/python tools/bench_noisy_neighbour.py [--seconds 20] [--noisy 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2ekit import CALLBACK_TIMEOUT, Client, authorize_at_anaf, eventually, signup  # noqa: E402
from system import System  # noqa: E402

BAKERY, PHARMACY = "18453276", "33274088"


def control_digit(body: str) -> int:
    key = "753217532"[-len(body):]
    digit = sum(int(d) * int(k) for d, k in zip(body, key, strict=True)) * 10 % 11
    return 0 if digit == 10 else digit


def candidates_csv(n: int = 20_000) -> bytes:
    rows = ["cif"]
    body = 10_000_000
    while len(rows) <= n:
        b = str(body)
        rows.append(b + str(control_digit(b)))
        body += 1
    return "\n".join(rows).encode()


def owner_of(gw: str, cif: str) -> Client:
    who = signup(gw, f"bench-{uuid.uuid4().hex[:6]}@example.ro", "Bench Owner")
    assert who.post(f"{gw}/api/portfolio/companies", json={"cif": cif}).status_code in (200, 201)
    start = eventually(lambda: (lambda r: r.json() if r.status_code == 201 else None)(
        who.post(f"{gw}/api/auth/anaf/authorizations", json={"company_cif": cif})), "authorization start")
    httpx.get(authorize_at_anaf(start["authorize_url"], "brutar", "0000"), timeout=CALLBACK_TIMEOUT)
    eventually(lambda: who.get(f"{gw}/api/portfolio/companies/{cif}").json().get("verification") == "verified",
               "verified")
    return who


def quiet_loop(gw: str, who: Client, stop: threading.Event, out: list[tuple[str, float]]) -> None:
    paths = ["/api/efactura/invoices", "/api/portfolio/companies", "/api/notifier/notifications", "/api/auth/me"]
    with httpx.Client(headers=who.headers, timeout=60) as c:
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            r = c.get(gw + paths[i % len(paths)])
            out.append((paths[i % len(paths)].split("/")[2], time.perf_counter() - t0))
            assert r.status_code < 500, r.text
            i += 1


def noisy_loop(gw: str, who: Client, stop: threading.Event, kind: int, counts: dict[str, int]) -> None:
    csv = candidates_csv()
    xml = b"<?xml version='1.0'?><Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'>" + \
        b"<!--" + b"x" * (10 * 1024 * 1024 - 200) + b"--></Invoice>"
    big_json = {"name": "x" * 60_000}
    with httpx.Client(headers=who.headers, timeout=120) as c:
        ids = [i["id"] for i in c.get(f"{gw}/api/efactura/invoices", params={"cif": BAKERY}).json().get("items", [])]
        n = 0
        while not stop.is_set():
            step = (kind + n) % 4
            if step == 0:
                r = c.post(f"{gw}/api/portfolio/companies/{BAKERY}/candidates", content=csv,
                           headers={"content-type": "text/csv"})
                key = "csv 20,000 CIFs"
            elif step == 1:
                r = c.post(f"{gw}/api/efactura/companies/{BAKERY}/submissions", content=xml,
                           headers={"content-type": "application/xml", "Idempotency-Key": uuid.uuid4().hex})
                key = "xml 10 MB"
            elif step == 2 and ids:
                r = c.get(f"{gw}/api/efactura/invoices/{ids[n % len(ids)]}/pdf")
                key = "pdf"
            else:
                r = c.patch(f"{gw}/api/auth/me", json=big_json)
                key = "json at the cap"
            counts[f"{key} {r.status_code}"] = counts.get(f"{key} {r.status_code}", 0) + 1
            n += 1


def measure(gw: str, quiet: Client, seconds: float, noisy: Client | None,
            workers: int) -> list[tuple[str, float]]:
    stop = threading.Event()
    lat: list[tuple[str, float]] = []
    counts: dict[str, int] = {}
    threads = [threading.Thread(target=quiet_loop, args=(gw, quiet, stop, lat))]
    if noisy:
        threads += [threading.Thread(target=noisy_loop, args=(gw, noisy, stop, k, counts)) for k in range(workers)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    if counts:
        print("  noisy tenant's requests:", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return lat


def report(label: str, samples: list[tuple[str, float]]) -> None:
    print(f"{label}:")
    for service in ["all", *sorted({s for s, _ in samples})]:
        lat = [t for s, t in samples if service in ("all", s)]
        if len(lat) < 2:
            continue
        q = statistics.quantiles(lat, n=100, method="inclusive")
        print(f"  {service:10s} {len(lat):5d} requests, p50 {q[49] * 1000:7.1f} ms, p99 {q[98] * 1000:7.1f} ms, "
              f"max {max(lat) * 1000:7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--noisy", type=int, default=3, help="parallel connections of the noisy tenant")
    args = ap.parse_args()
    s = System(gateway=True)
    try:
        s.start()
        gw = s.public_url
        noisy = owner_of(gw, BAKERY)
        eventually(lambda: noisy.get(f"{gw}/api/efactura/invoices", params={"cif": BAKERY}).json().get("items"),
                   "the noisy tenant's invoices", timeout=120)
        quiet = signup(gw, f"quiet-{uuid.uuid4().hex[:6]}@example.ro", "Quiet Tenant")
        quiet.post(f"{gw}/api/portfolio/companies", json={"cif": PHARMACY})
        report("quiet tenant alone", measure(gw, quiet, args.seconds, None, 0))
        report(f"quiet tenant beside the noisy one ({args.noisy} connections)",
               measure(gw, quiet, args.seconds, noisy, args.noisy))
    finally:
        s.stop()


if __name__ == "__main__":
    main()
