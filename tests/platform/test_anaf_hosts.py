"""ANAF is reached only through the shared client (`spvhub_common.anaf`), which builds each URL from its host
family's base: no service carries an ANAF path of its own, and every deployment names the four hosts."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Paths of the four ANAF host families (anaf-api.md §0): OAuth, e-Factura / e-Transport, the VAT registry, the
# SPV mailbox. Only libs/common/spvhub_common/anaf/ may spell them.
ANAF_PATHS = re.compile(r"anaf-oauth2|FCTEL/rest|ETRANSPORT/ws|PlatitorTvaRest|SPVWS2|registruroefactura")
FOUR_BASES = ("SPVHUB_ANAF_OAUTH_BASE", "SPVHUB_ANAF_API_BASE", "SPVHUB_ANAF_PUBLIC_BASE", "SPVHUB_ANAF_SPV_BASE")


def test_no_service_code_spells_an_anaf_path() -> None:
    """A service's tests may talk to the emulator directly; its code may not talk to ANAF but through the client."""
    hits = []
    for path in sorted((ROOT / "services").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if "tests" in rel.parts:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ANAF_PATHS.search(line):
                hits.append(f"{rel}:{n}: {line.strip()}")
    assert hits == [], "ANAF paths outside libs/common/spvhub_common/anaf:\n" + "\n".join(hits)


def test_the_grep_would_see_a_private_anaf_call() -> None:
    line = 'resp = await http.post(f"{base}/anaf-oauth2/v1/token", data=form)'
    assert ANAF_PATHS.search(line)


def test_no_deployment_uses_the_single_anaf_base() -> None:
    """One base URL for every ANAF host sent OAuth to api.anaf.ro; it is gone everywhere."""
    places = [ROOT / "dev", ROOT / "docker-compose.yml", ROOT / "tests" / "e2e" / "system.py",
              *sorted((ROOT / "deploy").rglob("*.env")), *sorted((ROOT / "deploy").rglob("*.yaml"))]
    stale = [str(p.relative_to(ROOT)) for p in places if re.search(r"SPVHUB_ANAF_BASE\b", p.read_text())]
    assert stale == []


def test_production_config_names_the_four_real_hosts() -> None:
    config = dict(line.split("=", 1) for line in (ROOT / "deploy/k8s/base/config.env").read_text().splitlines()
                  if "=" in line and not line.startswith("#"))
    assert {k: config.get(k) for k in FOUR_BASES} == {
        "SPVHUB_ANAF_OAUTH_BASE": "https://logincert.anaf.ro", "SPVHUB_ANAF_API_BASE": "https://api.anaf.ro",
        "SPVHUB_ANAF_PUBLIC_BASE": "https://webservicesp.anaf.ro", "SPVHUB_ANAF_SPV_BASE": "https://webserviced.anaf.ro"}
    assert "SPVHUB_ANAF_EMULATOR_URL" not in config
    readme = (ROOT / "README.md").read_text()
    assert "## Pointing at the real ANAF" in readme and all(base in readme for base in FOUR_BASES)
