"""The README's demo, through the gateway alone: the seed drives the whole journey over the public API of
an isolated system behind a real nginx, then the README's own calls are run as written."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import pytest
from spvhub_devtools.testing import ROOT
from system import System

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(postgres_up: None, kafka_up: str, minio_up: None):
    s = System(gateway=True)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def readme_calls() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("## The demo, through the API", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert "GW=http://127.0.0.1:18000" in block
    return block


def test_readme_demo_works_through_the_gateway_alone(demo: System, tmp_path):
    env = {**os.environ, **demo.port_env()}
    seed = subprocess.run([sys.executable, "scripts/demo_seed.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=400)
    assert seed.returncode == 0, seed.stdout[-3000:] + seed.stderr[-3000:]
    assert "seeding through the gateway" in seed.stdout and "found 8 client companies" in seed.stdout

    gw = demo.url("gateway")
    script = readme_calls().replace("http://127.0.0.1:18000", gw).replace(
        "http://127.0.0.1:11080", demo.url("mailbox"))
    # run the README block, printing a marker before each call so every answer can be checked on its own
    lines = [ln for ln in script.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    numbered = []
    for i, ln in enumerate(lines):
        if ln.startswith("curl"):
            numbered.append(f"echo '@@{i}'")
        numbered.append(ln)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(numbered)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    answers = {int(m.group(1)): body for m, body in
               zip(re.finditer(r"@@(\d+)", out.stdout), re.split(r"@@\d+\n?", out.stdout)[1:], strict=True)}
    assert answers and all('"error"' not in a for a in answers.values()), answers
    assert (tmp_path / "invoice.pdf").read_bytes().startswith(b"%PDF")

    def call(path: str, who: str) -> dict:
        tok = httpx.post(f"{gw}/api/auth/login", json={"email": who, "password": "demo-parola-2026"}).json()
        return httpx.get(f"{gw}{path}", headers={"Authorization": f"Bearer {tok['access_token']}"}, timeout=30).json()
    firm = "maria.ionescu@contabil-expert.demo"
    companies = {c["cif"]: (c["relation"], c.get("collaboration_status"))
                 for c in call("/api/portfolio/companies", firm)["companies"]}
    assert companies == {"39812755": ("own", None), "18453276": ("client", "active")}
    assert call("/api/efactura/invoices?limit=5", firm)["items"]
    assert call("/api/etransport/transports?page_size=5", "andrei.popescu@trans-rapid.demo")["items"]
    health = httpx.get(f"{gw}/health", timeout=30).json()
    assert health["status"] == "ok" and set(health["services"]) >= {"auth", "efactura", "notifier"}
    assert json.loads(httpx.get(f"{gw}/openapi.json", timeout=30).text)["paths"]
