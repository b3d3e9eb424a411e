"""Benchmark: requests/second the real emulator process serves for e-Factura list and download (no faults).

Run: python emulator/bench/bench_emulator.py [--seconds 5] [--connections 32]. Starts `python -m anaf_emulator`
with the demo scenario, turns the per-token and daily limits off through the admin API, warms the ZIP cache,
then drives keep-alive HTTP/1.1 connections from a light raw-socket client and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(base: str, path: str, body: dict | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


async def worker(port: int, paths: list[bytes], token: str, stop_at: float, counts: list[int], idx: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n".encode()
    i = idx
    try:
        while time.perf_counter() < stop_at:
            path = paths[i % len(paths)]
            i += 1
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n" + auth + b"\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"unexpected status {status!r} for {path!r}")
            counts[0] += 1
    finally:
        writer.close()


async def run(port: int, paths: list[bytes], token: str, seconds: float, connections: int) -> float:
    counts = [0]
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(worker(port, paths, token, stop_at, counts, i) for i in range(connections)))
    return counts[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "anaf_emulator", "--scenario", "demo.json", "--port", str(port),
                             "--clock-start", "now"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                call(base, "/__admin/health")
                break
            except OSError:
                time.sleep(0.1)
        call(base, "/__admin/switches", {"rate_limit_per_minute": 0, "download_cap_per_message": 0,
                                         "list_cap_per_cui": 0, "paged_list_cap_per_cui": 0})
        scenario = call(base, "/__admin/scenario")
        assert isinstance(scenario, dict)
        app = scenario["applications"][0]
        firm = scenario["certificates"][0]
        cif = firm["rights"][0]
        token = call(base, "/__admin/tokens", {"client_id": app["client_id"], "certificate": firm["id"]})
        assert isinstance(token, dict)
        access = token["access_token"]
        messages = call(base, f"/__admin/messages?cif={cif}")
        assert isinstance(messages, list)
        ids = [m["id"] for m in messages if m["downloadable"]][:200]
        now_ms = int(call(base, "/__admin/clock")["epoch_ms"])  # type: ignore[index]
        list_path = f"/prod/FCTEL/rest/listaMesajeFactura?zile=60&cif={cif}".encode()
        paged_path = (f"/prod/FCTEL/rest/listaMesajePaginatieFactura?startTime={now_ms - 59 * 86_400_000}"
                      f"&endTime={now_ms - 1000}&cif={cif}&pagina=1").encode()
        download_paths = [f"/prod/FCTEL/rest/descarcare?id={i}".encode() for i in ids]
        warm = time.perf_counter()
        for path in download_paths:  # build and cache every signed ZIP before measuring
            req = urllib.request.Request(base + path.decode(), headers={"Authorization": f"Bearer {access}"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                assert resp.headers["Content-Type"] == "application/zip"
                resp.read()
        warm = time.perf_counter() - warm
        print(f"demo scenario: CUI {cif} has {len(messages)} listed messages; {len(ids)} ZIPs signed in {warm:.1f}s")
        for label, paths in (("listaMesajeFactura (zile=60)", [list_path]),
                             ("listaMesajePaginatieFactura (page 1)", [paged_path]),
                             (f"descarcare ({len(ids)} ids round-robin)", download_paths)):
            rps = asyncio.run(run(port, paths, access, args.seconds, args.connections))
            print(f"{label:45s} {rps:8.0f} req/s  ({args.connections} keep-alive connections, {args.seconds:.0f}s)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
